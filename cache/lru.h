/*
 * lru.h - a shard's LRU list (head = most recently bumped) and its policy:
 * bump on hit at most once per bump_interval, second chance for ACTIVE
 * items, eviction from the tail. Internal to cache/; every call REQUIRES
 * the owning shard's lock.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "cache/item.h"

struct cache;
struct cache_shard;

struct lru {
    struct item *head;
    struct item *tail;
};

static inline void lru_push_head(struct lru *l, struct item *it)
{
    it->lru_prev = NULL;
    it->lru_next = l->head;
    if (l->head != NULL)
        l->head->lru_prev = it;
    else
        l->tail = it;
    l->head = it;
}

static inline void lru_remove(struct lru *l, struct item *it)
{
    if (it->lru_prev != NULL)
        it->lru_prev->lru_next = it->lru_next;
    else
        l->head = it->lru_next;
    if (it->lru_next != NULL)
        it->lru_next->lru_prev = it->lru_prev;
    else
        l->tail = it->lru_prev;
    it->lru_prev = it->lru_next = NULL;
}

static inline void lru_move_head(struct lru *l, struct item *it)
{
    if (l->head == it)
        return;
    lru_remove(l, it);
    lru_push_head(l, it);
}

/*
 * Records an access to a linked item: moves it to the head if its last bump
 * is at least bump_interval old, else marks it ACTIVE (a second chance at
 * the tail). `fetched` also sets FETCHED (reads; not a failed add).
 */
void lru_touch_locked(const struct cache *c, struct cache_shard *sh, struct item *it,
                      rel_time_t now, bool fetched);

/*
 * Frees memory from the tail of sh's LRU until `need` allocator bytes are
 * freed or a bounded number of items has been examined. Items referenced by
 * others are skipped; expired/flushed items are reclaimed; ACTIVE items get a
 * second chance (a bounded number per walk, after which they are evicted
 * and counted in evicted_active). Returns the allocator bytes freed.
 */
size_t lru_evict_locked(struct cache *c, struct cache_shard *sh, size_t need, rel_time_t now);
