/*
 * db_write.c - the write path: validation, group commit, memtable
 * switching, write stalls and batches. Writes are blind: nothing here reads
 * a stored version; versions resolve on read and in compaction. Called
 * from any user thread; see db_int.h for the lock order.
 *
 *   put/delete/write ──► validate ──► encode batch ──► queue
 *     ──► leader: make room (stall/switch) ──► take the queued group,
 *         its ticket and sequence numbers ──► WAL append
 *     ──► hand the queue to the next leader (its append overlaps our sync)
 *     ──► fdatasync (one covers every group appended before it)
 *     ──► memtable insert, in ticket order ──► wake the group
 *
 * WAL batch payload (inside one logfile record; docs/formats/wal.md):
 *   varint count, then count times:
 *     varint ikey length, internal key (ikey.h),
 *     varint rval length, record value (ikey.h)
 */
#include <errno.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"
#include "storage/db_int.h"
#include "storage/ikey.h"
#include "storage/killpoint.h"

#define GROUP_MAX_BYTES (1u << 20)

/* ---------------------------------------------------------- batch codec */

enum st_status db_batch_encode(const struct wentry *e, size_t n, struct buf *out)
{
    enum st_status st = buf_append_varint(out, n);
    for (size_t i = 0; i < n && st == ST_OK; i++) {
        size_t klen = e[i].key_len + IKEY_OVERHEAD;
        size_t vlen = RVAL_HEADER + e[i].value_len;
        if ((st = buf_reserve(out, 20 + klen + vlen)) != ST_OK)
            break;
        buf_append_varint(out, klen);
        ikey_encode(out->data + out->len, e[i].token, e[i].key, e[i].key_len, e[i].version);
        out->len += klen;
        buf_append_varint(out, vlen);
        rval_encode_header(out->data + out->len, e[i].tombstone ? RVAL_TOMBSTONE : RVAL_PUT,
                           e[i].flags, e[i].expiry);
        out->len += RVAL_HEADER;
        buf_append(out, e[i].value, e[i].value_len);
    }
    return st;
}

enum st_status db_batch_replay(struct memtable *m, const uint8_t *p, size_t len, uint64_t *seq)
{
    const uint8_t *end = p + len;
    uint64_t count;
    if (!dec_varint(&p, end, &count))
        return ST_CORRUPT;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t kl, vl;
        struct ikey k;
        enum rval_kind kind;
        uint32_t flags;
        uint64_t expiry;
        const uint8_t *v;
        size_t vlen;
        if (!dec_varint(&p, end, &kl) || kl > (uint64_t)(end - p) || kl > IKEY_MAX_LEN ||
            !ikey_decode(p, (size_t)kl, &k))
            return ST_CORRUPT;
        const uint8_t *kp = p;
        p += kl;
        if (!dec_varint(&p, end, &vl) || vl > (uint64_t)(end - p) ||
            !rval_decode(p, (size_t)vl, &kind, &flags, &expiry, &v, &vlen))
            return ST_CORRUPT;
        enum st_status st = memtable_add(m, ++*seq, kp, (size_t)kl, p, (size_t)vl);
        if (st != ST_OK)
            return st;
        p += vl;
    }
    return p == end ? ST_OK : ST_CORRUPT;
}

/* ------------------------------------------------------------------ WAL */

enum st_status db_wal_open_locked(struct lsm_db *db, uint64_t number)
{
    char path[FILENAME_MAX_PATH];
    filename_path(path, db->dir, FILENAME_WAL, number);
    struct logfile_writer *w = NULL;
    enum st_status st = logfile_writer_create(db->env, path, LOGFILE_MAGIC_WAL, number, &w);
    /* The header too: a segment that gets no record before the next
     * rotation is never synced again, and recovery must find it whole. */
    if (st == ST_OK)
        st = logfile_writer_sync(w);
    if (st == ST_OK)
        st = db->env->sync_dir(db->env, db->dir);
    if (st != ST_OK) {
        log_error("storage: cannot create WAL segment %s: %s", path, strerror(errno));
        logfile_writer_destroy(&w);
        return st;
    }
    logfile_writer_destroy(&db->wal);
    db->wal = w;
    db->wal_number = number;
    db->wal_synced = db->wal_appended; /* the old segment was synced */
    db->wal_dirty = false;
    db->writes_since_sync = 0;
    db->last_sync_ms = db_monotonic_ms();
    return ST_OK;
}

void db_wal_sync_if_dirty(struct lsm_db *db)
{
    db_wal_sync_if_due(db, 0);
}

/*
 * Syncs the WAL through ticket `through` (0: whatever is appended, if the
 * last sync is min_age_ms old). db->sync_mu is held across the fdatasync,
 * db->wal_mu only around the bookkeeping, so groups keep appending while
 * it runs; one fdatasync covers every group appended before it started.
 * The segment cannot change meanwhile: rotation takes sync_mu too.
 */
static enum st_status wal_sync(struct lsm_db *db, uint64_t through, uint64_t min_age_ms)
{
    pthread_mutex_lock(&db->sync_mu);
    pthread_mutex_lock(&db->wal_mu);
    bool need = through > 0 ? db->wal_synced < through
                            : db->wal != NULL && db->wal_dirty &&
                                  db_monotonic_ms() - db->last_sync_ms >= min_age_ms;
    uint64_t target = db->wal_appended;
    struct logfile_writer *wal = db->wal;
    pthread_mutex_unlock(&db->wal_mu);
    enum st_status st = ST_OK;
    int err = 0;
    if (need) {
        st = logfile_writer_sync(wal);
        err = errno;
        pthread_mutex_lock(&db->wal_mu);
        if (st == ST_OK) {
            db->wal_synced = target;
            if (db->wal_appended == target)
                db->wal_dirty = false;
            db->writes_since_sync = 0;
            db->last_sync_ms = db_monotonic_ms();
            atomic_fetch_add_explicit(&db->st.wal_syncs, 1, memory_order_relaxed);
        }
        pthread_mutex_unlock(&db->wal_mu);
    }
    pthread_mutex_unlock(&db->sync_mu);
    if (st != ST_OK) {
        log_error("storage: WAL fdatasync failed: %s; engine is now read-only", strerror(err));
        pthread_mutex_lock(&db->mu);
        db_set_bg_error_locked(db, st, "WAL sync");
        pthread_mutex_unlock(&db->mu);
    } else if (need) {
        KILL_POINT("wal.after_sync");
    }
    return st;
}

void db_wal_sync_if_due(struct lsm_db *db, uint64_t min_age_ms)
{
    wal_sync(db, 0, min_age_ms);
}

enum st_status lsm_sync(struct lsm_db *db)
{
    pthread_mutex_lock(&db->wal_mu);
    uint64_t through = db->wal_appended;
    pthread_mutex_unlock(&db->wal_mu);
    /* a sync that started after our writes were appended covers them */
    return through == 0 ? ST_OK : wal_sync(db, through, 0);
}

static enum st_status wal_segs_push_locked(struct lsm_db *db, uint64_t n)
{
    if (db->nwal_segs == db->wal_segs_cap) {
        size_t ncap = db->wal_segs_cap ? db->wal_segs_cap * 2 : 8;
        uint64_t *a = mem_realloc(MEM_STORAGE, db->wal_segs, db->wal_segs_cap * sizeof(uint64_t),
                                  ncap * sizeof(uint64_t));
        if (a == NULL)
            return ST_NOMEM;
        db->wal_segs = a;
        db->wal_segs_cap = ncap;
    }
    db->wal_segs[db->nwal_segs++] = n;
    return ST_OK;
}

void db_drain_commits_locked(struct lsm_db *db)
{
    while (db->groups_done != db->tickets)
        pthread_cond_wait(&db->pipe_cv, &db->mu);
}

/* Closes the current segment (synced: only the newest segment may have a
 * torn tail) and starts a new one. REQUIRES: db->mu held, caller is the
 * commit leader (or no writer runs). */
static enum st_status wal_rotate_locked(struct lsm_db *db, uint64_t *number)
{
    db_drain_commits_locked(db);
    uint64_t n = vset_new_file_number(db->vs);
    enum st_status st = wal_segs_push_locked(db, n);
    if (st != ST_OK)
        return st;
    pthread_mutex_lock(&db->sync_mu);
    pthread_mutex_lock(&db->wal_mu);
    if (db->wal != NULL && db->wal_dirty) {
        st = logfile_writer_sync(db->wal);
        if (st == ST_OK)
            atomic_fetch_add_explicit(&db->st.wal_syncs, 1, memory_order_relaxed);
        else
            log_error("storage: WAL fdatasync before rotation failed: %s", strerror(errno));
    }
    if (st == ST_OK)
        st = db_wal_open_locked(db, n);
    pthread_mutex_unlock(&db->wal_mu);
    pthread_mutex_unlock(&db->sync_mu);
    if (st != ST_OK) {
        db->nwal_segs--;
        db_set_bg_error_locked(db, st, "WAL rotation");
        return st;
    }
    *number = n;
    return ST_OK;
}

/* --------------------------------------------------------- make room */

enum st_status db_switch_memtable_locked(struct lsm_db *db)
{
    struct memtable *fresh = NULL;
    enum st_status st = memtable_create(db->opts.memtable_size, &fresh);
    if (st != ST_OK)
        return st;
    uint64_t n;
    if ((st = wal_rotate_locked(db, &n)) != ST_OK) {
        memtable_unref(&fresh);
        return st;
    }
    db->imm = db->mem;
    db->imm_next_log = n;
    db->mem = fresh;
    db->mem_log_number = n;
    pthread_cond_broadcast(&db->bg_cv);
    return ST_OK;
}

static size_t l0_files(struct lsm_db *db)
{
    struct version *v = vset_current(db->vs);
    size_t n = v->nfiles[0];
    version_unref(&v);
    return n;
}

static void timed_wait_locked(struct lsm_db *db, uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    ts.tv_sec += (time_t)(ms / 1000) + ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&db->done_cv, &db->mu, &ts);
}

/*
 * Ensures the memtable has room, stalling or switching as needed.
 * REQUIRES: db->mu held by the commit leader.
 */
static enum st_status make_room_locked(struct lsm_db *db)
{
    bool slowed = false;
    for (;;) {
        if (db->bg_error != ST_OK)
            return db->bg_error;
        if (db->shutting_down)
            return ST_CLOSED;
        size_t l0 = l0_files(db);
        size_t slow = db->opts.l0_slowdown_trigger;
        size_t stop = db->opts.l0_stop_trigger;
        if (db->opts.compaction_style == LSM_COMPACTION_TIERED) {
            /* Runs are expected in L0: count only those past the cap. */
            slow = db->opts.tiered_max_runs +
                   (db->opts.l0_slowdown_trigger - db->opts.l0_compaction_trigger);
            stop = db->opts.tiered_max_runs +
                   (db->opts.l0_stop_trigger - db->opts.l0_compaction_trigger);
        }
        if (!slowed && l0 >= slow) {
            /* Give compaction some room, once per write. */
            pthread_mutex_unlock(&db->mu);
            usleep(1000);
            pthread_mutex_lock(&db->mu);
            slowed = true;
            atomic_fetch_add_explicit(&db->st.stall_slowdowns, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&db->st.stall_micros, 1000, memory_order_relaxed);
            continue;
        }
        if (memtable_bytes(db->mem) < db->opts.memtable_size || memtable_count(db->mem) == 0) {
            if (db->wal != NULL && logfile_writer_size(db->wal) >= db->opts.wal_segment_size) {
                uint64_t n;
                return wal_rotate_locked(db, &n);
            }
            return ST_OK;
        }
        if (db->imm != NULL || l0 >= stop) {
            uint64_t t0 = db_monotonic_ms();
            atomic_fetch_add_explicit(&db->st.stall_stops, 1, memory_order_relaxed);
            pthread_cond_broadcast(&db->bg_cv);
            timed_wait_locked(db, 100);
            atomic_fetch_add_explicit(&db->st.stall_micros, (db_monotonic_ms() - t0) * 1000,
                                      memory_order_relaxed);
            continue;
        }
        enum st_status st = db_switch_memtable_locked(db);
        if (st != ST_OK)
            return st;
    }
}

/* ------------------------------------------------------ group commit */

static uint64_t monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/*
 * With synced commits, a leader that cannot sync yet (an earlier group's
 * fdatasync is still running) loses nothing by waiting for more writers:
 * it waits until the queue is as long as the last group was or the
 * earlier groups are done, then for a moment longer (writers released by
 * the last group come back a few microseconds after it ends), so one
 * fdatasync covers as many writers as possible.
 * REQUIRES: db->mu held by the leader w.
 */
#define GROUP_WAIT_US 200u
#define GROUP_WAIT_MAX_US 2000u

static void wait_for_followers_locked(struct lsm_db *db, struct db_writer *w)
{
    if (db->opts.sync_mode != LSM_SYNC_ALWAYS || db->last_group_size <= 1)
        return;
    uint64_t start = monotonic_us();
    bool busy = db->groups_done != db->tickets;
    if (!busy && start - db->last_group_end_us > 1000)
        return;
    db->leader_waiting = w;
    db->leader_wants = db->last_group_size;
    for (;;) {
        size_t queued = db->q_len;
        uint64_t now = monotonic_us();
        busy = db->groups_done != db->tickets;
        uint64_t deadline = start + GROUP_WAIT_MAX_US;
        if (!busy && db->last_group_end_us + GROUP_WAIT_US < deadline)
            deadline = db->last_group_end_us + GROUP_WAIT_US;
        if (queued >= db->last_group_size || now >= deadline)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)(deadline - now) * 1000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&w->cv, &db->mu, &ts);
    }
    db->leader_waiting = NULL;
}

/*
 * Appends the group's records to the WAL as one write; says whether the
 * group must be synced before it is acknowledged. ST_IO.
 */
static enum st_status wal_append_group(struct lsm_db *db, const struct buf *src, size_t writers,
                                       uint64_t ticket, bool *sync)
{
    pthread_mutex_lock(&db->wal_mu);
    KILL_POINT("wal.before_append");
    enum st_status st = logfile_writer_append(db->wal, src->data, src->len);
    int err = errno;
    *sync = false;
    if (st == ST_OK) {
        KILL_POINT("wal.after_append");
        db->wal_appended = ticket;
        db->wal_dirty = true;
        db->writes_since_sync += (uint32_t)writers;
        *sync = db->opts.sync_mode == LSM_SYNC_ALWAYS;
        if (db->opts.sync_mode == LSM_SYNC_INTERVAL)
            *sync = db->writes_since_sync >= db->opts.sync_interval_writes ||
                    db_monotonic_ms() - db->last_sync_ms >= db->opts.sync_interval_ms;
    }
    pthread_mutex_unlock(&db->wal_mu);
    if (st != ST_OK)
        log_error("storage: WAL write failed: %s; engine is now read-only", strerror(err));
    return st;
}

/*
 * Runs one commit group as leader. REQUIRES: db->mu held, w at the queue
 * head. Returns with db->mu held and every group member done; the queue
 * was handed to the next leader as soon as the group's WAL append was
 * done, so the next group appends while this one syncs and inserts.
 */
static void lead_group_locked(struct lsm_db *db, struct db_writer *w)
{
    enum st_status st = make_room_locked(db);
    if (st == ST_OK)
        wait_for_followers_locked(db, w);
    struct db_writer *last = w;
    size_t bytes = w->payload.len, count = 1, records = w->n;
    if (st == ST_OK) {
        /* An empty payload is lsm_flush holding its place: stop there. */
        while (last->next != NULL && last->next->payload.len > 0 &&
               bytes + last->next->payload.len <= GROUP_MAX_BYTES) {
            last = last->next;
            bytes += last->payload.len;
            records += last->n;
            count++;
        }
    }
    struct memtable *m = db->mem;
    memtable_ref(m);
    uint64_t seq = db->seq_alloc;
    db->seq_alloc += records;
    uint64_t ticket = ++db->tickets;
    pthread_mutex_unlock(&db->mu);

    struct buf group = {0};
    if (st == ST_OK && count > 1) {
        st = buf_reserve(&group, bytes);
        for (struct db_writer *x = w; st == ST_OK; x = x->next) {
            buf_append(&group, x->payload.data, x->payload.len);
            if (x == last)
                break;
        }
    }
    bool sync = false;
    if (st == ST_OK)
        st = wal_append_group(db, count > 1 ? &group : &w->payload, count, ticket, &sync);
    buf_deinit(&group);

    /* Hand the queue on: the next group appends while this one syncs. */
    pthread_mutex_lock(&db->mu);
    db->q_head = last->next;
    db->q_len -= count;
    if (db->q_head == NULL)
        db->q_tail = NULL;
    else
        db_writer_wake(db->q_head, DB_WRITER_LEAD);
    db->last_group_size = (uint32_t)count;
    pthread_mutex_unlock(&db->mu);

    if (st == ST_OK && sync)
        st = wal_sync(db, ticket, 0);

    /* Inserts in ticket order; after a failure, no later group is acked
     * either (its record follows one that may not be durable). */
    pthread_mutex_lock(&db->mu);
    while (db->groups_done != ticket - 1)
        pthread_cond_wait(&db->pipe_cv, &db->mu);
    if (st == ST_OK && db->bg_error != ST_OK)
        st = db->bg_error;
    pthread_mutex_unlock(&db->mu);
    if (st == ST_OK) {
        atomic_fetch_add_explicit(&db->st.wal_bytes, bytes, memory_order_relaxed);
        atomic_fetch_add_explicit(&db->st.group_commits, 1, memory_order_relaxed);
        for (struct db_writer *x = w; st == ST_OK; x = x->next) {
            st = db_batch_replay(m, x->payload.data + LOGFILE_RECORD_HEADER,
                                 x->payload.len - LOGFILE_RECORD_HEADER, &seq);
            if (x == last)
                break;
        }
    }
    memtable_unref(&m);

    pthread_mutex_lock(&db->mu);
    if (st != ST_OK && st != ST_CLOSED)
        db_set_bg_error_locked(db, st, "write");
    else if (st == ST_OK)
        atomic_store(&db->last_seq, seq);
    db->groups_done = ticket;
    pthread_cond_broadcast(&db->pipe_cv);
    if (db->leader_waiting != NULL)
        pthread_cond_signal(&db->leader_waiting->cv);
    db->last_group_end_us = monotonic_us();
    /* Wake the group without db->mu: each member returns at once instead
     * of queueing for the mutex behind the others. */
    pthread_mutex_unlock(&db->mu);
    w->status = st;
    for (struct db_writer *x = w->next, *end = last->next; x != end;) {
        struct db_writer *next = x->next; /* read first: x is gone once woken */
        x->status = st;
        db_writer_wake(x, DB_WRITER_DONE);
        x = next;
    }
    pthread_mutex_lock(&db->mu);
}

void db_writer_wake(struct db_writer *w, uint32_t state)
{
    atomic_store_explicit(&w->state, state, memory_order_release);
    /* A private futex wake only hashes the address: harmless if w's owner
     * saw the state first and already returned. */
    syscall(SYS_futex, &w->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

uint32_t db_writer_wait(struct db_writer *w)
{
    uint32_t s;
    while ((s = atomic_load_explicit(&w->state, memory_order_acquire)) == DB_WRITER_QUEUED)
        syscall(SYS_futex, &w->state, FUTEX_WAIT_PRIVATE, DB_WRITER_QUEUED, NULL, NULL, 0);
    return s;
}

/* Queues w and returns its commit status. */
static enum st_status commit(struct lsm_db *db, struct db_writer *w)
{
    pthread_cond_init(&w->cv, NULL);
    w->next = NULL;
    atomic_init(&w->state, DB_WRITER_QUEUED);
    pthread_mutex_lock(&db->mu);
    if (db->q_tail != NULL)
        db->q_tail->next = w;
    else
        db->q_head = w;
    db->q_tail = w;
    /* Wake a gathering leader only once its group is complete: each
     * wake-up is a context switch the arriving writers pay for too. */
    if (++db->q_len >= db->leader_wants && db->leader_waiting != NULL)
        pthread_cond_signal(&db->leader_waiting->cv);
    bool lead = db->q_head == w;
    pthread_mutex_unlock(&db->mu);
    if (lead || db_writer_wait(w) == DB_WRITER_LEAD) {
        pthread_mutex_lock(&db->mu);
        lead_group_locked(db, w);
        pthread_mutex_unlock(&db->mu);
    }
    pthread_cond_destroy(&w->cv);
    return w->status;
}

/* ------------------------------------------------------ entry points */

/* Logs and commits the entries as one WAL record, without reading
 * anything: the versions resolve on read. */
static enum st_status write_entries(struct lsm_db *db, const struct wentry *e, size_t n)
{
    if (n == 0)
        return ST_OK;
    if (atomic_load(&db->read_only))
        return db->bg_error != ST_OK ? db->bg_error : ST_IO;
    uint64_t user_bytes = 0;
    for (size_t i = 0; i < n; i++)
        user_bytes += e[i].key_len + e[i].value_len;
    struct db_writer w = {0};
    w.n = n;
    enum st_status st = buf_reserve(&w.payload, LOGFILE_RECORD_HEADER + 24 * n + user_bytes);
    if (st == ST_OK) {
        w.payload.len = LOGFILE_RECORD_HEADER;
        st = db_batch_encode(e, n, &w.payload);
    }
    if (st == ST_OK && w.payload.len - LOGFILE_RECORD_HEADER > LOGFILE_MAX_RECORD)
        st = ST_INVAL;
    if (st == ST_OK) {
        logfile_frame_inplace(w.payload.data, w.payload.len - LOGFILE_RECORD_HEADER);
        st = commit(db, &w);
    }
    buf_deinit(&w.payload);
    if (st == ST_OK)
        atomic_fetch_add_explicit(&db->st.user_bytes, user_bytes, memory_order_relaxed);
    return st;
}

static enum st_status check_key(const void *key, size_t key_len)
{
    return key != NULL && key_len > 0 && key_len <= LSM_MAX_KEY_LEN ? ST_OK : ST_INVAL;
}

enum st_status lsm_put(struct lsm_db *db, const struct lsm_record *rec)
{
    if (rec->tombstone || check_key(rec->key, rec->key_len) != ST_OK ||
        rec->value_len > db->opts.max_value_len || (rec->value == NULL && rec->value_len > 0))
        return ST_INVAL;
    struct wentry e = {
        .token = lsm_token(rec->key, rec->key_len),
        .key = rec->key,
        .key_len = rec->key_len,
        .value = rec->value,
        .value_len = rec->value_len,
        .flags = rec->flags,
        .expiry = rec->expiry,
        .version = rec->version,
    };
    enum st_status st = write_entries(db, &e, 1);
    atomic_fetch_add_explicit(&db->st.puts, 1, memory_order_relaxed);
    return st;
}

enum st_status lsm_delete(struct lsm_db *db, const void *key, size_t key_len,
                          struct lsm_version version, uint64_t deleted_at)
{
    if (check_key(key, key_len) != ST_OK)
        return ST_INVAL;
    struct wentry e = {
        .token = lsm_token(key, key_len),
        .key = key,
        .key_len = key_len,
        .expiry = deleted_at ? deleted_at : db_now(db),
        .version = version,
        .tombstone = true,
    };
    enum st_status st = write_entries(db, &e, 1);
    atomic_fetch_add_explicit(&db->st.deletes, 1, memory_order_relaxed);
    return st;
}

/* ------------------------------------------------------------ batches */

struct lsm_batch {
    struct wentry *e;
    size_t n, cap;
    struct buf bytes; /* keys and values, referenced by offset until write */
};

enum st_status lsm_batch_create(struct lsm_batch **out)
{
    struct lsm_batch *b = mem_calloc(MEM_STORAGE, 1, sizeof(*b));
    if (b == NULL)
        return ST_NOMEM;
    *out = b;
    return ST_OK;
}

void lsm_batch_destroy(struct lsm_batch **bp)
{
    if (bp == NULL || *bp == NULL)
        return;
    struct lsm_batch *b = *bp;
    if (b->e != NULL)
        mem_free(MEM_STORAGE, b->e, b->cap * sizeof(*b->e));
    buf_deinit(&b->bytes);
    mem_free(MEM_STORAGE, b, sizeof(*b));
    *bp = NULL;
}

void lsm_batch_clear(struct lsm_batch *b)
{
    b->n = 0;
    b->bytes.len = 0;
}

static enum st_status batch_add(struct lsm_batch *b, const void *key, size_t key_len,
                                const void *value, size_t value_len, uint32_t flags,
                                uint64_t expiry, struct lsm_version v, bool tombstone)
{
    if (check_key(key, key_len) != ST_OK || value_len > LSM_MAX_VALUE_LEN_LIMIT ||
        (value == NULL && value_len > 0))
        return ST_INVAL;
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 16;
        struct wentry *ne =
            mem_realloc(MEM_STORAGE, b->e, b->cap * sizeof(*ne), ncap * sizeof(*ne));
        if (ne == NULL)
            return ST_NOMEM;
        b->e = ne;
        b->cap = ncap;
    }
    size_t off = b->bytes.len;
    enum st_status st = buf_append(&b->bytes, key, key_len);
    if (st == ST_OK)
        st = buf_append(&b->bytes, value, value_len);
    if (st != ST_OK) {
        b->bytes.len = off;
        return st;
    }
    /* Offsets now; pointers are fixed up by lsm_write (bytes may move). */
    b->e[b->n] = (struct wentry){
        .token = lsm_token(key, key_len),
        .key = (const uint8_t *)(uintptr_t)off,
        .key_len = key_len,
        .value = (const uint8_t *)(uintptr_t)(off + key_len),
        .value_len = value_len,
        .flags = flags,
        .expiry = expiry,
        .version = v,
        .tombstone = tombstone,
    };
    b->n++;
    return ST_OK;
}

enum st_status lsm_batch_put(struct lsm_batch *b, const struct lsm_record *rec)
{
    if (rec->tombstone)
        return ST_INVAL;
    return batch_add(b, rec->key, rec->key_len, rec->value, rec->value_len, rec->flags, rec->expiry,
                     rec->version, false);
}

enum st_status lsm_batch_delete(struct lsm_batch *b, const void *key, size_t key_len,
                                struct lsm_version version, uint64_t deleted_at)
{
    return batch_add(b, key, key_len, NULL, 0, 0, deleted_at, version, true);
}

size_t lsm_batch_count(const struct lsm_batch *b)
{
    return b->n;
}

enum st_status lsm_write(struct lsm_db *db, struct lsm_batch *b)
{
    uint64_t now = db_now(db);
    for (size_t i = 0; i < b->n; i++) {
        if (b->e[i].value_len > db->opts.max_value_len)
            return ST_INVAL;
    }
    for (size_t i = 0; i < b->n; i++) {
        b->e[i].key = b->bytes.data + (uintptr_t)b->e[i].key;
        b->e[i].value = b->bytes.data + (uintptr_t)b->e[i].value;
        if (b->e[i].tombstone && b->e[i].expiry == 0)
            b->e[i].expiry = now;
    }
    enum st_status st = write_entries(db, b->e, b->n);
    /* Back to offsets so the batch stays reusable and clearable. */
    for (size_t i = 0; i < b->n; i++) {
        b->e[i].key = (const uint8_t *)(uintptr_t)(b->e[i].key - b->bytes.data);
        b->e[i].value = (const uint8_t *)(uintptr_t)(b->e[i].value - b->bytes.data);
    }
    return st;
}
