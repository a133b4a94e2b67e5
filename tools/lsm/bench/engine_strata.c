/*
 * engine_strata.c - lsm-bench's driver for Strata's own engine (lsm.h).
 * Writes are blind (lsm_put has no applied result since 79fe7f9); each
 * carries a fresh version from one atomic counter, so versions arrive in
 * order. The sync policy is a database option here (always for fillsync,
 * none otherwise), where LevelDB and RocksDB take it per write. Called
 * from the harness thread and its worker threads.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/mem.h"
#include "common/status.h"
#include "storage/include/lsm.h"
#include "tools/lsm/bench/engine.h"

struct strata_db {
    struct engine_db base; /* first */
    struct lsm_db *db;
    atomic_uint_fast64_t hlc;
};

static void strata_describe(const struct engine_cfg *cfg, char *buf, size_t cap)
{
#ifdef STRATA_VERSION
    const char *v = STRATA_VERSION;
#else
    const char *v = "?";
#endif
    struct lsm_options o;
    lsm_options_init(&o);
    int from = cfg->compress_from >= 0 ? cfg->compress_from : o.compress_from_level;
    int level = cfg->strata_zstd_level != STRATA_LEVEL_DEFAULT ? cfg->strata_zstd_level
                                                               : o.compression_level;
    if (!cfg->compress)
        snprintf(buf, cap, "strata %s: no compression (compression_level 0)", v);
    else
        snprintf(buf, cap,
                 "strata %s: zstd level %d from L%d and at the bottom level, flushes and "
                 "upper levels raw (compress_from_level %d)",
                 v, level, from, from);
}

static int strata_open(const char *dir, const struct engine_cfg *cfg, struct engine_db **out,
                       char *err, size_t errcap)
{
    struct lsm_options o;
    lsm_options_init(&o);
    o.memtable_size = cfg->memtable_bytes;
    o.block_cache_size = cfg->block_cache_bytes;
    o.block_size = cfg->block_size;
    o.bloom_bits_per_key = (uint32_t)cfg->bloom_bits;
    if (!cfg->compress)
        o.compression_level = 0;
    else if (cfg->strata_zstd_level != STRATA_LEVEL_DEFAULT)
        o.compression_level = cfg->strata_zstd_level;
    if (cfg->compress_from >= 0)
        o.compress_from_level = cfg->compress_from;
    o.l1_target_size = cfg->l1_bytes;
    o.target_file_size = cfg->file_bytes;
    o.sync_mode = cfg->sync ? LSM_SYNC_ALWAYS : LSM_SYNC_NONE;
    o.error_if_exists = true;
    struct strata_db *s = mem_calloc(MEM_OTHER, 1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    enum st_status st = lsm_open(dir, &o, &s->db);
    if (st != ST_OK) {
        snprintf(err, errcap, "lsm_open %s: %s", dir, st_status_name(st));
        mem_free(MEM_OTHER, s, sizeof(*s));
        return -1;
    }
    s->base.eng = &engine_strata;
    atomic_init(&s->hlc, 1);
    *out = &s->base;
    return 0;
}

static void strata_close(struct engine_db *db)
{
    struct strata_db *s = (struct strata_db *)db;
    lsm_close(&s->db);
    mem_free(MEM_OTHER, s, sizeof(*s));
}

static int strata_put(struct engine_db *db, const char *key, size_t klen, const char *val,
                      size_t vlen)
{
    struct strata_db *s = (struct strata_db *)db;
    struct lsm_record r = {
        .key = (const uint8_t *)key,
        .key_len = klen,
        .value = (const uint8_t *)val,
        .value_len = vlen,
        .version = {atomic_fetch_add_explicit(&s->hlc, 1, memory_order_relaxed), 1},
    };
    return lsm_put(s->db, &r) == ST_OK ? 0 : -1;
}

static int strata_get(struct engine_db *db, const char *key, size_t klen, bool *found)
{
    struct strata_db *s = (struct strata_db *)db;
    struct lsm_record *r = NULL;
    if (lsm_get(s->db, key, klen, 0, &r) != ST_OK)
        return -1;
    *found = r != NULL;
    lsm_record_free(&r);
    return 0;
}

/* Ours has no seek within an iterator: its range is fixed when it is
 * created, so every scan creates one, as the other drivers do. */
static int strata_scan(struct engine_db *db, const char *key, size_t klen, size_t n,
                       uint64_t keys_in_db, size_t *got)
{
    struct strata_db *s = (struct strata_db *)db;
    uint64_t first = lsm_token(key, klen), last = UINT64_MAX;
    size_t limit = n;
    if (keys_in_db > 0) {
        double width = (double)n * 18446744073709551616.0 / (double)keys_in_db;
        if (width < (double)(UINT64_MAX - first))
            last = first + (uint64_t)width;
        limit = SIZE_MAX;
    }
    struct lsm_iter *it = NULL;
    if (lsm_iter_create(s->db, NULL, first, last, 0, &it) != ST_OK)
        return -1;
    struct lsm_record r;
    size_t k = 0;
    volatile uint8_t sink = 0;
    while (k < limit && lsm_iter_next(it, &r)) {
        sink ^= r.key[0];
        if (r.value_len > 0)
            sink ^= r.value[r.value_len - 1];
        k++;
    }
    (void)sink;
    enum st_status st = lsm_iter_status(it);
    lsm_iter_destroy(&it);
    *got = k;
    return st == ST_OK ? 0 : -1;
}

static int strata_compact(struct engine_db *db)
{
    struct strata_db *s = (struct strata_db *)db;
    return lsm_compact_all(s->db) == ST_OK ? 0 : -1;
}

/* Settled when nothing is pending and the flush/compaction counters have
 * not moved for 200 ms. */
static void strata_settle(struct engine_db *db, unsigned max_ms)
{
    struct strata_db *s = (struct strata_db *)db;
    uint64_t last = UINT64_MAX;
    unsigned still = 0;
    for (unsigned t = 0; t < max_ms && still < 20; t += 10) {
        struct lsm_stats st;
        lsm_stats(s->db, &st);
        uint64_t moves = st.flushes + st.compactions;
        bool idle = st.pending_compaction_bytes == 0 && moves == last;
        still = idle ? still + 1 : 0;
        last = moves;
        usleep(10000);
    }
}

static void strata_stats(struct engine_db *db, struct engine_stats *out)
{
    struct strata_db *s = (struct strata_db *)db;
    struct lsm_stats st;
    lsm_stats(s->db, &st);
    *out = (struct engine_stats){
        .write_amp = st.write_amplification,
        .space_amp = st.space_amplification,
        .wal_syncs = st.wal_syncs,
        .stall_micros = st.stall_micros,
        .cache_hits = st.block_cache_hits,
        .cache_misses = st.block_cache_misses,
        .gets = st.gets,
        .gets_past_first_hit = st.gets_past_first_hit,
        .gets_newer_below = st.gets_newer_below,
        .table_records = st.table_records,
    };
}

const struct engine engine_strata = {
    .name = "strata",
    .describe = strata_describe,
    .open = strata_open,
    .close = strata_close,
    .put = strata_put,
    .get = strata_get,
    .scan = strata_scan,
    .compact = strata_compact,
    .settle = strata_settle,
    .stats = strata_stats,
};
