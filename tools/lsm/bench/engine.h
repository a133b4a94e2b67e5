/*
 * engine.h - the table lsm-bench drives each storage engine through: one
 * harness (main.c), three implementations (engine_strata.c over lsm.h,
 * engine_leveldb.c over leveldb/c.h, engine_rocksdb.c over rocksdb/c.h),
 * so that every engine runs exactly the same workload code.
 *
 * Thread-safety: put and get may be called from several threads at once
 * (all three engines allow it); open/close/compact/settle from one.
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
    int zstd_level;           /* for the engines that use zstd */
    int compress_from;        /* ours: lsm_options.compress_from_level */
    size_t l1_bytes;          /* level-1 target (LevelDB: fixed at 10 MiB) */
    size_t file_bytes;        /* SSTable size target */
    bool sync;                /* every write synced (fillsync); else the WAL
                                 is written but never synced by the write */
};

/* An open database; each engine embeds it first in its own handle. */
struct engine_db {
    const struct engine *eng;
};

/* Figures an engine can report about itself (-1 = unknown). */
struct engine_amp {
    double write_amp;                  /* bytes written to disk / user bytes */
    double space_amp;                  /* table bytes / bytes of the live data's run */
    uint64_t wal_syncs;                /* fdatasyncs of the WAL so far (-1 unknown) */
    uint64_t stall_micros;             /* time writers spent stalled */
    uint64_t cache_hits, cache_misses; /* block cache */
};

struct engine {
    const char *name;
    const char *version; /* filled by describe() */
    /* Library version and compression in one line, e.g. "RocksDB 7.8.3". */
    void (*describe)(char *buf, size_t cap);
    /* Opens a new database in `dir` (which does not exist yet). 0 ok, -1
     * with a message in err. */
    int (*open)(const char *dir, const struct engine_cfg *cfg, struct engine_db **out, char *err,
                size_t errcap);
    void (*close)(struct engine_db *db);
    /* 0 ok, -1 error. */
    int (*put)(struct engine_db *db, const char *key, size_t klen, const char *val, size_t vlen);
    /* 0 ok (with *found), -1 error. */
    int (*get)(struct engine_db *db, const char *key, size_t klen, bool *found);
    /* Compacts everything into the last level and waits. */
    int (*compact)(struct engine_db *db);
    /* Waits until no flush or compaction is pending or running (polling the
     * engine's own counters; bounded by `max_ms`). */
    void (*settle)(struct engine_db *db, unsigned max_ms);
    void (*amp)(struct engine_db *db, struct engine_amp *out);
};

extern const struct engine engine_strata;
extern const struct engine engine_leveldb;
extern const struct engine engine_rocksdb;
