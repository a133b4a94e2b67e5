/*
 * shard.c - one lock stripe of the cache: linking and unlinking items in
 * its hash table and LRU with their counters, lookups with lazy expiry, and
 * the maintenance walk that reclaims expired and flushed items. Called by
 * worker threads and the maintenance timer; functions named _locked
 * REQUIRE the shard's lock.
 */
#include "cache/cache_int.h"
#include "common/assert.h"
#include "common/mem.h"

/* Old hash buckets moved by every operation while a table grows. */
#define SHARD_MIGRATE_PER_OP 2

enum st_status shard_init(struct cache_shard *sh, unsigned hashpower, unsigned nclasses)
{
    *sh = (struct cache_shard){0};
    sh->ncls = nclasses + 1;
    if (hashtable_init(&sh->ht, hashpower) != ST_OK)
        return ST_NOMEM;
    if (pthread_mutex_init(&sh->lock, NULL) != 0) {
        hashtable_deinit(&sh->ht);
        return ST_NOMEM;
    }
    /* Allocated last: shard_deinit() treats cls != NULL as "initialised". */
    sh->cls = mem_calloc(MEM_CACHE, sh->ncls, sizeof(*sh->cls));
    if (sh->cls == NULL) {
        pthread_mutex_destroy(&sh->lock);
        hashtable_deinit(&sh->ht);
        return ST_NOMEM;
    }
    return ST_OK;
}

void shard_deinit(struct cache *c, struct cache_shard *sh)
{
    if (sh->cls == NULL)
        return; /* never initialised */
    while (sh->lru.tail != NULL) {
        struct item *it = sh->lru.tail;
        ASSERT(item_refs(it) == 1); /* REQUIRES: no references outstanding */
        shard_unlink_locked(c, sh, it);
    }
    hashtable_deinit(&sh->ht);
    pthread_mutex_destroy(&sh->lock);
    mem_free(MEM_CACHE, sh->cls, sh->ncls * sizeof(*sh->cls));
    sh->cls = NULL;
}

void shard_enter(struct cache_shard *sh)
{
    pthread_mutex_lock(&sh->lock);
    if (hashtable_growing(&sh->ht))
        hashtable_migrate(&sh->ht, SHARD_MIGRATE_PER_OP);
}

void shard_link_locked(struct cache_shard *sh, struct item *it, uint64_t hv, rel_time_t now)
{
    ASSERT((it->iflags & ITEM_LINKED) == 0);
    ASSERT(item_refs(it) >= 1);
    it->iflags = (uint8_t)((it->iflags & ITEM_META_BITS) | ITEM_LINKED);
    it->atime = now;
    hashtable_insert(&sh->ht, it, hv);
    lru_push_head(&sh->lru, it);
    struct cache_class_stats *st = &sh->cls[item_clsid(it)].st;
    st->number++;
    st->bytes += item_usable(it);
    st->bytes_requested += item_size(it);
    sh->total_items++;
}

/* Removes the item from the LRU and the counters; the caller has already
 * taken it out of the hash table. */
static size_t shard_forget_locked(struct cache *c, struct cache_shard *sh, struct item *it)
{
    lru_remove(&sh->lru, it);
    struct cache_class_stats *st = &sh->cls[item_clsid(it)].st;
    size_t usable = item_usable(it);
    ASSERT(st->number > 0 && st->bytes >= usable);
    st->number--;
    st->bytes -= usable;
    st->bytes_requested -= item_size(it);
    it->iflags &= (uint8_t)~ITEM_LINKED;
    /* The table's reference. */
    if (atomic_fetch_sub_explicit(&it->refcount, 1, memory_order_acq_rel) == 1) {
        budget_free(c, it);
        return usable;
    }
    return 0;
}

size_t shard_unlink_locked(struct cache *c, struct cache_shard *sh, struct item *it)
{
    ASSERT(it->iflags & ITEM_LINKED);
    hashtable_remove(&sh->ht, it, item_hash(it->data, it->nkey));
    return shard_forget_locked(c, sh, it);
}

void shard_count_reclaim_locked(struct cache_shard *sh, const struct item *it)
{
    struct cache_class_stats *st = &sh->cls[item_clsid(it)].st;
    st->reclaimed++;
    if ((it->iflags & ITEM_FETCHED) == 0)
        st->expired_unfetched++;
}

struct item *shard_find_locked(struct cache *c, struct cache_shard *sh, uint64_t hv,
                               const char *key, size_t nkey, rel_time_t now, enum cache_miss *miss)
{
    struct item **link = hashtable_find(&sh->ht, hv, key, nkey);
    if (link == NULL) {
        *miss = CACHE_MISS_ABSENT;
        return NULL;
    }
    struct item *it = *link;
    if (flush_hides(c, it))
        *miss = CACHE_MISS_FLUSHED;
    else if (item_expired_at(item_exptime_load(it), now))
        *miss = CACHE_MISS_EXPIRED;
    else {
        *miss = CACHE_MISS_NONE;
        return it;
    }
    shard_count_reclaim_locked(sh, it);
    hashtable_remove_at(&sh->ht, link);
    shard_forget_locked(c, sh, it);
    return NULL;
}

void shard_reclaim_at_locked(struct cache *c, struct cache_shard *sh, struct item **link)
{
    struct item *it = *link;
    /* Unlinked even if referenced: the memory then goes with the last
     * cache_release(). */
    shard_count_reclaim_locked(sh, it);
    hashtable_remove_at(&sh->ht, link);
    shard_forget_locked(c, sh, it);
}

size_t shard_reclaim_locked(struct cache *c, struct cache_shard *sh, size_t max, rel_time_t now)
{
    ASSERT(!hashtable_growing(&sh->ht));
    size_t n = hashtable_nbuckets(&sh->ht);
    size_t reclaimed = 0;
    size_t i;
    if (max > n)
        max = n;
    for (i = 0; i < max; i++) {
        size_t b = (sh->maint_pos + i) & (n - 1);
        struct item **link = hashtable_bucket(&sh->ht, b);
        while (*link != NULL) {
            struct item *it = *link;
            if (!shard_stale(c, it, now)) {
                link = &it->h_next;
                continue;
            }
            shard_reclaim_at_locked(c, sh, link);
            reclaimed++;
        }
    }
    sh->maint_pos = (sh->maint_pos + i) & (n - 1);
    return reclaimed;
}

struct cache_shard *cache_enter_key(struct cache *c, const char *key, size_t nkey, rel_time_t *now,
                                    uint64_t *hv)
{
    *now = c->clock();
    flush_check(c, *now);
    *hv = item_hash(key, nkey);
    struct cache_shard *sh = cache_shard_of(c, *hv);
    shard_enter(sh);
    return sh;
}
