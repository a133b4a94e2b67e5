/*
 * batch.c - a worker's writes answered after one sync per loop turn (see
 * batch.h).
 *
 *   write ─► inner's synchronous op (L1 + the turn's engine batch) ─► answer
 *         ─► the worker's batch; first of the turn: a defer job
 *   end of turn ─► tiers_turn_end (the engine batch written)
 *               ─► tiers_sync (one fdatasync per engine) ─► every answer
 */
#include "proxy/batch.h"

#include <string.h>

#include "common/mem.h"
#include "frontend/call.h"
#include "frontend/defer.h"
#include "frontend/fe.h"
#include "frontend/worker.h"
#include "proxy/cmd.h"
#include "proxy/proxy.h"
#include "proxy/tiers.h"

struct batch_entry {
    struct batch_entry *next;
    struct fe_call *call;
    struct fe_answer a;
};

/* A worker's waiting answers and the job that releases them. */
struct batch {
    struct defer_job job; /* first: the job is the batch */
    struct batch_entry *head, *tail;
    bool queued;
};

static struct tiers *tiers_of(struct worker *w)
{
    return ((struct proxy *)w->fe->exec)->tiers;
}

static void batch_run(struct defer_job *job, struct worker *w, bool cancelled)
{
    struct batch *b = (struct batch *)job;
    struct batch_entry *e = b->head;
    b->head = b->tail = NULL;
    b->queued = false;
    /* the turn's engine batch first (it releases the keys' locks, also
     * when cancelled); a failed write or sync leaves the engine
     * read-only: these writes may be lost, so nobody is told they were
     * stored */
    bool written = tiers_turn_end(tiers_of(w), w->id) == ST_OK;
    bool synced = written && !cancelled && tiers_sync(tiers_of(w)) == ST_OK;
    while (e != NULL) {
        struct batch_entry *next = e->next;
        if (!synced && fe_server_error(e->a.result) == NULL && e->a.result != FE_NO_MEMORY)
            e->a.result = FE_FAILED;
        fe_call_done(e->call, &e->a);
        mem_free(MEM_CONN, e, sizeof(*e));
        e = next;
    }
}

/* w's batch with its job queued for the end of this loop turn; NULL
 * when out of memory. */
static struct batch *batch_queued(struct worker *w)
{
    struct batch *b = tiers_worker_batch(tiers_of(w), w->id, sizeof(struct batch));
    if (b != NULL && !b->queued) {
        b->queued = true;
        b->job.run = batch_run;
        defer_push(w, &b->job);
    }
    return b;
}

void batch_end_of_turn(struct worker *w)
{
    if (batch_queued(w) == NULL)
        tiers_turn_flush(tiers_of(w), w->id); /* nothing may wait for the turn */
}

/* Queues an answer for the end of the turn (at once when out of memory:
 * then without waiting for the sync, as a failure). */
static void batch_add(struct worker *w, struct fe_call *call, const struct fe_answer *a)
{
    struct batch *b = batch_queued(w);
    struct batch_entry *e = b != NULL ? mem_alloc(MEM_CONN, sizeof(*e)) : NULL;
    if (e == NULL) {
        tiers_turn_flush(tiers_of(w), w->id);
        struct fe_answer failed = *a;
        failed.result = FE_FAILED;
        fe_call_done(call, &failed);
        return;
    }
    e->next = NULL;
    e->call = call;
    e->a = *a;
    if (b->tail != NULL)
        b->tail->next = e;
    else
        b->head = e;
    b->tail = e;
}

/* The synchronous operations the batch wraps: the proxy's executor. */
static const struct fe_exec_ops *inner_of(struct worker *w)
{
    (void)w;
    return &cmd_exec_ops;
}

static void b_store(void *wctx, void *item, enum fe_store_mode mode, uint64_t cas_in,
                    unsigned mflags, struct fe_call *call)
{
    struct worker *w = wctx;
    struct fe_answer a;
    memset(&a, 0, sizeof(a));
    a.result = inner_of(w)->store(wctx, item, mode, cas_in, mflags, &a.cas);
    batch_add(w, call, &a);
}

static void b_remove(void *wctx, const char *key, size_t nkey, uint64_t cas_in,
                     struct fe_call *call)
{
    struct worker *w = wctx;
    struct fe_answer a;
    memset(&a, 0, sizeof(a));
    a.result = inner_of(w)->remove(wctx, key, nkey, cas_in);
    batch_add(w, call, &a);
}

static void b_touch(void *wctx, const char *key, size_t nkey, rel_time_t exptime,
                    struct fe_call *call)
{
    struct worker *w = wctx;
    struct fe_answer a;
    memset(&a, 0, sizeof(a));
    a.result = inner_of(w)->touch(wctx, key, nkey, exptime);
    batch_add(w, call, &a);
}

static void b_delta(void *wctx, const char *key, size_t nkey, bool incr, uint64_t delta,
                    uint64_t cas_in, struct fe_call *call)
{
    struct worker *w = wctx;
    struct fe_answer a;
    memset(&a, 0, sizeof(a));
    a.result = inner_of(w)->delta(wctx, key, nkey, incr, delta, cas_in, &a.value, &a.cas);
    batch_add(w, call, &a);
}

static void b_meta_delete(void *wctx, const char *key, size_t nkey, bool has_cas, uint64_t cas_in,
                          bool invalidate, bool new_ttl, rel_time_t exptime, struct fe_call *call)
{
    struct worker *w = wctx;
    struct fe_answer a;
    memset(&a, 0, sizeof(a));
    a.result =
        inner_of(w)->meta_delete(wctx, key, nkey, has_cas, cas_in, invalidate, new_ttl, exptime);
    batch_add(w, call, &a);
}

static void b_meta_delta(void *wctx, const char *key, size_t nkey, const struct fe_meta_arith *ar,
                         struct fe_call *call)
{
    struct worker *w = wctx;
    struct fe_answer a;
    memset(&a, 0, sizeof(a));
    a.arith = *ar;
    a.result = inner_of(w)->meta_delta(wctx, key, nkey, &a.arith);
    batch_add(w, call, &a);
}

const struct fe_exec_ops *batch_exec(const struct fe_exec_ops *inner, struct fe_exec_ops *storage)
{
    *storage = *inner;
    storage->store_async = b_store;
    storage->remove_async = b_remove;
    storage->touch_async = b_touch;
    storage->delta_async = b_delta;
    storage->meta_delete_async = b_meta_delete;
    storage->meta_delta_async = b_meta_delta;
    return storage;
}
