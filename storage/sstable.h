/*
 * sstable.h - immutable sorted tables: the builder (flush and compaction
 * threads) and the reader (any thread; a table is reference-counted and
 * shared through the table cache). Spec: docs/formats/sstable.md.
 *
 * File layout:
 *
 *   data block 0 .. data block n-1     (block.h contents, each + trailer)
 *   filter block                       (bloom.h contents + trailer)
 *   properties block                   (below + trailer)
 *   index block                        (block.h: key = last internal key
 *                                       of data block i, value = handle)
 *   footer                             (72 bytes, fixed)
 *
 * Block trailer (9 bytes after every block's stored bytes):
 *
 *   offset  size  field
 *   0       1     compression: 0 = none, 1 = zstd (never renumber)
 *   1       8     XXH3_64bits(stored bytes || compression byte), LE
 *
 * Block handle (index values): varint offset, varint stored size (without
 * trailer).
 *
 * Properties block: a sequence of (varint tag, varint value) pairs;
 * readers skip unknown tags. Tags (never renumber): 1 records,
 * 2 tombstones, 3 min token, 4 max token, 5 min version hlc, 6 min version
 * node, 7 max version hlc, 8 max version node, 9 earliest expiry (0 =
 * none), 10 data blocks, 11 raw key bytes, 12 raw value bytes, 13 data
 * bytes on disk.
 *
 * Footer (little-endian):
 *
 *   offset  size  field
 *   0       8     filter block offset     8   8  filter stored size
 *   16      8     properties offset       24  8  properties stored size
 *   32      8     index block offset      40  8  index stored size
 *   48      4     format version (1)
 *   52      4     reserved, 0
 *   56      8     XXH3_64bits(bytes 0..55)
 *   64      8     magic "STRTSST1"
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "storage/bcache.h"
#include "storage/coding.h"
#include "storage/env.h"
#include "storage/ikey.h"
#include "storage/iter.h"

#define SST_FOOTER_SIZE 72u
#define SST_TRAILER_SIZE 9u
#define SST_FORMAT_VERSION 1u
#define SST_MAGIC "STRTSST1"
#define SST_MAX_BLOCK (256u << 20) /* largest decompressed block accepted */

enum sst_compression { SST_COMP_NONE = 0, SST_COMP_ZSTD = 1 };

struct sst_props {
    uint64_t records;
    uint64_t tombstones;
    uint64_t min_token, max_token;
    struct lsm_version min_version, max_version;
    uint64_t earliest_expiry;
    uint64_t data_blocks;
    uint64_t raw_key_bytes, raw_value_bytes;
    uint64_t data_bytes;
};

struct sst_builder_opts {
    size_t block_size;
    int compression_level; /* 0 = none; < 0 zstd's fast levels */
    uint32_t bloom_bits_per_key;
};

/* What a finished table holds (copied into the manifest). */
struct sst_info {
    uint64_t number;
    uint64_t size;
    uint8_t smallest[IKEY_MAX_LEN];
    size_t smallest_len;
    uint8_t largest[IKEY_MAX_LEN];
    size_t largest_len;
    struct sst_props props;
};

struct sst_builder;

/* Opens dir/NNNNNN.sst.tmp for writing. ST_IO, ST_NOMEM. */
enum st_status sst_builder_create(struct lsm_env *env, const char *dir, uint64_t number,
                                  const struct sst_builder_opts *opts, struct sst_builder **out);
/* REQUIRES: ikey greater than the previous one. ST_IO, ST_NOMEM. */
enum st_status sst_builder_add(struct sst_builder *b, const uint8_t *ikey, size_t ikey_len,
                               const uint8_t *rval, size_t rval_len);
/* Bytes written so far plus the pending block. */
uint64_t sst_builder_size(const struct sst_builder *b);
uint64_t sst_builder_count(const struct sst_builder *b);
/*
 * Writes filter, properties, index and footer, syncs, closes, renames the
 * temp file to NNNNNN.sst and syncs the directory; fills *info and frees
 * the builder (*b = NULL) whatever happens. On error the temp file is
 * removed. REQUIRES: at least one entry added.
 */
enum st_status sst_builder_finish(struct sst_builder **b, struct sst_info *info);
/* Gives up: closes, removes the temp file, frees; NULLs *b; accepts NULL. */
void sst_builder_abandon(struct sst_builder **b);

/* Counters a reader bumps (owned by the db, relaxed atomics). */
struct sst_counters {
    atomic_uint_fast64_t bloom_useful;
};

struct sst_table;

/*
 * Opens dir/NNNNNN.sst: reads and verifies the footer, index, filter and
 * properties. `cache` (may be NULL) caches data blocks; `counters` may be
 * NULL. ST_IO (missing file: errno ENOENT), ST_CORRUPT (logged with the
 * file name), ST_NOMEM. The table has one reference.
 */
enum st_status sst_table_open(struct lsm_env *env, const char *dir, uint64_t number,
                              struct bcache *cache, struct sst_counters *counters,
                              struct sst_table **out);
void sst_table_ref(struct sst_table *t);
void sst_table_unref(struct sst_table **t);
const struct sst_props *sst_table_props(const struct sst_table *t);
uint64_t sst_table_number(const struct sst_table *t);

/*
 * Newest entry of the user key of `ikey` (any version): ST_OK and *found;
 * when found, its internal key and record value are copied into ikey_out /
 * rval_out (reset first). ST_IO / ST_CORRUPT (logged with the file name).
 */
enum st_status sst_table_get(struct sst_table *t, const uint8_t *ikey, size_t ikey_len, bool *found,
                             struct buf *ikey_out, struct buf *rval_out);

/* An iterator over the table; takes a reference on it. ST_NOMEM. */
enum st_status sst_iter_create(struct sst_table *t, struct iter **out);
