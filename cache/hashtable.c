/*
 * hashtable.c - a shard's chained hash table with incremental doubling
 * (see hashtable.h). Called by worker threads and the maintenance timer,
 * always under the owning shard's lock.
 */
#include "cache/hashtable.h"

#include "cache/item.h"
#include "common/assert.h"
#include "common/mem.h"

/* Items per bucket above which the table starts to double: 3/2. */
#define HASHTABLE_GROW_NUM 3
#define HASHTABLE_GROW_DEN 2

enum st_status hashtable_init(struct hashtable *ht, unsigned power)
{
    ASSERT(power <= HASHTABLE_POWER_MAX);
    *ht = (struct hashtable){0};
    ht->buckets = mem_calloc(MEM_CACHE, (size_t)1 << power, sizeof(struct item *));
    if (ht->buckets == NULL)
        return ST_NOMEM;
    ht->power = power;
    return ST_OK;
}

void hashtable_deinit(struct hashtable *ht)
{
    if (ht->buckets != NULL)
        mem_free(MEM_CACHE, ht->buckets, hashtable_nbuckets(ht) * sizeof(struct item *));
    if (ht->old != NULL)
        mem_free(MEM_CACHE, ht->old, (hashtable_nbuckets(ht) / 2) * sizeof(struct item *));
    *ht = (struct hashtable){0};
}

/* The chain that holds (or would hold) a key of hash hv. */
static struct item **hashtable_chain(struct hashtable *ht, uint64_t hv)
{
    if (ht->old != NULL) {
        size_t oi = hv & ((hashtable_nbuckets(ht) >> 1) - 1);
        if (oi >= ht->migrate_pos)
            return &ht->old[oi];
    }
    return &ht->buckets[hv & (hashtable_nbuckets(ht) - 1)];
}

struct item **hashtable_find(struct hashtable *ht, uint64_t hv, const char *key, size_t nkey)
{
    for (struct item **link = hashtable_chain(ht, hv); *link != NULL; link = &(*link)->h_next) {
        if (item_key_eq(*link, key, nkey))
            return link;
    }
    return NULL;
}

/* Starts doubling when the load factor passes 1.5. On allocation failure
 * the table keeps its size and tries again on a later insert. */
static void hashtable_maybe_grow(struct hashtable *ht)
{
    size_t n = hashtable_nbuckets(ht);
    if (ht->old != NULL || ht->power >= HASHTABLE_POWER_MAX ||
        ht->count * HASHTABLE_GROW_DEN <= n * HASHTABLE_GROW_NUM)
        return;
    struct item **bigger = mem_calloc(MEM_CACHE, n * 2, sizeof(struct item *));
    if (bigger == NULL)
        return;
    ht->old = ht->buckets;
    ht->buckets = bigger;
    ht->power++;
    ht->migrate_pos = 0;
}

void hashtable_insert(struct hashtable *ht, struct item *it, uint64_t hv)
{
    struct item **chain = hashtable_chain(ht, hv);
    it->h_next = *chain;
    *chain = it;
    ht->count++;
    hashtable_maybe_grow(ht);
}

void hashtable_remove_at(struct hashtable *ht, struct item **link)
{
    ASSERT(ht->count > 0);
    struct item *it = *link;
    *link = it->h_next;
    it->h_next = NULL;
    ht->count--;
}

void hashtable_remove(struct hashtable *ht, struct item *it, uint64_t hv)
{
    struct item **link = hashtable_chain(ht, hv);
    while (*link != it) {
        ASSERT(*link != NULL);
        link = &(*link)->h_next;
    }
    hashtable_remove_at(ht, link);
}

size_t hashtable_migrate(struct hashtable *ht, size_t max)
{
    if (ht->old == NULL)
        return 0;
    size_t nold = hashtable_nbuckets(ht) >> 1;
    size_t mask = hashtable_nbuckets(ht) - 1;
    size_t moved = 0;
    while (moved < max && ht->migrate_pos < nold) {
        struct item *it = ht->old[ht->migrate_pos];
        while (it != NULL) {
            struct item *next = it->h_next;
            struct item **chain = &ht->buckets[item_hash(it->data, it->nkey) & mask];
            it->h_next = *chain;
            *chain = it;
            it = next;
        }
        ht->old[ht->migrate_pos] = NULL;
        ht->migrate_pos++;
        moved++;
    }
    if (ht->migrate_pos == nold) {
        mem_free(MEM_CACHE, ht->old, nold * sizeof(struct item *));
        ht->old = NULL;
        ht->migrate_pos = 0;
        /* Inserts made during the move may already call for the next step. */
        hashtable_maybe_grow(ht);
    }
    return moved;
}

size_t hashtable_bytes(const struct hashtable *ht)
{
    if (ht->buckets == NULL)
        return 0;
    size_t n = hashtable_nbuckets(ht);
    size_t bytes = mem_usable(n * sizeof(struct item *));
    if (ht->old != NULL)
        bytes += mem_usable((n / 2) * sizeof(struct item *));
    return bytes;
}
