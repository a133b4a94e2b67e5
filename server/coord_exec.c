/*
 * coord_exec.c - the coordinator as the front end's executor: each
 * memcached command becomes a read, a write or an RMW on the worker's
 * loop, and its report words memcached's answer (and counts it as kv.c
 * counts the single-node commands).
 */
#include "server/coord_op.h"

#include "common/mem.h"
#include "frontend/call.h"
#include "frontend/fe.h"
#include "frontend/worker.h"
#include "kvstore/kvstore.h"
#include "server/kv.h"
#include "server/replica.h"
#include "storage/include/lsm.h"

/* -------------------------------------------------- the front end's side */

enum fe_kind {
    FK_GET,    /* get/gets: item or miss */
    FK_GAT,    /* gat/gats: touch, item or miss */
    FK_MG,     /* mg: item + info */
    FK_MG_T,   /* mg with T: touch, item + info */
    FK_STORE,  /* set/add/...: result + cas */
    FK_DELETE, /* delete */
    FK_MD,     /* md */
    FK_TOUCH,  /* touch */
    FK_DELTA,  /* incr/decr */
    FK_MA,     /* ma, binary incr/decr */
};

/* A front-end command waiting for its operation. */
struct fe_wait {
    struct fe_call *call;
    struct worker *w;
    enum fe_kind kind;
    enum fe_store_mode mode;
    struct fe_meta_ttl ttl;
    struct fe_meta_arith arith;
};

static struct loop *loop_of(struct worker *w)
{
    struct coord *co = kv_coord(w->fe->exec);
    return &co->loops[w->id];
}

static enum fe_result fe_of_cst(enum cst st)
{
    switch (st) {
    case CST_OK: return FE_OK;
    case CST_TIMEOUT: return FE_TIMEOUT;
    case CST_FAILED: return FE_FAILED;
    case CST_UNAVAILABLE:
    case CST_NOT_PRIMARY: return FE_UNAVAILABLE;
    }
    return FE_FAILED;
}

static void *item_of(const struct lsm_record *rec)
{
    struct wire_record wr;
    kvstore_wire_of(rec, &wr);
    return kv_item_copy(&wr);
}

/* A read's result as the client sees it: NULL for none, a tombstone or an
 * expired record. */
static const struct lsm_record *live_result(const struct rop *r)
{
    if (r->result == NULL)
        return NULL;
    struct wire_record wr;
    kvstore_wire_of(r->result, &wr);
    return replica_is_miss(&wr, (uint64_t)clock_unix_now()) ? NULL : r->result;
}

static void count_lookup(struct worker *w, bool touch, bool hit)
{
    if (touch) {
        STAT_INCR(&w->stats, cmd_touch);
        if (hit)
            STAT_INCR(&w->stats, touch_hits);
        else
            STAT_INCR(&w->stats, touch_misses);
    } else {
        STAT_INCR(&w->stats, cmd_get);
        if (hit)
            STAT_INCR(&w->stats, get_hits);
        else
            STAT_INCR(&w->stats, get_misses);
    }
}

/* Reports a read (get, gets, mg) to the front end. */
static void fe_read_report(struct op *op)
{
    struct fe_wait *fw = op->owner;
    struct rop *r = (struct rop *)op;
    struct fe_answer a = {.result = fe_of_cst(op->status)};
    const struct lsm_record *rec = op->status == CST_OK ? live_result(r) : NULL;
    if (rec != NULL) {
        a.item = item_of(rec);
        if (a.item == NULL)
            a.result = FE_NO_MEMORY;
        a.info.ttl = kvstore_ttl_left(rec->expiry);
    }
    if (op->status == CST_OK)
        count_lookup(fw->w, false, rec != NULL);
    fe_call_done(fw->call, &a);
    mem_free(MEM_CONN, fw, sizeof(*fw));
}

/* Reports an RMW to the front end, per command. */
static void fe_rmw_report(struct op *op)
{
    struct fe_wait *fw = op->owner;
    struct mop *m = (struct mop *)op;
    struct worker *w = fw->w;
    struct fe_answer a = {.result = fe_of_cst(op->status)};
    bool ok = op->status == CST_OK;
    enum fe_result r = ok ? fe_result_of_rmw(m->reply.result) : a.result;
    bool stored = ok && m->reply.result == WIRE_RMW_STORED;
    switch (fw->kind) {
    case FK_GAT:
    case FK_MG_T:
        if (stored && m->reply.has_record) {
            a.item = kv_item_copy(&m->reply.rec);
            if (a.item == NULL)
                a.result = FE_NO_MEMORY;
            const struct fe_meta_ttl *t = &fw->ttl;
            bool old = fw->kind == FK_MG_T && t->t_pos >= 0 && t->t_pos < t->touch_pos;
            a.info.ttl = kvstore_ttl_left(old ? m->reply.old_expiry : m->reply.rec.expiry);
        }
        if (ok && fw->ttl.fail_pos < 0)
            count_lookup(w, true, a.item != NULL);
        break;
    case FK_STORE:
        a.result = r;
        a.cas = m->reply.cas;
        STAT_INCR(&w->stats, cmd_set);
        if (fw->mode == FE_CAS && r == FE_STORED)
            STAT_INCR(&w->stats, cas_hits);
        else if (fw->mode == FE_CAS && r == FE_EXISTS)
            STAT_INCR(&w->stats, cas_badval);
        else if (fw->mode == FE_CAS && r == FE_NOT_FOUND)
            STAT_INCR(&w->stats, cas_misses);
        else if (r == FE_TOO_LARGE)
            STAT_INCR(&w->stats, store_too_large);
        break;
    case FK_DELETE:
    case FK_MD:
        a.result = stored ? FE_OK : r;
        if (stored)
            STAT_INCR(&w->stats, delete_hits);
        else if (ok)
            STAT_INCR(&w->stats, delete_misses);
        break;
    case FK_TOUCH:
        a.result = stored ? FE_OK : r;
        STAT_INCR(&w->stats, cmd_touch);
        if (stored)
            STAT_INCR(&w->stats, touch_hits);
        else
            STAT_INCR(&w->stats, touch_misses);
        break;
    case FK_DELTA:
    case FK_MA: {
        a.result = stored ? FE_OK : r;
        a.value = m->reply.number;
        a.cas = m->reply.cas;
        a.arith = fw->arith;
        a.arith.value = m->reply.number;
        a.arith.cas = m->reply.cas;
        a.arith.created = m->reply.created;
        const struct fe_meta_ttl *t = &fw->arith.ttl;
        bool new_ttl =
            m->reply.created || (t->touch_pos >= 0 && !(t->t_pos >= 0 && t->t_pos < t->touch_pos));
        a.arith.ttl_reported = kvstore_ttl_left(
            new_ttl && m->reply.has_record ? m->reply.rec.expiry : m->reply.old_expiry);
        bool incr = fw->arith.incr;
        if (ok && m->reply.result == WIRE_RMW_NOT_FOUND) {
            if (incr)
                STAT_INCR(&w->stats, incr_misses);
            else
                STAT_INCR(&w->stats, decr_misses);
        } else if (stored && !m->reply.created) {
            if (incr)
                STAT_INCR(&w->stats, incr_hits);
            else
                STAT_INCR(&w->stats, decr_hits);
        }
        break;
    }
    default: break;
    }
    fe_call_done(fw->call, &a);
    mem_free(MEM_CONN, fw, sizeof(*fw));
}

/* Reports a set to the front end. */
static void fe_write_report(struct op *op)
{
    struct fe_wait *fw = op->owner;
    struct wop *wo = (struct wop *)op;
    struct fe_answer a = {.result = op->status == CST_OK ? FE_STORED : fe_of_cst(op->status)};
    if (op->status == CST_OK)
        a.cas = wo->rec->version.hlc;
    STAT_INCR(&fw->w->stats, cmd_set);
    fe_call_done(fw->call, &a);
    mem_free(MEM_CONN, fw, sizeof(*fw));
}

static struct fe_wait *fe_wait_new(struct worker *w, struct fe_call *call, enum fe_kind kind)
{
    struct fe_wait *fw = mem_calloc(MEM_CONN, 1, sizeof(*fw));
    if (fw == NULL) {
        struct fe_answer a = {.result = FE_NO_MEMORY};
        fe_call_done(call, &a); /* NOTE: the front end accepts an answer now
                                   only for out-of-memory; see call.h */
        return NULL;
    }
    fw->call = call;
    fw->w = w;
    fw->kind = kind;
    return fw;
}

/* The operation could not start (out of memory): the command's answer. */
static void fe_wait_fail(struct fe_wait *fw)
{
    struct fe_answer a = {.result = FE_NO_MEMORY};
    fe_call_done(fw->call, &a);
    mem_free(MEM_CONN, fw, sizeof(*fw));
}

/* Starts an RMW for the front end at the node's levels. */
static void fe_rmw(struct worker *w, struct fe_wait *fw, const struct wire_rmw *q)
{
    struct loop *lp = loop_of(w);
    struct wire_rmw full = *q;
    full.read_cl = (uint8_t)lp->co->cfg.read_cl;
    full.write_cl = (uint8_t)lp->co->cfg.write_cl;
    if (coord_rmw_start(lp, &full, false, fe_rmw_report, fw) == NULL)
        fe_wait_fail(fw);
}

/* The RMW of one key: the fields every operation sets. */
static struct wire_rmw key_rmw(enum wire_rmw_op op, const char *key, size_t nkey)
{
    return (struct wire_rmw){.op = (uint8_t)op, .key = (const uint8_t *)key, .key_len = nkey};
}

/* A lookup (get, gets, mg) or, with touch, a touch that returns the
 * record (gat, gats, mg T) setting `exptime`. */
static void fe_lookup(struct worker *w, struct fe_wait *fw, const char *key, size_t nkey,
                      bool touch, rel_time_t exptime)
{
    if (touch) {
        struct wire_rmw q = key_rmw(WIRE_RMW_TOUCH, key, nkey);
        q.rflags = WIRE_RMW_RETURN;
        q.expiry = kvstore_expiry_of(exptime);
        fe_rmw(w, fw, &q);
        return;
    }
    struct loop *lp = loop_of(w);
    if (coord_read_start(lp, key, nkey, lp->co->cfg.read_cl, fe_read_report, fw) == NULL)
        fe_wait_fail(fw);
}

static void co_get_async(void *wctx, const char *key, size_t nkey, bool touch, rel_time_t exptime,
                         struct fe_call *call)
{
    struct worker *w = wctx;
    struct fe_wait *fw = fe_wait_new(w, call, touch ? FK_GAT : FK_GET);
    if (fw == NULL)
        return;
    fw->ttl = (struct fe_meta_ttl)FE_META_TTL_NONE;
    fe_lookup(w, fw, key, nkey, touch, exptime);
}

static void co_meta_get_async(void *wctx, const char *key, size_t nkey,
                              const struct fe_meta_ttl *ttl, bool no_bump, struct fe_call *call)
{
    (void)no_bump; /* no LRU on a node */
    struct worker *w = wctx;
    bool touch = ttl->touch_pos >= 0 && (ttl->fail_pos < 0 || ttl->touch_pos < ttl->fail_pos);
    struct fe_wait *fw = fe_wait_new(w, call, touch ? FK_MG_T : FK_MG);
    if (fw == NULL)
        return;
    fw->ttl = *ttl;
    fe_lookup(w, fw, key, nkey, touch, ttl->touch_exptime);
}

static void co_store_async(void *wctx, void *item, enum fe_store_mode mode, uint64_t cas_in,
                           unsigned mflags, struct fe_call *call)
{
    (void)mflags; /* no stale items on a node: ms I stores as a plain cas */
    struct worker *w = wctx;
    struct fe *fe = w->fe;
    struct fe_item_view v;
    fe->xo->view(fe->exec, item, &v);
    struct fe_wait *fw = fe_wait_new(w, call, FK_STORE);
    if (fw == NULL) {
        fe->xo->release(fe->exec, item);
        return;
    }
    fw->mode = mode;
    struct loop *lp = loop_of(w);
    if (mode == FE_SET) {
        /* a blind write: the version and expiry are chosen here, once */
        struct lsm_record rec = {
            .key = (const uint8_t *)v.key,
            .key_len = v.nkey,
            .value = (const uint8_t *)v.value,
            .value_len = v.nvalue,
            .flags = v.flags,
            .expiry = kv_item_expiry(item),
            .version = {hlc_now(lp->co->clock), lp->co->cfg.self.short_id},
        };
        struct lsm_record *copy = NULL;
        if (lsm_record_copy(&rec, &copy) != ST_OK ||
            coord_write_start(lp, copy, lp->co->cfg.write_cl, false, true, fe_write_report, fw) ==
                NULL)
            fe_wait_fail(fw);
        fe->xo->release(fe->exec, item);
        return;
    }
    static const uint8_t ops[] = {
        [FE_ADD] = WIRE_RMW_ADD,       [FE_REPLACE] = WIRE_RMW_REPLACE,
        [FE_APPEND] = WIRE_RMW_APPEND, [FE_PREPEND] = WIRE_RMW_PREPEND,
        [FE_CAS] = WIRE_RMW_CAS,
    };
    struct wire_rmw q = {
        .op = ops[mode],
        .key = (const uint8_t *)v.key,
        .key_len = v.nkey,
        .value = (const uint8_t *)v.value,
        .value_len = v.nvalue,
        .flags = v.flags,
        .expiry = kv_item_expiry(item),
        .cas_in = cas_in,
    };
    fe_rmw(w, fw, &q);
    fe->xo->release(fe->exec, item);
}

static void co_remove_async(void *wctx, const char *key, size_t nkey, uint64_t cas_in,
                            struct fe_call *call)
{
    struct worker *w = wctx;
    struct fe_wait *fw = fe_wait_new(w, call, FK_DELETE);
    if (fw == NULL)
        return;
    struct wire_rmw q = key_rmw(WIRE_RMW_DELETE, key, nkey);
    q.cas_in = cas_in;
    fe_rmw(w, fw, &q);
}

static void co_touch_async(void *wctx, const char *key, size_t nkey, rel_time_t exptime,
                           struct fe_call *call)
{
    struct worker *w = wctx;
    struct fe_wait *fw = fe_wait_new(w, call, FK_TOUCH);
    if (fw == NULL)
        return;
    struct wire_rmw q = key_rmw(WIRE_RMW_TOUCH, key, nkey);
    q.expiry = kvstore_expiry_of(exptime);
    fe_rmw(w, fw, &q);
}

static void co_delta_async(void *wctx, const char *key, size_t nkey, bool incr, uint64_t delta,
                           uint64_t cas_in, struct fe_call *call)
{
    struct worker *w = wctx;
    struct fe_wait *fw = fe_wait_new(w, call, FK_DELTA);
    if (fw == NULL)
        return;
    fw->arith = (struct fe_meta_arith){.incr = incr, .ttl = FE_META_TTL_NONE};
    struct wire_rmw q = key_rmw(incr ? WIRE_RMW_INCR : WIRE_RMW_DECR, key, nkey);
    q.cas_in = cas_in;
    q.delta = delta;
    fe_rmw(w, fw, &q);
}

static void co_meta_delete_async(void *wctx, const char *key, size_t nkey, bool has_cas,
                                 uint64_t cas_in, bool invalidate, bool new_ttl, rel_time_t exptime,
                                 struct fe_call *call)
{
    /* no stale items on a node: md I deletes (docs/NODE.md) */
    (void)invalidate;
    (void)new_ttl;
    (void)exptime;
    struct worker *w = wctx;
    struct fe_wait *fw = fe_wait_new(w, call, FK_MD);
    if (fw == NULL)
        return;
    struct wire_rmw q = key_rmw(WIRE_RMW_DELETE, key, nkey);
    q.cas_in = has_cas ? cas_in : 0;
    fe_rmw(w, fw, &q);
}

static void co_meta_delta_async(void *wctx, const char *key, size_t nkey,
                                const struct fe_meta_arith *a, struct fe_call *call)
{
    struct worker *w = wctx;
    struct fe_wait *fw = fe_wait_new(w, call, FK_MA);
    if (fw == NULL)
        return;
    fw->arith = *a;
    bool retouch = a->ttl.touch_pos >= 0;
    struct wire_rmw q = {
        .op = a->incr ? WIRE_RMW_INCR : WIRE_RMW_DECR,
        .rflags = (uint8_t)(WIRE_RMW_RETURN | (a->vivify ? WIRE_RMW_VIVIFY : 0) |
                            (retouch ? WIRE_RMW_RETOUCH : 0)),
        .key = (const uint8_t *)key,
        .key_len = nkey,
        .expiry = a->vivify ? kvstore_expiry_of(a->ttl.vivify_exptime) : 0,
        .expiry2 = retouch ? kvstore_expiry_of(a->ttl.touch_exptime) : 0,
        .cas_in = a->cas_in,
        .delta = a->delta,
        .initial = a->initial,
    };
    fe_rmw(w, fw, &q);
}

const struct fe_exec_ops *coord_exec(const struct fe_exec_ops *inner, struct fe_exec_ops *storage)
{
    *storage = *inner;
    storage->get_async = co_get_async;
    storage->meta_get_async = co_meta_get_async;
    storage->store_async = co_store_async;
    storage->remove_async = co_remove_async;
    storage->touch_async = co_touch_async;
    storage->delta_async = co_delta_async;
    storage->meta_delete_async = co_meta_delete_async;
    storage->meta_delta_async = co_meta_delta_async;
    return storage;
}
