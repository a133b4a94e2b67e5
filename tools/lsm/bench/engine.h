/*
 * engine.h - the table lsm-bench drives each storage engine through: one
 * harness (main.c), three implementations (engine_strata.c over lsm.h,
 * engine_leveldb.c over leveldb/c.h, engine_rocksdb.c over rocksdb/c.h),
 * so that every engine runs exactly the same workload code.
 *
 * Thread-safety: put and get may be called from several threads at once
 * (all three engines allow it); everything else from one.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Settings every engine gets alike. */
struct engine_cfg {
    size_t memtable_bytes;    /* write buffer */
    size_t block_cache_bytes; /* cache of uncompressed blocks */
    size_t block_size;        /* data block target */
    int bloom_bits;           /* bloom filter bits per key */
    /* false: every engine stores every block raw. true: each engine's
     * production default - LevelDB snappy at every level; RocksDB none at
     * L0/L1 and zstd below; ours zstd from compress_from_level and at the
     * bottom level (lsm_options_init). */
    bool compress;
    int zstd_level;        /* RocksDB's zstd level */
    int strata_zstd_level; /* ours; STRATA_LEVEL_DEFAULT = lsm_options_init's */
    int compress_from;     /* ours: lsm_options.compress_from_level; -1 = its default */
    size_t l1_bytes;       /* level-1 target (LevelDB: fixed at 10 MiB) */
    size_t file_bytes;     /* SSTable size target */
    bool sync;             /* every write synced (fillsync); else the WAL is
                          written but never synced by the write */
};

/* An open database; each engine embeds it first in its own handle. */
struct engine_db {
    const struct engine *eng;
};

#define ENGINE_UNKNOWN UINT64_MAX
#define STRATA_LEVEL_DEFAULT (-1000)

/* Figures an engine can report about itself: -1 (doubles) or
 * ENGINE_UNKNOWN (counters) when it cannot. Counters are cumulative since
 * open. */
struct engine_stats {
    double write_amp;                  /* bytes written to disk / user bytes */
    double space_amp;                  /* table bytes / bytes of the largest sorted run */
    uint64_t wal_syncs;                /* fdatasyncs of the WAL */
    uint64_t stall_micros;             /* time writers spent stalled */
    uint64_t cache_hits, cache_misses; /* block cache */
    uint64_t gets, gets_past_first_hit, gets_newer_below;
    uint64_t table_records; /* records in all tables, every version */
};

struct engine {
    const char *name;
    /* Library version and the compression `cfg` selects, in one line. */
    void (*describe)(const struct engine_cfg *cfg, char *buf, size_t cap);
    /* Opens a new database in `dir` (which does not exist yet). 0 ok, -1
     * with a message in err. */
    int (*open)(const char *dir, const struct engine_cfg *cfg, struct engine_db **out, char *err,
                size_t errcap);
    void (*close)(struct engine_db *db);
    /* 0 ok, -1 error. */
    int (*put)(struct engine_db *db, const char *key, size_t klen, const char *val, size_t vlen);
    /* 0 ok (with *found), -1 error. */
    int (*get)(struct engine_db *db, const char *key, size_t klen, bool *found);
    /*
     * A new iterator positioned at `key` in the engine's own order, reading
     * consecutive records (keys and values touched) until `n` were read or
     * the data ends; *got = how many. LevelDB and RocksDB seek to the key
     * itself; ours orders by the key's token (lsm_token), so it starts at
     * that token: with keys_in_db == 0 it reads [token, end] until `n`
     * records, else the token range [token, token + n * 2^64 / keys_in_db)
     * to its end, which holds n keys on average. 0 ok, -1 error.
     */
    int (*scan)(struct engine_db *db, const char *key, size_t klen, size_t n, uint64_t keys_in_db,
                size_t *got);
    /* Compacts everything into the last level and waits. */
    int (*compact)(struct engine_db *db);
    /* Waits until no flush or compaction is pending or running (polling the
     * engine's own counters; bounded by `max_ms`). */
    void (*settle)(struct engine_db *db, unsigned max_ms);
    void (*stats)(struct engine_db *db, struct engine_stats *out);
};

extern const struct engine engine_strata;
extern const struct engine engine_leveldb;
extern const struct engine engine_rocksdb;
