/*
 * engine_leveldb.c - lsm-bench's driver for LevelDB through its C API
 * (leveldb/c.h, Debian's libleveldb-dev). Compression is what Debian builds
 * LevelDB with: snappy (LevelDB 1.23 has no zstd in its C API).
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

static void ldb_describe(char *buf, size_t cap)
{
    snprintf(buf, cap, "LevelDB %d.%d (snappy)", leveldb_major_version(), leveldb_minor_version());
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
    leveldb_options_set_compression(l->opts, leveldb_snappy_compression);
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

static void ldb_amp(struct engine_db *db, struct engine_amp *out)
{
    (void)db;
    *out = (struct engine_amp){.write_amp = -1, .space_amp = -1, .wal_syncs = UINT64_MAX};
}

const struct engine engine_leveldb = {
    .name = "leveldb",
    .describe = ldb_describe,
    .open = ldb_open,
    .close = ldb_close,
    .put = ldb_put,
    .get = ldb_get,
    .compact = ldb_compact,
    .settle = ldb_settle,
    .amp = ldb_amp,
};
