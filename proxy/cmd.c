/*
 * cmd.c - protocol-independent command execution (see cmd.h).
 *
 *   client ─► proto_text (parse) ─► cmd_* ─► L1 cache (cache/)
 *                                      │
 *                                      └─► later: L2 pool, backends and
 *                                          per-prefix policies slot in here,
 *                                          so every protocol gets them
 *
 * Each function does the cache operation and counts it in the calling
 * worker's shard, with memcached's counter semantics, and reports it to
 * `watch` (fetchers: one item_get line per client-visible lookup;
 * mutations: one item_store line per storage outcome) when somebody
 * watches: otherwise that costs one relaxed load. Worker threads.
 */
#include "proxy/cmd.h"

#include <stdint.h>
#include <string.h>

#include "common/clock.h"
#include "frontend/count.h"
#include "frontend/worker.h"
#include "kvstore/kvstore.h"
#include "proxy/admin.h"
#include "proxy/batch.h"
#include "proxy/detail.h"
#include "proxy/l2.h"
#include "proxy/proxy.h"
#include "proxy/stats.h"
#include "proxy/tiers.h"
#include "proxy/watch.h"

/* The proxy a worker's commands run for: the executor context. */
static struct proxy *proxy_of(const struct worker *w)
{
    return w->fe->exec;
}

static struct cache *cache_of(struct worker *w)
{
    return proxy_of(w)->cache;
}

/* ---- the tiers below L1 (proxy/tiers.h) ---- */

static struct tiers *tiers_of(struct worker *w)
{
    return proxy_of(w)->tiers;
}

/* The policy of key when something below L1 applies; NULL: L1 only (no
 * backend, or a cache-only prefix), memcached's path. */
static const struct policy *below(struct worker *w, const char *key, size_t nkey)
{
    return tiers_policy(tiers_of(w), key, nkey);
}

/* A policy whose writes go to the backend. */
static bool writes_below(const struct policy *pol)
{
    return pol != NULL && tiers_writes_below(pol);
}

/* An RMW of key with op (the other fields zero). */
static struct wire_rmw key_rmw(enum wire_rmw_op op, const char *key, size_t nkey)
{
    return (struct wire_rmw){.op = (uint8_t)op, .key = (const uint8_t *)key, .key_len = nkey};
}

/* Runs q below; the outcome as a front-end result (STORED for done, or
 * FE_FAILED when the backend failed). */
static enum fe_result rmw_below(struct worker *w, const struct policy *pol, struct wire_rmw *q,
                                struct wire_rmw_reply *reply)
{
    enum fe_result r = tiers_rmw(tiers_of(w), w->id, pol, q, reply);
    if (tiers_turn_waits(tiers_of(w), w->id))
        batch_end_of_turn(w); /* its batch is written this turn, replies or not */
    return r == FE_OK ? fe_result_of_rmw(reply->result) : r;
}

/* A backend outcome as the cache's result, `done` standing for STORED
 * (CACHE_OK for delete, touch, incr/decr); false for a failure of the
 * server (its FE result is the answer, counted nowhere). */
static bool cache_result_of(enum fe_result fr, enum cache_result done, enum cache_result *r)
{
    if (fe_server_error(fr) != NULL)
        return false;
    *r = fr == FE_STORED ? done : (enum cache_result)fr;
    return true;
}

/* The replies about to leave may report writes in the worker's engine
 * batch: it is written first; with writes that wait for a sync, the
 * replies wait for the end of the turn (proxy/batch.h). */
static enum fe_reply_gate cmd_before_reply(void *wctx)
{
    struct worker *w = wctx;
    if (!tiers_turn_flush(tiers_of(w), w->id))
        return FE_REPLY_FAILED;
    return tiers_turn_unsynced(tiers_of(w), w->id) ? FE_REPLY_LATER : FE_REPLY_NOW;
}

/* gat / mg T below: the backend's TTL first; L1 then holds the touched
 * record (or nothing), which the L1 command reads. */
static void touch_below(struct worker *w, const struct policy *pol, const char *key, size_t nkey,
                        rel_time_t exptime)
{
    struct wire_rmw q = key_rmw(WIRE_RMW_TOUCH, key, nkey);
    q.expiry = kvstore_expiry_of(exptime);
    struct wire_rmw_reply reply;
    rmw_below(w, pol, &q, &reply);
}

/* read-through's L1 writes hold the key's lock (a fill never slips
 * between); `fill`: the backend's value first, for writes that read. */
static void l1_begin(struct worker *w, const struct policy *pol, const char *key, size_t nkey,
                     bool fill)
{
    if (pol != NULL)
        tiers_l1_begin(tiers_of(w), w->id, pol, key, nkey, fill);
}

static void l1_end(struct worker *w, const struct policy *pol, const char *key, size_t nkey)
{
    if (pol != NULL)
        tiers_l1_end(tiers_of(w), key, nkey);
}

/* ---- watch hooks: each starts with watch_wants(), one relaxed load ---- */

static struct watch_state *watch_of(struct worker *w)
{
    return &proxy_of(w)->watch;
}

/* An item_get line for a lookup that returned `it` (NULL: missed, `miss`
 * says why). */
static void note_fetch(struct worker *w, const char *key, size_t nkey, const struct item *it,
                       enum cache_miss miss)
{
    if (!watch_wants(watch_of(w), WATCH_FETCHERS))
        return;
    if (it != NULL) {
        watch_log_fetch(watch_of(w), key, nkey, WATCH_FETCH_FOUND, item_class(it), item_nvalue(it));
        return;
    }
    enum watch_fetch st = miss == CACHE_MISS_EXPIRED   ? WATCH_FETCH_EXPIRED
                          : miss == CACHE_MISS_FLUSHED ? WATCH_FETCH_FLUSHED
                                                       : WATCH_FETCH_NOT_FOUND;
    watch_log_fetch(watch_of(w), key, nkey, st, 0, 0);
}

/* What an item_get line says about an item that touch, delete or
 * incr/decr will act on: those cache calls return no item, so when
 * fetchers are watched the item is looked up (without bumping it) just
 * before. */
struct fetch_peek {
    bool watching;
    unsigned clsid;
    size_t nvalue;
};

static void peek_begin(struct worker *w, const char *key, size_t nkey, struct fetch_peek *pk)
{
    pk->watching = watch_wants(watch_of(w), WATCH_FETCHERS);
    pk->clsid = 0;
    pk->nvalue = 0;
    if (!pk->watching)
        return;
    struct cache_meta_info info;
    struct item *it = cache_meta_peek(cache_of(w), key, nkey, &info);
    if (it != NULL) {
        pk->clsid = item_class(it);
        pk->nvalue = item_nvalue(it);
        cache_release(cache_of(w), it);
    }
}

/* found: the command found the key (whatever it then did with it). */
static void peek_end(struct worker *w, const char *key, size_t nkey, const struct fetch_peek *pk,
                     bool found)
{
    if (!pk->watching)
        return;
    if (found)
        watch_log_fetch(watch_of(w), key, nkey, WATCH_FETCH_FOUND, pk->clsid, pk->nvalue);
    else
        watch_log_fetch(watch_of(w), key, nkey, WATCH_FETCH_NOT_FOUND, 0, 0);
}

/* A storage command's item, copied before the commit takes it. */
struct store_note {
    bool watching;
    char key[CACHE_KEY_MAX];
    size_t nkey;
    rel_time_t exptime;
    unsigned clsid;
    size_t nvalue;
};

static void store_note_begin(struct worker *w, const struct item *it, struct store_note *n)
{
    n->watching = watch_wants(watch_of(w), WATCH_MUTATIONS);
    if (!n->watching)
        return;
    n->nkey = item_nkey(it);
    memcpy(n->key, item_key(it), n->nkey);
    n->exptime = item_exptime(it);
    n->clsid = item_class(it);
    n->nvalue = item_nvalue(it);
}

static void store_note_end(struct worker *w, struct store_note *n, enum cache_result r,
                           enum cache_store_mode mode)
{
    if (!n->watching)
        return;
    if (r == CACHE_STORED && (mode == CACHE_APPEND || mode == CACHE_PREPEND)) {
        /* memcached reports the joined item, which keeps the old TTL */
        struct cache_meta_info info;
        struct item *it = cache_meta_peek(cache_of(w), n->key, n->nkey, &info);
        if (it != NULL) {
            n->exptime = item_exptime(it);
            n->clsid = item_class(it);
            n->nvalue = item_nvalue(it);
            cache_release(cache_of(w), it);
        }
    }
    watch_log_store(watch_of(w), n->key, n->nkey, r, mode, n->exptime, n->clsid, n->nvalue);
}

/* ---- the front end's types and the cache's: the same memcached model ---- */

#define SAME(a, b) _Static_assert((int)(a) == (int)(b), #a " is " #b)
SAME(FE_OK, CACHE_OK);
SAME(FE_STORED, CACHE_STORED);
SAME(FE_NOT_STORED, CACHE_NOT_STORED);
SAME(FE_EXISTS, CACHE_EXISTS);
SAME(FE_NOT_FOUND, CACHE_NOT_FOUND);
SAME(FE_NON_NUMERIC, CACHE_NON_NUMERIC);
SAME(FE_TOO_LARGE, CACHE_TOO_LARGE);
SAME(FE_NO_MEMORY, CACHE_NO_MEMORY);
SAME(FE_SET, CACHE_SET);
SAME(FE_ADD, CACHE_ADD);
SAME(FE_REPLACE, CACHE_REPLACE);
SAME(FE_APPEND, CACHE_APPEND);
SAME(FE_PREPEND, CACHE_PREPEND);
SAME(FE_CAS, CACHE_CAS);
SAME(FE_META_INVALIDATE, CACHE_META_INVALIDATE);
SAME(FE_META_KEY_BINARY, CACHE_META_KEY_BINARY);

static enum fe_result result_of(enum cache_result r)
{
    return (enum fe_result)r;
}

static enum cache_store_mode store_mode(enum fe_store_mode m)
{
    return (enum cache_store_mode)m;
}

static struct cache_meta_ttl ttl_of(const struct fe_meta_ttl *t)
{
    return (struct cache_meta_ttl){
        .t_pos = t->t_pos,
        .touch_pos = t->touch_pos,
        .vivify_pos = t->vivify_pos,
        .recache_pos = t->recache_pos,
        .fail_pos = t->fail_pos,
        .touch_exptime = t->touch_exptime,
        .vivify_exptime = t->vivify_exptime,
        .recache_time = t->recache_time,
    };
}

static struct fe_meta_info info_of(const struct cache_meta_info *i)
{
    return (struct fe_meta_info){
        .created = i->created,
        .won = i->won,
        .token_sent = i->token_sent,
        .stale = i->stale,
        .fetched = i->fetched,
        .key_binary = i->key_binary,
        .ttl = i->ttl,
        .idle = i->idle,
    };
}

/* An L1 lookup (gat/gats when touch). */
static struct item *l1_get(struct worker *w, const char *key, size_t nkey, bool touch,
                           rel_time_t exptime, enum cache_miss *miss)
{
    return touch ? cache_get_and_touch(cache_of(w), key, nkey, exptime, miss)
                 : cache_get(cache_of(w), key, nkey, miss);
}

/* A lookup's counters (memcached counts gat/gats keys as touches only,
 * not in cmd_get) and its watch line. */
static void count_get(struct worker *w, const char *key, size_t nkey, bool touch,
                      const struct item *it, enum cache_miss miss)
{
    fe_count_lookup(&w->stats, touch, it != NULL);
    if (miss == CACHE_MISS_EXPIRED)
        STAT_INCR(&w->stats, get_expired);
    else if (miss == CACHE_MISS_FLUSHED)
        STAT_INCR(&w->stats, get_flushed);
    note_fetch(w, key, nkey, it, miss);
}

static void *cmd_get(void *wctx, const char *key, size_t nkey, bool touch, rel_time_t exptime)
{
    struct worker *w = wctx;
    enum cache_miss miss;
    /* a hit of a plain get looks at nothing below L1: the policy is
     * matched for a touch, or after a miss */
    const struct policy *pol = touch ? below(w, key, nkey) : NULL;
    if (writes_below(pol))
        touch_below(w, pol, key, nkey, exptime);
    struct item *it = l1_get(w, key, nkey, touch, exptime, &miss);
    if (it == NULL && !touch)
        pol = below(w, key, nkey);
    if (it == NULL && pol != NULL) {
        /* a miss, or write-around's touch dropped the copy */
        tiers_fill(tiers_of(w), w->id, pol, key, nkey);
        it = l1_get(w, key, nkey, touch, exptime, &miss);
    }
    count_get(w, key, nkey, touch, it, miss);
    return it;
}

void *cmd_get_hit(struct worker *w, const char *key, size_t nkey, bool touch, rel_time_t exptime)
{
    enum cache_miss miss;
    struct item *it = l1_get(w, key, nkey, touch, exptime, &miss);
    if (it != NULL)
        count_get(w, key, nkey, touch, it, miss);
    return it;
}

static void *cmd_reserve(void *wctx, const char *key, size_t nkey, uint32_t flags,
                         rel_time_t exptime, size_t nbytes, enum fe_store_mode fmode,
                         enum fe_result *fres)
{
    struct worker *w = wctx;
    enum cache_store_mode mode = store_mode(fmode);
    enum cache_result r;
    struct item *it = cache_reserve(cache_of(w), key, nkey, flags, exptime, nbytes, &r);
    *fres = result_of(r);
    if (it != NULL)
        return it;
    enum cache_result *res = &r;
    if (*res == CACHE_TOO_LARGE)
        STAT_INCR(&w->stats, store_too_large);
    else
        STAT_INCR(&w->stats, store_no_memory);
    const struct policy *pol = below(w, key, nkey);
    if (writes_below(pol) && mode == CACHE_SET) {
        /* memcached drops the old value of a refused set: so does the
         * backend, or the next miss would bring it back */
        struct wire_rmw q = key_rmw(WIRE_RMW_DELETE, key, nkey);
        struct wire_rmw_reply reply;
        rmw_below(w, pol, &q, &reply);
    } else {
        l1_begin(w, pol, key, nkey, false);
        cache_reserve_failed(cache_of(w), key, nkey, mode);
        l1_end(w, pol, key, nkey);
    }
    /* memcached logs a refused store without an item: no TTL, class or size */
    if (watch_wants(watch_of(w), WATCH_MUTATIONS))
        watch_log_store(watch_of(w), key, nkey, *res, mode, 0, 0, 0);
    return NULL;
}

static void cmd_store_aborted(void *wctx, void *it)
{
    struct worker *w = wctx;
    STAT_INCR(&w->stats, cmd_set);
    cache_release(cache_of(w), it);
}

static enum fe_result cmd_delete(void *wctx, const char *key, size_t nkey, uint64_t cas_in)
{
    struct worker *w = wctx;
    struct fetch_peek pk;
    peek_begin(w, key, nkey, &pk);
    const struct policy *pol = below(w, key, nkey);
    enum cache_result r;
    if (writes_below(pol)) {
        struct wire_rmw q = key_rmw(WIRE_RMW_DELETE, key, nkey);
        q.cas_in = cas_in;
        struct wire_rmw_reply reply;
        enum fe_result fr = rmw_below(w, pol, &q, &reply);
        if (!cache_result_of(fr, CACHE_OK, &r))
            return fr;
    } else {
        /* read-through: the backend's copy first, so a key it holds is
         * DELETED (from L1; the next read fills it again) */
        l1_begin(w, pol, key, nkey, true);
        r = cache_delete(cache_of(w), key, nkey, cas_in);
        l1_end(w, pol, key, nkey);
    }
    peek_end(w, key, nkey, &pk, r != CACHE_NOT_FOUND);
    if (r == CACHE_OK)
        STAT_INCR(&w->stats, delete_hits);
    else if (r == CACHE_NOT_FOUND)
        STAT_INCR(&w->stats, delete_misses);
    return result_of(r);
}

static enum fe_result cmd_touch(void *wctx, const char *key, size_t nkey, rel_time_t exptime)
{
    struct worker *w = wctx;
    struct fetch_peek pk;
    peek_begin(w, key, nkey, &pk);
    const struct policy *pol = below(w, key, nkey);
    enum cache_result r;
    if (writes_below(pol)) {
        struct wire_rmw q = key_rmw(WIRE_RMW_TOUCH, key, nkey);
        q.expiry = kvstore_expiry_of(exptime);
        struct wire_rmw_reply reply;
        enum fe_result fr = rmw_below(w, pol, &q, &reply);
        if (!cache_result_of(fr, CACHE_OK, &r))
            return fr;
    } else {
        l1_begin(w, pol, key, nkey, true);
        r = cache_touch(cache_of(w), key, nkey, exptime);
        l1_end(w, pol, key, nkey);
    }
    peek_end(w, key, nkey, &pk, r != CACHE_NOT_FOUND);
    STAT_INCR(&w->stats, cmd_touch);
    if (r == CACHE_OK)
        STAT_INCR(&w->stats, touch_hits);
    else
        STAT_INCR(&w->stats, touch_misses);
    return result_of(r);
}

static enum fe_result cmd_delta(void *wctx, const char *key, size_t nkey, bool incr, uint64_t delta,
                                uint64_t cas_in, uint64_t *value, uint64_t *cas_out)
{
    struct worker *w = wctx;
    struct fetch_peek pk;
    peek_begin(w, key, nkey, &pk);
    const struct policy *pol = below(w, key, nkey);
    enum cache_result r;
    if (writes_below(pol)) {
        struct wire_rmw q = key_rmw(incr ? WIRE_RMW_INCR : WIRE_RMW_DECR, key, nkey);
        q.delta = delta;
        q.cas_in = cas_in;
        struct wire_rmw_reply reply;
        enum fe_result fr = rmw_below(w, pol, &q, &reply);
        if (!cache_result_of(fr, CACHE_OK, &r))
            return fr;
        *value = reply.number;
        if (cas_out != NULL)
            *cas_out = reply.cas;
    } else {
        l1_begin(w, pol, key, nkey, true);
        r = cache_delta(cache_of(w), key, nkey, incr, delta, cas_in, value, cas_out);
        l1_end(w, pol, key, nkey);
    }
    peek_end(w, key, nkey, &pk, r != CACHE_NOT_FOUND);
    if (r == CACHE_NOT_FOUND) {
        if (incr)
            STAT_INCR(&w->stats, incr_misses);
        else
            STAT_INCR(&w->stats, decr_misses);
    } else if (r == CACHE_OK) {
        if (incr)
            STAT_INCR(&w->stats, incr_hits);
        else
            STAT_INCR(&w->stats, decr_hits);
    }
    return result_of(r);
}

static void count_miss(struct worker *w, enum cache_miss miss)
{
    if (miss == CACHE_MISS_EXPIRED)
        STAT_INCR(&w->stats, get_expired);
    else if (miss == CACHE_MISS_FLUSHED)
        STAT_INCR(&w->stats, get_flushed);
}

static void *cmd_meta_get(void *wctx, const char *key, size_t nkey, const struct fe_meta_ttl *fttl,
                          bool no_bump, struct fe_meta_info *finfo)
{
    struct worker *w = wctx;
    struct cache_meta_ttl cttl = ttl_of(fttl);
    const struct cache_meta_ttl *ttl = &cttl;
    struct cache_meta_info cinfo;
    struct cache_meta_info *info = &cinfo;
    enum cache_miss miss;
    const struct policy *pol = below(w, key, nkey);
    if (pol != NULL) {
        /* the backend first: L1's flags (N, R, t, h, l) then act on its copy */
        bool touch =
            fttl->touch_pos >= 0 && (fttl->fail_pos < 0 || fttl->touch_pos < fttl->fail_pos);
        if (touch && writes_below(pol))
            touch_below(w, pol, key, nkey, fttl->touch_exptime);
        tiers_fill(tiers_of(w), w->id, pol, key, nkey); /* no-op when L1 holds it */
    }
    struct item *it = cache_meta_get(cache_of(w), key, nkey, ttl, no_bump, info, &miss);
    *finfo = info_of(info);
    fe_count_meta_lookup(&w->stats, fttl, it != NULL);
    if (it != NULL && ttl->fail_pos >= 0)
        return it; /* memcached counts a failed hit nowhere (a miss, yes) */
    if (it == NULL)
        count_miss(w, miss);
    /* an item vivified by N is logged as the miss it was (memcached logs
     * no store for it) */
    note_fetch(w, key, nkey, info->created ? NULL : it, miss);
    return it;
}

static enum wire_rmw_op rmw_op_of(enum cache_store_mode mode)
{
    switch (mode) {
    case CACHE_ADD: return WIRE_RMW_ADD;
    case CACHE_REPLACE: return WIRE_RMW_REPLACE;
    case CACHE_APPEND: return WIRE_RMW_APPEND;
    case CACHE_PREPEND: return WIRE_RMW_PREPEND;
    case CACHE_CAS: return WIRE_RMW_CAS;
    case CACHE_SET:
    case CACHE_FILL: break;
    }
    return WIRE_RMW_SET;
}

/* A storage command below: the reserved item's key, value, flags and TTL
 * as an RMW; L1 gets the written record (tiers_rmw). Takes it. An ms
 * with I stores as a plain cas: nothing below keeps stale items. */
static enum fe_result store_below(struct worker *w, const struct policy *pol, struct item *it,
                                  enum cache_store_mode mode, uint64_t cas_in, uint64_t *cas_out)
{
    struct wire_rmw q = key_rmw(rmw_op_of(mode), item_key(it), item_nkey(it));
    q.value = (const uint8_t *)item_value(it);
    q.value_len = item_nvalue(it);
    q.flags = item_flags(it);
    q.expiry = kvstore_expiry_of(item_exptime(it));
    q.cas_in = mode == CACHE_CAS ? cas_in : 0;
    struct wire_rmw_reply reply;
    enum fe_result r = rmw_below(w, pol, &q, &reply);
    cache_release(cache_of(w), it);
    if (r == FE_STORED && cas_out != NULL)
        *cas_out = reply.cas;
    return r;
}

static enum fe_result cmd_store(void *wctx, void *item, enum fe_store_mode fmode, uint64_t cas_in,
                                unsigned mflags, uint64_t *cas_out)
{
    struct worker *w = wctx;
    struct item *it = item;
    enum cache_store_mode mode = store_mode(fmode);
    STAT_INCR(&w->stats, cmd_set);
    struct store_note note;
    store_note_begin(w, it, &note);
    const struct policy *pol = below(w, item_key(it), item_nkey(it));
    enum cache_result r;
    if (writes_below(pol)) {
        enum fe_result fr = store_below(w, pol, it, mode, cas_in, cas_out);
        if (!cache_result_of(fr, CACHE_STORED, &r))
            return fr;
    } else if (pol == NULL) {
        r = cache_meta_commit(cache_of(w), it, mode, cas_in, mflags, cas_out);
    } else {
        char key[CACHE_KEY_MAX]; /* the commit takes the item */
        size_t nkey = item_nkey(it);
        memcpy(key, item_key(it), nkey);
        l1_begin(w, pol, key, nkey, mode != CACHE_SET);
        r = cache_meta_commit(cache_of(w), it, mode, cas_in, mflags, cas_out);
        l1_end(w, pol, key, nkey);
    }
    store_note_end(w, &note, r, mode);
    if (mode == CACHE_CAS) {
        if (r == CACHE_STORED)
            STAT_INCR(&w->stats, cas_hits);
        else if (r == CACHE_EXISTS)
            STAT_INCR(&w->stats, cas_badval);
        else if (r == CACHE_NOT_FOUND)
            STAT_INCR(&w->stats, cas_misses);
    }
    if (r == CACHE_NO_MEMORY)
        STAT_INCR(&w->stats, store_no_memory);
    else if (r == CACHE_TOO_LARGE)
        STAT_INCR(&w->stats, store_too_large);
    return result_of(r);
}

static enum fe_result cmd_meta_delete(void *wctx, const char *key, size_t nkey, bool has_cas,
                                      uint64_t cas_in, bool invalidate, bool new_ttl,
                                      rel_time_t exptime)
{
    struct worker *w = wctx;
    struct fetch_peek pk;
    peek_begin(w, key, nkey, &pk);
    const struct policy *pol = below(w, key, nkey);
    enum cache_result r;
    if (writes_below(pol)) {
        /* nothing below keeps stale items: md I deletes, as on a node */
        struct wire_rmw q = key_rmw(WIRE_RMW_DELETE, key, nkey);
        q.cas_in = has_cas ? cas_in : 0;
        struct wire_rmw_reply reply;
        enum fe_result fr = rmw_below(w, pol, &q, &reply);
        if (!cache_result_of(fr, CACHE_OK, &r))
            return fr;
        invalidate = false;
    } else {
        l1_begin(w, pol, key, nkey, false);
        r = cache_meta_delete(cache_of(w), key, nkey, has_cas, cas_in, invalidate, new_ttl,
                              exptime);
        l1_end(w, pol, key, nkey);
    }
    peek_end(w, key, nkey, &pk, r != CACHE_NOT_FOUND);
    if (r == CACHE_OK && !invalidate)
        STAT_INCR(&w->stats, delete_hits);
    else if (r == CACHE_NOT_FOUND || r == CACHE_EXISTS)
        STAT_INCR(&w->stats, delete_misses);
    return result_of(r);
}

/* ma below: incr/decr with N (vivify) and T (retouch) at the backend;
 * a's outputs as cache_meta_delta sets them. */
static enum fe_result meta_delta_below(struct worker *w, const struct policy *pol, const char *key,
                                       size_t nkey, struct cache_meta_arith *a)
{
    bool retouch = a->ttl.touch_pos >= 0;
    struct wire_rmw q = key_rmw(a->incr ? WIRE_RMW_INCR : WIRE_RMW_DECR, key, nkey);
    q.rflags = (uint8_t)((a->vivify ? WIRE_RMW_VIVIFY : 0) | (retouch ? WIRE_RMW_RETOUCH : 0));
    q.expiry = a->vivify ? kvstore_expiry_of(a->ttl.vivify_exptime) : 0;
    q.expiry2 = retouch ? kvstore_expiry_of(a->ttl.touch_exptime) : 0;
    q.cas_in = a->cas_in;
    q.delta = a->delta;
    q.initial = a->initial;
    struct wire_rmw_reply reply;
    enum fe_result r = rmw_below(w, pol, &q, &reply);
    if (r != FE_STORED)
        return r;
    a->value = reply.number;
    a->cas = reply.cas;
    a->created = reply.created;
    /* t reports the TTL as it is after T, or before it when it came first */
    bool new_ttl = retouch && !(a->ttl.t_pos >= 0 && a->ttl.t_pos < a->ttl.touch_pos);
    uint64_t expiry = reply.created ? q.expiry : new_ttl ? q.expiry2 : reply.old_expiry;
    a->ttl_reported = kvstore_ttl_left(expiry);
    return FE_STORED;
}

static enum fe_result cmd_meta_delta(void *wctx, const char *key, size_t nkey,
                                     struct fe_meta_arith *fa)
{
    struct worker *w = wctx;
    struct cache_meta_arith ca = {
        .incr = fa->incr,
        .delta = fa->delta,
        .cas_in = fa->cas_in,
        .vivify = fa->vivify,
        .initial = fa->initial,
        .ttl = ttl_of(&fa->ttl),
    };
    struct cache_meta_arith *a = &ca;
    struct fetch_peek pk;
    peek_begin(w, key, nkey, &pk);
    const struct policy *pol = below(w, key, nkey);
    enum cache_result r;
    if (writes_below(pol)) {
        enum fe_result fr = meta_delta_below(w, pol, key, nkey, a);
        if (!cache_result_of(fr, CACHE_OK, &r))
            return fr;
    } else {
        l1_begin(w, pol, key, nkey, true);
        r = cache_meta_delta(cache_of(w), key, nkey, a);
        l1_end(w, pol, key, nkey);
    }
    fa->value = ca.value;
    fa->cas = ca.cas;
    fa->created = ca.created;
    fa->ttl_reported = ca.ttl_reported;
    peek_end(w, key, nkey, &pk, r != CACHE_NOT_FOUND && !(r == CACHE_OK && a->created));
    /* memcached stores an auto-created counter with an add, and logs it */
    if (r == CACHE_OK && a->created && watch_wants(watch_of(w), WATCH_MUTATIONS)) {
        struct cache_meta_info info;
        struct item *it = cache_meta_peek(cache_of(w), key, nkey, &info);
        if (it != NULL) {
            watch_log_store(watch_of(w), key, nkey, CACHE_STORED, CACHE_ADD, item_exptime(it),
                            item_class(it), item_nvalue(it));
            cache_release(cache_of(w), it);
        }
    }
    if (r == CACHE_NOT_FOUND) {
        if (a->incr)
            STAT_INCR(&w->stats, incr_misses);
        else
            STAT_INCR(&w->stats, decr_misses);
    } else if (r == CACHE_OK && !a->created) {
        if (a->incr)
            STAT_INCR(&w->stats, incr_hits);
        else
            STAT_INCR(&w->stats, decr_hits);
    }
    return result_of(r);
}

static void *cmd_meta_debug(void *wctx, const char *key, size_t nkey, struct fe_meta_info *finfo)
{
    struct worker *w = wctx;
    STAT_INCR(&w->stats, cmd_meta);
    struct cache_meta_info info;
    struct item *it = cache_meta_peek(cache_of(w), key, nkey, &info);
    *finfo = info_of(&info);
    note_fetch(w, key, nkey, it, CACHE_MISS_ABSENT);
    return it;
}

static void cmd_flush_all(void *wctx, int64_t delay, bool allowed)
{
    struct worker *w = wctx;
    STAT_INCR(&w->stats, cmd_flush);
    if (!allowed)
        return; /* -F: counted, then refused */
    /* memcached: a delay of 0 or less flushes now; otherwise the delay is
     * an exptime (relative or absolute), converted the same way. */
    rel_time_t at = delay > 0 ? clock_exptime(delay) : 0;
    cache_flush(cache_of(w), at);
}

/* ---- the executor the front end calls ---- */

static void cmd_view(void *exec, void *item, struct fe_item_view *v)
{
    (void)exec;
    struct item *it = item;
    v->key = item_key(it);
    v->nkey = item_nkey(it);
    /* Writable only while reserved (store() not yet called): the front
     * end writes there only then, and reads linked items. */
    v->value = (char *)(uintptr_t)item_value(it);
    v->nvalue = item_nvalue(it);
    v->flags = item_flags(it);
    v->cas = item_cas(it);
    v->clsid = item_class(it);
    v->bytes = item_bytes(it);
}

static void cmd_release(void *exec, void *item)
{
    struct proxy *p = exec;
    cache_release(p->cache, item);
}

static void cmd_note(void *wctx, enum fe_note what, const char *key, size_t nkey, bool hit)
{
    struct worker *w = wctx;
    struct detail *d = proxy_of(w)->detail;
    switch (what) {
    case FE_NOTE_GET: detail_record_get(d, key, nkey, hit); break;
    case FE_NOTE_SET: detail_record_set(d, key, nkey); break;
    case FE_NOTE_DELETE: detail_record_delete(d, key, nkey); break;
    }
}

static enum st_status cmd_detail(void *exec, enum fe_detail what,
                                 void (*emit)(void *arg, const char *text, size_t len), void *arg)
{
    struct detail *d = ((struct proxy *)exec)->detail;
    switch (what) {
    case FE_DETAIL_ON: detail_set_enabled(d, true); return ST_OK;
    case FE_DETAIL_OFF: detail_set_enabled(d, false); return ST_OK;
    case FE_DETAIL_DUMP: break;
    }
    struct detail_text t;
    if (detail_dump(d, &t) != ST_OK)
        return ST_NOMEM;
    emit(arg, t.buf, t.len);
    detail_text_free(&t);
    return ST_OK;
}

static bool cmd_stats(void *exec, const char *args, size_t len,
                      void (*emit)(void *arg, const char *name, const char *value), void *arg,
                      const char **special)
{
    struct proxy *p = exec;
    if (len > 0 && tiers_stats(p->tiers, args, len, emit, arg)) {
        *special = NULL;
        return true;
    }
    if (p->l2 != NULL && len == 2 && memcmp(args, "l2", 2) == 0) {
        l2_stats(p->l2, emit, arg);
        *special = NULL;
        return true;
    }
    return stats_reply(exec, args, len, emit, arg, special);
}

const struct fe_exec_ops cmd_exec_ops = {
    .view = cmd_view,
    .release = cmd_release,
    .get = cmd_get,
    .reserve = cmd_reserve,
    .store = cmd_store,
    .store_aborted = cmd_store_aborted,
    .remove = cmd_delete,
    .touch = cmd_touch,
    .delta = cmd_delta,
    .flush_all = cmd_flush_all,
    .meta_get = cmd_meta_get,
    .meta_delete = cmd_meta_delete,
    .meta_delta = cmd_meta_delta,
    .meta_debug = cmd_meta_debug,
    .note = cmd_note,
    .detail = cmd_detail,
    .stats = cmd_stats,
    .before_reply = cmd_before_reply,
    .text_command = admin_text_line,
};
