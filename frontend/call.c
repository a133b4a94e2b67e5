/*
 * call.c - commands completing later (see call.h), and the test executor
 * whose lookups complete on the next loop turn. Worker thread.
 */
#include "frontend/call.h"

#include <string.h>

#include "common/mem.h"
#include "frontend/conn.h"
#include "frontend/defer.h"
#include "frontend/fe.h"
#include "frontend/worker.h"

struct fe_call {
    struct conn_slot *slot;
    fe_lookup_cont cont;
    const struct fe_exec_ops *xo; /* to release an item nobody waits for */
    void *exec;
    size_t extra;
    char data[];
};

struct fe_call *fe_call_new(struct conn *c, fe_lookup_cont cont, size_t extra)
{
    struct fe_call *call = mem_alloc(MEM_CONN, sizeof(*call) + extra);
    if (call == NULL)
        return NULL;
    call->slot = conn_defer(c);
    if (call->slot == NULL) {
        mem_free(MEM_CONN, call, sizeof(*call) + extra);
        return NULL;
    }
    call->cont = cont;
    call->xo = c->xo;
    call->exec = c->exec;
    call->extra = extra;
    return call;
}

void *fe_call_extra(struct fe_call *call)
{
    return call->data;
}

void fe_call_done_lookup(struct fe_call *call, void *item, const struct fe_meta_info *info)
{
    struct conn *c = conn_slot_enter(call->slot);
    if (c != NULL)
        call->cont(c, call, item, info);
    else if (item != NULL)
        call->xo->release(call->exec, item);
    conn_slot_done(call->slot);
    mem_free(MEM_CONN, call, sizeof(*call) + call->extra);
}

/* ---- the deferred-lookup test executor ---- */

struct lookup_job {
    struct defer_job base;
    struct fe_call *call;
    bool meta;
    bool touch, no_bump;
    rel_time_t exptime;
    struct fe_meta_ttl ttl;
    size_t nkey;
    char key[];
};

static void lookup_job_run(struct defer_job *job, struct worker *w, bool cancelled)
{
    struct lookup_job *j = (struct lookup_job *)job;
    void *item = NULL;
    struct fe_meta_info info;
    memset(&info, 0, sizeof(info));
    if (!cancelled) {
        /* the synchronous operation, a loop turn later */
        const struct fe_exec_ops *xo = w->fe->xo;
        item = j->meta ? xo->meta_get(w->wctx, j->key, j->nkey, &j->ttl, j->no_bump, &info)
                       : xo->get(w->wctx, j->key, j->nkey, j->touch, j->exptime);
    }
    fe_call_done_lookup(j->call, item, j->meta ? &info : NULL);
    mem_free(MEM_CONN, j, sizeof(*j) + j->nkey);
}

static struct lookup_job *lookup_job_new(void *wctx, const char *key, size_t nkey,
                                         struct fe_call *call)
{
    struct lookup_job *j = mem_calloc(MEM_CONN, 1, sizeof(*j) + nkey);
    if (j == NULL) {
        /* answered as a miss: the slot must still be completed */
        fe_call_done_lookup(call, NULL, NULL);
        return NULL;
    }
    (void)wctx;
    j->base.run = lookup_job_run;
    j->call = call;
    j->nkey = nkey;
    memcpy(j->key, key, nkey);
    return j;
}

static void deferred_get(void *wctx, const char *key, size_t nkey, bool touch, rel_time_t exptime,
                         struct fe_call *call)
{
    struct lookup_job *j = lookup_job_new(wctx, key, nkey, call);
    if (j == NULL)
        return;
    j->touch = touch;
    j->exptime = exptime;
    defer_push(wctx, &j->base);
}

static void deferred_meta_get(void *wctx, const char *key, size_t nkey,
                              const struct fe_meta_ttl *ttl, bool no_bump, struct fe_call *call)
{
    struct lookup_job *j = lookup_job_new(wctx, key, nkey, call);
    if (j == NULL)
        return;
    j->meta = true;
    j->ttl = *ttl;
    j->no_bump = no_bump;
    defer_push(wctx, &j->base);
}

const struct fe_exec_ops *fe_exec_deferred_lookups(const struct fe_exec_ops *inner,
                                                   struct fe_exec_ops *storage)
{
    *storage = *inner;
    storage->get_async = deferred_get;
    storage->meta_get_async = deferred_meta_get;
    return storage;
}
