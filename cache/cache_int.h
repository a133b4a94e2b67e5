/*
 * cache_int.h - the cache handle and its shards, shared by the files of
 * cache/ (SQLite's btreeInt.h pattern). Internal: the proxy sees only
 * cache.h.
 *
 * Lock order (the only one in cache/): a thread holds at most one shard
 * lock, except that eviction fallback, while holding its own shard's lock,
 * may pthread_mutex_trylock() other shards (never a blocking lock, so no
 * cycle can form). flush_lock is taken with no shard lock held.
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache/cache.h"
#include "cache/hashtable.h"
#include "cache/item.h"
#include "cache/lru.h"

/* Per shard, per size class counters (shard lock). chunk_size and age of
 * the public row are computed when stats are read. */
struct shard_class {
    struct cache_class_stats st;
    rel_time_t evicted_at; /* when st.evicted_time was recorded */
};

struct cache_shard {
    pthread_mutex_t lock;
    struct hashtable ht;
    struct lru lru;
    size_t maint_pos;        /* cache_maintain's next bucket */
    uint64_t total_items;    /* items ever linked (resettable) */
    struct shard_class *cls; /* [ncls], indexed by class id (1-based) */
    unsigned ncls;
    char pad[64]; /* keeps neighbouring locks off one line */
};

struct cache {
    struct cache_shard *shards;
    unsigned nshards;
    unsigned shard_bits; /* shard = top shard_bits of the hash */
    unsigned nclasses;   /* class ids are 1..nclasses (see cache_create) */
    size_t item_size_max;
    bool evictions;
    rel_time_t bump_interval;
    cache_clock_fn clock;
    void (*on_evict)(void *arg, const struct cache_item_view *v); /* may be NULL */
    void *evict_arg;
    pthread_mutex_t flush_lock; /* serialises flush conversions */

    /* Written on every store: padded apart so they do not share a cache
     * line with each other or the read-mostly fields above. (Padding, not
     * _Alignas: the handle comes from mem_alloc, which aligns to 16.) */
    char pad0[64];
    _Atomic size_t bytes; /* allocator bytes of all items */
    _Atomic size_t max_bytes;
    char pad1[64];
    _Atomic uint64_t cas_last; /* last CAS unique handed out */
    char pad2[64];
    _Atomic uint64_t flush_cutoff;    /* items with cas below are flushed */
    _Atomic rel_time_t flush_pending; /* delayed flush time, 0 = none */
    _Atomic unsigned maint_shard;     /* cache_maintain's next shard */
};

static inline struct cache_shard *cache_shard_of(struct cache *c, uint64_t hv)
{
    return &c->shards[c->shard_bits == 0 ? 0 : hv >> (64 - c->shard_bits)];
}

static inline uint64_t cache_next_cas(struct cache *c)
{
    return atomic_fetch_add_explicit(&c->cas_last, 1, memory_order_relaxed) + 1;
}

/* Decimal digits of UINT64_MAX: the longest incr/decr result. */
#define CACHE_DELTA_DIGITS 20

/* ---- flush.c ---- */

/* Converts a delayed flush whose time has come into a CAS cutoff. */
void flush_apply_pending(struct cache *c, rel_time_t now);

/* Every operation calls this first: one atomic load when nothing is due. */
static inline void flush_check(struct cache *c, rel_time_t now)
{
    rel_time_t at = atomic_load_explicit(&c->flush_pending, memory_order_acquire);
    if (at != 0 && now >= at)
        flush_apply_pending(c, now);
}

/*
 * The start of every keyed operation: read the clock, apply a due flush,
 * hash the key and lock its shard. Returns the locked shard; *now and *hv
 * get the time and the key hash. The caller ends with shard_leave().
 */
struct cache_shard *cache_enter_key(struct cache *c, const char *key, size_t nkey, rel_time_t *now,
                                    uint64_t *hv);

static inline bool flush_hides(const struct cache *c, const struct item *it)
{
    return it->cas < atomic_load_explicit(&c->flush_cutoff, memory_order_relaxed);
}

/* ---- shard.c ---- */

enum st_status shard_init(struct cache_shard *sh, unsigned hashpower, unsigned nclasses);
/* Frees the shard's items, tables and counters. REQUIRES: no references. */
void shard_deinit(struct cache *c, struct cache_shard *sh);

/* Locks the shard and moves a few hash buckets if its table is growing. */
void shard_enter(struct cache_shard *sh);
static inline void shard_leave(struct cache_shard *sh)
{
    pthread_mutex_unlock(&sh->lock);
}

/*
 * Returns the live item for the key, or NULL with *miss set. An expired or
 * flushed item met on the way is unlinked (counted as reclaimed, and as
 * expired_unfetched if never fetched). Takes no reference.
 */
struct item *shard_find_locked(struct cache *c, struct cache_shard *sh, uint64_t hv,
                               const char *key, size_t nkey, rel_time_t now, enum cache_miss *miss);

/* Links an unlinked item (the reference the caller holds becomes the
 * table's) at the LRU head and counts it. REQUIRES: key absent. */
void shard_link_locked(struct cache_shard *sh, struct item *it, uint64_t hv, rel_time_t now);

/* Unlinks a linked item and drops the table's reference (freeing it if that
 * was the last). Returns the allocator bytes freed (0 if still referenced). */
size_t shard_unlink_locked(struct cache *c, struct cache_shard *sh, struct item *it);

/* Counts an expired/flushed item removed without being read. */
void shard_count_reclaim_locked(struct cache_shard *sh, const struct item *it);

/* True when the item is expired or flushed. */
static inline bool shard_stale(const struct cache *c, const struct item *it, rel_time_t now)
{
    return flush_hides(c, it) || item_expired_at(item_exptime_load(it), now);
}

/* Unlinks the stale item at a chain link (hashtable_find or a bucket walk)
 * and counts it as reclaimed. */
void shard_reclaim_at_locked(struct cache *c, struct cache_shard *sh, struct item **link);

/* Examines up to `max` buckets from the shard's maintenance cursor and
 * unlinks stale items. Returns the items reclaimed. REQUIRES: the table is
 * not growing. */
size_t shard_reclaim_locked(struct cache *c, struct cache_shard *sh, size_t max, rel_time_t now);

/* ---- delta.c ---- */

/* Writes v in decimal without terminator; returns the length (<= 20). */
size_t delta_format(uint64_t v, char *buf);

/*
 * The incr/decr step on a linked item (no CAS check): parses the value,
 * computes and stores the result in place or in a new linked item, counts
 * incr_hits/decr_hits. Returns CACHE_OK with *result and *out (the linked
 * item now holding it: `it` itself when done in place), CACHE_NON_NUMERIC
 * or CACHE_NO_MEMORY. REQUIRES: sh's lock.
 */
enum cache_result delta_apply_locked(struct cache *c, struct cache_shard *sh, uint64_t hv,
                                     struct item *it, bool incr, uint64_t delta, rel_time_t now,
                                     uint64_t *result, struct item **out);

/* ---- walk.c ---- */

/* Fills a view of the item for a visitor (key borrowed from the item). */
void walk_view_fill(const struct item *it, struct cache_item_view *v);

/* ---- budget.c ---- */

/*
 * Allocates `usable` allocator bytes for an item of class clsid within the
 * memory budget, evicting as needed: first from `home` (whose lock the
 * caller holds iff home_locked), then from other shards (try-locked when
 * home is held, locked otherwise). On failure returns NULL with *res =
 * CACHE_NO_MEMORY and counts outofmemory.
 */
struct item *budget_alloc(struct cache *c, struct cache_shard *home, bool home_locked,
                          size_t usable, unsigned clsid, rel_time_t now, enum cache_result *res);

/* Frees an item whose last reference is gone, returning its bytes. */
void budget_free(struct cache *c, struct item *it);

/* ---- item.c ---- */

/* Fills the header, key and flags of freshly allocated memory: one
 * reference (the caller's), unlinked, CAS 0, value uninitialised. */
struct item *item_init(void *mem, const char *key, size_t nkey, uint32_t flags, rel_time_t exptime,
                       size_t nvalue, rel_time_t now);

/* Drops a reference held by cache code; frees the item if it was the last. */
static inline void item_unref(struct cache *c, struct item *it)
{
    if (atomic_fetch_sub_explicit(&it->refcount, 1, memory_order_acq_rel) == 1)
        budget_free(c, it);
}
