/*
 * stats.c - `stats`, `stats items`/`stats slabs` numbers and `stats reset`:
 * per-shard counters summed under each shard lock in turn (never two at
 * once). Called by worker threads serving stats commands; rare.
 */
#include <string.h>

#include "cache/cache_int.h"
#include "common/mem.h"

/* LRU items examined per shard to find each class's oldest item. */
#define STATS_AGE_SCAN 256

void cache_stats_read(const struct cache *c, struct cache_stats *st)
{
    memset(st, 0, sizeof(*st));
    for (unsigned i = 0; i < c->nshards; i++) {
        struct cache_shard *sh = &c->shards[i];
        pthread_mutex_lock(&sh->lock);
        st->total_items += sh->total_items;
        for (unsigned k = 1; k <= c->nclasses; k++) {
            const struct cache_class_stats *cs = &sh->cls[k].st;
            st->curr_items += cs->number;
            st->bytes += cs->bytes;
            st->evictions += cs->evicted;
            st->evicted_unfetched += cs->evicted_unfetched;
            st->evicted_active += cs->evicted_active;
            st->expired_unfetched += cs->expired_unfetched;
            st->reclaimed += cs->reclaimed;
        }
        st->hash_bytes += hashtable_bytes(&sh->ht);
        if (sh->ht.power > st->hash_power_level)
            st->hash_power_level = sh->ht.power;
        if (hashtable_growing(&sh->ht))
            st->hash_is_expanding = true;
        pthread_mutex_unlock(&sh->lock);
    }
    st->limit_maxbytes = atomic_load_explicit(&c->max_bytes, memory_order_relaxed);
    st->malloced = atomic_load_explicit(&c->bytes, memory_order_relaxed);
}

static void stats_add_class(struct cache_class_stats *d, const struct cache_class_stats *s)
{
    d->number += s->number;
    d->bytes += s->bytes;
    d->bytes_requested += s->bytes_requested;
    d->evicted += s->evicted;
    d->evicted_nonzero += s->evicted_nonzero;
    d->evicted_unfetched += s->evicted_unfetched;
    d->evicted_active += s->evicted_active;
    d->expired_unfetched += s->expired_unfetched;
    d->reclaimed += s->reclaimed;
    d->outofmemory += s->outofmemory;
    d->get_hits += s->get_hits;
    d->cmd_set += s->cmd_set;
    d->delete_hits += s->delete_hits;
    d->incr_hits += s->incr_hits;
    d->decr_hits += s->decr_hits;
    d->cas_hits += s->cas_hits;
    d->cas_badval += s->cas_badval;
    d->touch_hits += s->touch_hits;
    d->crawler_reclaimed += s->crawler_reclaimed;
    d->crawler_items_checked += s->crawler_items_checked;
}

/* A class row is shown if it holds or ever held something. */
static bool stats_class_used(const struct cache_class_stats *s)
{
    return (s->number | s->evicted | s->reclaimed | s->outofmemory | s->get_hits | s->cmd_set |
            s->delete_hits | s->incr_hits | s->decr_hits | s->cas_hits | s->cas_badval |
            s->touch_hits | s->expired_unfetched | s->evicted_nonzero | s->evicted_unfetched |
            s->evicted_active) != 0;
}

unsigned cache_class_stats_read(const struct cache *c, struct cache_class_stats *cls)
{
    /* Per class: oldest last-access seen at a shard's LRU tail, and when
     * the newest eviction happened. */
    rel_time_t oldest[CACHE_CLASSES_MAX];
    bool have_oldest[CACHE_CLASSES_MAX];
    rel_time_t evicted_at[CACHE_CLASSES_MAX];
    rel_time_t now = c->clock();

    memset(cls, 0, CACHE_CLASSES_MAX * sizeof(*cls));
    memset(have_oldest, 0, sizeof(have_oldest));
    memset(evicted_at, 0, sizeof(evicted_at));
    for (unsigned i = 0; i < c->nshards; i++) {
        struct cache_shard *sh = &c->shards[i];
        bool seen[CACHE_CLASSES_MAX] = {false};
        pthread_mutex_lock(&sh->lock);
        for (unsigned k = 1; k <= c->nclasses; k++) {
            const struct shard_class *sc = &sh->cls[k];
            stats_add_class(&cls[k], &sc->st);
            if (sc->st.evicted > 0 && sc->evicted_at >= evicted_at[k]) {
                evicted_at[k] = sc->evicted_at;
                cls[k].evicted_time = sc->st.evicted_time;
            }
        }
        /*
         * Age: the tail-most item of each class is its oldest (exactly so
         * while the shard is shorter than the scan). A class not met
         * within the scan gets the last scanned item's time, a bound that
         * keeps stats O(shards), not O(items).
         */
        rel_time_t last = now;
        unsigned scanned = 0;
        for (const struct item *it = sh->lru.tail; it != NULL && scanned < STATS_AGE_SCAN;
             it = it->lru_prev, scanned++) {
            last = it->atime;
            unsigned k = item_clsid(it);
            if (!seen[k]) {
                seen[k] = true;
                if (!have_oldest[k] || it->atime < oldest[k])
                    oldest[k] = it->atime;
                have_oldest[k] = true;
            }
        }
        for (unsigned k = 1; k <= c->nclasses; k++) {
            if (sh->cls[k].st.number > 0 && !seen[k]) {
                if (!have_oldest[k] || last < oldest[k])
                    oldest[k] = last;
                have_oldest[k] = true;
            }
        }
        pthread_mutex_unlock(&sh->lock);
    }

    unsigned top = 0;
    for (unsigned k = 1; k <= c->nclasses; k++) {
        if (!stats_class_used(&cls[k]))
            continue;
        cls[k].chunk_size = mem_class_size(ITEM_BASE_MEM_CLASS + k - 1);
        if (cls[k].number > 0 && have_oldest[k] && now > oldest[k])
            cls[k].age = now - oldest[k];
        top = k + 1;
    }
    return top;
}

void cache_stats_reset(struct cache *c)
{
    for (unsigned i = 0; i < c->nshards; i++) {
        struct cache_shard *sh = &c->shards[i];
        pthread_mutex_lock(&sh->lock);
        sh->total_items = 0;
        for (unsigned k = 1; k <= c->nclasses; k++) {
            struct shard_class *sc = &sh->cls[k];
            uint64_t number = sc->st.number;
            uint64_t bytes = sc->st.bytes;
            uint64_t requested = sc->st.bytes_requested;
            memset(sc, 0, sizeof(*sc));
            sc->st.number = number;
            sc->st.bytes = bytes;
            sc->st.bytes_requested = requested;
        }
        pthread_mutex_unlock(&sh->lock);
    }
}
