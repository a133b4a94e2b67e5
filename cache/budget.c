/*
 * budget.c - the global memory budget: every item's allocator bytes are
 * charged to one atomic counter from allocation to free, and an allocation
 * that does not fit evicts from the LRU tails (the key's own shard first,
 * then the others). Called by worker threads.
 */
#include "cache/cache_int.h"
#include "common/assert.h"
#include "common/mem.h"

/* Upper bound on eviction rounds for one allocation: each round that frees
 * nothing ends the attempt, so this only bounds a round-after-round race
 * with other threads taking the freed memory. */
#define BUDGET_ROUNDS_MAX 4096

static bool budget_try_charge(struct cache *c, size_t usable)
{
    size_t max = atomic_load_explicit(&c->max_bytes, memory_order_relaxed);
    size_t cur = atomic_load_explicit(&c->bytes, memory_order_relaxed);
    do {
        if (usable > max || cur > max - usable)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&c->bytes, &cur, cur + usable,
                                                    memory_order_relaxed, memory_order_relaxed));
    return true;
}

static void budget_uncharge(struct cache *c, size_t usable)
{
    size_t before = atomic_fetch_sub_explicit(&c->bytes, usable, memory_order_relaxed);
    ASSERT(before >= usable);
    (void)before;
}

/* Bytes still missing for an allocation of `usable`. */
static size_t budget_shortfall(struct cache *c, size_t usable)
{
    size_t max = atomic_load_explicit(&c->max_bytes, memory_order_relaxed);
    size_t cur = atomic_load_explicit(&c->bytes, memory_order_relaxed);
    if (cur + usable <= max)
        return 1; /* fits now; another thread may take it, so ask for a little */
    return cur + usable - max;
}

/* One pass over the other shards; stops once `need` bytes are freed. */
static size_t budget_evict_others(struct cache *c, struct cache_shard *home, bool home_locked,
                                  size_t need, rel_time_t now)
{
    size_t freed = 0;
    size_t h = (size_t)(home - c->shards);
    for (unsigned i = 1; i < c->nshards && freed < need; i++) {
        struct cache_shard *sh = &c->shards[(h + i) & (c->nshards - 1)];
        if (home_locked) {
            /* Lock order: never block on a second shard lock. */
            if (pthread_mutex_trylock(&sh->lock) != 0)
                continue;
        } else {
            pthread_mutex_lock(&sh->lock);
        }
        freed += lru_evict_locked(c, sh, need - freed, now);
        pthread_mutex_unlock(&sh->lock);
    }
    return freed;
}

struct item *budget_alloc(struct cache *c, struct cache_shard *home, bool home_locked,
                          size_t usable, unsigned clsid, rel_time_t now, enum cache_result *res)
{
    bool home_dry = false;
    for (unsigned round = 0; round < BUDGET_ROUNDS_MAX; round++) {
        if (budget_try_charge(c, usable)) {
            void *mem = mem_alloc(MEM_CACHE, usable);
            if (mem != NULL)
                return mem;
            budget_uncharge(c, usable);
            break;
        }
        if (!c->evictions)
            break;
        size_t need = budget_shortfall(c, usable);
        size_t freed = 0;
        if (!home_dry) {
            if (!home_locked)
                shard_enter(home);
            freed = lru_evict_locked(c, home, need, now);
            if (!home_locked)
                shard_leave(home);
            home_dry = freed == 0;
        }
        if (freed == 0)
            freed = budget_evict_others(c, home, home_locked, need, now);
        if (freed == 0)
            break;
    }
    if (!home_locked)
        pthread_mutex_lock(&home->lock);
    home->cls[clsid].st.outofmemory++;
    if (!home_locked)
        pthread_mutex_unlock(&home->lock);
    *res = CACHE_NO_MEMORY;
    return NULL;
}

void budget_free(struct cache *c, struct item *it)
{
    ASSERT(item_refs(it) == 0);
    ASSERT((it->iflags & ITEM_LINKED) == 0);
    size_t usable = item_usable(it);
    mem_free(MEM_CACHE, it, usable);
    budget_uncharge(c, usable);
}
