/*
 * memtable.h - the in-memory write buffer: a skip list of (internal key,
 * record value, sequence) in an arena.
 *
 * Threads: one writer at a time (the group-commit leader, or recovery);
 * any number of readers concurrently with it and without locks (nodes are
 * published with release stores). Reference-counted: held by the db while
 * active or immutable, and by each snapshot/iterator that pinned it.
 * Sequence numbers let a snapshot ignore entries inserted after it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

struct memtable;

/* A new empty memtable with one reference, its token filter sized for
 * about `expected_bytes` of entries (memtable_size). ST_NOMEM. */
enum st_status memtable_create(size_t expected_bytes, struct memtable **out);
void memtable_ref(struct memtable *m);
/* Drops a reference; frees on the last. NULLs *m; accepts NULL. */
void memtable_unref(struct memtable **m);

/*
 * Inserts a copy of the entry. Versions of a key sort newest first
 * whatever their arrival order. REQUIRES: one writer at a time; `seq`
 * greater than every earlier insert's. An entry equal in internal key to an
 * existing one (the same write replayed) is inserted after it. ST_NOMEM.
 */
enum st_status memtable_add(struct memtable *m, uint64_t seq, const uint8_t *ikey, size_t ikey_len,
                            const uint8_t *rval, size_t rval_len);

/*
 * Finds the newest entry (first in order) for the user key of `ikey` (any
 * version) with seq <= max_seq. Returns true and views valid while the
 * caller holds a reference.
 */
bool memtable_get(struct memtable *m, const uint8_t *ikey, size_t ikey_len, uint64_t max_seq,
                  const uint8_t **found_ikey, size_t *found_ikey_len, const uint8_t **rval,
                  size_t *rval_len);

/*
 * Bounds of the versions' HLCs inserted so far: every entry's version v has
 * min_hlc <= v.hlc <= max_hlc. False while empty. Any thread (a bound read
 * during an insert may miss that insert: readers pin after the inserts they
 * must see are done).
 */
bool memtable_hlc_bounds(const struct memtable *m, uint64_t *min_hlc, uint64_t *max_hlc);

/* Bytes of entries and skip-list nodes (what counts against
 * memtable_size; the arena's unused tail is not counted). */
size_t memtable_bytes(const struct memtable *m);
uint64_t memtable_count(const struct memtable *m);

/* A forward cursor; the caller holds a reference on the memtable. */
struct memtable_iter {
    struct memtable *m;
    const void *node;
    uint64_t max_seq;
};

void memtable_iter_init(struct memtable_iter *it, struct memtable *m, uint64_t max_seq);
/* Positions at the first entry >= ikey (seq <= max_seq). */
void memtable_iter_seek(struct memtable_iter *it, const uint8_t *ikey, size_t ikey_len);
void memtable_iter_seek_first(struct memtable_iter *it);
bool memtable_iter_valid(const struct memtable_iter *it);
void memtable_iter_next(struct memtable_iter *it);
/* REQUIRES: valid. Views live as long as the memtable. */
void memtable_iter_entry(const struct memtable_iter *it, const uint8_t **ikey, size_t *ikey_len,
                         const uint8_t **rval, size_t *rval_len);
