/*
 * conn.h - one strata-bench connection: a closed-loop pipeline of up to
 * `depth` requests. Each read callback does one read(), matches the replies
 * to the in-flight requests, then composes requests into the freed slots
 * and sends them with one writev() (values from the shared value buffer).
 * Nothing is allocated after conn_create. Worker thread only.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/status.h"
#include "tools/strata-bench/mcwire.h"

struct worker;
struct event;

struct conn_slot {
    uint64_t sent_ns;
    struct mcwire_expect x;
};

struct conn {
    struct worker *w;
    unsigned id; /* 0 .. threads * conns - 1 */
    int fd;
    struct event *rev, *wev;
    bool alive, idle, write_blocked;
    unsigned depth; /* in flight now allowed (phase dependent) */

    struct mcwire_parser parser;
    struct conn_slot *slots; /* ring of cap slots: head .. head + count */
    unsigned cap, head, count;
    uint64_t *ids; /* cap * width key ids, slot i owns [i * width, ...) */
    unsigned width;
    uint32_t seq;    /* opaque of the next request */
    uint64_t budget; /* requests this connection may still send */

    char *out; /* composed requests of the pending batch */
    size_t out_cap;
    struct iovec *iov;
    unsigned iov_cap, niov, iov_pos;

    char *in; /* unparsed input is in[0, in_len) */
    size_t in_cap, in_len;
    uint64_t last_rx; /* monotonic ns of the last bytes received */
};

/*
 * Connects (blocking, bounded by --timeout) and allocates connection `id`
 * of worker w. Returns ST_OK, ST_NOMEM, or ST_IO / ST_TIMEOUT with errno
 * set (the connection is then created but not alive; conn_destroy it).
 */
enum st_status conn_create(struct conn **out, struct worker *w, unsigned id);

/* Closes and frees; accepts NULL and NULLs *c. */
void conn_destroy(struct conn **c);

/* Starts a phase: sets the allowed depth and the requests this connection
 * may send (UINT64_MAX: no limit; the preload phase ignores it) and sends
 * the first batch. */
void conn_start(struct conn *c, unsigned depth, uint64_t budget, uint64_t now);

/* Periodic check from the worker's timer: fails a connection that has
 * waited longer than --timeout for a reply, and notices idleness once the
 * worker stops sending. */
void conn_tick(struct conn *c, uint64_t now);
