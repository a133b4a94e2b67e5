/*
 * worker.c - a strata-bench worker thread (see worker.h): connects its
 * connections, runs the preload and measured phases on its own event_base,
 * and keeps its tally for the main thread to collect. Every event callback
 * holds w->lock, so main reads a consistent tally.
 */
#include "tools/strata-bench/worker.h"

#include <errno.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/mem.h"
#include "tools/strata-bench/conn.h"
#include "tools/strata-bench/mono.h"

/* How often a worker checks the deadline, stop and stalled connections. */
#define WORKER_TICK_US 20000

void worker_report(struct worker *w, const char *fmt, ...)
{
    unsigned n = atomic_fetch_add(&w->sh->reports, 1);
    if (n > WORKER_REPORTS_MAX)
        return;
    if (n == WORKER_REPORTS_MAX) {
        fprintf(stderr, "strata-bench: further failures are counted, not printed\n");
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "strata-bench: %s\n", msg);
}

bool worker_may_send(struct worker *w, uint64_t now)
{
    if (w->draining)
        return false;
    if (atomic_load_explicit(&w->sh->stop, memory_order_relaxed) ||
        (w->phase == WORKER_MEASURE &&
         now >= atomic_load_explicit(&w->sh->deadline, memory_order_relaxed))) {
        w->draining = true;
        return false;
    }
    return true;
}

bool worker_next_preload(struct worker *w, uint64_t *id)
{
    if (w->preload_next >= w->preload_end)
        return false;
    *id = w->preload_next++;
    return true;
}

static void check_phase_end(struct worker *w)
{
    if (w->idle >= w->alive)
        event_base_loopbreak(w->base);
}

void worker_conn_idle(struct worker *w)
{
    w->idle++;
    check_phase_end(w);
}

void worker_conn_closed(struct worker *w, bool was_idle)
{
    w->alive--;
    if (was_idle)
        w->idle--;
    check_phase_end(w);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    pthread_mutex_lock(&w->lock);
    uint64_t now = mono_now_ns();
    worker_may_send(w, now); /* notices the deadline even when idle */
    for (unsigned i = 0; i < w->nconns; i++)
        if (w->conns[i] != NULL)
            conn_tick(w->conns[i], now);
    check_phase_end(w);
    pthread_mutex_unlock(&w->lock);
}

/* Requests connection `id` may send in the measured phase. */
static uint64_t budget_of(const struct bench_opts *o, unsigned id)
{
    if (o->requests == 0)
        return UINT64_MAX;
    uint64_t total = (uint64_t)o->threads * o->conns;
    return o->requests / total + (id < o->requests % total ? 1 : 0);
}

static void run_phase(struct worker *w, enum worker_phase phase)
{
    const struct bench_opts *o = w->sh->o;
    pthread_mutex_lock(&w->lock);
    w->phase = phase;
    w->draining = false;
    w->idle = 0;
    uint64_t now = mono_now_ns();
    for (unsigned i = 0; i < w->nconns; i++) {
        struct conn *c = w->conns[i];
        if (c != NULL && c->alive)
            conn_start(c, phase == WORKER_PRELOAD ? o->preload_depth : o->depth,
                       budget_of(o, c->id), now);
    }
    bool over = w->idle >= w->alive;
    pthread_mutex_unlock(&w->lock);
    if (over)
        return; /* a loopbreak before the loop starts would be lost */
    struct timeval tv = {0, WORKER_TICK_US};
    event_add(w->tick, &tv);
    event_base_loop(w->base, 0);
    event_del(w->tick);
}

static void connect_all(struct worker *w)
{
    const struct bench_opts *o = w->sh->o;
    for (unsigned i = 0; i < w->nconns; i++) {
        unsigned id = w->id * o->conns + i;
        enum st_status st = conn_create(&w->conns[i], w, id);
        if (st == ST_OK) {
            w->alive++;
            continue;
        }
        int err = errno;
        pthread_mutex_lock(&w->lock);
        w->tally.conn_failures++;
        pthread_mutex_unlock(&w->lock);
        worker_report(w, "conn %u: connect to %s: %s", id, o->server,
                      st == ST_TIMEOUT ? "timed out"
                      : st == ST_NOMEM ? "out of memory"
                                       : strerror(err));
        conn_destroy(&w->conns[i]);
    }
}

static void finish(struct worker *w)
{
    pthread_mutex_lock(&w->sh->done_lock);
    w->sh->done++;
    pthread_cond_signal(&w->sh->done_cond);
    pthread_mutex_unlock(&w->sh->done_lock);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const struct bench_opts *o = w->sh->o;
    connect_all(w);
    if (o->preload)
        run_phase(w, WORKER_PRELOAD);
    pthread_barrier_wait(&w->sh->phase); /* preload done everywhere */
    pthread_barrier_wait(&w->sh->phase); /* main has set the deadline */
    if (!o->preload_only)
        run_phase(w, WORKER_MEASURE);
    finish(w);
    return NULL;
}

static void worker_free(struct worker *w)
{
    if (w->conns != NULL) {
        for (unsigned i = 0; i < w->nconns; i++)
            conn_destroy(&w->conns[i]);
        mem_free(MEM_OTHER, w->conns, w->nconns * sizeof(*w->conns));
    }
    if (w->tick != NULL)
        event_free(w->tick);
    if (w->base != NULL)
        event_base_free(w->base);
    pthread_mutex_destroy(&w->lock);
    mem_free(MEM_OTHER, w, sizeof(*w));
}

enum st_status worker_start(struct worker **out, unsigned id, struct worker_shared *sh)
{
    const struct bench_opts *o = sh->o;
    struct worker *w = mem_calloc(MEM_OTHER, 1, sizeof(*w));
    *out = NULL;
    if (w == NULL)
        return ST_NOMEM;
    w->id = id;
    w->sh = sh;
    pthread_mutex_init(&w->lock, NULL);
    tally_init(&w->tally);
    rng_seed(&w->rng, o->seed * 0x9e3779b97f4a7c15ull + id + 1);
    uint64_t k = o->keys;
    w->seq_cursor = (uint64_t)((unsigned __int128)k * id / o->threads);
    w->preload_next = w->seq_cursor;
    w->preload_end = (uint64_t)((unsigned __int128)k * (id + 1) / o->threads);
    w->nconns = o->conns;
    w->conns = mem_calloc(MEM_OTHER, w->nconns, sizeof(*w->conns));
    struct event_config *cfg = event_config_new();
    if (cfg != NULL) {
        event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
        w->base = event_base_new_with_config(cfg);
        event_config_free(cfg);
    }
    if (w->conns == NULL || w->base == NULL)
        goto err;
    w->tick = event_new(w->base, -1, EV_PERSIST, on_tick, w);
    if (w->tick == NULL)
        goto err;
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        worker_free(w);
        return ST_IO;
    }
    *out = w;
    return ST_OK;
err:
    worker_free(w);
    return ST_NOMEM;
}

void worker_join(struct worker **wp)
{
    struct worker *w = *wp;
    if (w == NULL)
        return;
    pthread_join(w->thread, NULL);
    worker_free(w);
    *wp = NULL;
}

void worker_collect(struct worker *w, struct tally *dst)
{
    pthread_mutex_lock(&w->lock);
    tally_merge(dst, &w->tally);
    tally_init(&w->tally);
    pthread_mutex_unlock(&w->lock);
}
