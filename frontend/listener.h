/*
 * listener.h - the TCP listening socket and the acceptor (main thread):
 * enforces the connection limit and hands sockets to workers round robin.
 */
#pragma once

#include "common/status.h"

struct fe_exec_ops;

struct event_base;
struct fe;
struct listener;

/* Binds and listens on settings' address and port. */
enum st_status listener_create(struct listener **out, struct fe *p, struct event_base *base);
/* The same on another address and port, whose connections run xo
 * instead of the front end's executor (strata-proxy's peer port serves
 * its L1 alone); xo NULL: the front end's. Connections share the
 * workers and the connection limit. */
enum st_status listener_create_on(struct listener **out, struct fe *p, struct event_base *base,
                                  const char *listen_addr, unsigned listen_port,
                                  const struct fe_exec_ops *xo);
/* Starts accepting. */
enum st_status listener_start(struct listener *l);
/*
 * Stops accepting and closes the socket; the listener stays readable by
 * workers (`stats conns`) until listener_destroy. Accepts NULL.
 */
void listener_stop(struct listener *l);
/* Stops if needed and frees; call once no worker runs. Accepts NULL. */
void listener_destroy(struct listener **l);

/* For `stats conns` (any thread): the socket, -1 once stopped. */
int listener_fd(const struct listener *l);
const char *listener_addr(const struct listener *l);
