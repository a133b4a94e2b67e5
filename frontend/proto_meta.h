/*
 * proto_meta.h - the memcached meta protocol front end (mg, ms, md, ma,
 * mn, me) on text connections: parsed lines (common/mc_meta) become calls
 * of the command layer (cmd.h) and replies in memcached 1.6.18's format.
 * Worker thread of the connection.
 */
#pragma once

#include <stddef.h>

#include "frontend/proto.h"

struct conn;

/* Handles one meta command line (without its "\r\n"). May switch the
 * connection to CONN_NREAD (ms) or CONN_SWALLOW (a refused ms). */
enum proto_action proto_meta_line(struct conn *c, const char *line, size_t len);

/* Called when the data block of an ms has been read into c->it. */
enum proto_action proto_meta_nread_done(struct conn *c);

/* Frees the connection's meta state. */
void proto_meta_conn_free(struct conn *c);
