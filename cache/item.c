/*
 * item.c - item construction, key hashing and the public item accessors.
 * Accessors are called by worker threads on items they hold a reference
 * to, without any lock.
 */
#include <string.h>
#include <xxhash.h>

#include "cache/cache_int.h"
#include "common/assert.h"

uint64_t item_hash(const char *key, size_t nkey)
{
    return XXH3_64bits(key, nkey);
}

struct item *item_init(void *mem, const char *key, size_t nkey, uint32_t flags, rel_time_t exptime,
                       size_t nvalue, rel_time_t now)
{
    ASSERT(nkey >= 1 && nkey <= CACHE_KEY_MAX);
    ASSERT(nvalue <= ITEM_VALUE_MAX);
    struct item *it = mem;
    it->h_next = NULL;
    it->lru_prev = NULL;
    it->lru_next = NULL;
    it->cas = 0;
    atomic_init(&it->refcount, 1);
    atomic_init(&it->exptime, exptime);
    it->atime = now;
    it->nvalue = (uint32_t)nvalue & ITEM_VALUE_MAX;
    it->has_flags = flags != 0;
    it->versioned = 0;
    it->nkey = (uint8_t)nkey;
    it->iflags = 0;
    memcpy(it->data, key, nkey);
    if (flags != 0)
        memcpy(it->data + nkey + nvalue, &flags, sizeof(flags));
    return it;
}

const char *item_key(const struct item *it)
{
    return it->data;
}

size_t item_nkey(const struct item *it)
{
    return it->nkey;
}

const char *item_value(const struct item *it)
{
    return it->data + it->nkey;
}

size_t item_nvalue(const struct item *it)
{
    return it->nvalue;
}

char *item_data_mut(struct item *it)
{
    ASSERT((it->iflags & ITEM_LINKED) == 0);
    return it->data + it->nkey;
}

uint32_t item_flags(const struct item *it)
{
    return item_flags_get(it);
}

uint64_t item_cas(const struct item *it)
{
    return item_visible_cas(it);
}

rel_time_t item_exptime(const struct item *it)
{
    return item_exptime_load(it);
}

unsigned item_class(const struct item *it)
{
    return item_clsid(it);
}

size_t item_bytes(const struct item *it)
{
    return item_size(it);
}

size_t cache_item_overhead(void)
{
    return ITEM_HDR_SIZE;
}
