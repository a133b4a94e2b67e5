/*
 * call.c - commands completing later (see call.h), and the test executor
 * whose operations complete on the next loop turn. Worker thread.
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
    fe_cont cont;
    const struct fe_exec_ops *xo; /* to release an item nobody waits for */
    void *exec;
    size_t extra;
    char data[];
};

struct fe_call *fe_call_new(struct conn *c, fe_cont cont, size_t extra)
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

void fe_call_done(struct fe_call *call, const struct fe_answer *a)
{
    struct conn *c = conn_slot_enter(call->slot);
    if (c != NULL)
        call->cont(c, call, a);
    else if (a->item != NULL)
        call->xo->release(call->exec, a->item);
    conn_slot_done(call->slot);
    mem_free(MEM_CONN, call, sizeof(*call) + call->extra);
}

/* ---- the deferred test executor: each async operation runs the
 * synchronous one a loop turn later ---- */

enum later_op {
    LATER_GET,
    LATER_META_GET,
    LATER_STORE,
    LATER_DELETE,
    LATER_TOUCH,
    LATER_DELTA,
    LATER_META_DELETE,
    LATER_META_DELTA
};

struct later {
    struct defer_job base;
    enum later_op op;
    struct fe_call *call;
    void *item; /* LATER_STORE: the reserved item, owned until stored */
    bool flag_a, flag_b, flag_c;
    rel_time_t exptime;
    uint64_t u1, u2;
    unsigned mflags;
    enum fe_store_mode mode;
    struct fe_meta_ttl ttl;
    struct fe_meta_arith arith;
    size_t nkey;
    char key[];
};

static void later_run(struct defer_job *job, struct worker *w, bool cancelled)
{
    struct later *j = (struct later *)job;
    struct fe_answer a;
    memset(&a, 0, sizeof(a));
    const struct fe_exec_ops *xo = w->fe->xo;
    void *wctx = w->wctx;
    if (cancelled) {
        if (j->item != NULL)
            xo->release(w->fe->exec, j->item);
        a.result = FE_NO_MEMORY;
    } else {
        switch (j->op) {
        case LATER_GET: a.item = xo->get(wctx, j->key, j->nkey, j->flag_a, j->exptime); break;
        case LATER_META_GET:
            a.item = xo->meta_get(wctx, j->key, j->nkey, &j->ttl, j->flag_a, &a.info);
            break;
        case LATER_STORE:
            a.result = xo->store(wctx, j->item, j->mode, j->u1, j->mflags, &a.cas);
            break;
        case LATER_DELETE: a.result = xo->remove(wctx, j->key, j->nkey, j->u1); break;
        case LATER_TOUCH: a.result = xo->touch(wctx, j->key, j->nkey, j->exptime); break;
        case LATER_DELTA:
            a.result = xo->delta(wctx, j->key, j->nkey, j->flag_a, j->u1, j->u2, &a.value, &a.cas);
            break;
        case LATER_META_DELETE:
            a.result = xo->meta_delete(wctx, j->key, j->nkey, j->flag_a, j->u1, j->flag_b,
                                       j->flag_c, j->exptime);
            break;
        case LATER_META_DELTA:
            a.arith = j->arith;
            a.result = xo->meta_delta(wctx, j->key, j->nkey, &a.arith);
            break;
        }
    }
    fe_call_done(j->call, &a);
    mem_free(MEM_CONN, j, sizeof(*j) + j->nkey);
}

/* Queues op for the next turn; a job that cannot be allocated is answered
 * at once as out of memory (the slot must still be completed). */
static struct later *later_new(void *wctx, enum later_op op, const char *key, size_t nkey,
                               struct fe_call *call)
{
    struct later *j = mem_calloc(MEM_CONN, 1, sizeof(*j) + nkey);
    if (j == NULL) {
        struct fe_answer a = {.result = FE_NO_MEMORY};
        fe_call_done(call, &a);
        return NULL;
    }
    (void)wctx;
    j->base.run = later_run;
    j->op = op;
    j->call = call;
    j->nkey = nkey;
    if (nkey > 0)
        memcpy(j->key, key, nkey);
    return j;
}

static void later_get(void *wctx, const char *key, size_t nkey, bool touch, rel_time_t exptime,
                      struct fe_call *call)
{
    struct later *j = later_new(wctx, LATER_GET, key, nkey, call);
    if (j == NULL)
        return;
    j->flag_a = touch;
    j->exptime = exptime;
    defer_push(wctx, &j->base);
}

static void later_meta_get(void *wctx, const char *key, size_t nkey, const struct fe_meta_ttl *ttl,
                           bool no_bump, struct fe_call *call)
{
    struct later *j = later_new(wctx, LATER_META_GET, key, nkey, call);
    if (j == NULL)
        return;
    j->ttl = *ttl;
    j->flag_a = no_bump;
    defer_push(wctx, &j->base);
}

static void later_store(void *wctx, void *item, enum fe_store_mode mode, uint64_t cas_in,
                        unsigned mflags, struct fe_call *call)
{
    struct later *j = later_new(wctx, LATER_STORE, NULL, 0, call);
    if (j == NULL) {
        struct worker *w = wctx;
        w->fe->xo->release(w->fe->exec, item);
        return;
    }
    j->item = item;
    j->mode = mode;
    j->u1 = cas_in;
    j->mflags = mflags;
    defer_push(wctx, &j->base);
}

static void later_delete(void *wctx, const char *key, size_t nkey, uint64_t cas_in,
                         struct fe_call *call)
{
    struct later *j = later_new(wctx, LATER_DELETE, key, nkey, call);
    if (j == NULL)
        return;
    j->u1 = cas_in;
    defer_push(wctx, &j->base);
}

static void later_touch(void *wctx, const char *key, size_t nkey, rel_time_t exptime,
                        struct fe_call *call)
{
    struct later *j = later_new(wctx, LATER_TOUCH, key, nkey, call);
    if (j == NULL)
        return;
    j->exptime = exptime;
    defer_push(wctx, &j->base);
}

static void later_delta(void *wctx, const char *key, size_t nkey, bool incr, uint64_t delta,
                        uint64_t cas_in, struct fe_call *call)
{
    struct later *j = later_new(wctx, LATER_DELTA, key, nkey, call);
    if (j == NULL)
        return;
    j->flag_a = incr;
    j->u1 = delta;
    j->u2 = cas_in;
    defer_push(wctx, &j->base);
}

static void later_meta_delete(void *wctx, const char *key, size_t nkey, bool has_cas,
                              uint64_t cas_in, bool invalidate, bool new_ttl, rel_time_t exptime,
                              struct fe_call *call)
{
    struct later *j = later_new(wctx, LATER_META_DELETE, key, nkey, call);
    if (j == NULL)
        return;
    j->flag_a = has_cas;
    j->u1 = cas_in;
    j->flag_b = invalidate;
    j->flag_c = new_ttl;
    j->exptime = exptime;
    defer_push(wctx, &j->base);
}

static void later_meta_delta(void *wctx, const char *key, size_t nkey,
                             const struct fe_meta_arith *a, struct fe_call *call)
{
    struct later *j = later_new(wctx, LATER_META_DELTA, key, nkey, call);
    if (j == NULL)
        return;
    j->arith = *a;
    defer_push(wctx, &j->base);
}

const struct fe_exec_ops *fe_exec_deferred(const struct fe_exec_ops *inner,
                                           struct fe_exec_ops *storage)
{
    *storage = *inner;
    storage->get_async = later_get;
    storage->meta_get_async = later_meta_get;
    storage->store_async = later_store;
    storage->remove_async = later_delete;
    storage->touch_async = later_touch;
    storage->delta_async = later_delta;
    storage->meta_delete_async = later_meta_delete;
    storage->meta_delta_async = later_meta_delta;
    return storage;
}
