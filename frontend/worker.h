/*
 * worker.h - worker threads: each owns an event_base (no locking), the
 * connections handed to it, and its counter shard. New connections arrive
 * from the acceptor through a mutex-guarded queue plus an eventfd.
 */
#pragma once

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "common/status.h"
#include "frontend/counters.h"

struct event_base;
struct event;
struct fe;
struct conn;
struct worker_newconn;
struct fe_exec_ops;
struct conn_rbuf;
struct defer_job;

struct worker {
    unsigned id;
    struct fe *fe;
    void *wctx; /* the executor's context for this worker */
    pthread_t thread;
    struct event_base *base;
    int notify_fd; /* eventfd: new connections or shutdown */
    struct event *notify_ev;
    struct event *shutdown_timer;
    struct event *idle_timer; /* -o idle_timeout only */

    /* Jobs for the next loop turn (defer.c). */
    struct defer_job *defer_head, *defer_tail;
    struct event *defer_ev;

    /* Input buffers (conn.c). With -o read_buf_mem_limit, a pool of at
     * most rbuf_limit buffers: rbuf_pooled allocated, idle ones listed in
     * rbuf_free. The gauges are read by `stats`. */
    unsigned rbuf_limit; /* 0: each connection owns its buffer */
    unsigned rbuf_pooled;
    struct conn_rbuf *rbuf_free;
    _Atomic uint64_t rbuf_count, rbuf_bytes, rbuf_bytes_free;

    pthread_mutex_t queue_lock; /* guards queue, posted and stopping */
    struct worker_newconn *queue;
    struct defer_job *posted; /* worker_post's, newest first */
    /* Connections whose replies the executor holds (exec.h before_reply),
     * through conn->reply_next. */
    struct conn *reply_waiters;
    bool stopping;

    struct worker_stats stats; /* written by this thread only */

    pthread_mutex_t conns_lock; /* guards the list (stats conns reads it) */
    struct conn *conns;         /* doubly linked through conn->prev/next */
    unsigned nconns;
    bool draining; /* shutting down: no new commands */
};

/* Creates the worker's event base and notification channel. */
enum st_status worker_init(struct worker *w, unsigned id, struct fe *fe);
void worker_deinit(struct worker *w);

enum st_status worker_start(struct worker *w);
/* Asks the worker to finish in-flight replies, close its connections and
 * exit its loop; worker_join() waits for that. */
void worker_stop(struct worker *w);
void worker_join(struct worker *w);

/* Queues job to run on w's thread, from any thread (defer.h's jobs are
 * the same thing from w's own thread). A job still queued when the worker
 * is deinitialised runs there, cancelled. */
void worker_post(struct worker *w, struct defer_job *job);

/* The replies the executor held (FE_REPLY_LATER) may leave now (ok), or
 * must not: their connections are closed. Worker thread. */
void worker_release_replies(struct worker *w, bool ok);

/* Hands an accepted socket to the worker (acceptor thread). Takes the fd.
 * xo: the connection's executor (NULL: the front end's). */
enum st_status worker_dispatch(struct worker *w, int fd, const struct sockaddr_storage *peer,
                               socklen_t peerlen, const struct fe_exec_ops *xo);

/* Called by conn.c (worker thread) when a connection is freed. */
void worker_conn_closed(struct worker *w, struct conn *c);
