/*
 * block.h - sorted key/value blocks with prefix-compressed keys and restart
 * points: SSTable data blocks and the index block. Built by the table
 * builder (flush/compaction thread); parsed blocks are immutable,
 * reference-counted, shared through the block cache by reader threads.
 *
 * Block contents (uncompressed; little-endian; spec in
 * docs/formats/sstable.md):
 *
 *   entry*         for each entry:
 *                    varint shared      bytes shared with the previous key
 *                                       (0 at a restart point)
 *                    varint unshared    key bytes that follow
 *                    varint value_len
 *                    unshared key bytes, then value bytes
 *   u32 restart[r] offset of every restart entry (data blocks: one per
 *                  16 entries; index blocks: every entry, so a seek is a
 *                  pure binary search over uncompressed keys)
 *   u32 r          number of restarts (>= 1)
 *
 * Keys are internal keys (ikey.h) in ikey_compare order.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "storage/coding.h"
#include "storage/ikey.h"

#define BLOCK_RESTART_INTERVAL 16

struct block_builder {
    struct buf data;
    struct buf restarts; /* u32 LE offsets */
    struct buf last_key;
    uint32_t since_restart;
    uint32_t count;
    uint32_t restart_interval; /* entries per restart; 0: BLOCK_RESTART_INTERVAL */
};

/* Zeroed builder: ready. */
void block_builder_reset(struct block_builder *b);
void block_builder_deinit(struct block_builder *b);
/* REQUIRES: key > every key added since the last reset. ST_NOMEM. */
enum st_status block_builder_add(struct block_builder *b, const uint8_t *key, size_t key_len,
                                 const uint8_t *value, size_t value_len);
/* Bytes the finished block would take. */
size_t block_builder_size(const struct block_builder *b);
/* Appends the restart array; the contents are then in b->data. */
enum st_status block_builder_finish(struct block_builder *b);

/* A parsed block; takes ownership of `data` (MEM_STORAGE, `cap` bytes). */
struct block {
    atomic_int refs;
    uint8_t *data;
    size_t len; /* contents length */
    size_t cap; /* allocation size */
    size_t restarts_off;
    uint32_t nrestarts;
};

/* Validates the restart array; ST_CORRUPT (then `data` is freed), ST_NOMEM.
 * The new block has one reference. */
enum st_status block_create(uint8_t *data, size_t len, size_t cap, struct block **out);
void block_ref(struct block *b);
void block_unref(struct block **b);

/* A cursor over one block; holds a reference while initialised. */
struct block_iter {
    struct block *b;
    size_t cur;                /* offset of the current entry */
    size_t next;               /* offset after it */
    uint8_t key[IKEY_MAX_LEN]; /* keys longer than an internal key are corrupt */
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
    bool valid;
    enum st_status status;
};

/* Takes a new reference on b. */
void block_iter_init(struct block_iter *it, struct block *b);
void block_iter_deinit(struct block_iter *it);
void block_iter_seek_first(struct block_iter *it);
/* First entry with key >= target (ikey_compare). */
void block_iter_seek(struct block_iter *it, const uint8_t *target, size_t target_len);
void block_iter_next(struct block_iter *it);
/* ST_CORRUPT once a malformed entry was met (the iterator is then invalid). */
static inline enum st_status block_iter_status(const struct block_iter *it)
{
    return it->status;
}
