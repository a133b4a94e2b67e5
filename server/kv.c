/*
 * kv.c - memcached's commands on the node's engine (see kv.h). Worker
 * threads; the engine is thread-safe, the per-key locks serialise writes.
 *
 *   read:  lsm_get ─► a kv_item wrapping the engine's record ─► the reply
 *   write: (lock) [lsm_get] ─► decide ─► lsm_put / lsm_delete at a new
 *          HLC version ─► (unlock)
 */
#include "server/kv.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mc_text.h"
#include "common/mem.h"
#include "frontend/conn.h"
#include "frontend/fe.h"
#include "frontend/outq.h"
#include "frontend/worker.h"
#include "kvstore/kvstore.h"
#include "server/cluster.h"
#include "server/coord.h"
#include "server/handoff.h"
#include "server/members.h"
#include "server/repair.h"
#include "server/version.h"
#include "storage/include/lsm.h"

struct kv {
    struct fe *fe;           /* the front end running us: its counters for stats */
    struct cluster *cluster; /* the cluster port, for stats cluster; may be NULL */
    struct members *members; /* membership, for stats cluster; may be NULL */
    struct coord *coord;     /* the coordinator in front, for stats cluster; may be NULL */
    struct handoff *handoff; /* hints, for stats hints; may be NULL */
    struct repair *repair;   /* anti-entropy, for stats repair; may be NULL */
    struct lsm_db *db;
    struct hlc *clock;
    uint16_t node_id;
    size_t max_value_len;
    struct kvstore *store; /* the RMWs and per-key locks, on db */
};

/* A value the front end holds: a record read from the engine, or the
 * buffer a storage command's value is read into (then key and value live
 * in buf). */
struct kv_item {
    struct lsm_record *rec; /* owned; NULL for a value being stored */
    const char *key;
    size_t nkey;
    char *value;
    size_t nvalue;
    uint32_t flags;
    uint64_t expiry; /* unix seconds, 0: never */
    uint64_t cas;    /* the version's HLC */
    size_t size;     /* allocation */
    char buf[];
};

/* ------------------------------------------------------------- items */

static struct kv_item *item_of_record(struct lsm_record *rec)
{
    struct kv_item *it = mem_alloc(MEM_CONN, sizeof(*it));
    if (it == NULL) {
        lsm_record_free(&rec);
        return NULL;
    }
    it->rec = rec;
    it->key = (const char *)rec->key;
    it->nkey = rec->key_len;
    it->value = (char *)(uintptr_t)rec->value;
    it->nvalue = rec->value_len;
    it->flags = rec->flags;
    it->expiry = rec->expiry;
    it->cas = rec->version.hlc;
    it->size = sizeof(*it);
    return it;
}

static struct kv_item *item_new(const char *key, size_t nkey, uint32_t flags, uint64_t expiry,
                                size_t nvalue)
{
    size_t size = sizeof(struct kv_item) + nkey + nvalue;
    struct kv_item *it = mem_alloc(MEM_CONN, size);
    if (it == NULL)
        return NULL;
    it->rec = NULL;
    memcpy(it->buf, key, nkey);
    it->key = it->buf;
    it->nkey = nkey;
    it->value = it->buf + nkey;
    it->nvalue = nvalue;
    it->flags = flags;
    it->expiry = expiry;
    it->cas = 0;
    it->size = size;
    return it;
}

static void item_free(struct kv_item *it)
{
    if (it == NULL)
        return;
    lsm_record_free(&it->rec);
    mem_free(MEM_CONN, it, it->size);
}

static void kv_view(void *exec, void *item, struct fe_item_view *v)
{
    (void)exec;
    const struct kv_item *it = item;
    *v = (struct fe_item_view){
        .key = it->key,
        .nkey = it->nkey,
        .value = it->value,
        .nvalue = it->nvalue,
        .flags = it->flags,
        .cas = it->cas,
        .bytes = it->nkey + it->nvalue,
    };
}

static void kv_release(void *exec, void *item)
{
    (void)exec;
    item_free(item);
}

/* ------------------------------------------------------------ helpers */

static struct kv *kv_of(const struct worker *w)
{
    return w->fe->exec;
}

/* The newest live record of key in *out (NULL: none). False when the
 * engine could not read it (logged): a write that depends on the current
 * value then fails with FE_FAILED. */
static bool read_current(struct kv *kv, const char *key, size_t nkey, struct lsm_record **out)
{
    *out = NULL;
    enum st_status st = lsm_get(kv->db, key, nkey, 0, out);
    if (st != ST_OK) {
        log_warn("node: read of a key failed: %s", st_status_name(st));
        return false;
    }
    return true;
}

/* A lookup for a reply: an engine error reads as a miss (logged), since the
 * get family has no per-key error reply in memcached's protocols. */
static struct lsm_record *lookup(struct kv *kv, const char *key, size_t nkey)
{
    struct lsm_record *rec;
    read_current(kv, key, nkey, &rec);
    return rec;
}

/* Writes a record at a new version; *cas gets it. */
static enum fe_result put(struct kv *kv, const char *key, size_t nkey, const void *value,
                          size_t nvalue, uint32_t flags, uint64_t expiry, uint64_t *cas)
{
    if (nvalue > kv->max_value_len)
        return FE_TOO_LARGE;
    struct lsm_record rec = {
        .key = (const uint8_t *)key,
        .key_len = nkey,
        .value = value,
        .value_len = nvalue,
        .flags = flags,
        .expiry = expiry,
        .version = {hlc_now(kv->clock), kv->node_id},
    };
    enum st_status st = lsm_put(kv->db, &rec);
    if (st != ST_OK) {
        log_warn("node: write failed: %s", st_status_name(st));
        return FE_FAILED;
    }
    if (cas != NULL)
        *cas = rec.version.hlc;
    return FE_STORED;
}

static enum fe_result remove_key(struct kv *kv, const char *key, size_t nkey)
{
    struct lsm_version v = {hlc_now(kv->clock), kv->node_id};
    enum st_status st = lsm_delete(kv->db, key, nkey, v, 0);
    if (st != ST_OK) {
        log_warn("node: delete failed: %s", st_status_name(st));
        return FE_FAILED;
    }
    return FE_OK;
}

/* Rewrites rec with a new exptime (touch, gat, meta T) at a new version;
 * updates rec's expiry and version on success. */
static bool retouch(struct kv *kv, struct lsm_record *rec, rel_time_t exptime)
{
    uint64_t cas;
    uint64_t expiry = kvstore_expiry_of(exptime);
    if (put(kv, (const char *)rec->key, rec->key_len, rec->value, rec->value_len, rec->flags,
            expiry, &cas) != FE_STORED)
        return false;
    rec->expiry = expiry;
    rec->version.hlc = cas;
    rec->version.node = kv->node_id;
    return true;
}

/* --------------------------------------------------------- operations */

static void *kv_get(void *wctx, const char *key, size_t nkey, bool touch, rel_time_t exptime)
{
    struct worker *w = wctx;
    struct kv *kv = kv_of(w);
    struct lsm_record *rec;
    if (touch) {
        kvstore_lock(kv->store, key, nkey);
        rec = lookup(kv, key, nkey);
        if (rec != NULL && !retouch(kv, rec, exptime))
            lsm_record_free(&rec);
        kvstore_unlock(kv->store, key, nkey);
        STAT_INCR(&w->stats, cmd_touch);
        if (rec != NULL)
            STAT_INCR(&w->stats, touch_hits);
        else
            STAT_INCR(&w->stats, touch_misses);
    } else {
        rec = lookup(kv, key, nkey);
        STAT_INCR(&w->stats, cmd_get);
        if (rec != NULL)
            STAT_INCR(&w->stats, get_hits);
        else
            STAT_INCR(&w->stats, get_misses);
    }
    return rec != NULL ? item_of_record(rec) : NULL;
}

static void *kv_reserve(void *wctx, const char *key, size_t nkey, uint32_t flags,
                        rel_time_t exptime, size_t nbytes, enum fe_store_mode mode,
                        enum fe_result *res)
{
    struct worker *w = wctx;
    struct kv *kv = kv_of(w);
    if (nbytes > kv->max_value_len) {
        *res = FE_TOO_LARGE;
        STAT_INCR(&w->stats, store_too_large);
        if (mode == FE_SET) {
            /* memcached drops the old value of a refused set */
            kvstore_lock(kv->store, key, nkey);
            struct lsm_record *old = lookup(kv, key, nkey);
            if (old != NULL)
                remove_key(kv, key, nkey);
            lsm_record_free(&old);
            kvstore_unlock(kv->store, key, nkey);
        }
        return NULL;
    }
    struct kv_item *it = item_new(key, nkey, flags, kvstore_expiry_of(exptime), nbytes);
    if (it == NULL) {
        *res = FE_NO_MEMORY;
        STAT_INCR(&w->stats, store_no_memory);
    } else {
        *res = FE_OK;
    }
    return it;
}

/* The stored value of an append or prepend; NULL when out of memory. */
static char *joined(const struct lsm_record *cur, const struct kv_item *it, bool append, size_t *n)
{
    *n = cur->value_len + it->nvalue;
    char *v = mem_alloc(MEM_CONN, *n ? *n : 1);
    if (v == NULL)
        return NULL;
    const void *first = append ? (const void *)cur->value : it->value;
    size_t nfirst = append ? cur->value_len : it->nvalue;
    const void *second = append ? (const void *)it->value : cur->value;
    memcpy(v, first, nfirst);
    memcpy(v + nfirst, second, *n - nfirst);
    return v;
}

/* Writes the value being stored, with its own flags and TTL. */
static enum fe_result put_item(struct kv *kv, const struct kv_item *it, uint64_t *cas_out)
{
    return put(kv, it->key, it->nkey, it->value, it->nvalue, it->flags, it->expiry, cas_out);
}

/* A storage command's decision, given the key's current record (cur,
 * NULL: none; unread for a set). REQUIRES: the key's lock. */
static enum fe_result store_locked(struct kv *kv, struct worker *w, const struct kv_item *it,
                                   enum fe_store_mode mode, uint64_t cas_in,
                                   const struct lsm_record *cur, uint64_t *cas_out)
{
    switch (mode) {
    case FE_ADD: return cur != NULL ? FE_NOT_STORED : put_item(kv, it, cas_out);
    case FE_REPLACE: return cur == NULL ? FE_NOT_STORED : put_item(kv, it, cas_out);
    case FE_APPEND:
    case FE_PREPEND: {
        if (cur == NULL)
            return FE_NOT_STORED;
        size_t n;
        char *v = joined(cur, it, mode == FE_APPEND, &n);
        if (v == NULL)
            return FE_NO_MEMORY;
        /* the stored item keeps its flags and TTL */
        enum fe_result r = put(kv, it->key, it->nkey, v, n, cur->flags, cur->expiry, cas_out);
        mem_free(MEM_CONN, v, n ? n : 1);
        return r;
    }
    case FE_CAS:
        if (cur == NULL) {
            STAT_INCR(&w->stats, cas_misses);
            return FE_NOT_FOUND;
        }
        if (cur->version.hlc != cas_in) {
            STAT_INCR(&w->stats, cas_badval);
            return FE_EXISTS;
        }
        enum fe_result r = put_item(kv, it, cas_out);
        if (r == FE_STORED)
            STAT_INCR(&w->stats, cas_hits);
        return r;
    case FE_SET: break;
    }
    return put_item(kv, it, cas_out);
}

static enum fe_result kv_store(void *wctx, void *item, enum fe_store_mode mode, uint64_t cas_in,
                               unsigned mflags, uint64_t *cas_out)
{
    (void)mflags; /* no stale items on a node: ms I stores as a plain cas */
    struct worker *w = wctx;
    struct kv *kv = kv_of(w);
    struct kv_item *it = item;
    STAT_INCR(&w->stats, cmd_set);
    kvstore_lock(kv->store, it->key, it->nkey);
    struct lsm_record *cur = NULL;
    /* a decision that needs the current value fails if it cannot be read */
    enum fe_result r = mode != FE_SET && !read_current(kv, it->key, it->nkey, &cur)
                           ? FE_FAILED
                           : store_locked(kv, w, it, mode, cas_in, cur, cas_out);
    kvstore_unlock(kv->store, it->key, it->nkey);
    lsm_record_free(&cur);
    item_free(it);
    if (r == FE_TOO_LARGE)
        STAT_INCR(&w->stats, store_too_large);
    else if (r == FE_NO_MEMORY)
        STAT_INCR(&w->stats, store_no_memory);
    return r;
}

static void kv_store_aborted(void *wctx, void *item)
{
    struct worker *w = wctx;
    STAT_INCR(&w->stats, cmd_set);
    item_free(item);
}

static enum fe_result delete_locked(struct kv *kv, const char *key, size_t nkey, bool has_cas,
                                    uint64_t cas_in)
{
    struct lsm_record *cur;
    enum fe_result r;
    if (!read_current(kv, key, nkey, &cur))
        r = FE_FAILED;
    else if (cur == NULL)
        r = FE_NOT_FOUND;
    else if (has_cas && cur->version.hlc != cas_in)
        r = FE_EXISTS;
    else
        r = remove_key(kv, key, nkey);
    lsm_record_free(&cur);
    return r;
}

/* delete / md: the key's lock around delete_locked. */
static enum fe_result delete_key(struct kv *kv, const char *key, size_t nkey, bool has_cas,
                                 uint64_t cas_in)
{
    kvstore_lock(kv->store, key, nkey);
    enum fe_result r = delete_locked(kv, key, nkey, has_cas, cas_in);
    kvstore_unlock(kv->store, key, nkey);
    return r;
}

static enum fe_result kv_delete(void *wctx, const char *key, size_t nkey, uint64_t cas_in)
{
    struct worker *w = wctx;
    enum fe_result r = delete_key(kv_of(w), key, nkey, cas_in != 0, cas_in);
    if (r == FE_OK)
        STAT_INCR(&w->stats, delete_hits);
    else if (r == FE_NOT_FOUND)
        STAT_INCR(&w->stats, delete_misses);
    return r;
}

static enum fe_result kv_touch(void *wctx, const char *key, size_t nkey, rel_time_t exptime)
{
    struct worker *w = wctx;
    struct kv *kv = kv_of(w);
    kvstore_lock(kv->store, key, nkey);
    struct lsm_record *cur;
    enum fe_result r = !read_current(kv, key, nkey, &cur) ? FE_FAILED
                       : cur == NULL                      ? FE_NOT_FOUND
                       : retouch(kv, cur, exptime)        ? FE_OK
                                                          : FE_FAILED;
    kvstore_unlock(kv->store, key, nkey);
    lsm_record_free(&cur);
    STAT_INCR(&w->stats, cmd_touch);
    if (r == FE_OK)
        STAT_INCR(&w->stats, touch_hits);
    else
        STAT_INCR(&w->stats, touch_misses);
    return r;
}

/*
 * incr/decr on cur (under its key's lock): memcached's number rules; a
 * result shorter than the stored number keeps the length, padded with
 * spaces, as memcached's in-place update does.
 */
static enum fe_result delta_locked(struct kv *kv, const struct lsm_record *cur, bool incr,
                                   uint64_t delta, uint64_t *value, uint64_t *cas_out)
{
    uint64_t v;
    if (cur->value_len == 0 || !mc_delta_parse((const char *)cur->value, cur->value_len, &v))
        return FE_NON_NUMERIC;
    v = incr ? v + delta : (delta > v ? 0 : v - delta);
    char num[24 + MC_KEY_MAX];
    size_t n = mc_u64_to_str(v, num);
    if (n < cur->value_len && cur->value_len <= sizeof(num)) {
        memset(num + n, ' ', cur->value_len - n);
        n = cur->value_len;
    }
    enum fe_result r =
        put(kv, (const char *)cur->key, cur->key_len, num, n, cur->flags, cur->expiry, cas_out);
    if (r != FE_STORED)
        return r;
    *value = v;
    return FE_OK;
}

static enum fe_result kv_delta(void *wctx, const char *key, size_t nkey, bool incr, uint64_t delta,
                               uint64_t cas_in, uint64_t *value, uint64_t *cas_out)
{
    struct worker *w = wctx;
    struct kv *kv = kv_of(w);
    uint64_t cas = 0;
    kvstore_lock(kv->store, key, nkey);
    struct lsm_record *cur;
    enum fe_result r = !read_current(kv, key, nkey, &cur) ? FE_FAILED
                       : cur == NULL                      ? FE_NOT_FOUND
                       : cas_in != 0 && cur->version.hlc != cas_in
                           ? FE_EXISTS
                           : delta_locked(kv, cur, incr, delta, value, &cas);
    kvstore_unlock(kv->store, key, nkey);
    lsm_record_free(&cur);
    if (cas_out != NULL)
        *cas_out = cas;
    if (r == FE_NOT_FOUND) {
        if (incr)
            STAT_INCR(&w->stats, incr_misses);
        else
            STAT_INCR(&w->stats, decr_misses);
    } else if (r == FE_OK) {
        if (incr)
            STAT_INCR(&w->stats, incr_hits);
        else
            STAT_INCR(&w->stats, decr_hits);
    }
    return r;
}

/* flush_all never empties a node (its settings refuse it, see docs/NODE.md):
 * the refusal is counted as memcached counts it. */
static void kv_flush_all(void *wctx, int64_t delay, bool allowed)
{
    (void)delay;
    (void)allowed;
    struct worker *w = wctx;
    STAT_INCR(&w->stats, cmd_flush);
}

static struct fe_meta_info info_of(const struct lsm_record *rec)
{
    return (struct fe_meta_info){.ttl = kvstore_ttl_left(rec->expiry)};
}

static void *kv_meta_get(void *wctx, const char *key, size_t nkey, const struct fe_meta_ttl *ttl,
                         bool no_bump, struct fe_meta_info *info)
{
    (void)no_bump; /* nothing to bump: no LRU on a node */
    struct worker *w = wctx;
    struct kv *kv = kv_of(w);
    memset(info, 0, sizeof(*info));
    struct lsm_record *rec;
    bool touch = ttl->touch_pos >= 0 && (ttl->fail_pos < 0 || ttl->touch_pos < ttl->fail_pos);
    if (touch) {
        kvstore_lock(kv->store, key, nkey);
        rec = lookup(kv, key, nkey);
        if (rec != NULL) {
            /* t before T reports the old TTL */
            if (ttl->t_pos >= 0 && ttl->t_pos < ttl->touch_pos)
                *info = info_of(rec);
            if (!retouch(kv, rec, ttl->touch_exptime))
                lsm_record_free(&rec);
            else if (!(ttl->t_pos >= 0 && ttl->t_pos < ttl->touch_pos))
                *info = info_of(rec);
        }
        kvstore_unlock(kv->store, key, nkey);
    } else {
        rec = lookup(kv, key, nkey);
        if (rec != NULL)
            *info = info_of(rec);
    }
    if (rec != NULL && ttl->fail_pos >= 0)
        return item_of_record(rec); /* memcached counts a failed hit nowhere */
    if (rec != NULL && touch) {
        STAT_INCR(&w->stats, cmd_touch);
        STAT_INCR(&w->stats, touch_hits);
    } else {
        STAT_INCR(&w->stats, cmd_get);
        if (rec != NULL)
            STAT_INCR(&w->stats, get_hits);
        else
            STAT_INCR(&w->stats, get_misses);
    }
    return rec != NULL ? item_of_record(rec) : NULL;
}

static enum fe_result kv_meta_delete(void *wctx, const char *key, size_t nkey, bool has_cas,
                                     uint64_t cas_in, bool invalidate, bool new_ttl,
                                     rel_time_t exptime)
{
    /* no stale items on a node: md I deletes (docs/NODE.md) */
    (void)invalidate;
    (void)new_ttl;
    (void)exptime;
    struct worker *w = wctx;
    enum fe_result r = delete_key(kv_of(w), key, nkey, has_cas, cas_in);
    if (r == FE_OK)
        STAT_INCR(&w->stats, delete_hits);
    else if (r == FE_NOT_FOUND || r == FE_EXISTS)
        STAT_INCR(&w->stats, delete_misses);
    return r;
}

static enum fe_result kv_meta_delta(void *wctx, const char *key, size_t nkey,
                                    struct fe_meta_arith *a)
{
    struct worker *w = wctx;
    struct kv *kv = kv_of(w);
    a->created = false;
    kvstore_lock(kv->store, key, nkey);
    struct lsm_record *cur;
    enum fe_result r;
    if (!read_current(kv, key, nkey, &cur)) {
        r = FE_FAILED;
    } else if (cur == NULL && a->vivify) {
        char num[24];
        size_t n = mc_u64_to_str(a->initial, num);
        r = put(kv, key, nkey, num, n, 0, kvstore_expiry_of(a->ttl.vivify_exptime), &a->cas);
        if (r == FE_STORED) {
            r = FE_OK;
            a->value = a->initial;
            a->created = true;
            a->ttl_reported = kvstore_ttl_left(kvstore_expiry_of(a->ttl.vivify_exptime));
        }
    } else if (cur == NULL) {
        r = FE_NOT_FOUND;
    } else if (a->cas_in != 0 && cur->version.hlc != a->cas_in) {
        r = FE_EXISTS;
    } else {
        r = delta_locked(kv, cur, a->incr, a->delta, &a->value, &a->cas);
        a->ttl_reported = kvstore_ttl_left(cur->expiry);
        if (r == FE_OK && a->ttl.touch_pos >= 0) {
            /* T: the counter takes the new TTL (one more version) */
            struct lsm_record *now = lookup(kv, key, nkey);
            if (now != NULL && retouch(kv, now, a->ttl.touch_exptime)) {
                a->cas = now->version.hlc;
                if (a->ttl.t_pos < 0 || a->ttl.t_pos > a->ttl.touch_pos)
                    a->ttl_reported = kvstore_ttl_left(now->expiry);
            }
            lsm_record_free(&now);
        }
    }
    kvstore_unlock(kv->store, key, nkey);
    lsm_record_free(&cur);
    if (r == FE_NOT_FOUND) {
        if (a->incr)
            STAT_INCR(&w->stats, incr_misses);
        else
            STAT_INCR(&w->stats, decr_misses);
    } else if (r == FE_OK && !a->created) {
        if (a->incr)
            STAT_INCR(&w->stats, incr_hits);
        else
            STAT_INCR(&w->stats, decr_hits);
    }
    return r;
}

static void *kv_meta_debug(void *wctx, const char *key, size_t nkey, struct fe_meta_info *info)
{
    struct worker *w = wctx;
    STAT_INCR(&w->stats, cmd_meta);
    struct lsm_record *rec = lookup(kv_of(w), key, nkey);
    memset(info, 0, sizeof(*info));
    if (rec == NULL)
        return NULL;
    *info = info_of(rec);
    return item_of_record(rec);
}

/* ---------------------------------------------------- RMW at the primary */

uint64_t kv_item_expiry(const void *item)
{
    return ((const struct kv_item *)item)->expiry;
}

void *kv_item_copy(const struct wire_record *rec)
{
    struct kv_item *it =
        item_new((const char *)rec->key, rec->key_len, rec->flags, rec->expiry, rec->value_len);
    if (it == NULL)
        return NULL;
    if (rec->value_len > 0)
        memcpy(it->value, rec->value, rec->value_len);
    it->cas = rec->version.hlc;
    return it;
}

/* ------------------------------------------------------------- stats */

/* memcached's general fields that apply to a node (no items, no memory
 * limit: the data lives in the engine, see `stats storage`). */
static void stats_general(struct kv *kv, void (*emit)(void *, const char *, const char *),
                          void *arg)
{
    struct fe *fe = kv->fe;
    mc_emit_u64(emit, arg, "pid", (uint64_t)getpid());
    mc_emit_u64(emit, arg, "uptime", clock_uptime());
    mc_emit_u64(emit, arg, "time", (uint64_t)clock_unix_now());
    emit(arg, "version", MC_COMPAT_VERSION);
    emit(arg, "strata_version", STRATA_VERSION);
    mc_emit_u64(emit, arg, "pointer_size", 8 * sizeof(void *));
    mc_emit_u64(emit, arg, "curr_connections", atomic_load(&fe->curr_conns));
    mc_emit_u64(emit, arg, "total_connections", atomic_load(&fe->total_conns));
    mc_emit_u64(emit, arg, "rejected_connections", atomic_load(&fe->rejected_conns));
    mc_emit_u64(emit, arg, "threads", fe->nworkers);
    struct stats_totals t = {0};
    for (unsigned i = 0; i < fe->nworkers; i++) {
#define X(name) t.name += atomic_load_explicit(&fe->workers[i].stats.name, memory_order_relaxed);
        WORKER_COUNTERS(X)
#undef X
    }
#define X(name) mc_emit_u64(emit, arg, #name, t.name);
    WORKER_COUNTERS(X)
#undef X
}

/* `stats storage`: the engine's figures. */
static void stats_storage(struct kv *kv, void (*emit)(void *, const char *, const char *),
                          void *arg)
{
    struct lsm_stats s;
    lsm_stats(kv->db, &s);
    char name[32], buf[32];
    for (unsigned l = 0; l < LSM_MAX_LEVELS; l++) {
        snprintf(name, sizeof(name), "level%u_files", l);
        mc_emit_u64(emit, arg, name, s.level_files[l]);
        snprintf(name, sizeof(name), "level%u_bytes", l);
        mc_emit_u64(emit, arg, name, s.level_bytes[l]);
    }
    mc_emit_u64(emit, arg, "memtable_bytes", s.memtable_bytes);
    mc_emit_u64(emit, arg, "pending_compaction_bytes", s.pending_compaction_bytes);
    mc_emit_u64(emit, arg, "puts", s.puts);
    mc_emit_u64(emit, arg, "deletes", s.deletes);
    mc_emit_u64(emit, arg, "gets", s.gets);
    mc_emit_u64(emit, arg, "wal_syncs", s.wal_syncs);
    mc_emit_u64(emit, arg, "flushes", s.flushes);
    mc_emit_u64(emit, arg, "compactions", s.compactions);
    mc_emit_u64(emit, arg, "stall_micros", s.stall_micros);
    mc_emit_u64(emit, arg, "block_cache_hits", s.block_cache_hits);
    mc_emit_u64(emit, arg, "block_cache_misses", s.block_cache_misses);
    snprintf(buf, sizeof(buf), "%.2f", s.write_amplification);
    emit(arg, "write_amplification", buf);
    snprintf(buf, sizeof(buf), "%.2f", s.space_amplification);
    emit(arg, "space_amplification", buf);
    mc_emit_u64(emit, arg, "read_only", s.read_only ? 1 : 0);
}

static bool kv_stats(void *exec, const char *args, size_t len,
                     void (*emit)(void *arg, const char *name, const char *value), void *arg,
                     const char **special)
{
    struct kv *kv = exec;
    *special = NULL;
    if (len == 0)
        stats_general(kv, emit, arg);
    else if (mc_text_args_are(args, len, "storage"))
        stats_storage(kv, emit, arg);
    else if (mc_text_args_are(args, len, "cluster") && kv->cluster != NULL) {
        if (kv->members != NULL)
            members_stats(kv->members, emit, arg);
        cluster_stats(kv->cluster, emit, arg);
        if (kv->coord != NULL)
            coord_stats(kv->coord, emit, arg);
    } else if (mc_text_args_are(args, len, "repair") && kv->repair != NULL) {
        repair_stats(kv->repair, emit, arg);
    } else if (mc_text_args_are(args, len, "hints") && kv->handoff != NULL) {
        handoff_stats(kv->handoff, emit, arg);
    } else
        return false;
    return true;
}

/* Operator commands: `repair` starts an anti-entropy cycle now. Others
 * are memcached's, which a node does not have: ERROR. */
static enum proto_action kv_text_command(struct conn *c, const struct mc_request *req,
                                         const char *line, size_t len)
{
    (void)line;
    (void)len;
    struct kv *kv = c->fe->exec;
    const char *answer = "ERROR\r\n";
    if (req->cmd == MC_CMD_REPAIR && kv->repair != NULL) {
        if (req->args_len > 0 && !mc_text_args_are(req->args, req->args_len, "start"))
            answer = "CLIENT_ERROR usage: repair [start]\r\n";
        else if (repair_request(kv->repair))
            answer = "OK\r\n";
        else
            answer = "SERVER_ERROR repair already running\r\n";
    }
    return outq_add(conn_out(c), answer, strlen(answer)) == ST_OK ? PROTO_NEXT : PROTO_CLOSE;
}

const struct fe_exec_ops kv_exec_ops = {
    .view = kv_view,
    .release = kv_release,
    .get = kv_get,
    .reserve = kv_reserve,
    .store = kv_store,
    .store_aborted = kv_store_aborted,
    .remove = kv_delete,
    .touch = kv_touch,
    .delta = kv_delta,
    .flush_all = kv_flush_all,
    .meta_get = kv_meta_get,
    .meta_delete = kv_meta_delete,
    .meta_delta = kv_meta_delta,
    .meta_debug = kv_meta_debug,
    .stats = kv_stats,
    .text_command = kv_text_command,
};

enum st_status kv_create(struct fe *fe, struct lsm_db *db, struct hlc *clock, uint16_t node_id,
                         size_t max_value_len, struct kv **out)
{
    struct kv *kv = mem_calloc(MEM_OTHER, 1, sizeof(*kv));
    if (kv == NULL)
        return ST_NOMEM;
    kv->fe = fe;
    kv->db = db;
    kv->clock = clock;
    kv->node_id = node_id;
    kv->max_value_len = max_value_len;
    struct kvstore_config kc = {
        .db = db, .clock = clock, .node_id = node_id, .max_value_len = max_value_len};
    if (kvstore_create(&kc, &kv->store) != ST_OK) {
        mem_free(MEM_OTHER, kv, sizeof(*kv));
        return ST_NOMEM;
    }
    *out = kv;
    return ST_OK;
}

void kv_attach_cluster(struct kv *kv, struct cluster *cluster, struct members *members)
{
    kv->cluster = cluster;
    kv->members = members;
}

void kv_attach_coord(struct kv *kv, struct coord *coord)
{
    kv->coord = coord;
}

struct coord *kv_coord(const struct kv *kv)
{
    return kv->coord;
}

struct kvstore *kv_kvstore(const struct kv *kv)
{
    return kv->store;
}

void kv_attach_handoff(struct kv *kv, struct handoff *h)
{
    kv->handoff = h;
}

void kv_attach_repair(struct kv *kv, struct repair *r)
{
    kv->repair = r;
}

void kv_destroy(struct kv **kvp)
{
    struct kv *kv = *kvp;
    if (kv == NULL)
        return;
    *kvp = NULL;
    kvstore_destroy(&kv->store);
    mem_free(MEM_OTHER, kv, sizeof(*kv));
}
