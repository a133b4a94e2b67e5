/*
 * compaction.c - the engine's two background threads: the flush thread
 * (immutable memtable -> L0 table, periodic WAL sync, obsolete file
 * deletion) and the compaction thread (leveled compaction, manual full
 * compaction). Both started by lsm_open and joined by lsm_close.
 *
 *   imm memtable ──► build L0 table ──► manifest edit (+ log number)
 *        ──► drop imm ──► delete WAL segments below the log number
 *   pick (L0 >= trigger | level bytes > target) ──► merge inputs
 *        ──► newest version per key, drop old tombstones / expired
 *        ──► output tables (split at target size, rate limited)
 *        ──► manifest edit (delete inputs, add outputs) ──► delete inputs
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"
#include "storage/db_int.h"
#include "storage/ikey.h"
#include "storage/killpoint.h"
#include "storage/sstable.h"

/* Tables rewritten soon are stored raw: compressing them was most of the
 * CPU of a write-heavy load (docs/STORAGE_BENCH.md). Data that has reached
 * the bottom stays, so it is compressed whatever its level; size-tiered
 * keeps every run in L0, so there only flushes count as "soon". */
bool compaction_stores_raw(const struct lsm_options *o, int level, bool flush, bool bottom)
{
    int from = o->compress_from_level;
    return from > 0 &&
           (flush || (o->compaction_style == LSM_COMPACTION_LEVELED && level < from && !bottom));
}

static struct sst_builder_opts builder_opts(const struct lsm_db *db, int level, bool flush,
                                            bool bottom)
{
    bool raw = compaction_stores_raw(&db->opts, level, flush, bottom);
    return (struct sst_builder_opts){
        .block_size = db->opts.block_size,
        .compression_level = raw ? 0 : db->opts.compression_level,
        .bloom_bits_per_key = db->opts.bloom_bits_per_key,
    };
}

static enum st_status add_output(struct lsm_db *db, struct version_edit *e, int level,
                                 const struct sst_info *info)
{
    enum st_status st = version_edit_add(
        e, db->vs, level, info->number, info->size, info->smallest, info->smallest_len,
        info->largest, info->largest_len, info->props.records, info->props.tombstones,
        info->props.earliest_expiry, info->props.raw_key_bytes + info->props.raw_value_bytes);
    if (st == ST_OK)
        st = version_edit_set_newest(e, info->number, info->props.max_version);
    return st == ST_OK ? version_edit_set_oldest(e, info->number, info->props.min_version) : st;
}

enum st_status compaction_build_l0(struct lsm_db *db, struct memtable *m, struct version_edit *e)
{
    struct memtable_iter it;
    memtable_iter_init(&it, m, UINT64_MAX);
    memtable_iter_seek_first(&it);
    if (!memtable_iter_valid(&it))
        return ST_OK;
    uint64_t number = vset_new_file_number(db->vs);
    struct sst_builder_opts o = builder_opts(db, 0, true, false);
    struct sst_builder *b = NULL;
    enum st_status st = sst_builder_create(db->env, db->dir, number, &o, &b);
    if (st != ST_OK)
        return st;
    const uint8_t *prev = NULL;
    size_t prev_len = 0;
    uint64_t count = 0;
    for (; memtable_iter_valid(&it); memtable_iter_next(&it)) {
        const uint8_t *k, *v;
        size_t kl, vl;
        memtable_iter_entry(&it, &k, &kl, &v, &vl);
        /* Newest version first: older ones of the same key are shadowed
         * (a snapshot needing them pins this memtable itself). */
        if (prev != NULL && ikey_same_user_key(prev, prev_len, k, kl))
            continue;
        prev = k;
        prev_len = kl;
        /* The flush thread is also the interval syncer: keep the period. */
        if ((++count & 4095) == 0 && db->opts.sync_mode == LSM_SYNC_INTERVAL)
            db_wal_sync_if_due(db, db->opts.sync_interval_ms);
        if ((st = sst_builder_add(b, k, kl, v, vl)) != ST_OK) {
            sst_builder_abandon(&b);
            return st;
        }
    }
    struct sst_info info;
    if ((st = sst_builder_finish(&b, &info)) != ST_OK)
        return st;
    atomic_fetch_add_explicit(&db->st.flush_bytes, info.size, memory_order_relaxed);
    return add_output(db, e, 0, &info);
}

void compaction_delete_obsolete(struct lsm_db *db)
{
    uint64_t *nums = NULL;
    size_t n = 0;
    vset_take_obsolete(db->vs, &nums, &n);
    char path[FILENAME_MAX_PATH];
    if (n > 0)
        KILL_POINT("delete.obsolete");
    for (size_t i = 0; i < n; i++) {
        tcache_evict(db->tc, nums[i]);
        bcache_erase_file(db->bc, nums[i]);
        filename_path(path, db->dir, FILENAME_SST, nums[i]);
        if (db->env->unlink(db->env, path) != ST_OK && errno != ENOENT)
            log_warn("storage: cannot delete %s: %s", path, strerror(errno));
    }
    if (nums != NULL)
        mem_free(MEM_STORAGE, nums, n * sizeof(uint64_t));

    /* WAL segments whose records are all in tables. */
    uint64_t log_number = vset_log_number(db->vs);
    uint64_t dead[64];
    size_t nd = 0;
    pthread_mutex_lock(&db->mu);
    while (db->nwal_segs > 0 && db->wal_segs[0] < log_number && nd < 64) {
        dead[nd++] = db->wal_segs[0];
        memmove(db->wal_segs, db->wal_segs + 1, (db->nwal_segs - 1) * sizeof(uint64_t));
        db->nwal_segs--;
    }
    pthread_mutex_unlock(&db->mu);
    for (size_t i = 0; i < nd; i++) {
        filename_path(path, db->dir, FILENAME_WAL, dead[i]);
        if (db->env->unlink(db->env, path) != ST_OK && errno != ENOENT)
            log_warn("storage: cannot delete %s: %s", path, strerror(errno));
    }
}

/* ------------------------------------------------------------- flush */

/* Flushes db->imm. REQUIRES: db->mu held (dropped during I/O). */
static void flush_imm_locked(struct lsm_db *db)
{
    struct memtable *imm = db->imm;
    uint64_t next_log = db->imm_next_log;
    memtable_ref(imm);
    pthread_mutex_unlock(&db->mu);

    struct version_edit e;
    version_edit_init(&e);
    enum st_status st = compaction_build_l0(db, imm, &e);
    if (st == ST_OK) {
        e.has_log_number = true;
        e.log_number = next_log;
        KILL_POINT("flush.before_install");
        st = vset_log_and_apply(db->vs, &e);
        if (st == ST_OK)
            KILL_POINT("flush.after_install");
    }
    if (st != ST_OK)
        version_edit_forget_added(&e);
    version_edit_deinit(&e);
    memtable_unref(&imm);

    pthread_mutex_lock(&db->mu);
    if (st == ST_OK) {
        memtable_unref(&db->imm);
        db->flushes_done++;
        atomic_fetch_add_explicit(&db->st.flushes, 1, memory_order_relaxed);
    } else {
        db_set_bg_error_locked(db, st, "flush");
    }
    pthread_cond_broadcast(&db->done_cv);
    pthread_cond_broadcast(&db->bg_cv); /* the compactor may have work */
    pthread_mutex_unlock(&db->mu);
    if (st == ST_OK)
        compaction_delete_obsolete(db);
    pthread_mutex_lock(&db->mu);
}

static void wait_bg_locked(struct lsm_db *db, uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    ts.tv_sec += (time_t)(ms / 1000) + ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&db->bg_cv, &db->mu, &ts);
}

void *compaction_flush_main(void *arg)
{
    struct lsm_db *db = arg;
    pthread_mutex_lock(&db->mu);
    while (!db->shutting_down) {
        if (db->imm != NULL && db->bg_error == ST_OK) {
            flush_imm_locked(db);
            continue;
        }
        uint64_t wait = db->opts.sync_mode == LSM_SYNC_INTERVAL ? db->opts.sync_interval_ms : 1000;
        wait_bg_locked(db, wait ? wait : 1);
        if (db->opts.sync_mode == LSM_SYNC_INTERVAL && db->bg_error == ST_OK) {
            pthread_mutex_unlock(&db->mu);
            db_wal_sync_if_dirty(db);
            pthread_mutex_lock(&db->mu);
        }
    }
    /* An in-flight flush completed above; a pending one waits for replay. */
    pthread_mutex_unlock(&db->mu);
    return NULL;
}

/* -------------------------------------------------------- compaction */

struct compaction {
    int level; /* inputs from level and level + 1 */
    int out_level;
    struct version *v;
    struct file_meta **in[2];
    size_t nin[2];
    bool full;   /* manual: every file of every level */
    bool tiered; /* size-tiered: L0 runs merged into one L0 run */
    /* Lowest HLC in the memtables when the inputs were picked: records
     * there may be older versions of keys the inputs hold. */
    uint64_t mem_min_hlc;
};

static uint64_t level_target(const struct lsm_db *db, int level)
{
    uint64_t t = db->opts.l1_target_size;
    for (int l = 1; l < level; l++)
        t *= db->opts.level_multiplier;
    return t;
}

/* Score of each level; the best >= 1 is compacted. */
static double level_score(const struct lsm_db *db, const struct version *v, int level)
{
    if (level == 0)
        return (double)v->nfiles[0] / db->opts.l0_compaction_trigger;
    return (double)version_level_bytes(v, level) / level_target(db, level);
}

static enum st_status push_file(struct file_meta ***arr, size_t *n, struct file_meta *m)
{
    struct file_meta **a = mem_realloc(MEM_STORAGE, *arr, *n * sizeof(*a), (*n + 1) * sizeof(*a));
    if (a == NULL)
        return ST_NOMEM;
    a[(*n)++] = m;
    *arr = a;
    return ST_OK;
}

static void compaction_free(struct compaction *c)
{
    for (int i = 0; i < 2; i++)
        if (c->in[i] != NULL)
            mem_free(MEM_STORAGE, c->in[i], c->nin[i] * sizeof(*c->in[i]));
    version_unref(&c->v);
}

/* User-key range [lo, hi] of a set of files. */
static void range_of(struct file_meta **f, size_t n, const uint8_t **lo, size_t *lol,
                     const uint8_t **hi, size_t *hil)
{
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || ikey_compare(f[i]->smallest, f[i]->smallest_len, *lo, *lol) < 0) {
            *lo = f[i]->smallest;
            *lol = f[i]->smallest_len;
        }
        if (i == 0 || ikey_compare(f[i]->largest, f[i]->largest_len, *hi, *hil) > 0) {
            *hi = f[i]->largest;
            *hil = f[i]->largest_len;
        }
    }
}

static int cmp_size(const void *a, const void *b)
{
    const struct file_meta *x = *(struct file_meta *const *)a;
    const struct file_meta *y = *(struct file_meta *const *)b;
    return x->size < y->size ? -1 : x->size > y->size;
}

/*
 * Size-tiered choice among the L0 runs: the first window (by ascending
 * size) of at least tiered_min_merge runs whose largest is within the size
 * ratio of its smallest, at most tiered_max_merge long; failing that, when
 * there are more than tiered_max_runs runs, the smallest ones.
 */
static bool pick_tiered(struct lsm_db *db, struct compaction *c)
{
    const struct version *v = c->v;
    size_t n = v->nfiles[0];
    const struct lsm_options *o = &db->opts;
    if (n < o->tiered_min_merge)
        return false;
    struct file_meta **by_size = mem_alloc(MEM_STORAGE, n * sizeof(struct file_meta *));
    if (by_size == NULL)
        return false;
    memcpy(by_size, v->files[0], n * sizeof(struct file_meta *));
    qsort(by_size, n, sizeof(*by_size), cmp_size);
    size_t start = 0, len = 0;
    for (size_t i = 0; i < n && len == 0; i++) {
        uint64_t cap = by_size[i]->size / 100 * o->tiered_size_ratio_pct +
                       by_size[i]->size % 100 * o->tiered_size_ratio_pct / 100;
        size_t j = i;
        while (j < n && j - i < o->tiered_max_merge && by_size[j]->size <= cap)
            j++;
        if (j - i >= o->tiered_min_merge) {
            start = i;
            len = j - i;
        }
    }
    if (len == 0 && n > o->tiered_max_runs) {
        len = n - o->tiered_max_runs + 1;
        if (len < o->tiered_min_merge)
            len = o->tiered_min_merge;
        if (len > o->tiered_max_merge)
            len = o->tiered_max_merge;
        start = 0;
    }
    bool ok = len > 0;
    for (size_t i = 0; i < len && ok; i++)
        ok = push_file(&c->in[0], &c->nin[0], by_size[start + i]) == ST_OK;
    mem_free(MEM_STORAGE, by_size, n * sizeof(struct file_meta *));
    c->level = 0;
    c->out_level = 0;
    c->tiered = true;
    return ok;
}

/* Chooses a compaction from the current version. REQUIRES: db->mu. */
static bool pick_locked(struct lsm_db *db, struct compaction *c)
{
    memset(c, 0, sizeof(*c));
    struct version *v = vset_current(db->vs);
    c->v = v;
    if (db->manual_full == 1) {
        int deepest = 1;
        for (int l = 1; l < LSM_MAX_LEVELS; l++)
            if (v->nfiles[l] > 0)
                deepest = l;
        c->full = true;
        c->level = 0;
        c->out_level = deepest;
        if (db->opts.compaction_style == LSM_COMPACTION_TIERED) {
            c->tiered = true; /* one run, in L0 */
            c->out_level = 0;
        }
        db->manual_full = 2;
        return true;
    }
    if (db->opts.compaction_style == LSM_COMPACTION_TIERED) {
        if (pick_tiered(db, c))
            return true;
        compaction_free(c);
        return false;
    }
    int best = -1;
    double best_score = 1.0;
    for (int l = 0; l < LSM_MAX_LEVELS - 1; l++) {
        double s = level_score(db, v, l);
        if (s >= best_score) {
            best_score = s;
            best = l;
        }
    }
    if (best < 0) {
        version_unref(&c->v);
        return false;
    }
    c->level = best;
    c->out_level = best + 1;
    if (best == 0) {
        for (size_t i = 0; i < v->nfiles[0]; i++)
            if (push_file(&c->in[0], &c->nin[0], v->files[0][i]) != ST_OK)
                goto fail;
    } else {
        /* Round robin: the first file after the last compacted key. */
        size_t i = 0;
        if (db->compact_ptr_len[best] > 0)
            while (i < v->nfiles[best] &&
                   ikey_compare(v->files[best][i]->largest, v->files[best][i]->largest_len,
                                db->compact_ptr[best], db->compact_ptr_len[best]) <= 0)
                i++;
        if (i >= v->nfiles[best])
            i = 0;
        struct file_meta *f = v->files[best][i];
        if (push_file(&c->in[0], &c->nin[0], f) != ST_OK)
            goto fail;
        memcpy(db->compact_ptr[best], f->largest, f->largest_len);
        db->compact_ptr_len[best] = f->largest_len;
    }
    const uint8_t *lo = NULL, *hi = NULL;
    size_t lol = 0, hil = 0;
    if (c->nin[0] == 0)
        goto fail;
    range_of(c->in[0], c->nin[0], &lo, &lol, &hi, &hil);
    int nl = c->out_level;
    for (size_t i = 0; i < v->nfiles[nl]; i++) {
        struct file_meta *f = v->files[nl][i];
        if (ikey_user_compare(f->largest, f->largest_len, lo, lol) >= 0 &&
            ikey_user_compare(f->smallest, f->smallest_len, hi, hil) <= 0 &&
            push_file(&c->in[1], &c->nin[1], f) != ST_OK)
            goto fail;
    }
    return true;
fail:
    compaction_free(c);
    return false;
}

/* Sleeps as needed to keep compaction writes under the MB/s cap. */
static void rate_limit(struct lsm_db *db, uint64_t written, uint64_t t0_ms)
{
    if (db->opts.compaction_rate_mb == 0)
        return;
    uint64_t rate = (uint64_t)db->opts.compaction_rate_mb << 20; /* B/s */
    uint64_t due_ms = written * 1000 / rate;
    uint64_t el = db_monotonic_ms() - t0_ms;
    if (due_ms > el)
        usleep((useconds_t)((due_ms - el) * 1000 > 100000 ? 100000 : (due_ms - el) * 1000));
}

static bool stopping(struct lsm_db *db)
{
    pthread_mutex_lock(&db->mu);
    bool s = db->shutting_down;
    pthread_mutex_unlock(&db->mu);
    return s;
}

static bool is_input(const struct file_meta *m, const void *arg)
{
    const struct compaction *c = arg;
    if (c->full)
        return true;
    for (int side = 0; side < 2; side++)
        for (size_t j = 0; j < c->nin[side]; j++)
            if (c->in[side][j] == m)
                return true;
    return false;
}

/*
 * Whether a version of the key older than or equal to `ver` may exist
 * outside the compaction's inputs: in another table (deeper, or shallower:
 * writes are blind, so an old version may arrive after a newer one was
 * compacted down) or in a memtable. Then a tombstone or an expired record
 * at `ver` must be kept to go on shadowing it.
 */
static bool older_outside(const struct compaction *c, const uint8_t *k, size_t kl,
                          struct lsm_version ver)
{
    if (c->mem_min_hlc <= ver.hlc)
        return true;
    return !c->full && version_older_outside(c->v, is_input, c, k, kl, ver);
}

/* Whether `t + grace <= now`, without overflow (t comes from clients). */
static bool aged(uint64_t t, uint64_t grace, uint64_t now)
{
    return now >= grace && t <= now - grace;
}

/* Runs compaction c: merge, write outputs, install. */
static enum st_status run_compaction(struct lsm_db *db, struct compaction *c)
{
    struct iter **its = NULL;
    size_t n = 0, cap = 0;
    struct iter *merged = NULL;
    enum st_status st = ST_OK;
    struct version_edit e;
    version_edit_init(&e);
    if (c->full) {
        /* Every file, through the same iterators a reader uses. */
        st = version_add_iters(c->v, db->tc, &its, &n, &cap);
    } else {
        for (int side = 0; side < 2 && st == ST_OK; side++) {
            int lvl = side == 0 ? c->level : c->out_level;
            if (c->nin[side] == 0)
                continue;
            if (lvl == 0) {
                for (size_t i = 0; i < c->nin[side] && st == ST_OK; i++) {
                    struct sst_table *t = NULL;
                    struct iter *it = NULL;
                    if ((st = tcache_get(db->tc, c->in[side][i]->number, &t)) != ST_OK)
                        break;
                    st = sst_iter_create(t, &it);
                    sst_table_unref(&t);
                    if (st == ST_OK && n == cap) {
                        size_t ncap = cap ? cap * 2 : 8;
                        struct iter **a =
                            mem_realloc(MEM_STORAGE, its, cap * sizeof(*a), ncap * sizeof(*a));
                        if (a == NULL) {
                            iter_destroy(&it);
                            st = ST_NOMEM;
                            break;
                        }
                        its = a;
                        cap = ncap;
                    }
                    if (st == ST_OK)
                        its[n++] = it;
                }
            } else {
                struct iter *it = NULL;
                st = version_level_iter_create(c->v, c->in[side], c->nin[side], db->tc, &it);
                if (st == ST_OK && n == cap) {
                    size_t ncap = cap ? cap * 2 : 8;
                    struct iter **a =
                        mem_realloc(MEM_STORAGE, its, cap * sizeof(*a), ncap * sizeof(*a));
                    if (a == NULL) {
                        iter_destroy(&it);
                        st = ST_NOMEM;
                    } else {
                        its = a;
                        cap = ncap;
                    }
                }
                if (st == ST_OK)
                    its[n++] = it;
            }
        }
    }
    if (st != ST_OK) {
        for (size_t i = 0; i < n; i++)
            iter_destroy(&its[i]);
        if (its != NULL)
            mem_free(MEM_STORAGE, its, cap * sizeof(*its));
        version_edit_deinit(&e);
        return st;
    }
    if (cap != n) {
        struct iter **a =
            n ? mem_realloc(MEM_STORAGE, its, cap * sizeof(*a), n * sizeof(*a)) : NULL;
        if (n == 0 && its != NULL)
            mem_free(MEM_STORAGE, its, cap * sizeof(*its));
        if (n > 0 && a == NULL) {
            for (size_t i = 0; i < n; i++)
                iter_destroy(&its[i]);
            mem_free(MEM_STORAGE, its, cap * sizeof(*its));
            version_edit_deinit(&e);
            return ST_NOMEM;
        }
        its = a;
    }
    if ((st = iter_merge_create(its, n, &merged)) != ST_OK) {
        version_edit_deinit(&e);
        return st;
    }

    uint64_t now = db_now(db);
    uint64_t t0 = db_monotonic_ms();
    uint64_t written = 0, read_bytes = 0;
    bool bottom = true;
    for (int l = c->out_level + 1; l < LSM_MAX_LEVELS; l++)
        bottom = bottom && c->v->nfiles[l] == 0;
    struct sst_builder_opts o = builder_opts(db, c->out_level, false, bottom);
    struct sst_builder *b = NULL;
    uint8_t prev[IKEY_MAX_LEN];
    size_t prev_len = 0;
    uint64_t count = 0;
    for (merged->ops->seek_first(merged); st == ST_OK && merged->ops->valid(merged);
         merged->ops->next(merged)) {
        const uint8_t *k, *v;
        size_t kl, vl;
        merged->ops->entry(merged, &k, &kl, &v, &vl);
        read_bytes += kl + vl;
        if ((++count & 1023) == 0) {
            if (stopping(db)) {
                st = ST_CLOSED;
                break;
            }
            rate_limit(db, written + (b ? sst_builder_size(b) : 0), t0);
        }
        if (prev_len > 0 && ikey_same_user_key(prev, prev_len, k, kl))
            continue; /* shadowed by the newer version just handled */
        memcpy(prev, k, kl);
        prev_len = kl;
        enum rval_kind kind;
        uint32_t flags;
        uint64_t expiry;
        const uint8_t *val;
        size_t val_len;
        if (!rval_decode(v, vl, &kind, &flags, &expiry, &val, &val_len)) {
            st = ST_CORRUPT;
            break;
        }
        /* Dropping needs nothing older below, or the older would return. */
        bool droppable =
            (kind == RVAL_TOMBSTONE && aged(expiry, db->opts.gc_grace_seconds, now)) ||
            (kind == RVAL_PUT && expiry != 0 && aged(expiry, db->opts.expired_grace_seconds, now));
        if (droppable) {
            struct ikey ik;
            if (!ikey_decode(k, kl, &ik)) {
                st = ST_CORRUPT;
                break;
            }
            if (!older_outside(c, k, kl, ik.version))
                continue;
        }
        if (b == NULL) {
            st = sst_builder_create(db->env, db->dir, vset_new_file_number(db->vs), &o, &b);
            if (st != ST_OK)
                break;
        }
        if ((st = sst_builder_add(b, k, kl, v, vl)) != ST_OK)
            break;
        /* A tiered run is one table; leveled outputs split at the target. */
        if (!c->tiered && sst_builder_size(b) >= db->opts.target_file_size) {
            struct sst_info info;
            if ((st = sst_builder_finish(&b, &info)) != ST_OK)
                break;
            written += info.size;
            if ((st = add_output(db, &e, c->out_level, &info)) != ST_OK)
                break;
        }
    }
    if (st == ST_OK)
        st = merged->ops->status(merged);
    iter_destroy(&merged);
    if (st == ST_OK && b != NULL) {
        struct sst_info info;
        if ((st = sst_builder_finish(&b, &info)) == ST_OK) {
            written += info.size;
            st = add_output(db, &e, c->out_level, &info);
        }
    }
    sst_builder_abandon(&b);
    if (st == ST_OK) {
        if (c->full) {
            for (int l = 0; l < LSM_MAX_LEVELS && st == ST_OK; l++)
                for (size_t i = 0; i < c->v->nfiles[l] && st == ST_OK; i++)
                    st = version_edit_delete(&e, l, c->v->files[l][i]->number);
        } else {
            for (size_t i = 0; i < c->nin[0] && st == ST_OK; i++)
                st = version_edit_delete(&e, c->level, c->in[0][i]->number);
            for (size_t i = 0; i < c->nin[1] && st == ST_OK; i++)
                st = version_edit_delete(&e, c->out_level, c->in[1][i]->number);
        }
    }
    bool logged = false;
    if (st == ST_OK) {
        KILL_POINT("compaction.before_install");
        st = vset_log_and_apply(db->vs, &e);
        logged = true;
        if (st == ST_OK)
            KILL_POINT("compaction.after_install");
    }
    if (st != ST_OK) {
        /* Outputs written but not installed. Before the manifest write they
         * are garbage (queued for deletion by deinit below); after a failed
         * one the edit may be durable, so they stay until the next open. */
        if (logged)
            version_edit_forget_added(&e);
    } else {
        atomic_fetch_add_explicit(&db->st.compaction_read, read_bytes, memory_order_relaxed);
        atomic_fetch_add_explicit(&db->st.compaction_written, written, memory_order_relaxed);
        atomic_fetch_add_explicit(&db->st.compactions, 1, memory_order_relaxed);
    }
    version_edit_deinit(&e);
    return st;
}

void *compaction_compact_main(void *arg)
{
    struct lsm_db *db = arg;
    pthread_mutex_lock(&db->mu);
    while (!db->shutting_down) {
        struct compaction c;
        if (db->bg_error != ST_OK || !pick_locked(db, &c)) {
            if (db->manual_full == 1 && db->bg_error != ST_OK) {
                db->manual_full = 0;
                db->manual_status = db->bg_error;
                db->manual_done++;
                pthread_cond_broadcast(&db->done_cv);
            }
            wait_bg_locked(db, 1000);
            continue;
        }
        /* With the inputs' version, under the same lock: every record is
         * in a table of c.v or in one of these memtables, or arrives later
         * (after any gc_grace that lets a tombstone go). */
        c.mem_min_hlc = UINT64_MAX;
        struct memtable *mts[2] = {db->mem, db->imm};
        for (int i = 0; i < 2; i++) {
            uint64_t lo, hi;
            if (mts[i] != NULL && memtable_hlc_bounds(mts[i], &lo, &hi) && lo < c.mem_min_hlc)
                c.mem_min_hlc = lo;
        }
        pthread_mutex_unlock(&db->mu);
        enum st_status st = run_compaction(db, &c);
        bool full = c.full;
        compaction_free(&c);
        if (st == ST_OK)
            compaction_delete_obsolete(db);
        pthread_mutex_lock(&db->mu);
        if (st != ST_OK && st != ST_CLOSED)
            db_set_bg_error_locked(db, st, "compaction");
        if (full) {
            db->manual_full = 0;
            db->manual_status = st;
            db->manual_done++;
        }
        pthread_cond_broadcast(&db->done_cv);
    }
    if (db->manual_full != 0) {
        db->manual_full = 0;
        db->manual_status = ST_CLOSED;
        db->manual_done++;
        pthread_cond_broadcast(&db->done_cv);
    }
    pthread_mutex_unlock(&db->mu);
    return NULL;
}
