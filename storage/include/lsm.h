/*
 * lsm.h - the public interface of Strata's LSM storage engine (storage/).
 *
 * The only header a user of the engine includes. A database is a directory
 * holding a write-ahead log, sorted string tables (SSTables) in levels and a
 * manifest. Records are ordered by (XXH3-64 token of the key, key), so any
 * token range is one contiguous scan. Writes are blind: every record is
 * stored with its version without reading anything first, and conflicting
 * versions of a key resolve last-write-wins when read and when compacted
 * (the highest version is the key's value; an older version written later
 * never shadows it). A caller that must know whether its write won (a
 * compare-and-set) serialises per key above the engine and reads first.
 *
 * Thread-safety: every function taking a `struct lsm_db *` may be called from
 * any number of threads at once, except lsm_open/lsm_close. The engine owns
 * two background threads (flush, compaction) that lsm_close joins. An
 * iterator or a batch is used by one thread at a time.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

struct lsm_db;       /* an open database */
struct lsm_iter;     /* a forward scan over a token range */
struct lsm_snapshot; /* a point-in-time view: pins memtables and files */
struct lsm_batch;    /* records applied atomically by lsm_write */
struct lsm_env;      /* file I/O table (storage/env.h); NULL = POSIX */

/* Limits (memcached's key limit; the item size limit is an option). */
#define LSM_MAX_KEY_LEN 250u
#define LSM_DEFAULT_MAX_VALUE_LEN (1u << 20)
#define LSM_MAX_VALUE_LEN_LIMIT (128u << 20)
#define LSM_MAX_LEVELS 7

/* Version of a record: hybrid-logical-clock timestamp, then the writing
 * node's id as tie-break. Compared lexicographically; larger is newer. A
 * version names one write: storing the same version twice is a replay of
 * that write (same contents); two different records with one version are
 * the caller's bug, and which of them reads back is unspecified. */
struct lsm_version {
    uint64_t hlc;
    uint16_t node;
};

/*
 * A record as written and as read back.
 * - expiry: absolute unix seconds, 0 = never. For a tombstone it holds the
 *   deletion time (unix seconds) used for gc_grace; 0 on write = now.
 * - On write, key/value are borrowed for the duration of the call.
 * - On read (lsm_get), the record and its bytes are one allocation owned by
 *   the caller, freed with lsm_record_free. From an iterator, key/value are
 *   views valid until the next lsm_iter_next or lsm_iter_destroy.
 */
struct lsm_record {
    const uint8_t *key;
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
    uint32_t flags; /* memcached client flags, opaque to the engine */
    uint64_t expiry;
    struct lsm_version version;
    bool tombstone;
};

enum lsm_sync_mode {
    LSM_SYNC_ALWAYS = 0, /* ack after fdatasync (group commit shares one) */
    LSM_SYNC_INTERVAL,   /* fdatasync every sync_interval_ms or _writes */
    LSM_SYNC_NONE,       /* the OS decides; survives a process kill only */
};

enum lsm_compaction_style {
    LSM_COMPACTION_LEVELED = 0, /* L0 -> L1 -> ... , x multiplier per level */
    LSM_COMPACTION_TIERED,      /* size-tiered runs in L0, for write-heavy use */
};

/* Options; fill with lsm_options_init, then change what you need. Sizes in
 * bytes. lsm_open validates every field and returns ST_INVAL naming the bad
 * one in the log. */
struct lsm_options {
    struct lsm_env *env;    /* NULL = POSIX; borrowed, must outlive db */
    bool create_if_missing; /* default true */
    bool error_if_exists;   /* default false */
    size_t max_value_len;   /* 1 MiB; at most LSM_MAX_VALUE_LEN_LIMIT */
    /* write-ahead log */
    enum lsm_sync_mode sync_mode;   /* default LSM_SYNC_INTERVAL */
    uint32_t sync_interval_ms;      /* 100 */
    uint32_t sync_interval_writes;  /* 1000 */
    size_t wal_segment_size;        /* 64 MiB: rotate past this */
    bool wal_recover_to_corruption; /* false: mid-log corruption -> ST_CORRUPT;
                                       true: keep records before it, log it */
    /* memtable and stalls */
    size_t memtable_size;           /* 64 MiB */
    uint32_t l0_compaction_trigger; /* 4 files */
    uint32_t l0_slowdown_trigger;   /* 8 files: each write sleeps 1 ms */
    uint32_t l0_stop_trigger;       /* 12 files: writes wait for compaction */
    /* SSTables */
    size_t block_size;     /* 16 KiB, 4..64 KiB */
    int compression_level; /* zstd level, 3; 0 = store raw; < 0 zstd's fast levels */
    /* 2: tables that are rewritten soon are stored raw, saving the CPU of
     * compressing them for little space: every flush, and in the leveled
     * style every table of a level below this one. 0 = compress all. */
    int compress_from_level;
    uint32_t bloom_bits_per_key; /* 10; 0 = no filter */
    size_t target_file_size;     /* 64 MiB per compaction output file */
    /* read path */
    size_t block_cache_size; /* 64 MiB of decompressed blocks */
    uint32_t max_open_files; /* 512: table cache fd budget */
    /* compaction */
    enum lsm_compaction_style compaction_style; /* default LEVELED */
    uint64_t l1_target_size;                    /* 64 MiB; target(n+1) = target(n) * mult */
    uint32_t level_multiplier;                  /* 10 */
    uint32_t compaction_rate_mb;                /* MB/s written by compaction; 0 = no cap */
    uint64_t gc_grace_seconds;                  /* 10 days: tombstones kept at least this */
    uint64_t expired_grace_seconds;             /* 0: expired records dropped after it */
    /* size-tiered: every run (one table) stays in L0; runs of similar size
     * (largest <= smallest * tiered_size_ratio_pct / 100) are merged once
     * tiered_min_merge of them exist, at most tiered_max_merge at a time;
     * past tiered_max_runs runs the smallest are merged regardless. Write
     * stalls count runs beyond tiered_max_runs: slowdown at max_runs +
     * (l0_slowdown_trigger - l0_compaction_trigger), stop at max_runs +
     * (l0_stop_trigger - l0_compaction_trigger). */
    uint32_t tiered_min_merge;      /* 4 */
    uint32_t tiered_max_merge;      /* 10 */
    uint32_t tiered_size_ratio_pct; /* 200 */
    uint32_t tiered_max_runs;       /* 20 */
    /* time source for expiry and gc_grace (unix seconds); NULL = time(2).
     * Called from any thread. */
    uint64_t (*now_fn)(void *arg);
    void *now_arg;
};

/* Fills `opts` with the defaults listed above. */
void lsm_options_init(struct lsm_options *opts);

/*
 * Opens (creating if allowed) the database in directory `path`, replaying the
 * manifest and any WAL segments written after the last flush; takes the
 * directory's LOCK file. Returns ST_OK and *db_out; ST_INVAL (bad options,
 * missing db without create_if_missing, existing with error_if_exists);
 * ST_IO (I/O error, or locked by another process); ST_CORRUPT (manifest,
 * WAL or a live SSTable failed validation: the log names the file).
 * `opts` is copied; NULL = defaults.
 */
enum st_status lsm_open(const char *path, const struct lsm_options *opts, struct lsm_db **db_out);

/*
 * Stops background work (an in-flight flush completes; compaction is
 * abandoned), syncs the WAL, joins the threads and frees the handle;
 * NULLs *db. Accepts NULL / *db == NULL. REQUIRES: no other thread uses the
 * db, every iterator and snapshot was destroyed.
 */
void lsm_close(struct lsm_db **db);

/*
 * Stores `rec` (rec->tombstone must be false) at its version. It becomes
 * the key's value if no higher version of the key is stored (tombstones
 * included); a version equal to a stored one is the same write replayed.
 * Durable when it returns ST_OK as the sync mode promises. Returns ST_INVAL
 * (key empty or > LSM_MAX_KEY_LEN, value > max_value_len), ST_IO (I/O
 * failed: the engine is now read-only, see lsm_stats.read_only; the write
 * was not acknowledged), ST_CLOSED.
 */
enum st_status lsm_put(struct lsm_db *db, const struct lsm_record *rec);

/*
 * Makes every write that has returned durable: one fdatasync of the WAL,
 * shared with concurrent callers (a caller whose writes a sync already
 * running or done covers returns without another). For a caller that
 * opens the engine with LSM_SYNC_NONE and acknowledges many requests after
 * one sync (strata-proxy batches a worker's writes of one event-loop
 * turn). ST_IO (the engine is then read-only), ST_OK.
 */
enum st_status lsm_sync(struct lsm_db *db);

/* Stores a tombstone for `key` at `version`, resolved as lsm_put.
 * `deleted_at` is unix seconds (0 = now), the start of its gc_grace. */
enum st_status lsm_delete(struct lsm_db *db, const void *key, size_t key_len,
                          struct lsm_version version, uint64_t deleted_at);

/* Read flags. */
#define LSM_READ_TOMBSTONES 1u /* report tombstones (rec->tombstone) */
#define LSM_READ_EXPIRED 2u    /* report expired records */

/*
 * Point lookup of the newest version of `key`. Returns ST_OK with *out set
 * (owned by the caller, free with lsm_record_free) or *out = NULL when the
 * key is absent, deleted or expired (unless `read_flags` ask for those);
 * ST_INVAL for a bad key; ST_IO / ST_CORRUPT when an SSTable cannot be read
 * (logged with its file name; never reported as absent).
 */
enum st_status lsm_get(struct lsm_db *db, const void *key, size_t key_len, unsigned read_flags,
                       struct lsm_record **out);

/* Frees a record returned by lsm_get or lsm_record_copy; NULLs *rec;
 * accepts NULL. */
void lsm_record_free(struct lsm_record **rec);

/* A copy of `in` in one allocation, as lsm_get returns records (free with
 * lsm_record_free). ST_NOMEM. */
enum st_status lsm_record_copy(const struct lsm_record *in, struct lsm_record **out);

/* Token of a key as the engine orders it (XXH3_64bits of the key bytes). */
uint64_t lsm_token(const void *key, size_t key_len);

/* ---- batches: all records in one WAL record and one memtable insert ---- */

enum st_status lsm_batch_create(struct lsm_batch **out);
void lsm_batch_destroy(struct lsm_batch **batch);
/* Clears the batch for reuse. */
void lsm_batch_clear(struct lsm_batch *batch);
/* Copies the record into the batch. ST_INVAL on bad sizes, ST_NOMEM. */
enum st_status lsm_batch_put(struct lsm_batch *batch, const struct lsm_record *rec);
enum st_status lsm_batch_delete(struct lsm_batch *batch, const void *key, size_t key_len,
                                struct lsm_version version, uint64_t deleted_at);
size_t lsm_batch_count(const struct lsm_batch *batch);

/*
 * Stores every record of `batch` atomically (after a crash either all are
 * present or none), each resolved as lsm_put (a key repeated in the batch
 * competes with itself). Errors as lsm_put.
 */
enum st_status lsm_write(struct lsm_db *db, struct lsm_batch *batch);

/* ---- snapshots and iterators ---- */

/* Pins the current memtables and file set. ST_OK / ST_NOMEM / ST_CLOSED. */
enum st_status lsm_snapshot_create(struct lsm_db *db, struct lsm_snapshot **out);
/* Releases the pin; NULLs *snap; accepts NULL. */
void lsm_snapshot_destroy(struct lsm_db *db, struct lsm_snapshot **snap);

/*
 * A forward iterator over records whose token is in [token_first,
 * token_last] (inclusive both ends; 0..UINT64_MAX is everything), in
 * (token, key) order, newest version of each key only, as of `snap` (NULL =
 * now; the iterator then holds its own pin). Tombstones and expired records
 * are skipped unless `read_flags` ask for them.
 */
enum st_status lsm_iter_create(struct lsm_db *db, const struct lsm_snapshot *snap,
                               uint64_t token_first, uint64_t token_last, unsigned read_flags,
                               struct lsm_iter **out);
/*
 * Advances to the next record and fills *rec with views valid until the
 * next call. Returns true when a record was produced; false at the end or on
 * error (then lsm_iter_status says which).
 */
bool lsm_iter_next(struct lsm_iter *it, struct lsm_record *rec);
/* ST_OK, or the I/O / corruption error that ended the scan. */
enum st_status lsm_iter_status(const struct lsm_iter *it);
void lsm_iter_destroy(struct lsm_iter **it);

/* ---- maintenance and stats ---- */

/* Flushes the memtable to L0 and waits for it. ST_IO if the engine is
 * read-only. */
enum st_status lsm_flush(struct lsm_db *db);
/* Full compaction: merges every file into one sorted run (leveled: in the
 * deepest non-empty level, split at target_file_size; tiered: one L0
 * table), dropping shadowed versions, tombstones past gc_grace and records
 * expired past their grace; waits for it. Flushes the memtable first.
 * ST_IO/ST_CORRUPT as the compaction met them, ST_CLOSED on shutdown. */
enum st_status lsm_compact_all(struct lsm_db *db);

struct lsm_stats {
    uint64_t level_files[LSM_MAX_LEVELS];
    uint64_t level_bytes[LSM_MAX_LEVELS];
    uint64_t memtable_bytes; /* active + immutable */
    uint64_t pending_compaction_bytes;
    uint64_t user_bytes_written; /* keys + values accepted */
    uint64_t wal_bytes_written;
    uint64_t flush_bytes_written;
    uint64_t compaction_bytes_read;
    uint64_t compaction_bytes_written;
    double write_amplification; /* (wal + flush + compaction) / user */
    double space_amplification; /* table bytes / bytes of the largest
                                     sorted run (leveled: largest level
                                     below L0; tiered: largest run), >= 1;
                                     0 if empty */
    uint64_t puts, deletes, gets;
    /* Gets that found the key and still had to look deeper, because a
     * deeper memtable or table could hold a higher version (its version
     * bounds said so), and those among them that did find a higher one:
     * the cost of blind writes arriving out of version order. */
    uint64_t gets_past_first_hit, gets_newer_below;
    /* Records in all tables (every version each table holds). */
    uint64_t table_records;
    uint64_t wal_syncs, group_commits;
    uint64_t flushes, compactions;
    uint64_t stall_slowdowns, stall_stops, stall_micros;
    uint64_t block_cache_hits, block_cache_misses, block_cache_bytes;
    uint64_t bloom_useful; /* SSTable probes skipped by the filter */
    uint64_t table_cache_opens;
    bool read_only;          /* a write or sync failed: writes refused */
    enum st_status bg_error; /* why read_only, else ST_OK */
};

/* Fills *stats; callable any time from any thread. */
void lsm_stats(struct lsm_db *db, struct lsm_stats *stats);
