/*
 * worker.c - worker thread lifecycle, connection hand-off and the idle
 * connection check (see worker.h). worker_dispatch runs on the acceptor
 * thread; everything else on the worker's own thread except
 * init/start/stop/join (main thread).
 */
#include "frontend/worker.h"

#include <errno.h>
#include <event2/event.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "frontend/conn.h"
#include "frontend/defer.h"
#include "frontend/fe.h"

/* How often a worker looks for idle connections (-o idle_timeout). */
#define WORKER_IDLE_CHECK_US 1000000

struct worker_newconn {
    struct worker_newconn *next;
    int fd;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    const struct fe_exec_ops *xo;
};

static void worker_close_all(struct worker *w)
{
    while (w->conns != NULL)
        conn_close(w->conns);
}

static void on_shutdown_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    log_info("worker %u: closing %u connections that did not drain", w->id, w->nconns);
    worker_close_all(w);
    event_base_loopbreak(w->base);
}

static void begin_drain(struct worker *w)
{
    w->draining = true;
    /* Copy the list walk: conn_drain may free the connection. */
    struct conn *c = w->conns;
    while (c != NULL) {
        struct conn *next = conn_next(c);
        conn_drain(c);
        c = next;
    }
    if (w->nconns == 0) {
        event_base_loopbreak(w->base);
        return;
    }
    unsigned grace = w->fe->settings.shutdown_timeout;
    if (grace == 0) {
        worker_close_all(w);
        event_base_loopbreak(w->base);
        return;
    }
    struct timeval tv = {(time_t)grace, 0};
    w->shutdown_timer = evtimer_new(w->base, on_shutdown_timer, w);
    if (w->shutdown_timer == NULL || evtimer_add(w->shutdown_timer, &tv) != 0) {
        worker_close_all(w);
        event_base_loopbreak(w->base);
    }
}

/*
 * memcached's idle_timeout: a connection waiting for a command (nothing
 * half-read, no reply waiting for the socket) whose last command is more
 * than idle_timeout seconds old is closed and counted in idle_kicks. One
 * walk of this worker's own list per second; the list is only changed on
 * this thread, so the walk needs no lock.
 */
static void on_idle_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    if (w->draining)
        return;
    rel_time_t now = clock_now();
    unsigned limit = w->fe->settings.idle_timeout;
    struct conn *c = w->conns;
    while (c != NULL) {
        struct conn *next = conn_next(c);
        if (conn_close_if_idle(c, now, limit))
            STAT_INCR(&w->stats, idle_kicks);
        c = next;
    }
}

/* Runs jobs other threads posted, oldest first (the list is newest
 * first). */
static void run_posted(struct worker *w, struct defer_job *newest, bool cancelled)
{
    struct defer_job *oldest = NULL;
    while (newest != NULL) {
        struct defer_job *next = newest->next;
        newest->next = oldest;
        oldest = newest;
        newest = next;
    }
    while (oldest != NULL) {
        struct defer_job *next = oldest->next;
        oldest->run(oldest, w, cancelled);
        oldest = next;
    }
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct worker *w = arg;
    uint64_t v;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_warn("worker %u: eventfd read: %s", w->id, strerror(errno));

    pthread_mutex_lock(&w->queue_lock);
    struct worker_newconn *q = w->queue;
    w->queue = NULL;
    struct defer_job *posted = w->posted;
    w->posted = NULL;
    bool stopping = w->stopping;
    pthread_mutex_unlock(&w->queue_lock);
    run_posted(w, posted, false);

    while (q != NULL) {
        struct worker_newconn *next = q->next;
        if (stopping || conn_create(w, q->fd, &q->peer, q->peerlen, q->xo) != ST_OK) {
            close(q->fd);
            atomic_fetch_sub(&w->fe->curr_conns, 1);
        }
        mem_free(MEM_CONN, q, sizeof(*q));
        q = next;
    }
    if (stopping && !w->draining)
        begin_drain(w);
}

enum st_status worker_init(struct worker *w, unsigned id, struct fe *p)
{
    memset(w, 0, sizeof(*w));
    w->id = id;
    w->fe = p;
    w->wctx = w;
    w->notify_fd = -1;
    pthread_mutex_init(&w->queue_lock, NULL);
    pthread_mutex_init(&w->conns_lock, NULL);
    conn_rbuf_setup(w, p->settings.read_buf_mem_limit, p->settings.threads);

    struct event_config *cfg = event_config_new();
    if (cfg == NULL)
        return ST_NOMEM;
    /* One thread per base: libevent's own locking would only cost. */
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    w->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (w->base == NULL)
        return ST_NOMEM;
    w->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->notify_fd < 0)
        return ST_IO;
    w->notify_ev = event_new(w->base, w->notify_fd, EV_READ | EV_PERSIST, on_notify, w);
    if (w->notify_ev == NULL || event_add(w->notify_ev, NULL) != 0)
        return ST_NOMEM;
    if (defer_init(w) != ST_OK)
        return ST_NOMEM;
    if (p->settings.idle_timeout > 0) {
        struct timeval tv = {WORKER_IDLE_CHECK_US / 1000000, WORKER_IDLE_CHECK_US % 1000000};
        w->idle_timer = event_new(w->base, -1, EV_PERSIST, on_idle_timer, w);
        if (w->idle_timer == NULL || event_add(w->idle_timer, &tv) != 0)
            return ST_NOMEM;
    }
    return ST_OK;
}

void worker_deinit(struct worker *w)
{
    worker_close_all(w);
    defer_deinit(w); /* after the connections: their slots are orphans now */
    run_posted(w, w->posted, true);
    w->posted = NULL;
    conn_rbuf_teardown(w);
    struct worker_newconn *q = w->queue;
    while (q != NULL) {
        struct worker_newconn *next = q->next;
        close(q->fd);
        mem_free(MEM_CONN, q, sizeof(*q));
        q = next;
    }
    w->queue = NULL;
    if (w->shutdown_timer != NULL)
        event_free(w->shutdown_timer);
    if (w->idle_timer != NULL)
        event_free(w->idle_timer);
    if (w->notify_ev != NULL)
        event_free(w->notify_ev);
    if (w->notify_fd >= 0)
        close(w->notify_fd);
    if (w->base != NULL)
        event_base_free(w->base);
    pthread_mutex_destroy(&w->queue_lock);
    pthread_mutex_destroy(&w->conns_lock);
    w->base = NULL;
}

/*
 * One loop round is one epoll_wait and the callbacks it made active; after
 * each we offer the CPU to other runnable threads. Without that, a worker
 * kept busy by clients on other CPUs runs until the scheduler preempts it
 * (whole slices, 1.5-5 ms), and a client waiting to run on the same CPU
 * waits that long for replies that are already in its socket: on a box
 * where clients and workers share cores, those connections set the p99
 * (docs/BENCH.md has the measurements). With nothing else runnable the
 * yield is one cheap syscall and the worker keeps its CPU.
 */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    while (event_base_loop(w->base, EVLOOP_ONCE) == 0 && !event_base_got_break(w->base))
        sched_yield();
    return NULL;
}

enum st_status worker_start(struct worker *w)
{
    return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? ST_OK : ST_NOMEM;
}

static void notify(struct worker *w)
{
    uint64_t one = 1;
    if (write(w->notify_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_warn("worker %u: eventfd write: %s", w->id, strerror(errno));
}

void worker_stop(struct worker *w)
{
    pthread_mutex_lock(&w->queue_lock);
    w->stopping = true;
    pthread_mutex_unlock(&w->queue_lock);
    notify(w);
}

void worker_post(struct worker *w, struct defer_job *job)
{
    pthread_mutex_lock(&w->queue_lock);
    job->next = w->posted;
    w->posted = job;
    pthread_mutex_unlock(&w->queue_lock);
    notify(w);
}

void worker_release_replies(struct worker *w, bool ok)
{
    struct conn *c = w->reply_waiters;
    w->reply_waiters = NULL;
    while (c != NULL) {
        struct conn *next = c->reply_next;
        conn_release_replies(c, ok);
        c = next;
    }
}

void worker_join(struct worker *w)
{
    pthread_join(w->thread, NULL);
}

enum st_status worker_dispatch(struct worker *w, int fd, const struct sockaddr_storage *peer,
                               socklen_t peerlen, const struct fe_exec_ops *xo)
{
    struct worker_newconn *nc = mem_alloc(MEM_CONN, sizeof(*nc));
    if (nc == NULL)
        return ST_NOMEM;
    nc->fd = fd;
    nc->peer = *peer;
    nc->peerlen = peerlen;
    nc->xo = xo;
    pthread_mutex_lock(&w->queue_lock);
    nc->next = w->queue;
    w->queue = nc;
    pthread_mutex_unlock(&w->queue_lock);
    notify(w);
    return ST_OK;
}

void worker_conn_closed(struct worker *w, struct conn *c)
{
    (void)c;
    if (w->draining && w->nconns == 0)
        event_base_loopbreak(w->base);
}
