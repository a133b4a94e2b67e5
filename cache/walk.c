/*
 * walk.c - visiting every item for operators: the resumable walk behind
 * `lru_crawler crawl` and `metadump` (by hash position, reclaiming what
 * has expired on the way), the per-class LRU dump behind `stats cachedump`,
 * and evicting down to a lowered memory limit. Any thread; takes one shard
 * lock at a time.
 */
#include "cache/cache_int.h"
#include "common/assert.h"

/* Rounds of cache_shrink(); each must free something to go on. */
#define SHRINK_ROUNDS_MAX 1024

void walk_view_fill(const struct item *it, struct cache_item_view *v)
{
    v->key = it->data;
    v->nkey = it->nkey;
    v->nvalue = it->nvalue;
    v->size = item_size(it);
    v->flags = item_flags_get(it);
    v->exptime = item_exptime_load(it);
    v->atime = it->atime;
    v->cas = item_visible_cas(it);
    v->clsid = item_clsid(it);
    v->fetched = (it->iflags & ITEM_FETCHED) != 0;
    v->key_binary = (it->iflags & ITEM_KEY_BINARY) != 0;
}

static void walk_bucket_locked(struct cache *c, struct cache_shard *sh, size_t b, rel_time_t now,
                               struct cache_walk *w, const bool *classes, cache_visit_fn visit,
                               void *arg)
{
    struct item **link = hashtable_bucket(&sh->ht, b);
    while (*link != NULL) {
        struct item *it = *link;
        struct cache_class_stats *st = &sh->cls[item_clsid(it)].st;
        st->crawler_items_checked++;
        w->checked++;
        if (shard_stale(c, it, now)) {
            st->crawler_reclaimed++;
            w->reclaimed++;
            shard_reclaim_at_locked(c, sh, link);
            continue;
        }
        if (visit != NULL && (classes == NULL || classes[item_clsid(it)])) {
            struct cache_item_view v;
            walk_view_fill(it, &v);
            visit(arg, &v);
        }
        link = &it->h_next;
    }
}

bool cache_walk_step(struct cache *c, struct cache_walk *w, size_t positions, const bool *classes,
                     cache_visit_fn visit, void *arg)
{
    rel_time_t now = c->clock();
    flush_check(c, now);
    while (positions > 0 && w->shard < c->nshards) {
        struct cache_shard *sh = &c->shards[w->shard];
        pthread_mutex_lock(&sh->lock);
        /* One table to walk: finish a pending growth (moving buckets is
         * cheap next to formatting what they hold). */
        if (hashtable_growing(&sh->ht))
            hashtable_migrate(&sh->ht, SIZE_MAX);
        if (!w->in_shard || NEVER(sh->ht.power < w->power)) {
            w->power = sh->ht.power;
            w->pos = 0;
            w->in_shard = true;
        }
        /* The table may have grown since this shard's walk began: position
         * r of the 2^power table is every bucket b with b mod 2^power == r
         * of the current one, so no item is seen twice or skipped. */
        size_t span = (size_t)1 << w->power;
        size_t nb = hashtable_nbuckets(&sh->ht);
        for (; positions > 0 && w->pos < span; w->pos++, positions--)
            for (size_t b = w->pos; b < nb; b += span)
                walk_bucket_locked(c, sh, b, now, w, classes, visit, arg);
        pthread_mutex_unlock(&sh->lock);
        if (w->pos == span) {
            w->shard++;
            w->in_shard = false;
        }
    }
    return w->shard < c->nshards;
}

size_t cache_dump_class(struct cache *c, unsigned clsid, size_t limit, cache_dump_fn fn, void *arg)
{
    rel_time_t now = c->clock();
    flush_check(c, now);
    size_t shown = 0;
    bool stop = false;
    for (unsigned i = 0; i < c->nshards && !stop; i++) {
        struct cache_shard *sh = &c->shards[i];
        pthread_mutex_lock(&sh->lock);
        for (struct item *it = sh->lru.head; it != NULL; it = it->lru_next) {
            if (limit != 0 && shown >= limit) {
                stop = true;
                break;
            }
            /* memcached keeps binary keys out of this text listing */
            if (item_clsid(it) != clsid || (it->iflags & ITEM_KEY_BINARY) != 0 ||
                shard_stale(c, it, now))
                continue;
            struct cache_item_view v;
            walk_view_fill(it, &v);
            if (!fn(arg, &v)) {
                stop = true;
                break;
            }
            shown++;
        }
        pthread_mutex_unlock(&sh->lock);
    }
    return shown;
}

size_t cache_shrink(struct cache *c)
{
    rel_time_t now = c->clock();
    size_t freed = 0;
    for (unsigned round = 0; round < SHRINK_ROUNDS_MAX; round++) {
        size_t max = atomic_load_explicit(&c->max_bytes, memory_order_relaxed);
        size_t cur = atomic_load_explicit(&c->bytes, memory_order_relaxed);
        if (cur <= max)
            break;
        /* An even share from every shard's tail approximates one global
         * LRU order. */
        size_t share = (cur - max) / c->nshards + 1;
        size_t progress = 0;
        for (unsigned i = 0; i < c->nshards; i++) {
            struct cache_shard *sh = &c->shards[i];
            shard_enter(sh);
            progress += lru_evict_locked(c, sh, share, now);
            shard_leave(sh);
        }
        if (progress == 0)
            break; /* what is left is referenced by readers */
        freed += progress;
    }
    return freed;
}
