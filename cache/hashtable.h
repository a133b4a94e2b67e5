/*
 * hashtable.h - one shard's chained hash table with incremental growth.
 * Internal to cache/. Not thread-safe: every call REQUIRES the owning
 * shard's lock (cache_int.h).
 *
 * The bucket of a key is the low `power` bits of its hash. When the table
 * holds more than 1.5 items per bucket it allocates a table twice the size
 * and moves a few old buckets per call of hashtable_migrate(); until a
 * bucket has moved, lookups and inserts for it use the old table. There is
 * never a stop-the-world rehash.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

struct item;

struct hashtable {
    struct item **buckets; /* 2^power chains */
    struct item **old;     /* 2^(power-1) chains while growing, else NULL */
    size_t migrate_pos;    /* old buckets below this index have moved */
    size_t count;          /* items in the table */
    unsigned power;
};

/* Largest table a shard grows to (2^HASHTABLE_POWER_MAX buckets). */
#define HASHTABLE_POWER_MAX 32

/* Allocates 2^power empty buckets. ST_OK or ST_NOMEM. */
enum st_status hashtable_init(struct hashtable *ht, unsigned power);
/* Frees the bucket arrays (not the items). Accepts a zeroed table. */
void hashtable_deinit(struct hashtable *ht);

/* Returns the link (pointer to the chain slot) that holds the key's item,
 * or NULL. The link stays valid until the table is next modified. */
struct item **hashtable_find(struct hashtable *ht, uint64_t hv, const char *key, size_t nkey);

/* Adds an item whose key is not in the table. May start growing. */
void hashtable_insert(struct hashtable *ht, struct item *it, uint64_t hv);

/* Removes the item at a link returned by hashtable_find(). */
void hashtable_remove_at(struct hashtable *ht, struct item **link);

/* Removes an item known to be in the table. */
void hashtable_remove(struct hashtable *ht, struct item *it, uint64_t hv);

/* Moves up to `max` old buckets into the new table; returns how many it
 * moved (0 when not growing). */
size_t hashtable_migrate(struct hashtable *ht, size_t max);

static inline bool hashtable_growing(const struct hashtable *ht)
{
    return ht->old != NULL;
}

static inline size_t hashtable_nbuckets(const struct hashtable *ht)
{
    return (size_t)1 << ht->power;
}

/* Chain head of bucket i of the (only) table. REQUIRES: not growing. */
static inline struct item **hashtable_bucket(struct hashtable *ht, size_t i)
{
    return &ht->buckets[i];
}

/* Bytes of bucket arrays currently allocated. */
size_t hashtable_bytes(const struct hashtable *ht);
