/*
 * writebehind.c - write-behind's decide-journal-acknowledge path and its
 * drainer thread (see writebehind.h).
 *
 *   write:  (key lock) kvstore_rmw_via(read: journal, else backend;
 *           write: journal_put) ─► L1 ─► (unlock) ─► acknowledged
 *   drain:  scan the journal ─► (key lock) still pending at that version?
 *           ─► kvstore_apply (original version) ─► journal_drained
 *           ─► (unlock)
 *
 * backend = cluster: a write decides against the pending write, or else
 * the cluster's record, which the caller reads first (WB_NEED_READ); the
 * drainer sends each pending record as a COORD_WRITE at its policy's
 * write level from a loop of its own, and marks the group drained once
 * every write of it was acknowledged.
 *
 * Replays are idempotent: the backend keeps the highest version of a key,
 * so a write applied twice (a crash between apply and drained) or after a
 * newer one changes nothing.
 */
#include "proxy/writebehind.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mc_text.h"
#include "common/mem.h"
#include "kvstore/kvstore.h"
#include "proxy/cbackend.h"
#include "proxy/journal.h"
#include "proxy/settings.h"
#include "proxy/tiers_int.h"
#include "storage/include/lsm.h"

/* Backoff between drain passes that failed: doubling, within these. */
#define BACKOFF_MIN_MS 10u
#define BACKOFF_MAX_MS 1000u
/* An idle drainer looks again this often (and when woken). */
#define IDLE_WAIT_MS 100u

struct writebehind {
    struct tiers *t;
    struct journal *j;
    struct cbackend *cb;     /* backend = cluster: where the drainer writes */
    struct event_base *base; /* ... from this loop, the drainer's own */
    const char *pause_file;  /* tests: while it exists the backend "fails" */
    bool batched;            /* journal_sync = always: synced per batch */
    unsigned drain_timeout;  /* seconds SIGTERM drains */
    pthread_t thread;
    bool started;
    pthread_mutex_t lock; /* guards stop, wakes */
    pthread_cond_t wake;
    bool stop;
    uint64_t stop_deadline_ms; /* after stop: drain until then */
};

/* ------------------------------------------------------------ writes */

/* An RMW's records: the pending write first, else the backend's. */
struct wb_io {
    struct writebehind *wb;
    struct lsm_record *pending;     /* the key's pending write, owned; NULL: none */
    bool preloaded;                 /* pending was read already */
    const struct lsm_record *below; /* cluster: its record (NULL: none) */
    bool direct;                    /* overflow: write to the backend instead */
    bool full;                      /* the journal refused the write */
};

static enum st_status wb_read(void *arg, const void *key, size_t nkey, struct lsm_record **cur)
{
    struct wb_io *io = arg;
    *cur = NULL;
    if (!io->preloaded) {
        lsm_record_free(&io->pending);
        enum st_status st = journal_get(io->wb->j, key, nkey, &io->pending);
        if (st != ST_OK)
            return st;
    }
    io->preloaded = false; /* a retry (overflow) reads again */
    if (io->pending == NULL && io->wb->cb != NULL)
        return io->below != NULL ? lsm_record_copy(io->below, cur) : ST_OK;
    if (io->pending == NULL)
        return kvstore_read(io->wb->t->ks, key, nkey, cur);
    if (io->pending->tombstone)
        return ST_OK; /* a pending delete: nothing is live */
    if (io->pending->expiry != 0 && io->pending->expiry <= (uint64_t)clock_unix_now())
        return ST_OK; /* pending, but its TTL has passed */
    return lsm_record_copy(io->pending, cur);
}

static enum st_status wb_write(void *arg, const struct lsm_record *rec)
{
    struct wb_io *io = arg;
    if (!io->direct) {
        enum st_status st = journal_put(io->wb->j, rec, io->pending);
        io->full = st == ST_AGAIN;
        return st;
    }
    /* through to the backend; the older pending write must not be read
     * (or applied) in its place any more */
    enum st_status st = kvstore_apply(io->wb->t->ks, rec);
    if (st == ST_OK && io->pending != NULL)
        st = journal_drained(io->wb->j, io->pending);
    return st;
}

enum fe_result writebehind_rmw(struct writebehind *wb, const struct policy *pol,
                               const struct wire_rmw *q, struct wire_rmw_reply *reply,
                               struct lsm_record **written)
{
    struct wb_io io = {.wb = wb};
    struct kvstore_io kio = {.read = wb_read, .write = wb_write, .arg = &io};
    enum st_status st = kvstore_rmw_via(wb->t->ks, &kio, q, reply, written);
    if (st == ST_AGAIN && io.full) {
        if (pol->overflow == OVERFLOW_ERROR) {
            lsm_record_free(&io.pending);
            return FE_NO_MEMORY;
        }
        io.direct = true;
        io.full = false;
        st = kvstore_rmw_via(wb->t->ks, &kio, q, reply, written);
    }
    lsm_record_free(&io.pending);
    if (st == ST_OK)
        pthread_cond_signal(&wb->wake); /* a write to drain */
    return st == ST_OK ? FE_OK : FE_FAILED;
}

enum wb_step writebehind_rmw_cluster(struct writebehind *wb, const struct policy *pol,
                                     const struct wire_rmw *q, const struct wire_record *below,
                                     bool below_read, enum fe_result *r,
                                     struct wire_rmw_reply *reply, struct lsm_record **written)
{
    struct kvstore *ks = wb->t->ks;
    struct wb_io io = {.wb = wb, .preloaded = true};
    struct lsm_record below_rec;
    *r = FE_OK;
    if (below != NULL) {
        kvstore_lsm_of(below, &below_rec);
        io.below = &below_rec;
    }
    *written = NULL;
    kvstore_lock(ks, q->key, q->key_len);
    enum st_status st = journal_get(wb->j, q->key, q->key_len, &io.pending);
    enum wb_step step = WB_DONE;
    if (st == ST_OK && io.pending == NULL && !below_read && q->op != WIRE_RMW_SET) {
        step = WB_NEED_READ; /* decided against the cluster's record */
    } else if (st == ST_OK) {
        struct kvstore_io kio = {.read = wb_read, .write = wb_write, .arg = &io};
        st = kvstore_rmw_via(ks, &kio, q, reply, written);
        if (st == ST_AGAIN && io.full) {
            /* full: around the journal only for a key with nothing pending
             * (the cluster's primary decides then, as write-through) */
            if (pol->overflow == OVERFLOW_WRITE_THROUGH && io.pending == NULL)
                step = WB_WRITE_THROUGH;
            else
                *r = FE_NO_MEMORY;
        } else {
            *r = st == ST_OK ? FE_OK : FE_FAILED;
        }
    } else {
        *r = FE_FAILED;
    }
    kvstore_unlock(ks, q->key, q->key_len);
    lsm_record_free(&io.pending);
    if (step == WB_DONE && *r == FE_OK)
        pthread_cond_signal(&wb->wake); /* a write to drain */
    else if (step == WB_DONE)
        lsm_record_free(written);
    return step;
}

enum st_status writebehind_pending(struct writebehind *wb, const char *key, size_t nkey,
                                   struct lsm_record **out)
{
    *out = NULL;
    if (journal_pending(wb->j) == 0)
        return ST_OK;
    return journal_get(wb->j, key, nkey, out);
}

/* ----------------------------------------------------------- drainer */

/* Records applied to the backend and not yet marked drained: the marks
 * wait until one engine sync has made the whole group durable. */
#define DRAIN_GROUP 256

struct drain_pass;

/* A record of the group sent to the cluster, and how it went. */
struct drain_send {
    struct drain_pass *dp;
    enum fe_result r;
};

struct drain_pass {
    struct writebehind *wb;
    bool failed;
    uint64_t oldest_ms;                      /* UINT64_MAX: none seen */
    struct lsm_record *applied[DRAIN_GROUP]; /* cluster: to send */
    size_t napplied;
    struct drain_send sent[DRAIN_GROUP]; /* cluster */
    unsigned outstanding;
};

static bool backend_paused(const struct writebehind *wb)
{
    return wb->pause_file != NULL && access(wb->pause_file, F_OK) == 0;
}

static bool stopping(struct writebehind *wb, uint64_t *deadline)
{
    pthread_mutex_lock(&wb->lock);
    bool stop = wb->stop;
    *deadline = wb->stop_deadline_ms;
    pthread_mutex_unlock(&wb->lock);
    return stop;
}

static void on_sent(void *arg, enum fe_result r)
{
    struct drain_send *ds = arg;
    ds->r = r;
    ds->dp->outstanding--;
}

/* backend = cluster: the group's records as COORD_WRITEs at their
 * policies' write levels, all in flight at once; returns when each was
 * answered (the links' timeouts bound that). ST_OK when all were
 * written. */
static enum st_status send_group(struct drain_pass *dp)
{
    struct writebehind *wb = dp->wb;
    for (size_t i = 0; i < dp->napplied; i++) {
        const struct lsm_record *rec = dp->applied[i];
        const struct policy *pol =
            policies_match(wb->t->policies, (const char *)rec->key, rec->key_len);
        struct wire_record wr;
        kvstore_wire_of(rec, &wr);
        dp->sent[i] = (struct drain_send){.dp = dp, .r = FE_FAILED};
        dp->outstanding++;
        cbackend_write(wb->cb, wb->base, pol->write_cl, &wr, on_sent, &dp->sent[i]);
    }
    while (dp->outstanding > 0 && event_base_loop(wb->base, EVLOOP_ONCE) == 0)
        ;
    enum st_status st = ST_OK;
    for (size_t i = 0; i < dp->napplied; i++)
        if (dp->sent[i].r != FE_OK)
            st = ST_IO;
    return st;
}

/* Makes the group durable on the backend (an engine sync; the cluster's
 * acknowledgements), then marks its records drained (each still pending
 * at its version; a newer write of the key stays pending). A record the
 * backend did not take stays pending: it is sent again. */
static void drain_group_end(struct drain_pass *dp)
{
    struct writebehind *wb = dp->wb;
    if (dp->napplied == 0)
        return;
    enum st_status st = wb->cb != NULL ? send_group(dp) : lsm_sync(wb->t->db);
    for (size_t i = 0; i < dp->napplied; i++) {
        struct lsm_record *rec = dp->applied[i];
        bool durable = wb->cb != NULL ? dp->sent[i].r == FE_OK : st == ST_OK;
        if (durable) {
            kvstore_lock(wb->t->ks, rec->key, rec->key_len);
            enum st_status dst = journal_drained(wb->j, rec);
            kvstore_unlock(wb->t->ks, rec->key, rec->key_len);
            if (dst == ST_OK)
                journal_count_applied(wb->j);
            else
                st = dst;
        }
        lsm_record_free(&dp->applied[i]);
    }
    dp->napplied = 0;
    if (st != ST_OK) {
        journal_count_retried(wb->j);
        dp->failed = true;
    }
}

/* Applies one pending write if it is still pending at that version. */
static bool drain_one(void *arg, const struct lsm_record *seen)
{
    struct drain_pass *dp = arg;
    struct writebehind *wb = dp->wb;
    uint64_t ms = hlc_physical(seen->version.hlc);
    if (ms < dp->oldest_ms)
        dp->oldest_ms = ms;
    if (dp->failed)
        return true; /* the rest of the pass only measures the oldest */
    uint64_t deadline;
    if (stopping(wb, &deadline) && clock_monotonic_ms() >= deadline) {
        dp->failed = true;
        return true;
    }
    if (backend_paused(wb)) {
        journal_count_retried(wb->j);
        dp->failed = true;
        return true;
    }
    struct kvstore *ks = wb->t->ks;
    kvstore_lock(ks, seen->key, seen->key_len);
    struct lsm_record *cur = NULL;
    enum st_status st = journal_get(wb->j, seen->key, seen->key_len, &cur);
    if (st == ST_OK && cur != NULL && cur->version.hlc == seen->version.hlc &&
        cur->version.node == seen->version.node) {
        /* the cluster's is sent with the group (drain_group_end) */
        if (wb->cb == NULL)
            st = kvstore_apply(ks, cur);
        if (st == ST_OK) {
            dp->applied[dp->napplied++] = cur;
            cur = NULL;
        }
    }
    kvstore_unlock(ks, seen->key, seen->key_len);
    lsm_record_free(&cur);
    if (st != ST_OK) {
        journal_count_retried(wb->j);
        dp->failed = true;
    } else if (dp->napplied == DRAIN_GROUP) {
        drain_group_end(dp);
    }
    return true;
}

/* One pass over the journal; false when it failed (back off). */
static bool drain_pass(struct writebehind *wb)
{
    struct drain_pass *dp = mem_calloc(MEM_OTHER, 1, sizeof(*dp));
    if (dp == NULL)
        return false;
    dp->wb = wb;
    dp->oldest_ms = UINT64_MAX;
    enum st_status st = journal_scan(wb->j, drain_one, dp);
    drain_group_end(dp);
    journal_set_oldest(wb->j, dp->oldest_ms == UINT64_MAX ? 0 : dp->oldest_ms);
    if (st != ST_OK)
        log_warn("write-behind: reading the journal failed: %s", st_status_name(st));
    bool ok = st == ST_OK && !dp->failed;
    mem_free(MEM_OTHER, dp, sizeof(*dp));
    return ok;
}

/* Waits ms, or until stopped; `wakeable`: also until a writer signals
 * (an idle drainer), else writers' signals are slept through (backoff). */
static void wait_ms(struct writebehind *wb, unsigned ms, bool wakeable)
{
    struct timespec ts = clock_deadline_after_ms(ms);
    pthread_mutex_lock(&wb->lock);
    while (!wb->stop) {
        if (pthread_cond_timedwait(&wb->wake, &wb->lock, &ts) != 0 || wakeable)
            break;
    }
    pthread_mutex_unlock(&wb->lock);
}

static void *drainer_main(void *arg)
{
    struct writebehind *wb = arg;
    unsigned backoff = 0;
    for (;;) {
        uint64_t deadline;
        bool stop = stopping(wb, &deadline);
        bool empty = journal_pending(wb->j) == 0;
        if (stop && (empty || clock_monotonic_ms() >= deadline))
            break;
        if (empty) {
            journal_set_oldest(wb->j, 0);
            wait_ms(wb, IDLE_WAIT_MS, true);
            continue;
        }
        if (drain_pass(wb)) {
            backoff = 0;
            continue;
        }
        backoff = backoff == 0 ? BACKOFF_MIN_MS : backoff * 2;
        if (backoff > BACKOFF_MAX_MS)
            backoff = BACKOFF_MAX_MS;
        if (stop) {
            /* SIGTERM while the backend fails: retrying until the deadline
             * drains nothing more; what is left waits for the next start */
            uint64_t left = deadline > clock_monotonic_ms() ? deadline - clock_monotonic_ms() : 0;
            if (left == 0)
                break;
            usleep((useconds_t)((left < backoff ? left : backoff) * 1000));
        } else {
            wait_ms(wb, backoff, false);
        }
    }
    return NULL;
}

/* -------------------------------------------------------- open/close */

static enum lsm_sync_mode journal_sync_of(const char *s)
{
    return strcmp(s, "interval") == 0 ? LSM_SYNC_INTERVAL : LSM_SYNC_ALWAYS;
}

bool writebehind_exists(const struct settings *s)
{
    char path[PATH_MAX];
    struct stat st;
    return (size_t)snprintf(path, sizeof(path), "%s/journal", s->data_dir) < sizeof(path) &&
           stat(path, &st) == 0;
}

int writebehind_open(struct tiers *t, const struct settings *s, struct writebehind **out)
{
    *out = NULL;
    struct writebehind *wb = mem_calloc(MEM_OTHER, 1, sizeof(*wb));
    if (wb == NULL)
        return EX_OSERR;
    wb->t = t;
    wb->pause_file = s->test_backend_pause_file;
    wb->drain_timeout = s->journal_drain_timeout;
    pthread_mutex_init(&wb->lock, NULL);
    pthread_cond_init(&wb->wake, NULL);
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof(path), "%s/journal", s->data_dir) >= sizeof(path)) {
        writebehind_close(&wb);
        return EX_CONFIG;
    }
    enum lsm_sync_mode sync = journal_sync_of(s->journal_sync);
    /* the cluster's writes answer from the nodes' loops, not through
     * batch.h: the journal's own group commit syncs them */
    wb->cb = t->cb;
    wb->batched = sync == LSM_SYNC_ALWAYS && wb->cb == NULL;
    if (wb->cb != NULL && (wb->base = event_base_new()) == NULL) {
        writebehind_close(&wb);
        return EX_OSERR;
    }
    struct journal_config jc = {
        .dir = path,
        .sync = wb->batched ? LSM_SYNC_NONE : sync, /* batch.h syncs it */
        .sync_interval_ms = s->sync_interval_ms,
        .max_entries = s->journal_max_entries,
        .max_bytes = s->journal_max_bytes,
        .max_value_len = s->item_size_max,
    };
    enum st_status st = journal_open(&jc, &wb->j);
    if (st != ST_OK) {
        fprintf(stderr, "strata-proxy: cannot open the write-behind journal in %s: %s\n", path,
                st_status_name(st));
        writebehind_close(&wb);
        return EX_IOERR;
    }
    uint64_t left = journal_pending(wb->j);
    if (left > 0) {
        /* an earlier run's acknowledged writes reach the backend before
         * their prefixes are served again */
        uint64_t start = clock_monotonic_ms();
        while (journal_pending(wb->j) > 0 && drain_pass(wb))
            ;
        log_info("write-behind: applied %llu pending writes from the journal in %llu ms, "
                 "%llu left",
                 (unsigned long long)(left - journal_pending(wb->j)),
                 (unsigned long long)(clock_monotonic_ms() - start),
                 (unsigned long long)journal_pending(wb->j));
    }
    if (pthread_create(&wb->thread, NULL, drainer_main, wb) != 0) {
        writebehind_close(&wb);
        return EX_OSERR;
    }
    wb->started = true;
    *out = wb;
    return 0;
}

void writebehind_close(struct writebehind **wbp)
{
    struct writebehind *wb = *wbp;
    if (wb == NULL)
        return;
    *wbp = NULL;
    if (wb->started) {
        pthread_mutex_lock(&wb->lock);
        wb->stop = true;
        wb->stop_deadline_ms = clock_monotonic_ms() + (uint64_t)wb->drain_timeout * 1000;
        pthread_cond_signal(&wb->wake);
        pthread_mutex_unlock(&wb->lock);
        pthread_join(wb->thread, NULL);
        uint64_t left = journal_pending(wb->j);
        if (left > 0)
            log_warn("write-behind: %llu acknowledged writes stay in the journal for the next "
                     "start",
                     (unsigned long long)left);
    }
    journal_close(&wb->j);
    if (wb->base != NULL) {
        cbackend_close_writer(wb->cb); /* its links run on this base */
        event_base_free(wb->base);
    }
    pthread_cond_destroy(&wb->wake);
    pthread_mutex_destroy(&wb->lock);
    mem_free(MEM_OTHER, wb, sizeof(*wb));
}

bool writebehind_batched(const struct writebehind *wb)
{
    return wb->batched;
}

enum st_status writebehind_sync(struct writebehind *wb)
{
    return wb->batched ? journal_sync(wb->j) : ST_OK;
}

/* ------------------------------------------------------------- stats */

void writebehind_stats(struct writebehind *wb,
                       void (*emit)(void *arg, const char *name, const char *value), void *arg)
{
    struct journal_stats st;
    journal_stats(wb->j, &st);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    mc_emit_u64(emit, arg, "pending", st.pending);
    mc_emit_u64(emit, arg, "bytes", st.bytes);
    mc_emit_u64(emit, arg, "oldest_age_ms",
                st.pending > 0 && st.oldest_ms > 0 && now_ms > st.oldest_ms ? now_ms - st.oldest_ms
                                                                            : 0);
    mc_emit_u64(emit, arg, "appended", st.appended);
    mc_emit_u64(emit, arg, "applied", st.applied);
    mc_emit_u64(emit, arg, "retried", st.retried);
    mc_emit_u64(emit, arg, "refused_full", st.refused_full);
}
