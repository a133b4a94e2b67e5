/*
 * cache.c - the public L1 item store API (cache.h): lifecycle, lookups,
 * reserve/commit, delete, touch and maintenance. Worker threads call
 * everything concurrently; the daemon's timer calls cache_maintain().
 *
 *   get:    hash -> shard lock -> chain walk -> ref++ -> maybe bump -> unlock
 *   set:    reserve (budget charge, evicting from LRU tails; no lock held
 *           while the caller fills the value) -> commit (shard lock, mode
 *           checks, link; the old item is unlinked and freed with its last
 *           reference)
 */
#include <string.h>

#include "cache/cache_int.h"
#include "common/assert.h"
#include "common/mem.h"

#define CACHE_DEFAULT_SHARDS 64
#define CACHE_MAX_SHARDS 4096
#define CACHE_DEFAULT_HASHPOWER 16
#define CACHE_MIN_SHARD_HASHPOWER 4
#define CACHE_DEFAULT_BUMP_INTERVAL 2
#define CACHE_DEFAULT_ITEM_SIZE_MAX (1024 * 1024)
/* Buckets a cache_maintain() call examines under one lock hold. */
#define CACHE_MAINT_BATCH 256

static unsigned log2_exact(unsigned v)
{
    return (unsigned)__builtin_ctz(v);
}

enum st_status cache_create(struct cache **out, const struct cache_config *cfg)
{
    *out = NULL;
    if (cfg == NULL)
        return ST_INVAL;
    unsigned nshards = cfg->shards == 0 ? CACHE_DEFAULT_SHARDS : cfg->shards;
    unsigned hashpower = cfg->hashpower_init == 0 ? CACHE_DEFAULT_HASHPOWER : cfg->hashpower_init;
    size_t item_size_max = cfg->item_size_max;
    if (item_size_max == 0)
        item_size_max = cfg->max_bytes < CACHE_DEFAULT_ITEM_SIZE_MAX ? cfg->max_bytes
                                                                     : CACHE_DEFAULT_ITEM_SIZE_MAX;
    if ((nshards & (nshards - 1)) != 0 || nshards > CACHE_MAX_SHARDS)
        return ST_INVAL;
    if (hashpower > HASHTABLE_POWER_MAX)
        return ST_INVAL;
    if (item_size_max < item_total(1, 0, 0) || item_size_max > ITEM_VALUE_MAX ||
        item_size_max > cfg->max_bytes)
        return ST_INVAL;
    /* Classes run from the smallest item to the largest one that can
     * exist: item_size_max, or an incr result on the longest key, which
     * may exceed a tiny item_size_max (memcached does not check it). */
    size_t largest = item_total(CACHE_KEY_MAX, CACHE_DELTA_DIGITS, UINT32_MAX);
    if (largest < item_size_max)
        largest = item_size_max;
    unsigned top = item_class_of_size(largest);
    if (top >= CACHE_CLASSES_MAX)
        return ST_INVAL;

    struct cache *c = mem_calloc(MEM_CACHE, 1, sizeof(*c));
    if (c == NULL)
        return ST_NOMEM;
    c->nshards = nshards;
    c->shard_bits = log2_exact(nshards);
    c->nclasses = top;
    c->item_size_max = item_size_max;
    c->evictions = cfg->evictions;
    c->bump_interval = cfg->bump_interval == 0 ? CACHE_DEFAULT_BUMP_INTERVAL : cfg->bump_interval;
    c->clock = cfg->clock != NULL ? cfg->clock : clock_now;
    c->on_evict = cfg->on_evict;
    c->evict_arg = cfg->evict_arg;
    atomic_init(&c->bytes, 0);
    atomic_init(&c->max_bytes, cfg->max_bytes);
    atomic_init(&c->cas_last, 0);
    atomic_init(&c->flush_cutoff, 0);
    atomic_init(&c->flush_pending, 0);
    atomic_init(&c->maint_shard, 0);
    if (pthread_mutex_init(&c->flush_lock, NULL) != 0) {
        mem_free(MEM_CACHE, c, sizeof(*c));
        return ST_NOMEM;
    }
    c->shards = mem_calloc(MEM_CACHE, nshards, sizeof(*c->shards));
    if (c->shards == NULL)
        goto err;
    /* hashpower_init sizes the whole cache; each shard gets its share. */
    unsigned shard_power = hashpower > c->shard_bits + CACHE_MIN_SHARD_HASHPOWER
                               ? hashpower - c->shard_bits
                               : CACHE_MIN_SHARD_HASHPOWER;
    for (unsigned i = 0; i < nshards; i++) {
        if (shard_init(&c->shards[i], shard_power, c->nclasses) != ST_OK)
            goto err;
    }
    *out = c;
    return ST_OK;
err:
    cache_destroy(&c);
    return ST_NOMEM;
}

void cache_destroy(struct cache **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    struct cache *c = *cp;
    if (c->shards != NULL) {
        for (unsigned i = 0; i < c->nshards; i++)
            shard_deinit(c, &c->shards[i]);
        mem_free(MEM_CACHE, c->shards, c->nshards * sizeof(*c->shards));
    }
    ASSERT(atomic_load(&c->bytes) == 0);
    pthread_mutex_destroy(&c->flush_lock);
    mem_free(MEM_CACHE, c, sizeof(*c));
    *cp = NULL;
}

/* ---- lookups ---- */

static struct item *cache_lookup(struct cache *c, const char *key, size_t nkey, bool touch,
                                 rel_time_t exptime, enum cache_miss *miss)
{
    ASSERT(key != NULL && nkey >= 1 && nkey <= CACHE_KEY_MAX);
    enum cache_miss why;
    rel_time_t now;
    uint64_t hv;
    struct cache_shard *sh = cache_enter_key(c, key, nkey, &now, &hv);
    struct item *it = shard_find_locked(c, sh, hv, key, nkey, now, &why);
    if (it != NULL) {
        item_ref(it);
        lru_touch_locked(c, sh, it, now, true);
        if (touch) {
            atomic_store_explicit(&it->exptime, exptime, memory_order_relaxed);
            sh->cls[item_clsid(it)].st.touch_hits++;
        } else {
            sh->cls[item_clsid(it)].st.get_hits++;
        }
    }
    shard_leave(sh);
    if (miss != NULL)
        *miss = why;
    return it;
}

struct item *cache_get(struct cache *c, const char *key, size_t nkey, enum cache_miss *miss)
{
    return cache_lookup(c, key, nkey, false, 0, miss);
}

struct item *cache_get_and_touch(struct cache *c, const char *key, size_t nkey, rel_time_t exptime,
                                 enum cache_miss *miss)
{
    return cache_lookup(c, key, nkey, true, exptime, miss);
}

/* ---- storage ---- */

struct item *cache_reserve(struct cache *c, const char *key, size_t nkey, uint32_t flags,
                           rel_time_t exptime, size_t nvalue, enum cache_result *res)
{
    ASSERT(key != NULL && nkey >= 1 && nkey <= CACHE_KEY_MAX);
    ASSERT(res != NULL);
    if (nvalue > c->item_size_max || item_total(nkey, nvalue, flags) > c->item_size_max) {
        *res = CACHE_TOO_LARGE;
        return NULL;
    }
    rel_time_t now = c->clock();
    flush_check(c, now);
    size_t total = item_total(nkey, nvalue, flags);
    size_t usable = mem_usable(total);
    unsigned clsid = item_class_of_size(total);
    struct cache_shard *home = cache_shard_of(c, item_hash(key, nkey));
    void *mem = budget_alloc(c, home, false, usable, clsid, now, res);
    if (mem == NULL)
        return NULL;
    *res = CACHE_OK;
    return item_init(mem, key, nkey, flags, exptime, nvalue, now);
}

struct item *cache_reserve_fill(struct cache *c, const char *key, size_t nkey, uint32_t flags,
                                rel_time_t exptime, size_t nvalue, uint64_t version,
                                enum cache_result *res)
{
    ASSERT(key != NULL && nkey >= 1 && nkey <= CACHE_KEY_MAX);
    size_t total = item_total(nkey, nvalue, flags) + sizeof(uint64_t);
    if (nvalue > c->item_size_max || total > c->item_size_max) {
        *res = CACHE_TOO_LARGE;
        return NULL;
    }
    rel_time_t now = c->clock();
    flush_check(c, now);
    struct cache_shard *home = cache_shard_of(c, item_hash(key, nkey));
    void *mem =
        budget_alloc(c, home, false, mem_usable(total), item_class_of_size(total), now, res);
    if (mem == NULL)
        return NULL;
    *res = CACHE_OK;
    struct item *it = item_init(mem, key, nkey, flags, exptime, nvalue, now);
    it->versioned = 1;
    memcpy(it->data + item_version_offset(it), &version, sizeof(version));
    return it;
}

/*
 * Builds the append/prepend result from the linked item `old` and the
 * reserved item `it` (whose value is the data to add). Keeps old's flags
 * and exptime. Returns the new item (one reference) or NULL with *res.
 * REQUIRES: sh's lock; old linked in sh.
 */
static struct item *cache_concat_locked(struct cache *c, struct cache_shard *sh, struct item *old,
                                        struct item *it, bool append, rel_time_t now,
                                        enum cache_result *res)
{
    size_t nvalue = (size_t)old->nvalue + it->nvalue;
    uint32_t flags = item_flags_get(old);
    size_t total = item_total(old->nkey, nvalue, flags);
    if (total > c->item_size_max) {
        *res = CACHE_TOO_LARGE;
        return NULL;
    }
    size_t usable = mem_usable(total);
    unsigned clsid = item_class_of_size(total);
    /* A reference keeps the eviction walk off old while we allocate. */
    item_ref(old);
    void *mem = budget_alloc(c, sh, true, usable, clsid, now, res);
    atomic_fetch_sub_explicit(&old->refcount, 1, memory_order_relaxed); /* still linked */
    if (mem == NULL)
        return NULL;
    ASSERT(old->iflags & ITEM_LINKED);
    struct item *nit =
        item_init(mem, old->data, old->nkey, flags, item_exptime_load(old), nvalue, now);
    char *dst = nit->data + nit->nkey;
    const char *first = append ? old->data + old->nkey : it->data + it->nkey;
    size_t nfirst = append ? old->nvalue : it->nvalue;
    const char *second = append ? it->data + it->nkey : old->data + old->nkey;
    size_t nsecond = append ? it->nvalue : old->nvalue;
    memcpy(dst, first, nfirst);
    memcpy(dst + nfirst, second, nsecond);
    return nit;
}

enum cache_result cache_commit(struct cache *c, struct item *it, enum cache_store_mode mode,
                               uint64_t cas_in, uint64_t *cas_out)
{
    return cache_meta_commit(c, it, mode, cas_in, 0, cas_out);
}

enum cache_result cache_meta_commit(struct cache *c, struct item *it, enum cache_store_mode mode,
                                    uint64_t cas_in, unsigned mflags, uint64_t *cas_out)
{
    ASSERT(it != NULL && (it->iflags & ITEM_LINKED) == 0 && item_refs(it) >= 1);
    enum cache_result res = CACHE_STORED;
    enum cache_miss miss;
    struct item *store = it;
    rel_time_t now = c->clock();
    flush_check(c, now);
    uint64_t hv = item_hash(it->data, it->nkey);
    struct cache_shard *sh = cache_shard_of(c, hv);
    shard_enter(sh);
    /* memcached counts every storage attempt, by the class of the item. */
    if (mode != CACHE_FILL)
        sh->cls[item_clsid(it)].st.cmd_set++;
    struct item *old = shard_find_locked(c, sh, hv, it->data, it->nkey, now, &miss);
    switch (mode) {
    case CACHE_SET: break;
    case CACHE_ADD:
        if (old != NULL) {
            /* memcached bumps the item that made the add fail. */
            lru_touch_locked(c, sh, old, now, false);
            res = CACHE_NOT_STORED;
        }
        break;
    case CACHE_REPLACE:
        if (old == NULL)
            res = CACHE_NOT_STORED;
        break;
    case CACHE_APPEND:
    case CACHE_PREPEND:
        if (old == NULL)
            res = CACHE_NOT_STORED;
        else if (cas_in != 0 && item_visible_cas(old) != cas_in)
            res = CACHE_EXISTS;
        else
            store = cache_concat_locked(c, sh, old, it, mode == CACHE_APPEND, now, &res);
        break;
    case CACHE_CAS:
        if (old == NULL) {
            res = CACHE_NOT_FOUND;
        } else if (item_visible_cas(old) != cas_in) {
            if ((mflags & CACHE_META_INVALIDATE) && cas_in != 0 && cas_in < item_visible_cas(old)) {
                /* An invalidation racing a newer value: keep the data as a
                 * stale item that a client will be asked to refresh. CAS 0
                 * means "no CAS" to memcached, never "older". */
                atomic_store_explicit(&it->exptime, item_exptime_load(old), memory_order_relaxed);
                it->iflags |= (uint8_t)(ITEM_STALE | (old->iflags & ITEM_TOKEN_SENT));
                sh->cls[item_clsid(old)].st.cas_hits++;
            } else {
                sh->cls[item_clsid(old)].st.cas_badval++;
                res = CACHE_EXISTS;
            }
        } else {
            sh->cls[item_clsid(old)].st.cas_hits++;
        }
        break;
    case CACHE_FILL:
        ASSERT(it->versioned && item_visible_cas(it) == cas_in);
        if (old != NULL && item_visible_cas(old) >= cas_in)
            res = CACHE_NOT_STORED;
        break;
    default: res = CACHE_NOT_STORED; break;
    }
    if (res == CACHE_STORED) {
        if (old != NULL)
            shard_unlink_locked(c, sh, old);
        store->cas = cache_next_cas(c); /* a fill's visible CAS is its version */
        if (mflags & CACHE_META_KEY_BINARY)
            store->iflags |= ITEM_KEY_BINARY;
        if (cas_out != NULL)
            *cas_out = item_visible_cas(store);
        /* The reference on `store` (the caller's, or ours on a combined
         * item) becomes the table's. */
        shard_link_locked(sh, store, hv, now);
    }
    shard_leave(sh);
    if (store != it || res != CACHE_STORED)
        cache_release(c, it);
    return res;
}

void cache_reserve_failed(struct cache *c, const char *key, size_t nkey, enum cache_store_mode mode)
{
    ASSERT(key != NULL && nkey >= 1 && nkey <= CACHE_KEY_MAX);
    if (mode != CACHE_SET)
        return;
    enum cache_miss miss;
    rel_time_t now;
    uint64_t hv;
    struct cache_shard *sh = cache_enter_key(c, key, nkey, &now, &hv);
    struct item *old = shard_find_locked(c, sh, hv, key, nkey, now, &miss);
    if (old != NULL)
        shard_unlink_locked(c, sh, old);
    shard_leave(sh);
}

void cache_release(struct cache *c, struct item *it)
{
    if (it == NULL)
        return;
    ASSERT(item_refs(it) >= 1);
    item_unref(c, it);
}

/* ---- other commands ---- */

enum cache_result cache_delete(struct cache *c, const char *key, size_t nkey, uint64_t cas_in)
{
    /* A plain delete is a meta delete without invalidation; CAS 0 means
     * "no CAS" here (memcached's binary protocol). */
    return cache_meta_delete(c, key, nkey, cas_in != 0, cas_in, false, false, 0);
}

enum cache_result cache_touch(struct cache *c, const char *key, size_t nkey, rel_time_t exptime)
{
    ASSERT(key != NULL && nkey >= 1 && nkey <= CACHE_KEY_MAX);
    enum cache_miss miss;
    rel_time_t now;
    uint64_t hv;
    struct cache_shard *sh = cache_enter_key(c, key, nkey, &now, &hv);
    struct item *it = shard_find_locked(c, sh, hv, key, nkey, now, &miss);
    if (it != NULL) {
        atomic_store_explicit(&it->exptime, exptime, memory_order_relaxed);
        lru_touch_locked(c, sh, it, now, true);
        sh->cls[item_clsid(it)].st.touch_hits++;
    }
    shard_leave(sh);
    return it != NULL ? CACHE_OK : CACHE_NOT_FOUND;
}

/* ---- maintenance ---- */

size_t cache_maintain(struct cache *c, size_t budget)
{
    rel_time_t now = c->clock();
    flush_check(c, now);
    size_t reclaimed = 0;
    while (budget > 0) {
        unsigned s = atomic_fetch_add_explicit(&c->maint_shard, 1, memory_order_relaxed);
        struct cache_shard *sh = &c->shards[s & (c->nshards - 1)];
        size_t batch = budget < CACHE_MAINT_BATCH ? budget : CACHE_MAINT_BATCH;
        pthread_mutex_lock(&sh->lock);
        /* A growing table spends its share on moving buckets; the reclaim
         * walk resumes once it has its single table again. */
        if (hashtable_growing(&sh->ht))
            hashtable_migrate(&sh->ht, batch);
        else
            reclaimed += shard_reclaim_locked(c, sh, batch, now);
        pthread_mutex_unlock(&sh->lock);
        /* A full batch is charged even to a smaller table, which bounds
         * the loop by the budget alone. */
        budget -= batch;
    }
    return reclaimed;
}

void cache_set_max_bytes(struct cache *c, size_t max_bytes)
{
    atomic_store_explicit(&c->max_bytes, max_bytes, memory_order_relaxed);
}
