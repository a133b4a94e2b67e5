/*
 * db.c - engine lifecycle: options, open (lock, manifest replay, WAL
 * replay into L0, new manifest), close (stop and join the background
 * threads, final WAL sync), manual flush/compaction and stats. lsm_open and
 * lsm_close run on the caller's thread; the rest on any thread.
 *
 *   open ──► lock ──► CURRENT ──► manifest replay ──► check live tables
 *        ──► new manifest ──► replay WAL segments >= log number ──► L0
 *        ──► new WAL segment + edit(log number) ──► delete leftovers
 *        ──► start flush + compaction threads
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "common/log.h"
#include "common/mem.h"
#include "storage/db_int.h"

void lsm_options_init(struct lsm_options *o)
{
    *o = (struct lsm_options){
        .env = NULL,
        .create_if_missing = true,
        .error_if_exists = false,
        .max_value_len = LSM_DEFAULT_MAX_VALUE_LEN,
        .sync_mode = LSM_SYNC_INTERVAL,
        .sync_interval_ms = 100,
        .sync_interval_writes = 1000,
        .wal_segment_size = 64u << 20,
        .wal_recover_to_corruption = false,
        .memtable_size = 64u << 20,
        .l0_compaction_trigger = 4,
        .l0_slowdown_trigger = 8,
        .l0_stop_trigger = 12,
        .block_size = 16u << 10,
        .compression_level = 3,
        .compress_from_level = 2,
        .bloom_bits_per_key = 10,
        .target_file_size = 64u << 20,
        .block_cache_size = 64u << 20,
        .max_open_files = 512,
        .compaction_style = LSM_COMPACTION_LEVELED,
        .l1_target_size = 64u << 20,
        .level_multiplier = 10,
        .compaction_rate_mb = 0,
        .gc_grace_seconds = 10 * 24 * 3600,
        .expired_grace_seconds = 0,
        .tiered_min_merge = 4,
        .tiered_max_merge = 10,
        .tiered_size_ratio_pct = 200,
        .tiered_max_runs = 20,
        .now_fn = NULL,
        .now_arg = NULL,
    };
}

static enum st_status validate(const struct lsm_options *o)
{
#define BAD(cond, name)                                          \
    do {                                                         \
        if (cond) {                                              \
            log_error("storage: option %s out of bounds", name); \
            return ST_INVAL;                                     \
        }                                                        \
    } while (0)
    BAD(o->max_value_len < 1 || o->max_value_len > LSM_MAX_VALUE_LEN_LIMIT, "max_value_len");
    BAD(o->sync_mode > LSM_SYNC_NONE, "sync_mode");
    BAD(o->sync_mode == LSM_SYNC_INTERVAL &&
            (o->sync_interval_ms == 0 || o->sync_interval_writes == 0),
        "sync_interval_ms/sync_interval_writes");
    BAD(o->wal_segment_size < (64u << 10), "wal_segment_size");
    BAD(o->memtable_size < (64u << 10) || o->memtable_size > (4ull << 30), "memtable_size");
    BAD(o->l0_compaction_trigger < 1, "l0_compaction_trigger");
    BAD(o->l0_slowdown_trigger < o->l0_compaction_trigger, "l0_slowdown_trigger");
    BAD(o->l0_stop_trigger < o->l0_slowdown_trigger, "l0_stop_trigger");
    BAD(o->block_size < (4u << 10) || o->block_size > (64u << 10), "block_size");
    BAD(o->compression_level < ZSTD_minCLevel() || o->compression_level > ZSTD_maxCLevel(),
        "compression_level");
    BAD(o->compress_from_level < 0 || o->compress_from_level > LSM_MAX_LEVELS,
        "compress_from_level");
    BAD(o->bloom_bits_per_key > 64, "bloom_bits_per_key");
    BAD(o->target_file_size < (64u << 10), "target_file_size");
    BAD(o->max_open_files < 16, "max_open_files");
    BAD(o->l1_target_size < (64u << 10), "l1_target_size");
    BAD(o->level_multiplier < 2 || o->level_multiplier > 100, "level_multiplier");
    BAD(o->compaction_style > LSM_COMPACTION_TIERED, "compaction_style");
    BAD(o->tiered_min_merge < 2, "tiered_min_merge");
    BAD(o->tiered_max_merge < o->tiered_min_merge, "tiered_max_merge");
    BAD(o->tiered_size_ratio_pct < 100, "tiered_size_ratio_pct");
    BAD(o->tiered_max_runs < o->tiered_min_merge || o->tiered_max_runs > 1000, "tiered_max_runs");
#undef BAD
    return ST_OK;
}

uint64_t db_now(const struct lsm_db *db)
{
    if (db->opts.now_fn != NULL)
        return db->opts.now_fn(db->opts.now_arg);
    return (uint64_t)time(NULL);
}

uint64_t db_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void db_set_bg_error_locked(struct lsm_db *db, enum st_status st, const char *what)
{
    if (db->bg_error == ST_OK) {
        db->bg_error = st;
        atomic_store(&db->read_only, true);
        log_error("storage: %s failed (%s) in %s; the engine is read-only "
                  "until reopened",
                  what, st_status_name(st), db->dir);
    }
    pthread_cond_broadcast(&db->done_cv);
}

/* ------------------------------------------------------------- open */

struct dir_scan {
    uint64_t *wals;
    size_t nwals, cap;
    uint64_t max_number;
    struct lsm_db *db;
    enum st_status st;
};

static int scan_cb(void *arg, const char *name)
{
    struct dir_scan *s = arg;
    uint64_t n = 0;
    enum filename_kind k = filename_parse(name, &n);
    char path[FILENAME_MAX_PATH];
    switch (k) {
    case FILENAME_WAL:
        if (s->nwals == s->cap) {
            size_t ncap = s->cap ? s->cap * 2 : 8;
            uint64_t *a = mem_realloc(MEM_STORAGE, s->wals, s->cap * sizeof(uint64_t),
                                      ncap * sizeof(uint64_t));
            if (a == NULL) {
                s->st = ST_NOMEM;
                return 1;
            }
            s->wals = a;
            s->cap = ncap;
        }
        s->wals[s->nwals++] = n;
        break;
    case FILENAME_SST_TMP:
        filename_path(path, s->db->dir, FILENAME_SST_TMP, n);
        s->db->env->unlink(s->db->env, path);
        break;
    default: break;
    }
    if (k != FILENAME_UNKNOWN && k != FILENAME_CURRENT && k != FILENAME_CURRENT_TMP &&
        k != FILENAME_LOCK && n > s->max_number)
        s->max_number = n;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Every table in the current version must exist and pass its checks. */
static enum st_status check_tables(struct lsm_db *db)
{
    struct version *v = vset_current(db->vs);
    enum st_status st = ST_OK;
    for (int l = 0; l < LSM_MAX_LEVELS && st == ST_OK; l++) {
        for (size_t i = 0; i < v->nfiles[l] && st == ST_OK; i++) {
            struct sst_table *t = NULL;
            st = tcache_get(db->tc, v->files[l][i]->number, &t);
            if (st == ST_IO && errno == ENOENT) {
                char path[FILENAME_MAX_PATH];
                filename_path(path, db->dir, FILENAME_SST, v->files[l][i]->number);
                log_error("storage: table %s named by the manifest is missing", path);
                st = ST_CORRUPT;
            }
            sst_table_unref(&t);
        }
    }
    version_unref(&v);
    return st;
}

/* Removes SSTables and manifests that no version references. */
static void delete_unreferenced(struct lsm_db *db);

static int cleanup_cb(void *arg, const char *name)
{
    struct lsm_db *db = arg;
    uint64_t n = 0;
    enum filename_kind k = filename_parse(name, &n);
    char path[FILENAME_MAX_PATH];
    if ((k == FILENAME_SST && !vset_is_live(db->vs, n)) ||
        (k == FILENAME_MANIFEST && n != vset_manifest_number(db->vs))) {
        filename_path(path, db->dir, k, n);
        db->env->unlink(db->env, path);
    }
    return 0;
}

static void delete_unreferenced(struct lsm_db *db)
{
    db->env->listdir(db->env, db->dir, cleanup_cb, db);
}

/* *size of WAL segment `number` (0 when unknown); false if it cannot be
 * opened or sized. */
static bool wal_file_size(struct lsm_db *db, uint64_t number, uint64_t *size)
{
    char path[FILENAME_MAX_PATH];
    filename_path(path, db->dir, FILENAME_WAL, number);
    struct env_file *f = NULL;
    *size = 0;
    if (db->env->open(db->env, path, ENV_OPEN_READ, &f) != ST_OK)
        return false;
    bool ok = db->env->size(db->env, f, size) == ST_OK;
    db->env->close(db->env, f);
    return ok;
}

/* Replays WAL segments into memtables, flushing to L0 when full. */
static enum st_status replay_wals(struct lsm_db *db, const uint64_t *wals, size_t n,
                                  struct version_edit *e)
{
    uint64_t log_number = vset_log_number(db->vs);
    /* The newest non-empty segment may end torn; empty ones after it (a
     * crash right after rotation) do not count. */
    size_t newest = n;
    for (size_t i = n; i > 0; i--) {
        if (wals[i - 1] < log_number)
            break;
        newest = i - 1;
        uint64_t size;
        wal_file_size(db, wals[i - 1], &size); /* unreadable: its open reports it */
        if (size > LOGFILE_HEADER_SIZE)
            break;
    }
    uint64_t seq = atomic_load(&db->last_seq);
    enum st_status st = ST_OK;
    bool stop = false;
    for (size_t i = 0; i < n && st == ST_OK && !stop; i++) {
        if (wals[i] < log_number)
            continue;
        char path[FILENAME_MAX_PATH];
        filename_path(path, db->dir, FILENAME_WAL, wals[i]);
        uint64_t size;
        if (i < newest && wal_file_size(db, wals[i], &size) && size == 0) {
            /* Written by an older version that did not sync a new
             * segment's header: never synced, so it never held a synced
             * record (rotation syncs a segment that has records). */
            log_warn("storage: WAL segment %s is empty (never synced); skipped", path);
            continue;
        }
        struct logfile_reader *r = NULL;
        st = logfile_reader_open(db->env, path, LOGFILE_MAGIC_WAL, i >= newest, &r);
        if (st == ST_CORRUPT && db->opts.wal_recover_to_corruption) {
            log_warn("storage: WAL segment %s has a bad header; recovery stops "
                     "before it (wal_recover_to_corruption)",
                     path);
            st = ST_OK;
            break;
        }
        if (st != ST_OK) {
            log_error("storage: cannot read WAL segment %s: %s", path, st_status_name(st));
            break;
        }
        for (;;) {
            const uint8_t *p;
            size_t len;
            bool eof;
            st = logfile_reader_next(r, &p, &len, &eof);
            if (st == ST_OK && !eof)
                st = db_batch_replay(db->mem, p, len, &seq);
            if (st == ST_CORRUPT) {
                uint64_t off = logfile_reader_offset(r);
                if (db->opts.wal_recover_to_corruption) {
                    log_warn("storage: WAL segment %s is corrupt at offset "
                             "%llu; records from there on are dropped "
                             "(wal_recover_to_corruption)",
                             path, (unsigned long long)off);
                    st = ST_OK;
                    stop = true;
                } else {
                    log_error("storage: WAL segment %s is corrupt at offset "
                              "%llu (set wal_recover_to_corruption to keep "
                              "the records before it)",
                              path, (unsigned long long)off);
                }
                break;
            }
            if (st != ST_OK || eof)
                break;
            if (memtable_bytes(db->mem) >= db->opts.memtable_size) {
                st = compaction_build_l0(db, db->mem, e);
                struct memtable *fresh = NULL;
                if (st == ST_OK)
                    st = memtable_create(db->opts.memtable_size, &fresh);
                if (st != ST_OK)
                    break;
                memtable_unref(&db->mem);
                db->mem = fresh;
            }
        }
        if (st == ST_OK && logfile_reader_torn(r))
            log_warn("storage: WAL segment %s ends with a torn record at "
                     "offset %llu (ignored: never acknowledged as synced)",
                     path, (unsigned long long)logfile_reader_offset(r));
        logfile_reader_destroy(&r);
    }
    atomic_store(&db->last_seq, seq);
    db->seq_alloc = seq;
    if (st == ST_OK)
        st = compaction_build_l0(db, db->mem, e);
    return st;
}

static void db_free(struct lsm_db *db)
{
    logfile_writer_destroy(&db->wal);
    memtable_unref(&db->mem);
    memtable_unref(&db->imm);
    tcache_destroy(&db->tc);
    vset_destroy(&db->vs);
    bcache_destroy(&db->bc);
    if (db->lock != NULL)
        db->env->unlock(db->env, db->lock);
    if (db->wal_segs != NULL)
        mem_free(MEM_STORAGE, db->wal_segs, db->wal_segs_cap * sizeof(uint64_t));
    pthread_mutex_destroy(&db->mu);
    pthread_mutex_destroy(&db->sync_mu);
    pthread_mutex_destroy(&db->wal_mu);
    pthread_cond_destroy(&db->pipe_cv);
    pthread_cond_destroy(&db->bg_cv);
    pthread_cond_destroy(&db->done_cv);
    mem_free(MEM_STORAGE, db, sizeof(*db));
}

enum st_status lsm_open(const char *path, const struct lsm_options *opts, struct lsm_db **db_out)
{
    struct lsm_options o;
    if (opts != NULL)
        o = *opts;
    else
        lsm_options_init(&o);
    enum st_status st = validate(&o);
    if (st != ST_OK)
        return st;
    if (strlen(path) + 32 >= FILENAME_MAX_PATH)
        return ST_INVAL;
    struct lsm_db *db = mem_calloc(MEM_STORAGE, 1, sizeof(*db));
    if (db == NULL)
        return ST_NOMEM;
    snprintf(db->dir, sizeof(db->dir), "%s", path);
    db->opts = o;
    db->env = o.env != NULL ? o.env : env_posix();
    pthread_mutex_init(&db->mu, NULL);
    pthread_mutex_init(&db->sync_mu, NULL);
    pthread_mutex_init(&db->wal_mu, NULL);
    pthread_cond_init(&db->pipe_cv, NULL);
    pthread_cond_init(&db->bg_cv, NULL);
    pthread_cond_init(&db->done_cv, NULL);
    atomic_init(&db->last_seq, 0);
    atomic_init(&db->read_only, false);
    db->bg_error = ST_OK;

    struct dir_scan scan = {.db = db, .st = ST_OK};
    struct version_edit e;
    version_edit_init(&e);
    char lockpath[FILENAME_MAX_PATH];
    bool exists = false;

    if (o.create_if_missing && (st = db->env->mkdir(db->env, path)) != ST_OK) {
        log_error("storage: cannot create %s: %s", path, strerror(errno));
        goto err;
    }
    if (!o.create_if_missing) {
        int ex = 0;
        if ((st = db->env->exists(db->env, path, &ex)) != ST_OK)
            goto err;
        if (!ex) {
            log_error("storage: no database in %s", path);
            st = ST_INVAL;
            goto err;
        }
    }
    filename_path(lockpath, path, FILENAME_LOCK, 0);
    if ((st = db->env->lock(db->env, lockpath, &db->lock)) != ST_OK) {
        log_error("storage: cannot lock %s: %s", lockpath, strerror(errno));
        goto err;
    }
    if ((st = bcache_create(o.block_cache_size, &db->bc)) != ST_OK ||
        (st = tcache_create(db->env, path, o.max_open_files, db->bc, &db->counters, &db->tc)) !=
            ST_OK ||
        (st = vset_create(db->env, path, &db->vs)) != ST_OK ||
        (st = memtable_create(db->opts.memtable_size, &db->mem)) != ST_OK)
        goto err;
    if ((st = vset_recover(db->vs, &exists)) != ST_OK)
        goto err;
    if (!exists && !o.create_if_missing) {
        log_error("storage: no database in %s", path);
        st = ST_INVAL;
        goto err;
    }
    if (exists && o.error_if_exists) {
        log_error("storage: a database already exists in %s", path);
        st = ST_INVAL;
        goto err;
    }
    if ((st = db->env->listdir(db->env, path, scan_cb, &scan)) != ST_OK || (st = scan.st) != ST_OK)
        goto err;
    vset_mark_file_number_used(db->vs, scan.max_number);
    if ((st = check_tables(db)) != ST_OK)
        goto err;
    if ((st = vset_write_snapshot(db->vs)) != ST_OK)
        goto err;
    if (scan.nwals > 0)
        qsort(scan.wals, scan.nwals, sizeof(uint64_t), cmp_u64);
    if ((st = replay_wals(db, scan.wals, scan.nwals, &e)) != ST_OK)
        goto err;
    /* Everything replayed is in tables now: start a clean WAL. */
    uint64_t wal = vset_new_file_number(db->vs);
    if ((st = db_wal_open_locked(db, wal)) != ST_OK)
        goto err;
    e.has_log_number = true;
    e.log_number = wal;
    if ((st = vset_log_and_apply(db->vs, &e)) != ST_OK)
        goto err;
    version_edit_deinit(&e);
    memtable_unref(&db->mem);
    if ((st = memtable_create(db->opts.memtable_size, &db->mem)) != ST_OK)
        goto err;
    db->mem_log_number = wal;
    db->wal_segs = scan.wals; /* old segments, deleted right below */
    db->nwal_segs = scan.nwals;
    db->wal_segs_cap = scan.cap;
    scan.wals = NULL;
    {
        /* push the live segment */
        if (db->nwal_segs == db->wal_segs_cap) {
            size_t ncap = db->wal_segs_cap ? db->wal_segs_cap * 2 : 8;
            uint64_t *a = mem_realloc(MEM_STORAGE, db->wal_segs,
                                      db->wal_segs_cap * sizeof(uint64_t), ncap * sizeof(uint64_t));
            if (a == NULL) {
                st = ST_NOMEM;
                goto err;
            }
            db->wal_segs = a;
            db->wal_segs_cap = ncap;
        }
        db->wal_segs[db->nwal_segs++] = wal;
    }
    compaction_delete_obsolete(db);
    delete_unreferenced(db);

    if (pthread_create(&db->flush_thread, NULL, compaction_flush_main, db) != 0)
        goto err_threads;
    if (pthread_create(&db->compact_thread, NULL, compaction_compact_main, db) != 0) {
        pthread_mutex_lock(&db->mu);
        db->shutting_down = true;
        pthread_cond_broadcast(&db->bg_cv);
        pthread_mutex_unlock(&db->mu);
        pthread_join(db->flush_thread, NULL);
        goto err_threads;
    }
    db->threads_started = true;
    *db_out = db;
    return ST_OK;
err_threads:
    st = ST_NOMEM;
err:
    /* Tables of replayed WAL records may be named by a manifest record whose
     * sync failed: keep them; the next open deletes them if unreferenced. */
    version_edit_forget_added(&e);
    version_edit_deinit(&e);
    if (scan.wals != NULL)
        mem_free(MEM_STORAGE, scan.wals, scan.cap * sizeof(uint64_t));
    db_free(db);
    return st;
}

void lsm_close(struct lsm_db **dbp)
{
    if (dbp == NULL || *dbp == NULL)
        return;
    struct lsm_db *db = *dbp;
    *dbp = NULL;
    pthread_mutex_lock(&db->mu);
    db->shutting_down = true;
    pthread_cond_broadcast(&db->bg_cv);
    pthread_cond_broadcast(&db->done_cv);
    pthread_mutex_unlock(&db->mu);
    if (db->threads_started) {
        pthread_join(db->flush_thread, NULL);
        pthread_join(db->compact_thread, NULL);
    }
    /* Records acknowledged under sync=interval/none reach the disk now. */
    if (db->bg_error == ST_OK)
        db_wal_sync_if_dirty(db);
    compaction_delete_obsolete(db);
    db_free(db);
}

/* ------------------------------------------------------ maintenance */

enum st_status lsm_flush(struct lsm_db *db)
{
    pthread_mutex_lock(&db->mu);
    enum st_status st = ST_OK;
    /* Wait out an earlier immutable memtable, then switch ours. */
    while (db->imm != NULL && db->bg_error == ST_OK && !db->shutting_down)
        pthread_cond_wait(&db->done_cv, &db->mu);
    if (db->bg_error != ST_OK || db->shutting_down) {
        st = db->bg_error != ST_OK ? db->bg_error : ST_CLOSED;
        pthread_mutex_unlock(&db->mu);
        return st;
    }
    if (memtable_count(db->mem) == 0) {
        pthread_mutex_unlock(&db->mu);
        return ST_OK;
    }
    /* Become the commit leader so no write runs during the switch. */
    struct db_writer w = {0};
    pthread_cond_init(&w.cv, NULL);
    atomic_init(&w.state, DB_WRITER_QUEUED);
    if (db->q_tail != NULL)
        db->q_tail->next = &w;
    else
        db->q_head = &w;
    db->q_tail = &w;
    db->q_len++;
    if (db->q_head != &w) {
        pthread_mutex_unlock(&db->mu);
        db_writer_wait(&w);
        pthread_mutex_lock(&db->mu);
    }
    while (db->imm != NULL && db->bg_error == ST_OK && !db->shutting_down)
        pthread_cond_wait(&db->done_cv, &db->mu);
    st = db->bg_error != ST_OK ? db->bg_error
         : db->shutting_down   ? ST_CLOSED
                               : db_switch_memtable_locked(db);
    uint64_t target = db->flushes_done + 1; /* the next flush is of our switch */
    /* Leave the queue. */
    db->q_head = w.next;
    db->q_len--;
    if (db->q_head == NULL)
        db->q_tail = NULL;
    else
        db_writer_wake(db->q_head, DB_WRITER_LEAD);
    while (st == ST_OK && db->flushes_done < target && db->bg_error == ST_OK && !db->shutting_down)
        pthread_cond_wait(&db->done_cv, &db->mu);
    if (st == ST_OK && db->flushes_done < target)
        st = db->bg_error != ST_OK ? db->bg_error : ST_CLOSED;
    pthread_mutex_unlock(&db->mu);
    pthread_cond_destroy(&w.cv);
    return st;
}

enum st_status lsm_compact_all(struct lsm_db *db)
{
    enum st_status st = lsm_flush(db);
    if (st != ST_OK)
        return st;
    pthread_mutex_lock(&db->mu);
    while (db->manual_full != 0 && !db->shutting_down)
        pthread_cond_wait(&db->done_cv, &db->mu);
    uint64_t target = db->manual_done + 1;
    db->manual_full = 1;
    pthread_cond_broadcast(&db->bg_cv);
    while (db->manual_done < target)
        pthread_cond_wait(&db->done_cv, &db->mu);
    st = db->manual_status;
    pthread_mutex_unlock(&db->mu);
    return st;
}

void lsm_stats(struct lsm_db *db, struct lsm_stats *s)
{
    memset(s, 0, sizeof(*s));
    struct version *v = vset_current(db->vs);
    uint64_t total = 0, last = 0;
    for (int l = 0; l < LSM_MAX_LEVELS; l++) {
        s->level_files[l] = v->nfiles[l];
        s->level_bytes[l] = version_level_bytes(v, l);
        for (size_t i = 0; i < v->nfiles[l]; i++)
            s->table_records += v->files[l][i]->records;
        total += s->level_bytes[l];
        if (l > 0 && s->level_bytes[l] > last)
            last = s->level_bytes[l];
    }
    /* Space amplification: all table bytes over the largest sorted run
     * (leveled: the largest level below L0 — not the deepest, which may
     * have only begun to fill; tiered, or nothing below L0: the largest
     * L0 run), a lower bound of what a full compaction would leave. */
    if (last == 0) {
        last = 0;
        for (size_t i = 0; i < v->nfiles[0]; i++)
            if (v->files[0][i]->size > last)
                last = v->files[0][i]->size;
    }
    /* Pending: bytes over target per level, plus L0 beyond its trigger. */
    uint64_t target = db->opts.l1_target_size;
    if (v->nfiles[0] >= db->opts.l0_compaction_trigger)
        s->pending_compaction_bytes += s->level_bytes[0];
    for (int l = 1; l < LSM_MAX_LEVELS - 1; l++) {
        if (s->level_bytes[l] > target)
            s->pending_compaction_bytes += s->level_bytes[l] - target;
        target *= db->opts.level_multiplier;
    }
    version_unref(&v);
    pthread_mutex_lock(&db->mu);
    s->memtable_bytes = memtable_bytes(db->mem) + (db->imm != NULL ? memtable_bytes(db->imm) : 0);
    s->read_only = atomic_load(&db->read_only);
    s->bg_error = db->bg_error;
    pthread_mutex_unlock(&db->mu);
#define LD(x) atomic_load_explicit(&db->st.x, memory_order_relaxed)
    s->user_bytes_written = LD(user_bytes);
    s->wal_bytes_written = LD(wal_bytes);
    s->flush_bytes_written = LD(flush_bytes);
    s->compaction_bytes_read = LD(compaction_read);
    s->compaction_bytes_written = LD(compaction_written);
    s->puts = LD(puts);
    s->deletes = LD(deletes);
    s->gets = LD(gets);
    s->gets_past_first_hit = LD(gets_past_first_hit);
    s->gets_newer_below = LD(gets_newer_below);
    s->wal_syncs = LD(wal_syncs);
    s->group_commits = LD(group_commits);
    s->flushes = LD(flushes);
    s->compactions = LD(compactions);
    s->stall_slowdowns = LD(stall_slowdowns);
    s->stall_stops = LD(stall_stops);
    s->stall_micros = LD(stall_micros);
#undef LD
    s->write_amplification = s->user_bytes_written
                                 ? (double)(s->wal_bytes_written + s->flush_bytes_written +
                                            s->compaction_bytes_written) /
                                       (double)s->user_bytes_written
                                 : 0.0;
    s->space_amplification = last ? (double)total / (double)last : 0.0;
    bcache_counters(db->bc, &s->block_cache_hits, &s->block_cache_misses);
    s->block_cache_bytes = bcache_bytes(db->bc);
    s->bloom_useful = atomic_load_explicit(&db->counters.bloom_useful, memory_order_relaxed);
    s->table_cache_opens = tcache_opens(db->tc);
}
