/*
 * item.h - layout of an L1 item (one allocation: header, key, value,
 * "\r\n") and the helpers every cache/ file uses on it. Internal to cache/.
 * Fields marked "shard lock" are only touched under the lock of the shard
 * the item's key hashes to; the rest are written before the item is
 * published or are atomics.
 *
 * Byte table (64-bit):
 *
 *   off size field     meaning
 *   --- ---- --------- ----------------------------------------------------
 *     0    8 h_next    next item in the hash chain            (shard lock)
 *     8    8 lru_prev  towards the LRU head (newer)            (shard lock)
 *    16    8 lru_next  towards the LRU tail (older)            (shard lock)
 *    24    8 cas       CAS unique; 0 while reserved            (shard lock)
 *    32    4 refcount  references: +1 while linked, +1 per holder (atomic)
 *    36    4 exptime   rel time, 0 = never                (atomic, relaxed)
 *    40    4 atime     rel time of the last LRU bump            (shard lock)
 *    44    4 flags     client flags (opaque 32 bits)
 *    48    4 nvalue    value bytes, excluding the "\r\n"
 *    52    1 nkey      key bytes, 1..CACHE_KEY_MAX
 *    53    1 iflags    ITEM_LINKED | ITEM_ACTIVE | ITEM_FETCHED | meta
 *                      bits ITEM_STALE ITEM_TOKEN_SENT ITEM_KEY_BINARY (shard lock)
 *    54    1 clsid     stats size class, 1-based (see item_class())
 *    55    1 spare     zero
 *    56    n data      key[nkey] value[nvalue] '\r' '\n'
 */
#pragma once

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cache/cache.h"
#include "common/mem.h"

struct item {
    struct item *h_next;
    struct item *lru_prev;
    struct item *lru_next;
    uint64_t cas;
    _Atomic uint32_t refcount;
    _Atomic rel_time_t exptime;
    rel_time_t atime;
    uint32_t flags;
    uint32_t nvalue;
    uint8_t nkey;
    uint8_t iflags;
    uint8_t clsid;
    uint8_t spare;
    char data[];
};

#define ITEM_HDR_SIZE 56
_Static_assert(sizeof(struct item) == ITEM_HDR_SIZE, "item header must stay 56 bytes");
_Static_assert(offsetof(struct item, data) == ITEM_HDR_SIZE, "data follows the header");
_Static_assert(CACHE_KEY_MAX <= UINT8_MAX, "nkey is one byte");

/* iflags bits (shard lock). */
#define ITEM_LINKED 0x01u  /* in its shard's hash table and LRU */
#define ITEM_ACTIVE 0x02u  /* hit since its last bump: one second chance */
#define ITEM_FETCHED 0x04u /* read at least once since stored */
#define ITEM_STALE 0x08u   /* meta: invalidated, still served, refresh wanted */
#define ITEM_TOKEN_SENT 0x10u /* meta: a client was given the win token */
#define ITEM_KEY_BINARY 0x20u /* meta: stored with a base64 key */
/* Bits set on an unlinked item before linking, which linking keeps. */
#define ITEM_META_BITS (ITEM_STALE | ITEM_TOKEN_SENT | ITEM_KEY_BINARY)

/* Bytes the item needs: header + key + value + "\r\n". */
static inline size_t item_total(size_t nkey, size_t nvalue)
{
    return ITEM_HDR_SIZE + nkey + nvalue + 2;
}

/* Allocator bytes the item occupies (what the budget counts). */
static inline size_t item_usable(const struct item *it)
{
    return mem_usable(item_total(it->nkey, it->nvalue));
}

/* The hash of a key: high bits pick the shard, low bits the bucket. */
uint64_t item_hash(const char *key, size_t nkey);

/* True when an item with this exptime is expired at `now`. */
static inline int item_expired_at(rel_time_t exptime, rel_time_t now)
{
    return exptime != 0 && exptime <= now;
}

static inline rel_time_t item_exptime_load(const struct item *it)
{
    return atomic_load_explicit(&it->exptime, memory_order_relaxed);
}

static inline uint32_t item_refs(const struct item *it)
{
    return atomic_load_explicit(&it->refcount, memory_order_relaxed);
}

/* Takes a reference. REQUIRES: the item is linked and the shard lock is
 * held, or the caller already holds a reference. */
static inline void item_ref(struct item *it)
{
    atomic_fetch_add_explicit(&it->refcount, 1, memory_order_relaxed);
}

static inline int item_key_eq(const struct item *it, const char *key, size_t nkey)
{
    return it->nkey == nkey && memcmp(it->data, key, nkey) == 0;
}
