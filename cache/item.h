/*
 * item.h - layout of an L1 item (one allocation: header, key, value and,
 * when non-zero, the client flags) and the helpers every cache/ file uses
 * on it. Internal to cache/. Fields marked "shard lock" are only touched
 * under the lock of the shard the item's key hashes to; the rest are
 * written before the item is published or are atomics.
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
 *    44    4 nvalue    30 bits: value bytes; 1 bit: has_flags; 1 bit:
 *                      versioned (immutable)
 *    48    1 nkey      key bytes, 1..CACHE_KEY_MAX
 *    49    1 iflags    ITEM_LINKED | ITEM_ACTIVE | ITEM_FETCHED | meta
 *                      bits ITEM_STALE ITEM_TOKEN_SENT ITEM_KEY_BINARY (shard lock)
 *    50    n data      key[nkey] value[nvalue] [flags, 4 bytes, if has_flags]
 *                      [version, 8 bytes, if versioned]
 *
 * An item filled from a lower tier (CACHE_FILL) carries that tier's
 * version as the CAS clients see: it is kept after the value (only those
 * items pay for it), while `cas` stays this cache's own sequence, which
 * flush_all's cutoff compares (a lower tier's versions are not in that
 * order). item_visible_cas() is the CAS of every reply and compare.
 *
 * Why so tight: per-item overhead is what decides how many items fit, and
 * the allocator rounds up to its size classes, so a few bytes can move
 * every item of a workload into the next class (10-byte keys with 100-byte
 * values fit jemalloc's 160-byte class at 50 bytes of header; at 58 they
 * took 192). So: no "\r\n" is stored (the reply path adds it), client flags
 * take room only when non-zero (as in memcached), and the stats class is
 * derived from the size instead of stored.
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
    uint32_t nvalue : 30;
    uint32_t has_flags : 1;
    uint32_t versioned : 1; /* a lower tier's version follows the value */
    uint8_t nkey;
    uint8_t iflags;
    char data[];
};

#define ITEM_HDR_SIZE 50
/* Values are bounded well below this by -I (at most 128 MiB). */
#define ITEM_VALUE_MAX ((1u << 30) - 1)
_Static_assert(offsetof(struct item, data) == ITEM_HDR_SIZE, "data follows the header");
_Static_assert(CACHE_KEY_MAX <= UINT8_MAX, "nkey is one byte");

/* iflags bits (shard lock). */
#define ITEM_LINKED 0x01u     /* in its shard's hash table and LRU */
#define ITEM_ACTIVE 0x02u     /* hit since its last bump: one second chance */
#define ITEM_FETCHED 0x04u    /* read at least once since stored */
#define ITEM_STALE 0x08u      /* meta: invalidated, still served, refresh wanted */
#define ITEM_TOKEN_SENT 0x10u /* meta: a client was given the win token */
#define ITEM_KEY_BINARY 0x20u /* meta: stored with a base64 key */
/* Bits set on an unlinked item before linking, which linking keeps. */
#define ITEM_META_BITS (ITEM_STALE | ITEM_TOKEN_SENT | ITEM_KEY_BINARY)

/* Bytes an item needs: header, key, value, and the flags if non-zero. */
static inline size_t item_total(size_t nkey, size_t nvalue, uint32_t flags)
{
    return ITEM_HDR_SIZE + nkey + nvalue + (flags != 0 ? sizeof(uint32_t) : 0);
}

/* Where a versioned item's version is kept. */
static inline size_t item_version_offset(const struct item *it)
{
    return it->nkey + it->nvalue + (it->has_flags ? sizeof(uint32_t) : 0);
}

/* Bytes this item was allocated for. */
static inline size_t item_size(const struct item *it)
{
    return ITEM_HDR_SIZE + item_version_offset(it) + (it->versioned ? sizeof(uint64_t) : 0);
}

/* The CAS unique clients see: a filled item's version, else `cas`. */
static inline uint64_t item_visible_cas(const struct item *it)
{
    if (!it->versioned)
        return it->cas;
    uint64_t v;
    memcpy(&v, it->data + item_version_offset(it), sizeof(v));
    return v;
}

/* A new CAS for an item a command changed in place (shard lock): a
 * versioned item's visible CAS becomes the same sequence number. */
static inline void item_set_cas(struct item *it, uint64_t cas)
{
    it->cas = cas;
    if (it->versioned)
        memcpy(it->data + item_version_offset(it), &cas, sizeof(cas));
}

/* Allocator bytes the item occupies (what the budget counts). */
static inline size_t item_usable(const struct item *it)
{
    return mem_usable(item_size(it));
}

/* mem.h class of the smallest item: a 1-byte key, no value, no flags. */
#define ITEM_BASE_MEM_CLASS mem_class_of(ITEM_HDR_SIZE + 1)

/* Stats class (1-based, like memcached's slab classes) of an item of
 * `size` bytes: the allocator class that serves it, counted from the
 * smallest item's. */
static inline unsigned item_class_of_size(size_t size)
{
    return mem_class_of(size) - ITEM_BASE_MEM_CLASS + 1;
}

static inline unsigned item_clsid(const struct item *it)
{
    return item_class_of_size(item_size(it));
}

/* Client flags: stored after the value, and only when non-zero. */
static inline uint32_t item_flags_get(const struct item *it)
{
    uint32_t flags = 0;
    if (it->has_flags)
        memcpy(&flags, it->data + it->nkey + it->nvalue, sizeof(flags));
    return flags;
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
