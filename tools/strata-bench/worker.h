/*
 * worker.h - a strata-bench worker thread: its own event_base, its
 * connections, its random state and its tally (the "shard" the main thread
 * reads under the worker's lock). Main thread: worker_start/join/collect;
 * everything else runs on the worker's thread.
 */
#pragma once

/*
 * The phases run in lock step with main:
 *
 *   connect ─► [preload] ─► barrier ─► barrier (main sets the deadline)
 *           ─► [measure until the deadline, --requests or stop] ─► done
 *
 * Each phase ends when every live connection has nothing left to send and
 * nothing in flight.
 */

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/status.h"
#include "tools/strata-bench/keys.h"
#include "tools/strata-bench/opts.h"
#include "tools/strata-bench/rng.h"
#include "tools/strata-bench/tally.h"

struct conn;
struct event;
struct event_base;

/* Failures printed in full per run; the rest are only counted. */
#define WORKER_REPORTS_MAX 10

/* What main shares with every worker; main owns it and outlives them. */
struct worker_shared {
    const struct bench_opts *o;
    const struct keys *keys;
    const char *value; /* o->value_max pattern bytes, sent as every value */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    pthread_barrier_t phase;   /* threads + main, passed twice */
    atomic_bool stop;          /* stop sending, drain, end the phase */
    _Atomic uint64_t deadline; /* monotonic ns; set by main between barriers */
    atomic_uint reports;       /* failures printed so far */
    pthread_mutex_t done_lock;
    pthread_cond_t done_cond; /* signalled as each worker finishes */
    unsigned done;            /* under done_lock */
};

enum worker_phase {
    WORKER_PRELOAD,
    WORKER_MEASURE,
};

struct worker {
    unsigned id;
    struct worker_shared *sh;
    pthread_t thread;
    struct event_base *base;
    struct event *tick;
    struct conn **conns;
    unsigned nconns, alive, idle;
    enum worker_phase phase;
    bool draining;
    struct rng rng;
    uint64_t seq_cursor;                /* KEYS_SEQUENTIAL position */
    uint64_t preload_next, preload_end; /* this worker's preload keys */
    pthread_mutex_t lock;               /* guards tally; held by every callback */
    struct tally tally;
};

/* Allocates and starts worker `id` of sh->o->threads. Returns ST_OK,
 * ST_NOMEM or ST_IO (thread creation failed). */
enum st_status worker_start(struct worker **out, unsigned id, struct worker_shared *sh);

/* Joins the thread and frees the worker; accepts NULL. */
void worker_join(struct worker **w);

/* Adds the worker's tally to dst and resets it. Main thread; takes the
 * worker's lock. */
void worker_collect(struct worker *w, struct tally *dst);

/* Prints a failure report (first WORKER_REPORTS_MAX of the run) to stderr.
 * Any worker thread. */
void worker_report(struct worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* --- for conn.c, on the worker thread --- */

/* May a connection start another request now? */
bool worker_may_send(struct worker *w, uint64_t now);
/* Next preload key; false when this worker's range is done. */
bool worker_next_preload(struct worker *w, uint64_t *id);
/* A connection has nothing in flight and nothing to send. */
void worker_conn_idle(struct worker *w);
/* A connection closed after a failure (idle says if it was counted idle). */
void worker_conn_closed(struct worker *w, bool was_idle);
