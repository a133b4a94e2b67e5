/*
 * iter.h - the internal iterator interface over (internal key, record
 * value) in ikey_compare order, and the merging iterator. Memtables,
 * SSTables and levels each provide one; db_iter.c layers the user-visible
 * scan (newest version per key, tombstones/expiry, token bounds) on a merge.
 * An iterator belongs to one thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

struct iter;

struct iter_ops {
    void (*seek_first)(struct iter *it);
    /* First entry >= ikey. */
    void (*seek)(struct iter *it, const uint8_t *ikey, size_t ikey_len);
    void (*next)(struct iter *it);
    bool (*valid)(const struct iter *it);
    /* REQUIRES: valid. Views valid until the next move or destroy. */
    void (*entry)(const struct iter *it, const uint8_t **ikey, size_t *ikey_len,
                  const uint8_t **rval, size_t *rval_len);
    /* ST_OK, or the error that made the iterator invalid. */
    enum st_status (*status)(const struct iter *it);
    void (*destroy)(struct iter *it);
};

struct iter {
    const struct iter_ops *ops;
};

/* Destroys and NULLs; accepts NULL. */
void iter_destroy(struct iter **it);

/* Merges `n` children (takes ownership of them and of the array, which
 * must come from mem_alloc(MEM_STORAGE, n * sizeof(struct iter *))). Equal
 * keys come out in child order (child 0 first). ST_NOMEM (children are then
 * destroyed). */
enum st_status iter_merge_create(struct iter **children, size_t n, struct iter **out);
