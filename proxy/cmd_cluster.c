/*
 * cmd_cluster.c - memcached's commands with `backend = cluster` (see
 * cmd_cluster.h): the front end's asynchronous operations, each of which
 * runs its backend part through cbackend.c and its L1 part through the
 * proxy's synchronous executor (proxy/cmd.c, which is L1 alone for a
 * cluster), so the L1 semantics and memcached's counting stay in one
 * place. Keys whose policy is cache-only, and L1 hits, complete at once.
 *
 *   get:    L1 hit ─► answer | miss ─► COORD_READ ─► gated fill ─► L1 get
 *           (a miss of a key whose read is in flight, from any worker,
 *           waits for it: its L1 get runs on its own worker afterwards)
 *   write:  RMW at the key's primary ─► L1 gets the record or drops its
 *           copy (tiers_cluster_written) ─► answer
 *   read-through writes: (miss ─► COORD_READ ─► fill) ─► the L1 command
 */
#include "proxy/cmd_cluster.h"

#include <stddef.h>
#include <string.h>

#include "cache/cache.h"
#include "common/clock.h"
#include "common/mem.h"
#include "frontend/call.h"
#include "frontend/count.h"
#include "frontend/defer.h"
#include "frontend/fe.h"
#include "frontend/worker.h"
#include "kvstore/kvstore.h"
#include "proxy/cbackend.h"
#include "proxy/cl2.h"
#include "proxy/cmd.h"
#include "proxy/proxy.h"
#include "proxy/tiers.h"
#include "proxy/writebehind.h"
#include "storage/include/lsm.h"

enum wkind { K_GET, K_MG, K_STORE, K_DELETE, K_MD, K_TOUCH, K_DELTA, K_MA };

/* A command waiting on the cluster. */
struct cwait {
    struct fe_call *call;
    struct worker *w;
    const struct policy *pol;
    enum wkind kind;
    uint64_t gen;              /* the fill gate's, when the read was sent */
    struct cwait *flight_next; /* a read in flight: the next in its slot's list */
    struct cwait *followers;   /* a read in flight: commands waiting for it */
    struct cwait *follower_next;
    struct defer_job job;       /* a follower on another worker: run there */
    enum fe_result read_result; /* ... with the read's outcome */
    struct wire_rmw q;          /* write-behind waiting for a read: its RMW */
    uint8_t *qvalue;            /* ... whose value it owns (nqvalue bytes) */
    size_t nqvalue;
    uint64_t start_us;         /* when the backend request was sent */
    bool from_pool;            /* the read was answered by the L2 pool, not the nodes */
    struct cl2_seen pool_seen; /* ... or what the pool held instead */
    bool touch;                /* K_GET: gat */
    rel_time_t exptime;
    struct fe_meta_ttl ttl; /* K_MG */
    bool no_bump;
    void *item; /* K_STORE, read-through: the reserved item, owned */
    enum fe_store_mode mode;
    uint64_t cas_in;
    unsigned mflags;
    bool has_cas, invalidate, new_ttl; /* K_MD */
    bool incr;                         /* K_DELTA */
    uint64_t delta;
    struct fe_meta_arith arith; /* K_MA */
    size_t nkey;
    char key[];
};

static struct tiers *tiers_of(struct worker *w)
{
    return ((struct proxy *)w->fe->exec)->tiers;
}

static const struct fe_exec_ops *l1(void)
{
    return &cmd_exec_ops;
}

static struct cwait *cwait_new(struct worker *w, struct fe_call *call, enum wkind kind,
                               const struct policy *pol, const char *key, size_t nkey)
{
    struct cwait *cw = mem_calloc(MEM_CONN, 1, sizeof(*cw) + nkey);
    if (cw == NULL) {
        struct fe_answer a = {.result = FE_NO_MEMORY};
        fe_call_done(call, &a);
        return NULL;
    }
    cw->call = call;
    cw->w = w;
    cw->kind = kind;
    cw->pol = pol;
    cw->nkey = nkey;
    memcpy(cw->key, key, nkey);
    return cw;
}

static void cwait_free(struct cwait *cw)
{
    if (cw->item != NULL)
        l1()->release(cw->w->fe->exec, cw->item);
    if (cw->qvalue != NULL)
        mem_free(MEM_CONN, cw->qvalue, cw->nqvalue);
    mem_free(MEM_CONN, cw, sizeof(*cw) + cw->nkey);
}

/* ----------------------------------------------- the L1 part, then done */

/* Runs the command on L1 (after the backend's part) and answers. */
static void run_l1(struct cwait *cw)
{
    struct worker *w = cw->w;
    void *wctx = w->wctx;
    struct fe_answer a;
    memset(&a, 0, sizeof(a));
    switch (cw->kind) {
    case K_GET: a.item = l1()->get(wctx, cw->key, cw->nkey, cw->touch, cw->exptime); break;
    case K_MG:
        a.item = l1()->meta_get(wctx, cw->key, cw->nkey, &cw->ttl, cw->no_bump, &a.info);
        break;
    case K_STORE:
        a.result = l1()->store(wctx, cw->item, cw->mode, cw->cas_in, cw->mflags, &a.cas);
        cw->item = NULL; /* taken */
        break;
    case K_DELETE: a.result = l1()->remove(wctx, cw->key, cw->nkey, cw->cas_in); break;
    case K_MD:
        a.result = l1()->meta_delete(wctx, cw->key, cw->nkey, cw->has_cas, cw->cas_in,
                                     cw->invalidate, cw->new_ttl, cw->exptime);
        break;
    case K_TOUCH: a.result = l1()->touch(wctx, cw->key, cw->nkey, cw->exptime); break;
    case K_DELTA:
        a.result =
            l1()->delta(wctx, cw->key, cw->nkey, cw->incr, cw->delta, cw->cas_in, &a.value, &a.cas);
        break;
    case K_MA:
        a.arith = cw->arith;
        a.result = l1()->meta_delta(wctx, cw->key, cw->nkey, &a.arith);
        break;
    }
    fe_call_done(cw->call, &a);
    cwait_free(cw);
}

/* A failure of the backend as the command's answer. */
static void fail(struct cwait *cw, enum fe_result r)
{
    struct fe_answer a;
    memset(&a, 0, sizeof(a));
    a.result = r;
    fe_call_done(cw->call, &a);
    cwait_free(cw);
}

/* ---------------------------------------------------------- the fills */

/* A follower's part on its own worker: the L1 command on what the read
 * left there, or the read's failure (also when cancelled: the worker is
 * going away, and its connections with it). */
static void run_follower(struct defer_job *job, struct worker *w, bool cancelled)
{
    (void)w;
    struct cwait *f = (struct cwait *)((char *)job - offsetof(struct cwait, job));
    if (f->read_result == FE_OK && !cancelled)
        run_l1(f);
    else
        fail(f, f->read_result == FE_OK ? FE_FAILED : f->read_result);
}

static void on_read(void *arg, enum fe_result r, const struct wire_record *rec)
{
    struct cwait *cw = arg;
    struct tiers *t = tiers_of(cw->w);
    if (!cw->from_pool)
        tiers_record_latency(t, cw->w->id, true, r, cw->start_us);
    if (r == FE_OK && rec != NULL)
        tiers_cluster_fill(t, cw->w->id, cw->pol, rec, cw->gen);
    else if (r == FE_OK)
        tiers_cluster_miss(t, cw->w->id, cw->pol, cw->key, cw->nkey, cw->gen);
    /* L1 holds the answer now: a miss from here on finds it there, so the
     * read leaves the list (and its followers are final) only after it */
    struct cwait **p = (struct cwait **)tiers_flights_lock(t, cw->key, cw->nkey);
    for (; *p != NULL; p = &(*p)->flight_next) {
        if (*p == cw) {
            *p = cw->flight_next;
            break;
        }
    }
    struct cwait *followers = cw->followers;
    tiers_flights_unlock(t, cw->key, cw->nkey);
    /* the read's waiters run on what L1 now holds (or fail alike), each on
     * its own worker */
    struct worker *here = cw->w; /* cw is freed by its own run below */
    for (struct cwait *f = cw; f != NULL;) {
        struct cwait *next = f == cw ? followers : f->follower_next;
        if (f->w != here) {
            f->read_result = r;
            f->job.run = run_follower;
            worker_post(f->w, &f->job);
        } else if (r == FE_OK) {
            run_l1(f);
        } else {
            fail(f, r);
        }
        f = next;
    }
}

/* A read the pool could not answer, answered by the nodes: their record
 * goes into the pool as well. */
static void on_nodes(void *arg, enum fe_result r, const struct wire_record *rec)
{
    struct cwait *cw = arg;
    if (r == FE_OK && rec != NULL)
        cl2_fill(cw->w, cw->pol, rec, &cw->pool_seen);
    on_read(cw, r, rec);
}

/* The pool's answer: its record, as if the nodes had sent it, or a miss
 * that goes on to the nodes. */
static void on_pool(void *arg, const struct wire_record *rec, const struct cl2_seen *seen)
{
    struct cwait *cw = arg;
    cw->pool_seen = *seen;
    if (rec != NULL) {
        tiers_count_pool_hit(tiers_of(cw->w), cw->w->id);
        cw->from_pool = true;
        on_read(cw, FE_OK, rec);
        return;
    }
    cw->start_us = clock_monotonic_us();
    cbackend_read(tiers_cbackend(tiers_of(cw->w)), cw->w, cw->pol, cw->key, cw->nkey, on_nodes, cw);
}

/* The L1 command at once when L1 holds the key, else after a fill: a read
 * of the key in flight from any worker, or a new one. */
static void fill_then_l1(struct cwait *cw)
{
    struct tiers *t = tiers_of(cw->w);
    if (tiers_l1_has(t, cw->key, cw->nkey) || tiers_negative(t, cw->w->id, cw->key, cw->nkey) ||
        tiers_cluster_pending(t, cw->w->id, cw->pol, cw->key, cw->nkey)) {
        run_l1(cw);
        return;
    }
    struct cwait **head = (struct cwait **)tiers_flights_lock(t, cw->key, cw->nkey);
    for (struct cwait *l = *head; l != NULL; l = l->flight_next) {
        if (l->nkey == cw->nkey && memcmp(l->key, cw->key, cw->nkey) == 0) {
            cw->follower_next = l->followers;
            l->followers = cw;
            tiers_flights_unlock(t, cw->key, cw->nkey);
            return;
        }
    }
    /* a read that ended since the first look left its record in L1 */
    if (tiers_l1_has(t, cw->key, cw->nkey)) {
        tiers_flights_unlock(t, cw->key, cw->nkey);
        run_l1(cw);
        return;
    }
    cw->flight_next = *head;
    *head = cw;
    tiers_flights_unlock(t, cw->key, cw->nkey);
    cw->gen = tiers_gate_begin(t, cw->key, cw->nkey);
    cw->start_us = clock_monotonic_us();
    if (cl2_enabled(cw->w, cw->pol)) {
        cl2_read(cw->w, cw->key, cw->nkey, on_pool, cw);
        return;
    }
    cbackend_read(tiers_cbackend(t), cw->w, cw->pol, cw->key, cw->nkey, on_read, cw);
}

/* ---------------------------------------------------------- the writes */

static bool writes_below(const struct policy *pol)
{
    return tiers_writes_below(pol);
}

/* A write's answer, counted as memcached counts the command. */
static void on_written(void *arg, enum fe_result r, const struct wire_rmw_reply *reply)
{
    struct cwait *cw = arg;
    struct worker *w = cw->w;
    tiers_record_latency(tiers_of(w), w->id, false, r, cw->start_us);
    if (r != FE_OK) {
        fail(cw, r);
        return;
    }
    /* gat and mg T read the touched record back: L1 keeps it even in
     * write-around */
    bool read_back = cw->kind == K_GET || cw->kind == K_MG;
    tiers_cluster_written(tiers_of(w), w->id, cw->pol, cw->key, cw->nkey, reply, read_back);
    if (cl2_enabled(w, cw->pol))
        cl2_written(w, cw->pol, cw->key, cw->nkey, reply);
    cl2_invalidate_peers(w, cw->key, cw->nkey, reply);
    if (read_back) {
        /* gat / mg T: the touched record is in L1 (or the key is gone) */
        run_l1(cw);
        return;
    }
    enum fe_result fr = fe_result_of_rmw(reply->result);
    bool stored = fr == FE_STORED;
    struct fe_answer a;
    memset(&a, 0, sizeof(a));
    a.result = cw->kind == K_STORE || !stored ? fr : FE_OK;
    a.cas = reply->cas;
    a.value = reply->number;
    switch (cw->kind) {
    case K_STORE: fe_count_store(&w->stats, cw->mode, a.result); break;
    case K_DELETE:
    case K_MD: fe_count_delete(&w->stats, a.result); break;
    case K_TOUCH: fe_count_touch(&w->stats, a.result); break;
    case K_DELTA: fe_count_delta(&w->stats, cw->incr, a.result, false); break;
    case K_MA: {
        a.arith = cw->arith;
        a.arith.value = reply->number;
        a.arith.cas = reply->cas;
        a.arith.created = reply->created;
        const struct fe_meta_ttl *t = &cw->arith.ttl;
        bool new_ttl =
            reply->created || (t->touch_pos >= 0 && !(t->t_pos >= 0 && t->t_pos < t->touch_pos));
        a.arith.ttl_reported =
            kvstore_ttl_left(new_ttl && reply->has_record ? reply->rec.expiry : reply->old_expiry);
        fe_count_delta(&w->stats, cw->arith.incr, a.result, reply->created);
        break;
    }
    default: break;
    }
    fe_call_done(cw->call, &a);
    cwait_free(cw);
}

static void behind(struct cwait *cw, const struct wire_record *below, bool below_read);

/* write-behind: the cluster's record came, to decide against. */
static void on_below(void *arg, enum fe_result r, const struct wire_record *rec)
{
    struct cwait *cw = arg;
    if (r != FE_OK) {
        on_written(cw, r, NULL);
        return;
    }
    behind(cw, rec, true);
}

/* A write-behind write: decided here and journaled (on_written then
 * fills L1 and answers), after a read of the cluster's record when the
 * key has no pending write and the command reads, or sent to the cluster
 * as write-through when the journal is full and the policy says so. */
static void behind(struct cwait *cw, const struct wire_record *below, bool below_read)
{
    struct tiers *t = tiers_of(cw->w);
    struct wire_rmw_reply reply;
    struct lsm_record *written = NULL;
    enum fe_result r;
    switch (writebehind_rmw_cluster(tiers_writebehind(t), cw->pol, &cw->q, below, below_read, &r,
                                    &reply, &written)) {
    case WB_DONE:
        on_written(cw, r, &reply); /* reply's record is a view of written */
        lsm_record_free(&written);
        return;
    case WB_NEED_READ:
        if (cw->q.value_len > 0 && cw->qvalue == NULL) {
            /* the value outlives the caller's item now */
            cw->qvalue = mem_alloc(MEM_CONN, cw->q.value_len);
            if (cw->qvalue == NULL) {
                fail(cw, FE_NO_MEMORY);
                return;
            }
            cw->nqvalue = cw->q.value_len;
            memcpy(cw->qvalue, cw->q.value, cw->q.value_len);
            cw->q.value = cw->qvalue;
        }
        cbackend_read(tiers_cbackend(t), cw->w, cw->pol, cw->key, cw->nkey, on_below, cw);
        return;
    case WB_WRITE_THROUGH:
        cbackend_rmw(tiers_cbackend(t), cw->w, cw->pol, &cw->q, on_written, cw);
        return;
    }
}

static void send_rmw(struct cwait *cw, struct wire_rmw *q)
{
    q->rflags |= WIRE_RMW_RETURN; /* L1 gets what was written */
    cw->start_us = clock_monotonic_us();
    struct tiers *t = tiers_of(cw->w);
    if (cw->pol->mode == MODE_WRITE_BEHIND && tiers_writebehind(t) != NULL) {
        cw->q = *q;
        behind(cw, NULL, false);
        return;
    }
    cbackend_rmw(tiers_cbackend(t), cw->w, cw->pol, q, on_written, cw);
}

static struct wire_rmw key_rmw(const struct cwait *cw, enum wire_rmw_op op)
{
    return (struct wire_rmw){
        .op = (uint8_t)op, .key = (const uint8_t *)cw->key, .key_len = cw->nkey};
}

/* ------------------------------------------------ the front end's calls */

static void c_get(void *wctx, const char *key, size_t nkey, bool touch, rel_time_t exptime,
                  struct fe_call *call)
{
    struct worker *w = wctx;
    struct tiers *t = tiers_of(w);
    const struct policy *pol = tiers_cluster_policy(t, key, nkey);
    bool touch_first = touch && pol != NULL && writes_below(pol);
    struct fe_answer a = {.item = NULL};
    if (pol == NULL)
        a.item = l1()->get(wctx, key, nkey, touch, exptime);
    else if (!touch_first)
        a.item = cmd_get_hit(w, key, nkey, touch, exptime); /* one lookup on a hit */
    if (pol == NULL || a.item != NULL) {
        fe_call_done(call, &a);
        return;
    }
    struct cwait *cw = cwait_new(w, call, K_GET, pol, key, nkey);
    if (cw == NULL)
        return;
    cw->touch = touch;
    cw->exptime = exptime;
    if (!touch_first) {
        fill_then_l1(cw);
        return;
    }
    struct wire_rmw q = key_rmw(cw, WIRE_RMW_TOUCH);
    q.expiry = kvstore_expiry_of(exptime);
    send_rmw(cw, &q);
}

static void c_meta_get(void *wctx, const char *key, size_t nkey, const struct fe_meta_ttl *ttl,
                       bool no_bump, struct fe_call *call)
{
    struct worker *w = wctx;
    struct tiers *t = tiers_of(w);
    const struct policy *pol = tiers_cluster_policy(t, key, nkey);
    bool touch = ttl->touch_pos >= 0 && (ttl->fail_pos < 0 || ttl->touch_pos < ttl->fail_pos);
    bool touch_first = touch && pol != NULL && writes_below(pol);
    if (pol == NULL || (!touch_first && tiers_l1_has(t, key, nkey))) {
        struct fe_answer a;
        memset(&a, 0, sizeof(a));
        a.item = l1()->meta_get(wctx, key, nkey, ttl, no_bump, &a.info);
        fe_call_done(call, &a);
        return;
    }
    struct cwait *cw = cwait_new(w, call, K_MG, pol, key, nkey);
    if (cw == NULL)
        return;
    cw->ttl = *ttl;
    cw->no_bump = no_bump;
    if (!touch_first) {
        fill_then_l1(cw);
        return;
    }
    struct wire_rmw q = key_rmw(cw, WIRE_RMW_TOUCH);
    q.expiry = kvstore_expiry_of(ttl->touch_exptime);
    send_rmw(cw, &q);
}

static enum wire_rmw_op rmw_op_of(enum fe_store_mode mode)
{
    switch (mode) {
    case FE_ADD: return WIRE_RMW_ADD;
    case FE_REPLACE: return WIRE_RMW_REPLACE;
    case FE_APPEND: return WIRE_RMW_APPEND;
    case FE_PREPEND: return WIRE_RMW_PREPEND;
    case FE_CAS: return WIRE_RMW_CAS;
    case FE_SET: break;
    }
    return WIRE_RMW_SET;
}

static void c_store(void *wctx, void *item, enum fe_store_mode mode, uint64_t cas_in,
                    unsigned mflags, struct fe_call *call)
{
    struct worker *w = wctx;
    struct fe_item_view v;
    l1()->view(w->fe->exec, item, &v);
    const struct policy *pol = tiers_cluster_policy(tiers_of(w), v.key, v.nkey);
    if (pol == NULL) {
        struct fe_answer a;
        memset(&a, 0, sizeof(a));
        a.result = l1()->store(wctx, item, mode, cas_in, mflags, &a.cas);
        fe_call_done(call, &a);
        return;
    }
    struct cwait *cw = cwait_new(w, call, K_STORE, pol, v.key, v.nkey);
    if (cw == NULL) {
        l1()->release(w->fe->exec, item);
        return;
    }
    cw->mode = mode;
    cw->cas_in = cas_in;
    cw->mflags = mflags;
    if (!writes_below(pol)) {
        /* read-through: L1 only, the backend's value first for a write
         * that reads it */
        cw->item = item;
        if (mode == FE_SET)
            run_l1(cw);
        else
            fill_then_l1(cw);
        return;
    }
    /* the value goes to the backend (cbackend copies it); an ms with I
     * stores as a plain cas: nothing below keeps stale items */
    struct wire_rmw q = key_rmw(cw, rmw_op_of(mode));
    q.value = (const uint8_t *)v.value;
    q.value_len = v.nvalue;
    q.flags = v.flags;
    q.expiry = kvstore_expiry_of(item_exptime(item));
    q.cas_in = mode == FE_CAS ? cas_in : 0;
    send_rmw(cw, &q);
    l1()->release(w->fe->exec, item);
}

static void c_remove(void *wctx, const char *key, size_t nkey, uint64_t cas_in,
                     struct fe_call *call)
{
    struct worker *w = wctx;
    const struct policy *pol = tiers_cluster_policy(tiers_of(w), key, nkey);
    if (pol == NULL) {
        struct fe_answer a = {.result = l1()->remove(wctx, key, nkey, cas_in)};
        fe_call_done(call, &a);
        return;
    }
    struct cwait *cw = cwait_new(w, call, K_DELETE, pol, key, nkey);
    if (cw == NULL)
        return;
    cw->cas_in = cas_in;
    if (!writes_below(pol)) {
        fill_then_l1(cw);
        return;
    }
    struct wire_rmw q = key_rmw(cw, WIRE_RMW_DELETE);
    q.cas_in = cas_in;
    send_rmw(cw, &q);
}

static void c_touch(void *wctx, const char *key, size_t nkey, rel_time_t exptime,
                    struct fe_call *call)
{
    struct worker *w = wctx;
    const struct policy *pol = tiers_cluster_policy(tiers_of(w), key, nkey);
    if (pol == NULL) {
        struct fe_answer a = {.result = l1()->touch(wctx, key, nkey, exptime)};
        fe_call_done(call, &a);
        return;
    }
    struct cwait *cw = cwait_new(w, call, K_TOUCH, pol, key, nkey);
    if (cw == NULL)
        return;
    cw->exptime = exptime;
    if (!writes_below(pol)) {
        fill_then_l1(cw);
        return;
    }
    struct wire_rmw q = key_rmw(cw, WIRE_RMW_TOUCH);
    q.expiry = kvstore_expiry_of(exptime);
    send_rmw(cw, &q);
}

static void c_delta(void *wctx, const char *key, size_t nkey, bool incr, uint64_t delta,
                    uint64_t cas_in, struct fe_call *call)
{
    struct worker *w = wctx;
    const struct policy *pol = tiers_cluster_policy(tiers_of(w), key, nkey);
    if (pol == NULL) {
        struct fe_answer a;
        memset(&a, 0, sizeof(a));
        a.result = l1()->delta(wctx, key, nkey, incr, delta, cas_in, &a.value, &a.cas);
        fe_call_done(call, &a);
        return;
    }
    struct cwait *cw = cwait_new(w, call, K_DELTA, pol, key, nkey);
    if (cw == NULL)
        return;
    cw->incr = incr;
    cw->delta = delta;
    cw->cas_in = cas_in;
    if (!writes_below(pol)) {
        fill_then_l1(cw);
        return;
    }
    struct wire_rmw q = key_rmw(cw, incr ? WIRE_RMW_INCR : WIRE_RMW_DECR);
    q.delta = delta;
    q.cas_in = cas_in;
    send_rmw(cw, &q);
}

static void c_meta_delete(void *wctx, const char *key, size_t nkey, bool has_cas, uint64_t cas_in,
                          bool invalidate, bool new_ttl, rel_time_t exptime, struct fe_call *call)
{
    struct worker *w = wctx;
    const struct policy *pol = tiers_cluster_policy(tiers_of(w), key, nkey);
    if (pol == NULL) {
        struct fe_answer a = {.result = l1()->meta_delete(wctx, key, nkey, has_cas, cas_in,
                                                          invalidate, new_ttl, exptime)};
        fe_call_done(call, &a);
        return;
    }
    struct cwait *cw = cwait_new(w, call, K_MD, pol, key, nkey);
    if (cw == NULL)
        return;
    cw->has_cas = has_cas;
    cw->cas_in = cas_in;
    cw->invalidate = invalidate;
    cw->new_ttl = new_ttl;
    cw->exptime = exptime;
    if (!writes_below(pol)) {
        fill_then_l1(cw);
        return;
    }
    /* nothing below keeps stale items: md I deletes, as on a node */
    struct wire_rmw q = key_rmw(cw, WIRE_RMW_DELETE);
    q.cas_in = has_cas ? cas_in : 0;
    send_rmw(cw, &q);
}

static void c_meta_delta(void *wctx, const char *key, size_t nkey, const struct fe_meta_arith *ar,
                         struct fe_call *call)
{
    struct worker *w = wctx;
    const struct policy *pol = tiers_cluster_policy(tiers_of(w), key, nkey);
    if (pol == NULL) {
        struct fe_answer a;
        memset(&a, 0, sizeof(a));
        a.arith = *ar;
        a.result = l1()->meta_delta(wctx, key, nkey, &a.arith);
        fe_call_done(call, &a);
        return;
    }
    struct cwait *cw = cwait_new(w, call, K_MA, pol, key, nkey);
    if (cw == NULL)
        return;
    cw->arith = *ar;
    if (!writes_below(pol)) {
        fill_then_l1(cw);
        return;
    }
    bool retouch = ar->ttl.touch_pos >= 0;
    struct wire_rmw q = key_rmw(cw, ar->incr ? WIRE_RMW_INCR : WIRE_RMW_DECR);
    q.rflags = (uint8_t)((ar->vivify ? WIRE_RMW_VIVIFY : 0) | (retouch ? WIRE_RMW_RETOUCH : 0));
    q.expiry = ar->vivify ? kvstore_expiry_of(ar->ttl.vivify_exptime) : 0;
    q.expiry2 = retouch ? kvstore_expiry_of(ar->ttl.touch_exptime) : 0;
    q.cas_in = ar->cas_in;
    q.delta = ar->delta;
    q.initial = ar->initial;
    send_rmw(cw, &q);
}

const struct fe_exec_ops *cmd_cluster_exec(const struct fe_exec_ops *inner,
                                           struct fe_exec_ops *storage)
{
    *storage = *inner;
    storage->get_async = c_get;
    storage->meta_get_async = c_meta_get;
    storage->store_async = c_store;
    storage->remove_async = c_remove;
    storage->touch_async = c_touch;
    storage->delta_async = c_delta;
    storage->meta_delete_async = c_meta_delete;
    storage->meta_delta_async = c_meta_delta;
    return storage;
}
