/*
 * engine_leveldb.c - lsm-bench's driver for LevelDB through its C API
 * (leveldb/c.h, Debian's libleveldb-dev). Its production compression is
 * snappy at every level (LevelDB's default; 1.23's C API has no zstd).
 * Called from the harness thread and its worker threads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <leveldb/c.h>

#include "common/mem.h"
#include "tools/lsm/bench/engine.h"

struct ldb_db {
    struct engine_db base; /* first */
    leveldb_t *db;
    leveldb_options_t *opts;
    leveldb_cache_t *cache;
    leveldb_filterpolicy_t *bloom;
    leveldb_writeoptions_t *wopts;
    leveldb_readoptions_t *ropts;
};

static void ldb_describe(const struct engine_cfg *cfg, char *buf, size_t cap)
{
    snprintf(buf, cap, "LevelDB %d.%d: %s", leveldb_major_version(), leveldb_minor_version(),
             cfg->compress ? "snappy at every level (kSnappyCompression, its default)"
                           : "no compression (kNoCompression)");
}

static void ldb_free_parts(struct ldb_db *l)
{
    if (l->db != NULL)
        leveldb_close(l->db);
    if (l->opts != NULL)
        leveldb_options_destroy(l->opts);
    if (l->cache != NULL)
        leveldb_cache_destroy(l->cache);
    if (l->bloom != NULL)
        leveldb_filterpolicy_destroy(l->bloom);
    if (l->wopts != NULL)
        leveldb_writeoptions_destroy(l->wopts);
    if (l->ropts != NULL)
        leveldb_readoptions_destroy(l->ropts);
    mem_free(MEM_OTHER, l, sizeof(*l));
}

static int ldb_open(const char *dir, const struct engine_cfg *cfg, struct engine_db **out,
                    char *err, size_t errcap)
{
    struct ldb_db *l = mem_calloc(MEM_OTHER, 1, sizeof(*l));
    if (l == NULL) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    l->opts = leveldb_options_create();
    l->cache = leveldb_cache_create_lru(cfg->block_cache_bytes);
    l->bloom = leveldb_filterpolicy_create_bloom(cfg->bloom_bits);
    l->wopts = leveldb_writeoptions_create();
    l->ropts = leveldb_readoptions_create();
    leveldb_options_set_create_if_missing(l->opts, 1);
    leveldb_options_set_error_if_exists(l->opts, 1);
    leveldb_options_set_write_buffer_size(l->opts, cfg->memtable_bytes);
    leveldb_options_set_cache(l->opts, l->cache);
    leveldb_options_set_filter_policy(l->opts, l->bloom);
    leveldb_options_set_block_size(l->opts, cfg->block_size);
    leveldb_options_set_compression(l->opts, cfg->compress ? leveldb_snappy_compression
                                                           : leveldb_no_compression);
    leveldb_options_set_max_open_files(l->opts, 1000);
    leveldb_options_set_max_file_size(l->opts, cfg->file_bytes);
    leveldb_writeoptions_set_sync(l->wopts, cfg->sync);
    char *e = NULL;
    l->db = leveldb_open(l->opts, dir, &e);
    if (e != NULL) {
        snprintf(err, errcap, "leveldb_open %s: %s", dir, e);
        leveldb_free(e);
        ldb_free_parts(l);
        return -1;
    }
    l->base.eng = &engine_leveldb;
    *out = &l->base;
    return 0;
}

static void ldb_close(struct engine_db *db)
{
    ldb_free_parts((struct ldb_db *)db);
}

static int ldb_put(struct engine_db *db, const char *key, size_t klen, const char *val, size_t vlen)
{
    struct ldb_db *l = (struct ldb_db *)db;
    char *e = NULL;
    leveldb_put(l->db, l->wopts, key, klen, val, vlen, &e);
    if (e != NULL) {
        fprintf(stderr, "leveldb_put: %s\n", e);
        leveldb_free(e);
        return -1;
    }
    return 0;
}

static int ldb_get(struct engine_db *db, const char *key, size_t klen, bool *found)
{
    struct ldb_db *l = (struct ldb_db *)db;
    char *e = NULL;
    size_t vlen = 0;
    char *v = leveldb_get(l->db, l->ropts, key, klen, &vlen, &e);
    if (e != NULL) {
        fprintf(stderr, "leveldb_get: %s\n", e);
        leveldb_free(e);
        return -1;
    }
    *found = v != NULL;
    leveldb_free(v);
    return 0;
}

static int ldb_scan(struct engine_db *db, const char *key, size_t klen, size_t n,
                    uint64_t keys_in_db, size_t *got)
{
    struct ldb_db *l = (struct ldb_db *)db;
    (void)keys_in_db;
    leveldb_iterator_t *it = leveldb_create_iterator(l->db, l->ropts);
    size_t k = 0, len;
    volatile char sink = 0;
    for (leveldb_iter_seek(it, key, klen); k < n && leveldb_iter_valid(it); leveldb_iter_next(it)) {
        sink ^= leveldb_iter_key(it, &len)[0];
        const char *v = leveldb_iter_value(it, &len);
        if (len > 0)
            sink ^= v[len - 1];
        k++;
    }
    (void)sink;
    char *e = NULL;
    leveldb_iter_get_error(it, &e);
    leveldb_iter_destroy(it);
    *got = k;
    if (e != NULL) {
        fprintf(stderr, "leveldb iterator: %s\n", e);
        leveldb_free(e);
        return -1;
    }
    return 0;
}

static int ldb_compact(struct engine_db *db)
{
    struct ldb_db *l = (struct ldb_db *)db;
    leveldb_compact_range(l->db, NULL, 0, NULL, 0);
    return 0;
}

/* LevelDB has no pending-compaction property: settled when its file list
 * ("leveldb.sstables") has not changed for 300 ms. */
static void ldb_settle(struct engine_db *db, unsigned max_ms)
{
    struct ldb_db *l = (struct ldb_db *)db;
    char *prev = NULL;
    unsigned still = 0;
    for (unsigned t = 0; t < max_ms && still < 30; t += 10) {
        char *cur = leveldb_property_value(l->db, "leveldb.sstables");
        still = (prev != NULL && cur != NULL && strcmp(prev, cur) == 0) ? still + 1 : 0;
        leveldb_free(prev);
        prev = cur;
        usleep(10000);
    }
    leveldb_free(prev);
}

/* LevelDB's properties ("leveldb.stats") give per-level compaction bytes
 * but no WAL bytes, syncs or cache counters: the harness measures write
 * and space amplification from outside for every engine alike. */
static void ldb_stats(struct engine_db *db, struct engine_stats *out)
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

const struct engine engine_leveldb = {
    .name = "leveldb",
    .describe = ldb_describe,
    .open = ldb_open,
    .close = ldb_close,
    .put = ldb_put,
    .get = ldb_get,
    .scan = ldb_scan,
    .compact = ldb_compact,
    .settle = ldb_settle,
    .stats = ldb_stats,
};
