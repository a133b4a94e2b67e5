/*
 * engine_rocksdb.c - lsm-bench's driver for RocksDB through its C API
 * (rocksdb/c.h, Debian's librocksdb-dev 7.8). Compression is off, or its
 * usual production shape: none at L0 and L1, zstd (same level as ours) from
 * L2 down. Full (not block-based) bloom filters at the same bits per key,
 * the same LRU block cache size; everything else at RocksDB's defaults.
 * Debian builds RocksDB with assertions on (25-35% slower writes).
 * Called from the harness thread and its worker threads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "common/mem.h"
#include "tools/lsm/bench/engine.h"

struct rdb_db {
    struct engine_db base; /* first */
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_block_based_table_options_t *topts;
    rocksdb_cache_t *cache;
    rocksdb_writeoptions_t *wopts;
    rocksdb_readoptions_t *ropts;
};

/* RocksDB's default num_levels. */
#define RDB_LEVELS 7

static void rdb_describe(const struct engine_cfg *cfg, char *buf, size_t cap)
{
    /* rocksdb/version.h is C++; Debian bookworm ships 7.8.3. */
    if (cfg->compress)
        snprintf(buf, cap,
                 "RocksDB 7.8: compression_per_level = none, none, then zstd level %d for "
                 "L2-L6 (bottommost_compression unset)",
                 cfg->zstd_level);
    else
        snprintf(buf, cap, "RocksDB 7.8: no compression (kNoCompression at every level)");
}

static void rdb_free_parts(struct rdb_db *r)
{
    if (r->db != NULL)
        rocksdb_close(r->db);
    if (r->opts != NULL)
        rocksdb_options_destroy(r->opts);
    if (r->topts != NULL)
        rocksdb_block_based_options_destroy(r->topts);
    if (r->cache != NULL)
        rocksdb_cache_destroy(r->cache);
    if (r->wopts != NULL)
        rocksdb_writeoptions_destroy(r->wopts);
    if (r->ropts != NULL)
        rocksdb_readoptions_destroy(r->ropts);
    mem_free(MEM_OTHER, r, sizeof(*r));
}

static int rdb_open(const char *dir, const struct engine_cfg *cfg, struct engine_db **out,
                    char *err, size_t errcap)
{
    struct rdb_db *r = mem_calloc(MEM_OTHER, 1, sizeof(*r));
    if (r == NULL) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    r->opts = rocksdb_options_create();
    r->topts = rocksdb_block_based_options_create();
    r->cache = rocksdb_cache_create_lru(cfg->block_cache_bytes);
    r->wopts = rocksdb_writeoptions_create();
    r->ropts = rocksdb_readoptions_create();
    rocksdb_block_based_options_set_block_cache(r->topts, r->cache);
    /* The table options take ownership of the policy. */
    rocksdb_block_based_options_set_filter_policy(
        r->topts, rocksdb_filterpolicy_create_bloom_full(cfg->bloom_bits));
    rocksdb_block_based_options_set_block_size(r->topts, cfg->block_size);
    rocksdb_options_set_block_based_table_factory(r->opts, r->topts);
    rocksdb_options_set_create_if_missing(r->opts, 1);
    rocksdb_options_set_error_if_exists(r->opts, 1);
    rocksdb_options_set_write_buffer_size(r->opts, cfg->memtable_bytes);
    rocksdb_options_set_max_bytes_for_level_base(r->opts, cfg->l1_bytes);
    rocksdb_options_set_target_file_size_base(r->opts, cfg->file_bytes);
    rocksdb_options_set_num_levels(r->opts, RDB_LEVELS);
    if (cfg->compress) {
        /* L0 and L1 are rewritten soon: raw; zstd where the data stays. */
        int per_level[RDB_LEVELS];
        for (int i = 0; i < RDB_LEVELS; i++)
            per_level[i] = i < 2 ? rocksdb_no_compression : rocksdb_zstd_compression;
        rocksdb_options_set_compression_per_level(r->opts, per_level, RDB_LEVELS);
        /* window_bits, level, strategy, max_dict_bytes */
        rocksdb_options_set_compression_options(r->opts, -14, cfg->zstd_level, 0, 0);
    } else {
        rocksdb_options_set_compression(r->opts, rocksdb_no_compression);
    }
    rocksdb_writeoptions_set_sync(r->wopts, cfg->sync);
    char *e = NULL;
    r->db = rocksdb_open(r->opts, dir, &e);
    if (e != NULL) {
        snprintf(err, errcap, "rocksdb_open %s: %s", dir, e);
        rocksdb_free(e);
        rdb_free_parts(r);
        return -1;
    }
    r->base.eng = &engine_rocksdb;
    *out = &r->base;
    return 0;
}

static void rdb_close(struct engine_db *db)
{
    rdb_free_parts((struct rdb_db *)db);
}

static int rdb_put(struct engine_db *db, const char *key, size_t klen, const char *val, size_t vlen)
{
    struct rdb_db *r = (struct rdb_db *)db;
    char *e = NULL;
    rocksdb_put(r->db, r->wopts, key, klen, val, vlen, &e);
    if (e != NULL) {
        fprintf(stderr, "rocksdb_put: %s\n", e);
        rocksdb_free(e);
        return -1;
    }
    return 0;
}

static int rdb_get(struct engine_db *db, const char *key, size_t klen, bool *found)
{
    struct rdb_db *r = (struct rdb_db *)db;
    char *e = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get(r->db, r->ropts, key, klen, &vlen, &e);
    if (e != NULL) {
        fprintf(stderr, "rocksdb_get: %s\n", e);
        rocksdb_free(e);
        return -1;
    }
    *found = v != NULL;
    rocksdb_free(v);
    return 0;
}

static int rdb_scan(struct engine_db *db, const char *key, size_t klen, size_t n,
                    uint64_t keys_in_db, size_t *got)
{
    struct rdb_db *r = (struct rdb_db *)db;
    (void)keys_in_db;
    rocksdb_iterator_t *it = rocksdb_create_iterator(r->db, r->ropts);
    size_t k = 0, len;
    volatile char sink = 0;
    for (rocksdb_iter_seek(it, key, klen); k < n && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        sink ^= rocksdb_iter_key(it, &len)[0];
        const char *v = rocksdb_iter_value(it, &len);
        if (len > 0)
            sink ^= v[len - 1];
        k++;
    }
    (void)sink;
    char *e = NULL;
    rocksdb_iter_get_error(it, &e);
    rocksdb_iter_destroy(it);
    *got = k;
    if (e != NULL) {
        fprintf(stderr, "rocksdb iterator: %s\n", e);
        rocksdb_free(e);
        return -1;
    }
    return 0;
}

static int rdb_compact(struct engine_db *db)
{
    struct rdb_db *r = (struct rdb_db *)db;
    rocksdb_compact_range(r->db, NULL, 0, NULL, 0);
    return 0;
}

static uint64_t rdb_prop(struct rdb_db *r, const char *name)
{
    uint64_t v = 0;
    if (rocksdb_property_int(r->db, name, &v) != 0)
        return 0;
    return v;
}

static void rdb_settle(struct engine_db *db, unsigned max_ms)
{
    struct rdb_db *r = (struct rdb_db *)db;
    unsigned still = 0;
    for (unsigned t = 0; t < max_ms && still < 20; t += 10) {
        bool idle = rdb_prop(r, "rocksdb.compaction-pending") == 0 &&
                    rdb_prop(r, "rocksdb.num-running-compactions") == 0 &&
                    rdb_prop(r, "rocksdb.num-running-flushes") == 0 &&
                    rdb_prop(r, "rocksdb.mem-table-flush-pending") == 0;
        still = idle ? still + 1 : 0;
        usleep(10000);
    }
}

/* RocksDB's cache and sync counters need its statistics object, which
 * costs it time on every operation: not enabled. The harness measures
 * write and space amplification from outside for every engine alike. */
static void rdb_stats(struct engine_db *db, struct engine_stats *out)
{
    (void)db;
    *out = (struct engine_stats){
        .write_amp = -1,
        .space_amp = -1,
        .wal_syncs = ENGINE_UNKNOWN,
        .stall_micros = ENGINE_UNKNOWN,
        .cache_hits = ENGINE_UNKNOWN,
        .cache_misses = ENGINE_UNKNOWN,
        .gets = ENGINE_UNKNOWN,
        .gets_past_first_hit = ENGINE_UNKNOWN,
        .gets_newer_below = ENGINE_UNKNOWN,
        .table_records = ENGINE_UNKNOWN,
    };
}

const struct engine engine_rocksdb = {
    .name = "rocksdb",
    .describe = rdb_describe,
    .open = rdb_open,
    .close = rdb_close,
    .put = rdb_put,
    .get = rdb_get,
    .scan = rdb_scan,
    .compact = rdb_compact,
    .settle = rdb_settle,
    .stats = rdb_stats,
};
