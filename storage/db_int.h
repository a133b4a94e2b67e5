/*
 * db_int.h - the engine handle shared by db.c (open, recovery, close,
 * stats), db_write.c (write path, group commit), db_read.c (gets,
 * snapshots, iterators) and compaction.c (flush and compaction threads).
 *
 * Locks, in acquisition order (never take an earlier one while holding a
 * later one):
 *   1. db->mu       memtables, writer queue, commit pipeline, bg state, WAL
 *                   segment list
 *   2. db->sync_mu  one WAL fdatasync at a time; held across it so that
 *                   appends (wal_mu) go on meanwhile
 *   3. db->wal_mu   WAL appends and the WAL's bookkeeping
 *   4. vset / tcache / bcache internal mutexes (leaf locks)
 * Commit groups drop db->mu for their I/O and memtable inserts.
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "storage/bcache.h"
#include "storage/coding.h"
#include "storage/env.h"
#include "storage/filename.h"
#include "storage/include/lsm.h"
#include "storage/logfile.h"
#include "storage/memtable.h"
#include "storage/tcache.h"
#include "storage/version.h"

/* One record of a write, validated, with its token computed. */
struct wentry {
    uint64_t token;
    const uint8_t *key;
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
    uint32_t flags;
    uint64_t expiry; /* deletion time for a tombstone */
    struct lsm_version version;
    bool tombstone;
};

/* A writer waiting in the group-commit queue (on its own stack). */
enum { DB_WRITER_QUEUED = 0, DB_WRITER_LEAD = 1, DB_WRITER_DONE = 2 };
struct db_writer {
    struct db_writer *next;
    struct buf payload; /* framed WAL record of its entries */
    size_t n;           /* entries, one sequence number each */
    enum st_status status;
    /* QUEUED until it heads the queue (LEAD) or its group committed
     * (DONE); waited on as a futex, without db->mu. */
    _Atomic uint32_t state;
    pthread_cond_t cv; /* as a leader: waiting for followers, under db->mu */
};

struct db_stats_counters {
    atomic_uint_fast64_t user_bytes, wal_bytes, flush_bytes;
    atomic_uint_fast64_t compaction_read, compaction_written;
    atomic_uint_fast64_t puts, deletes, gets, gets_past_first_hit, gets_newer_below;
    atomic_uint_fast64_t wal_syncs, group_commits, flushes, compactions;
    atomic_uint_fast64_t stall_slowdowns, stall_stops, stall_micros;
};

struct lsm_db {
    char dir[FILENAME_MAX_PATH];
    struct lsm_options opts;
    struct lsm_env *env;
    struct env_lock *lock;
    struct vset *vs;
    struct bcache *bc;
    struct tcache *tc;
    struct sst_counters counters;
    struct db_stats_counters st;

    pthread_mutex_t mu;
    pthread_cond_t bg_cv;   /* wakes the background threads */
    pthread_cond_t done_cv; /* a flush/compaction finished or failed */
    struct memtable *mem;
    struct memtable *imm;
    uint64_t mem_log_number; /* first WAL segment holding mem's records */
    uint64_t imm_next_log;   /* mem_log_number of the memtable after imm */
    struct db_writer *q_head, *q_tail;
    size_t q_len;                     /* writers queued, the head included */
    struct db_writer *leader_waiting; /* a leader gathering followers */
    uint32_t leader_wants;            /* ... until q_len reaches this */
    uint32_t last_group_size;         /* writers in the last commit group */
    uint64_t last_group_end_us;       /* when it completed (monotonic) */
    /*
     * The commit pipeline: a group takes ticket `tickets + 1` and its
     * sequence numbers when it leaves the queue, appends to the WAL, hands
     * the queue to the next leader, syncs, then inserts into the memtable
     * once every earlier ticket has (so last_seq only ever covers
     * completed inserts). Memtable switches and WAL rotations wait for
     * groups_done == tickets.
     */
    uint64_t tickets, groups_done;
    uint64_t seq_alloc;            /* last sequence number handed to a group */
    pthread_cond_t pipe_cv;        /* groups_done advanced */
    atomic_uint_fast64_t last_seq; /* every insert up to it is visible */
    enum st_status bg_error;       /* ST_OK, or why the engine is read-only */
    atomic_bool read_only;
    bool shutting_down;
    uint64_t flushes_done; /* completed flushes, for lsm_flush waiters */
    int manual_full;       /* 1 requested, 2 running */
    uint64_t manual_done;
    enum st_status manual_status;
    uint64_t *wal_segs; /* live WAL segment numbers, ascending */
    size_t nwal_segs, wal_segs_cap;
    uint8_t compact_ptr[LSM_MAX_LEVELS][IKEY_MAX_LEN]; /* round robin */
    uint16_t compact_ptr_len[LSM_MAX_LEVELS];

    pthread_mutex_t sync_mu;
    pthread_mutex_t wal_mu;
    struct logfile_writer *wal;
    uint64_t wal_appended; /* ticket of the last group appended */
    uint64_t wal_synced;   /* every ticket up to it is synced */
    uint64_t wal_number;
    uint64_t last_sync_ms;
    uint32_t writes_since_sync;
    bool wal_dirty;

    pthread_t flush_thread, compact_thread;
    bool threads_started;
};

/* Current unix seconds from the options' clock. */
uint64_t db_now(const struct lsm_db *db);
uint64_t db_monotonic_ms(void);
/* Marks the engine read-only for `st` (first error wins); logs it.
 * REQUIRES: db->mu held. */
void db_set_bg_error_locked(struct lsm_db *db, enum st_status st, const char *what);

/* ---- db_write.c ---- */
/* Sets w->state and wakes its owner. */
void db_writer_wake(struct db_writer *w, uint32_t state);
/* Waits until w->state leaves DB_WRITER_QUEUED; returns it. No lock held. */
uint32_t db_writer_wait(struct db_writer *w);
/* Encodes entries into a WAL batch payload. */
enum st_status db_batch_encode(const struct wentry *e, size_t n, struct buf *out);
/* Decodes a WAL batch payload and inserts each record into `m`, numbering
 * them from *seq (advanced). ST_CORRUPT, ST_NOMEM. Recovery only. */
enum st_status db_batch_replay(struct memtable *m, const uint8_t *p, size_t len, uint64_t *seq);
/* Starts WAL segment `number` (db->wal_mu held or no writer running). */
enum st_status db_wal_open_locked(struct lsm_db *db, uint64_t number);
/* Syncs the WAL if it has unsynced appends (the periodic syncer). */
void db_wal_sync_if_dirty(struct lsm_db *db);
/* Same, only if the last sync is at least min_age_ms old (called from
 * inside long flushes so that sync_mode=interval keeps its period). */
void db_wal_sync_if_due(struct lsm_db *db, uint64_t min_age_ms);

/* ---- db_read.c ---- */
/* Makes the memtable immutable (the flush thread's next job) and starts an
 * empty one on a new WAL segment. REQUIRES: db->mu held, the caller at the
 * head of the writer queue, db->imm == NULL. ST_IO/ST_NOMEM. */
enum st_status db_switch_memtable_locked(struct lsm_db *db);
/* Waits until every commit group in flight has inserted its records.
 * REQUIRES: db->mu held, and the caller at the head of the writer queue (no
 * new group can start). */
void db_drain_commits_locked(struct lsm_db *db);

/* ---- compaction.c ---- */
/* Whether a table written to `level` is stored uncompressed: a flush when
 * `flush`; `bottom` when no deeper level holds data. Pure. */
bool compaction_stores_raw(const struct lsm_options *o, int level, bool flush, bool bottom);
/* Background thread bodies. */
void *compaction_flush_main(void *arg);
void *compaction_compact_main(void *arg);
/*
 * Writes every entry of `m` (newest version per key) to a new L0 table
 * and fills `e` with it (nothing when m is empty). Used by the flush thread
 * and by recovery. ST_IO, ST_NOMEM.
 */
enum st_status compaction_build_l0(struct lsm_db *db, struct memtable *m, struct version_edit *e);
/* Deletes queued obsolete SSTables and WAL segments below the log number. */
void compaction_delete_obsolete(struct lsm_db *db);
