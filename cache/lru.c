/*
 * lru.c - LRU policy of a shard: rate-limited bumps on hits and the tail
 * walk that evicts or reclaims items to make room (see lru.h). Called by
 * worker threads under the shard's lock (or a try-locked foreign shard
 * during eviction fallback).
 */
#include "cache/cache_int.h"
#include "common/assert.h"

/* Items examined per walk, and ACTIVE items spared per walk. */
#define LRU_EVICT_TRIES 64
#define LRU_SECOND_CHANCES 16

void lru_touch_locked(const struct cache *c, struct cache_shard *sh, struct item *it,
                      rel_time_t now, bool fetched)
{
    ASSERT(it->iflags & ITEM_LINKED);
    if (fetched)
        it->iflags |= ITEM_FETCHED;
    if (now - it->atime >= c->bump_interval || now < it->atime) {
        it->atime = now;
        it->iflags &= (uint8_t)~ITEM_ACTIVE;
        lru_move_head(&sh->lru, it);
    } else {
        it->iflags |= ITEM_ACTIVE;
    }
}

static void lru_count_eviction(struct cache_shard *sh, const struct item *it, rel_time_t now)
{
    struct shard_class *sc = &sh->cls[item_clsid(it)];
    sc->st.evicted++;
    if (item_exptime_load(it) != 0)
        sc->st.evicted_nonzero++;
    if ((it->iflags & ITEM_FETCHED) == 0)
        sc->st.evicted_unfetched++;
    if (it->iflags & ITEM_ACTIVE)
        sc->st.evicted_active++;
    sc->st.evicted_time = now >= it->atime ? now - it->atime : 0;
    sc->evicted_at = now;
}

size_t lru_evict_locked(struct cache *c, struct cache_shard *sh, size_t need, rel_time_t now)
{
    size_t freed = 0;
    unsigned chances = 0;
    struct item *it = sh->lru.tail;
    for (unsigned tries = 0; tries < LRU_EVICT_TRIES && freed < need; tries++) {
        /* Past the head: start over at the tail, where the items given a
         * second chance now wait without their ACTIVE bit. */
        if (it == NULL && (it = sh->lru.tail) == NULL)
            break;
        struct item *prev = it->lru_prev;
        /* Under the shard lock nobody can take a new reference, so a count
         * of 1 (the table's) means unlinking frees the memory now. Items
         * held by others (being sent) would free nothing: skip them. */
        if (item_refs(it) > 1) {
            it = prev;
            continue;
        }
        if (shard_stale(c, it, now)) {
            shard_count_reclaim_locked(sh, it);
            freed += shard_unlink_locked(c, sh, it);
        } else if ((it->iflags & ITEM_ACTIVE) && chances < LRU_SECOND_CHANCES) {
            chances++;
            it->iflags &= (uint8_t)~ITEM_ACTIVE;
            lru_move_head(&sh->lru, it);
        } else {
            lru_count_eviction(sh, it, now);
            if (c->on_evict != NULL) {
                struct cache_item_view v;
                walk_view_fill(it, &v);
                c->on_evict(c->evict_arg, &v);
            }
            freed += shard_unlink_locked(c, sh, it);
        }
        it = prev;
    }
    return freed;
}
