/*
 * tiers.c - the backend below L1 and the per-prefix policies (see
 * tiers.h).
 *
 *   read miss:  (lock) L1 again? ─► kvstore_read ─► L1 fill at the
 *               record's version (CACHE_FILL) ─► (unlock)
 *   write:      (lock) kvstore_rmw ─► L1: fill the written record
 *               (write-through) or drop the copy (write-around, delete)
 *               ─► (unlock)
 */
#include "proxy/tiers.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "cache/cache.h"
#include "common/clock.h"
#include "common/hlc.h"
#include "common/log.h"
#include "common/mc_text.h"
#include "common/mem.h"
#include "common/ring.h"
#include "kvstore/kvstore.h"
#include "proxy/cbackend.h"
#include "proxy/settings.h"
#include "proxy/tiers_int.h"
#include "proxy/writebehind.h"
#include "storage/include/lsm.h"

static void lat_record(struct lathist *l, uint64_t start_us)
{
    lathist_record(l, clock_monotonic_us() - start_us);
}

/* ------------------------------------------------------------ open */

static enum lsm_sync_mode sync_of(const char *s)
{
    return strcmp(s, "always") == 0 ? LSM_SYNC_ALWAYS
           : strcmp(s, "none") == 0 ? LSM_SYNC_NONE
                                    : LSM_SYNC_INTERVAL;
}

/* The clock's lease (docs/CLOCKS.md): every version this proxy stamps is
 * below the bound stored in data_dir/clock, renewed every second, so a
 * restart whose wall clock went back still stamps newer versions (the
 * local backend's sets do not read the record they replace). */
#define CLOCK_LEASE_MS 2500
#define CLOCK_RENEW_MS 1000

static uint64_t clock_load(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/clock", dir);
    FILE *f = fopen(path, "r");
    unsigned long long v = 0;
    if (f != NULL) {
        if (fscanf(f, "%llu", &v) != 1)
            v = 0;
        fclose(f);
    }
    return v;
}

/* Writes the bound (temporary file, fsync, rename): false on failure. */
static bool clock_store(struct tiers *t)
{
    char path[PATH_MAX + 8], tmp[PATH_MAX + 16];
    if ((size_t)snprintf(path, sizeof(path), "%s/clock", t->data_dir) >= sizeof(path) ||
        (size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return false;
    uint64_t bound = hlc_upper_bound(&t->clock, CLOCK_LEASE_MS);
    FILE *f = fopen(tmp, "w");
    bool ok = f != NULL && fprintf(f, "%llu\n", (unsigned long long)bound) > 0 && fflush(f) == 0 &&
              fsync(fileno(f)) == 0;
    if (f != NULL && fclose(f) != 0)
        ok = false;
    ok = ok && rename(tmp, path) == 0;
    if (!ok)
        log_warn("backend local: cannot store the clock bound in %s: %s", path, strerror(errno));
    t->clock_stored_ms = clock_monotonic_ms();
    return ok;
}

void tiers_tick(struct tiers *t)
{
    if (t != NULL && t->ks != NULL && clock_monotonic_ms() - t->clock_stored_ms >= CLOCK_RENEW_MS)
        clock_store(t);
}

/* data_dir, and the clock whose bound it keeps. */
static int open_clock(struct tiers *t, const struct settings *s)
{
    if (mkdir(s->data_dir, 0750) != 0 && errno != EEXIST) {
        fprintf(stderr, "strata-proxy: cannot create data_dir %s: %s\n", s->data_dir,
                strerror(errno));
        return EX_CANTCREAT;
    }
    struct hlc_options ho;
    hlc_options_default(&ho);
    hlc_init(&t->clock, &ho);
    snprintf(t->data_dir, sizeof(t->data_dir), "%s", s->data_dir);
    uint64_t bound = clock_load(s->data_dir);
    if (bound > 0)
        hlc_floor(&t->clock, bound);
    return clock_store(t) ? 0 : EX_IOERR;
}

/*
 * backend = cluster with write-behind: the journal in data_dir, versions
 * from this proxy's clock (kept monotonic across restarts as the local
 * backend's), a kvstore for memcached's decisions and the keys' locks
 * (it has no engine: its records are the journal's and the cluster's).
 * The versions' node id is random per start, so two proxies' versions
 * never tie.
 */
static int open_cluster_journal(struct tiers *t, const struct settings *s)
{
    int rc = open_clock(t, s);
    if (rc != 0)
        return rc;
    uint16_t id = 0;
    while (id == 0)
        if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id))
            id = (uint16_t)(getpid() | 1);
    struct kvstore_config kc = {
        .clock = &t->clock,
        .node_id = id,
        .max_value_len = s->item_size_max,
    };
    if (kvstore_create(&kc, &t->ks) != ST_OK)
        return EX_OSERR;
    return writebehind_open(t, s, &t->wb);
}

static int open_local(struct tiers *t, const struct settings *s)
{
    int rc = open_clock(t, s);
    if (rc != 0)
        return rc;
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof(path), "%s/engine", s->data_dir) >= sizeof(path))
        return EX_CONFIG;
    struct lsm_options o;
    lsm_options_init(&o);
    o.sync_mode = sync_of(s->sync);
    if (o.sync_mode == LSM_SYNC_ALWAYS) {
        /* one sync per worker's turn, not per write (proxy/batch.h) */
        o.sync_mode = LSM_SYNC_NONE;
        t->engine_batched = true;
    }
    o.sync_interval_ms = s->sync_interval_ms;
    o.max_value_len =
        s->item_size_max < LSM_MAX_VALUE_LEN_LIMIT ? s->item_size_max : LSM_MAX_VALUE_LEN_LIMIT;
    /* one copy, no replicas to repair: a tombstone need not outlive compaction */
    o.gc_grace_seconds = 0;
    enum st_status st = lsm_open(path, &o, &t->db);
    if (st != ST_OK) {
        fprintf(stderr, "strata-proxy: cannot open the engine in %s: %s (see the log)\n", path,
                st_status_name(st));
        return EX_IOERR;
    }
    struct kvstore_config kc = {
        .db = t->db,
        .clock = &t->clock,
        .node_id = 0,
        .max_value_len = o.max_value_len,
        /* blind sets (no read of the record they replace) measured 2.2x
         * slower with one engine write per set (the workers then reached
         * the group commit back to back) and no faster with the writes
         * batched (proxy/turn.c: the memtable insert dominates); the
         * clock bound above would keep them safe */
        .blind_sets = false,
    };
    if (kvstore_create(&kc, &t->ks) != ST_OK)
        return EX_OSERR;
    t->turns = mem_calloc(MEM_OTHER, t->nworkers, sizeof(*t->turns));
    if (t->turns == NULL)
        return EX_OSERR;
    for (unsigned i = 0; i < t->nworkers; i++)
        if (turn_create(&t->turns[i]) != ST_OK)
            return EX_OSERR;
    return 0;
}

int tiers_open(const struct settings *s, struct cache *l1, unsigned workers, struct tiers **out)
{
    *out = NULL;
    if (strcmp(s->backend, "none") == 0)
        return 0;
    struct tiers *t = mem_calloc(MEM_OTHER, 1, sizeof(*t));
    if (t == NULL)
        return EX_OSERR;
    t->l1 = l1;
    t->policies = s->policies;
    t->kind = "local";
    t->nworkers = workers;
    t->ctr = mem_calloc(MEM_OTHER, workers, sizeof(*t->ctr));
    t->batches = mem_calloc(MEM_OTHER, workers, sizeof(*t->batches));
    if (t->batches == NULL)
        mem_free(MEM_OTHER, t->ctr, workers * sizeof(*t->ctr)), t->ctr = NULL;
    for (unsigned i = 0; i < GATE_SLOTS; i++)
        pthread_mutex_init(&t->gate.mu[i], NULL);
    bool negative = false;
    for (size_t i = 0; i < policies_count(s->policies); i++)
        negative |= policies_at(s->policies, i)->negative_ttl > 0;
    if (negative && (t->neg = mem_calloc(MEM_OTHER, NEG_SLOTS, sizeof(*t->neg))) == NULL) {
        tiers_close(&t);
        return EX_OSERR;
    }
    if (strcmp(s->backend, "cluster") == 0) {
        t->kind = "cluster";
        int rc = t->ctr == NULL ? EX_OSERR : cbackend_open(s, workers, &t->cb);
        /* a journal an earlier run left is applied even when no policy is
         * write-behind any more */
        if (rc == 0 && (policies_any(s->policies, MODE_WRITE_BEHIND) || writebehind_exists(s)))
            rc = open_cluster_journal(t, s);
        if (rc != 0) {
            tiers_close(&t);
            return rc;
        }
        log_info("backend cluster: nodes %s, cluster %s", s->cluster_seeds, s->cluster_name);
        *out = t;
        return 0;
    }
    int rc = t->ctr == NULL ? EX_OSERR : open_local(t, s);
    /* a journal an earlier run left is applied even when no policy is
     * write-behind any more */
    if (rc == 0 && (policies_any(s->policies, MODE_WRITE_BEHIND) || writebehind_exists(s)))
        rc = writebehind_open(t, s, &t->wb);
    if (rc != 0) {
        tiers_close(&t);
        return rc;
    }
    log_info("backend local: engine in %s/engine, sync %s", s->data_dir, s->sync);
    *out = t;
    return 0;
}

void tiers_close(struct tiers **tp)
{
    struct tiers *t = *tp;
    if (t == NULL)
        return;
    *tp = NULL;
    writebehind_close(&t->wb); /* drains into the backend first */
    cbackend_close(&t->cb);
    if (t->neg != NULL)
        mem_free(MEM_OTHER, t->neg, NEG_SLOTS * sizeof(*t->neg));
    for (unsigned i = 0; i < GATE_SLOTS; i++)
        pthread_mutex_destroy(&t->gate.mu[i]);
    for (unsigned i = 0; t->turns != NULL && i < t->nworkers; i++)
        turn_destroy(&t->turns[i]);
    if (t->turns != NULL)
        mem_free(MEM_OTHER, t->turns, t->nworkers * sizeof(*t->turns));
    kvstore_destroy(&t->ks);
    lsm_close(&t->db);
    if (t->ctr != NULL)
        mem_free(MEM_OTHER, t->ctr, t->nworkers * sizeof(*t->ctr));
    for (unsigned i = 0; t->batches != NULL && i < t->nworkers; i++)
        if (t->batches[i] != NULL)
            mem_free(MEM_OTHER, t->batches[i], atomic_load(&t->batch_size));
    if (t->batches != NULL)
        mem_free(MEM_OTHER, t->batches, t->nworkers * sizeof(*t->batches));
    mem_free(MEM_OTHER, t, sizeof(*t));
}

/* ----------------------------------------------------------- batches */

bool tiers_batched(const struct tiers *t)
{
    return t != NULL && (t->engine_batched || (t->wb != NULL && writebehind_batched(t->wb)));
}

enum st_status tiers_sync(struct tiers *t)
{
    enum st_status st = ST_OK;
    if (t->wb != NULL)
        st = writebehind_sync(t->wb);
    if (st == ST_OK && t->engine_batched)
        st = lsm_sync(t->db);
    return st;
}

void *tiers_worker_batch(struct tiers *t, unsigned worker, size_t size)
{
    if (t->batches[worker] == NULL) {
        t->batches[worker] = mem_calloc(MEM_OTHER, 1, size);
        atomic_store_explicit(&t->batch_size, size, memory_order_relaxed);
    }
    return t->batches[worker];
}

/* ---------------------------------------------------------- policies */

const struct policy *tiers_policy(const struct tiers *t, const char *key, size_t nkey)
{
    if (t == NULL || t->cb != NULL)
        return NULL; /* the cluster's commands run in cmd_cluster.c */
    const struct policy *p = policies_match(t->policies, key, nkey);
    return p->mode == MODE_CACHE_ONLY ? NULL : p;
}

const struct policy *tiers_cluster_policy(const struct tiers *t, const char *key, size_t nkey)
{
    if (t == NULL || t->cb == NULL)
        return NULL;
    const struct policy *p = policies_match(t->policies, key, nkey);
    return p->mode == MODE_CACHE_ONLY ? NULL : p;
}

struct cbackend *tiers_cbackend(const struct tiers *t)
{
    return t != NULL ? t->cb : NULL;
}

void tiers_workers_stopped(struct tiers *t)
{
    if (t != NULL)
        cbackend_close_links(t->cb);
}

bool tiers_writes_below(const struct policy *pol)
{
    return pol->mode == MODE_WRITE_THROUGH || pol->mode == MODE_WRITE_BEHIND ||
           pol->mode == MODE_WRITE_AROUND;
}

/* ---------------------------------------------------------------- L1 */

/*
 * An engine expiry (absolute unix seconds, 0 never) as an L1 exptime,
 * capped by the policy's l1_ttl_cap; false when already expired.
 */
static bool l1_exptime(uint64_t expiry, unsigned cap, rel_time_t *out)
{
    rel_time_t rel = 0;
    if (expiry != 0) {
        if (expiry <= (uint64_t)clock_unix_now())
            return false;
        uint64_t started = (uint64_t)clock_process_started();
        rel = expiry > started ? (rel_time_t)(expiry - started) : 1;
    }
    if (cap > 0) {
        rel_time_t capped = clock_now() + cap;
        if (rel == 0 || rel > capped)
            rel = capped;
    }
    *out = rel;
    return true;
}

bool tiers_fill_locked(struct tiers *t, unsigned w, const struct policy *pol,
                       const struct lsm_record *rec)
{
    rel_time_t exptime;
    if (!l1_exptime(rec->expiry, pol->l1_ttl_cap, &exptime))
        return false;
    enum cache_result r;
    struct item *it = cache_reserve_fill(t->l1, (const char *)rec->key, rec->key_len, rec->flags,
                                         exptime, rec->value_len, rec->version.hlc, &r);
    if (it == NULL) {
        ADD(t, w, fills_dropped);
        return false;
    }
    if (rec->value_len > 0)
        memcpy(item_data_mut(it), rec->value, rec->value_len);
    r = cache_commit(t->l1, it, CACHE_FILL, rec->version.hlc, NULL);
    if (r == CACHE_STORED)
        return true;
    /* NOT_STORED: L1 holds this version or a newer one */
    return r == CACHE_NOT_STORED;
}

static bool l1_has(struct tiers *t, const char *key, size_t nkey)
{
    struct cache_meta_info info;
    struct item *it = cache_meta_peek(t->l1, key, nkey, &info);
    cache_release(t->l1, it);
    return it != NULL;
}

/* ------------------------------------------------- the negative cache */

static uint64_t neg_hash(const char *key, size_t nkey)
{
    return ring_token(key, nkey);
}

/* True when the backend did not hold key less than negative_ttl ago. */
static bool neg_hit(struct tiers *t, unsigned w, const char *key, size_t nkey)
{
    if (t->neg == NULL)
        return false;
    uint64_t h = neg_hash(key, nkey);
    uint64_t e = atomic_load_explicit(&t->neg[h & (NEG_SLOTS - 1)], memory_order_relaxed);
    bool hit = e != 0 && (e >> 32) == (h >> 32) && (rel_time_t)e > clock_now();
    if (hit)
        ADD(t, w, negative_hits);
    return hit;
}

static void neg_set(struct tiers *t, const struct policy *pol, const char *key, size_t nkey)
{
    if (t->neg == NULL || pol->negative_ttl == 0)
        return;
    uint64_t h = neg_hash(key, nkey);
    uint64_t e = (h & 0xffffffff00000000ull) | (uint32_t)(clock_now() + pol->negative_ttl);
    atomic_store_explicit(&t->neg[h & (NEG_SLOTS - 1)], e, memory_order_relaxed);
}

/* A write of key: its slot forgets it (another key's entry there may go
 * too: that costs a read). */
static void neg_clear(struct tiers *t, const char *key, size_t nkey)
{
    if (t->neg != NULL)
        atomic_store_explicit(&t->neg[neg_hash(key, nkey) & (NEG_SLOTS - 1)], 0,
                              memory_order_relaxed);
}

bool tiers_negative(struct tiers *t, unsigned w, const char *key, size_t nkey)
{
    return neg_hit(t, w, key, nkey);
}

/* A miss: the backend's record into L1. REQUIRES: the key's lock. */
static void fill_miss_locked(struct tiers *t, unsigned w, const struct policy *pol, const char *key,
                             size_t nkey)
{
    if (l1_has(t, key, nkey))
        return; /* another worker filled it while we waited */
    if (neg_hit(t, w, key, nkey))
        return;
    struct lsm_record *rec = NULL;
    if (t->wb != NULL) {
        /* a pending write-behind write is newer than the backend's */
        enum st_status st = writebehind_pending(t->wb, key, nkey, &rec);
        if (st == ST_OK && rec != NULL) {
            if (rec->tombstone || !tiers_fill_locked(t, w, pol, rec))
                ADD(t, w, fill_misses);
            else
                ADD(t, w, fills);
            lsm_record_free(&rec);
            return;
        }
    }
    uint64_t start = clock_monotonic_us();
    ADD(t, w, backend_reads);
    enum st_status st = kvstore_read(t->ks, key, nkey, &rec);
    lat_record(&t->ctr[w].read_lat, start);
    if (st != ST_OK) {
        ADD(t, w, backend_errors); /* a miss to the client, logged by kvstore */
        return;
    }
    if (rec == NULL) {
        ADD(t, w, fill_misses);
        neg_set(t, pol, key, nkey);
        return;
    }
    ADD(t, w, fills);
    tiers_fill_locked(t, w, pol, rec);
    lsm_record_free(&rec);
}

void tiers_fill(struct tiers *t, unsigned w, const struct policy *pol, const char *key, size_t nkey)
{
    turn_lock(t, w, key, nkey);
    fill_miss_locked(t, w, pol, key, nkey);
    turn_unlock(t, key, nkey);
}

void tiers_l1_begin(struct tiers *t, unsigned w, const struct policy *pol, const char *key,
                    size_t nkey, bool fill)
{
    turn_lock(t, w, key, nkey);
    if (fill)
        fill_miss_locked(t, w, pol, key, nkey);
}

void tiers_l1_end(struct tiers *t, const char *key, size_t nkey)
{
    turn_unlock(t, key, nkey);
}

/* ------------------------------------------- the cluster's L1 updates */

static unsigned gate_slot(const char *key, size_t nkey)
{
    return (unsigned)(ring_token(key, nkey) & (GATE_SLOTS - 1));
}

void **tiers_flights_lock(struct tiers *t, const char *key, size_t nkey)
{
    unsigned s = gate_slot(key, nkey);
    pthread_mutex_lock(&t->gate.mu[s]);
    return &t->gate.flights[s];
}

void tiers_flights_unlock(struct tiers *t, const char *key, size_t nkey)
{
    pthread_mutex_unlock(&t->gate.mu[gate_slot(key, nkey)]);
}

bool tiers_l1_has(struct tiers *t, const char *key, size_t nkey)
{
    return l1_has(t, key, nkey);
}

uint64_t tiers_gate_begin(struct tiers *t, const char *key, size_t nkey)
{
    unsigned s = gate_slot(key, nkey);
    pthread_mutex_lock(&t->gate.mu[s]);
    uint64_t g = t->gate.gen[s];
    pthread_mutex_unlock(&t->gate.mu[s]);
    return g;
}

bool tiers_cluster_pending(struct tiers *t, unsigned w, const struct policy *pol, const char *key,
                           size_t nkey)
{
    if (t->wb == NULL)
        return false;
    uint64_t gen = tiers_gate_begin(t, key, nkey);
    struct lsm_record *rec = NULL;
    kvstore_lock(t->ks, key, nkey);
    enum st_status st = writebehind_pending(t->wb, key, nkey, &rec);
    kvstore_unlock(t->ks, key, nkey);
    if (st != ST_OK || rec == NULL)
        return false; /* (a journal that cannot be read was logged) */
    if (!rec->tombstone) {
        struct wire_record wr;
        kvstore_wire_of(rec, &wr);
        tiers_cluster_fill(t, w, pol, &wr, gen);
    }
    lsm_record_free(&rec);
    return true;
}

struct writebehind *tiers_writebehind(const struct tiers *t)
{
    return t != NULL ? t->wb : NULL;
}

void tiers_cluster_miss(struct tiers *t, unsigned w, const struct policy *pol, const char *key,
                        size_t nkey, uint64_t gen)
{
    ADD(t, w, fill_misses);
    unsigned s = gate_slot(key, nkey);
    pthread_mutex_lock(&t->gate.mu[s]);
    if (t->gate.gen[s] == gen)
        neg_set(t, pol, key, nkey);
    pthread_mutex_unlock(&t->gate.mu[s]);
}

void tiers_gate_bump(struct tiers *t, const char *key, size_t nkey)
{
    if (t == NULL || t->cb == NULL)
        return;
    unsigned s = gate_slot(key, nkey);
    pthread_mutex_lock(&t->gate.mu[s]);
    t->gate.gen[s]++;
    pthread_mutex_unlock(&t->gate.mu[s]);
}

void tiers_count_pool_hit(struct tiers *t, unsigned worker)
{
    ADD(t, worker, pool_hits);
}

void tiers_cluster_fill(struct tiers *t, unsigned w, const struct policy *pol,
                        const struct wire_record *rec, uint64_t gen)
{
    unsigned s = gate_slot((const char *)rec->key, rec->key_len);
    pthread_mutex_lock(&t->gate.mu[s]);
    if (t->gate.gen[s] == gen) {
        struct lsm_record lr;
        kvstore_lsm_of(rec, &lr);
        ADD(t, w, fills);
        tiers_fill_locked(t, w, pol, &lr);
    }
    pthread_mutex_unlock(&t->gate.mu[s]);
}

void tiers_cluster_written(struct tiers *t, unsigned w, const struct policy *pol, const char *key,
                           size_t nkey, const struct wire_rmw_reply *reply, bool read_back)
{
    bool stored = reply->result == WIRE_RMW_STORED;
    if (!stored && reply->result != WIRE_RMW_NOT_FOUND)
        return; /* refused: nothing changed below */
    unsigned s = gate_slot(key, nkey);
    pthread_mutex_lock(&t->gate.mu[s]);
    t->gate.gen[s]++; /* reads sent before this write fill nothing */
    neg_clear(t, key, nkey);
    bool keep = false;
    if (stored && reply->has_record && (pol->mode != MODE_WRITE_AROUND || read_back)) {
        struct lsm_record lr;
        kvstore_lsm_of(&reply->rec, &lr);
        keep = tiers_fill_locked(t, w, pol, &lr);
    }
    if (!keep && cache_delete(t->l1, key, nkey, 0) == CACHE_OK)
        ADD(t, w, l1_invalidations);
    pthread_mutex_unlock(&t->gate.mu[s]);
}

/* -------------------------------------------------------------- writes */

enum fe_result tiers_rmw(struct tiers *t, unsigned w, const struct policy *pol, struct wire_rmw *q,
                         struct wire_rmw_reply *reply)
{
    q->read_cl = pol->read_cl;
    q->write_cl = pol->write_cl;
    const char *key = (const char *)q->key;
    size_t nkey = q->key_len;
    struct lsm_record *written = NULL;
    struct lsm_batch *batch = NULL;
    turn_lock(t, w, key, nkey);
    uint64_t start = clock_monotonic_us();
    enum fe_result r;
    if (pol->mode == MODE_WRITE_BEHIND && t->wb != NULL) {
        r = writebehind_rmw(t->wb, pol, q, reply, &written);
    } else {
        ADD(t, w, backend_writes);
        batch = turn_batch(t, w);
        enum st_status st = batch != NULL ? kvstore_rmw_into(t->ks, batch, q, reply, &written)
                                          : kvstore_rmw_locked(t->ks, q, reply, &written);
        r = st == ST_OK ? FE_OK : FE_FAILED;
        lat_record(&t->ctr[w].write_lat, start);
    }
    if (r != FE_OK) {
        turn_unlock(t, key, nkey);
        if (r == FE_FAILED)
            ADD(t, w, backend_errors);
        return r;
    }
    if (written != NULL)
        turn_wrote(t, w);
    bool stored = reply->result == WIRE_RMW_STORED;
    if (stored)
        neg_clear(t, key, nkey);
    if (stored || reply->result == WIRE_RMW_NOT_FOUND) {
        /* L1 must now agree: the written record, or no copy at all */
        bool keep = stored && written != NULL && !written->tombstone &&
                    pol->mode != MODE_WRITE_AROUND && tiers_fill_locked(t, w, pol, written);
        if (!keep && cache_delete(t->l1, key, nkey, 0) == CACHE_OK)
            ADD(t, w, l1_invalidations);
    }
    /* a record in the turn's batch keeps its key locked until written */
    if (batch != NULL && written != NULL)
        turn_keep(t, w, key, nkey);
    else
        turn_unlock(t, key, nkey);
    lsm_record_free(&written);
    return FE_OK;
}

/* ------------------------------------------------------------- stats */

/* The sum over workers of one counter. */
#define SUM(t, field)                                                              \
    ({                                                                             \
        uint64_t s_ = 0;                                                           \
        for (unsigned i_ = 0; i_ < (t)->nworkers; i_++)                            \
            s_ += atomic_load_explicit(&(t)->ctr[i_].field, memory_order_relaxed); \
        s_;                                                                        \
    })

/* Percentile p (0..1) of the workers' histograms summed, in µs (a
 * bucket's upper bound); 0 when empty. */
static uint64_t lat_percentile(const struct tiers *t, bool reads, double p)
{
    uint64_t sum[LATHIST_BUCKETS] = {0};
    for (unsigned i = 0; i < t->nworkers; i++)
        lathist_add_to(reads ? &t->ctr[i].read_lat : &t->ctr[i].write_lat, sum);
    return lathist_percentile(sum, p);
}

/* Backend latency percentiles, bucket upper bounds in µs. */
static void stats_latency(struct tiers *t, void (*emit)(void *, const char *, const char *),
                          void *arg)
{
    static const struct {
        const char *name;
        bool reads;
        double p;
    } pcts[] = {
        {"read_p50_us", true, 0.50},   {"read_p99_us", true, 0.99},
        {"read_p999_us", true, 0.999}, {"write_p50_us", false, 0.50},
        {"write_p99_us", false, 0.99}, {"write_p999_us", false, 0.999},
    };
    for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
        mc_emit_u64(emit, arg, pcts[i].name, lat_percentile(t, pcts[i].reads, pcts[i].p));
}

void tiers_record_latency(struct tiers *t, unsigned w, bool read, enum fe_result r,
                          uint64_t start_us)
{
    lat_record(read ? &t->ctr[w].read_lat : &t->ctr[w].write_lat, start_us);
    if (read)
        ADD(t, w, backend_reads);
    else
        ADD(t, w, backend_writes);
    if (r != FE_OK)
        ADD(t, w, backend_errors);
}

static void stats_backend(struct tiers *t, void (*emit)(void *, const char *, const char *),
                          void *arg)
{
    emit(arg, "backend", t->kind);
    mc_emit_u64(emit, arg, "reads", SUM(t, backend_reads));
    mc_emit_u64(emit, arg, "writes", SUM(t, backend_writes));
    mc_emit_u64(emit, arg, "errors", SUM(t, backend_errors));
    mc_emit_u64(emit, arg, "timeouts", 0); /* the local engine has none */
    stats_latency(t, emit, arg);
    struct lsm_stats s;
    lsm_stats(t->db, &s);
    mc_emit_u64(emit, arg, "engine_puts", s.puts);
    mc_emit_u64(emit, arg, "engine_deletes", s.deletes);
    mc_emit_u64(emit, arg, "engine_gets", s.gets);
    mc_emit_u64(emit, arg, "engine_wal_syncs", s.wal_syncs);
    mc_emit_u64(emit, arg, "engine_level0_files", s.level_files[0]);
    mc_emit_u64(emit, arg, "engine_memtable_bytes", s.memtable_bytes);
    mc_emit_u64(emit, arg, "engine_pending_compaction_bytes", s.pending_compaction_bytes);
    mc_emit_u64(emit, arg, "engine_stall_micros", s.stall_micros);
    mc_emit_u64(emit, arg, "engine_read_only", s.read_only ? 1 : 0);
}

static void stats_tiers(struct tiers *t, void (*emit)(void *, const char *, const char *),
                        void *arg)
{
    mc_emit_u64(emit, arg, "l1_fills", SUM(t, fills));
    mc_emit_u64(emit, arg, "l1_fill_misses", SUM(t, fill_misses));
    mc_emit_u64(emit, arg, "l1_fills_dropped", SUM(t, fills_dropped));
    mc_emit_u64(emit, arg, "negative_hits", SUM(t, negative_hits));
    mc_emit_u64(emit, arg, "l2_hits", SUM(t, pool_hits));
    mc_emit_u64(emit, arg, "l1_invalidations", SUM(t, l1_invalidations));
    mc_emit_u64(emit, arg, "backend_reads", SUM(t, backend_reads));
    mc_emit_u64(emit, arg, "backend_writes", SUM(t, backend_writes));
    mc_emit_u64(emit, arg, "backend_errors", SUM(t, backend_errors));
}

static void stats_policies(struct tiers *t, void (*emit)(void *, const char *, const char *),
                           void *arg)
{
    size_t n = policies_count(t->policies);
    for (size_t i = 0; i < n; i++) {
        const struct policy *p = policies_in_order(t->policies, i);
        char name[64], val[300];
        snprintf(name, sizeof(name), "policy:%u:prefix", p->index);
        snprintf(val, sizeof(val), "%s", p->nprefix > 0 ? p->prefix : "(default)");
        emit(arg, name, val);
        snprintf(name, sizeof(name), "policy:%u:mode", p->index);
        emit(arg, name, policy_mode_name(p->mode));
        snprintf(name, sizeof(name), "policy:%u:l1_ttl_cap", p->index);
        mc_emit_u64(emit, arg, name, p->l1_ttl_cap);
        snprintf(name, sizeof(name), "policy:%u:negative_ttl", p->index);
        mc_emit_u64(emit, arg, name, p->negative_ttl);
        snprintf(name, sizeof(name), "policy:%u:read_consistency", p->index);
        emit(arg, name, wire_cl_name(p->read_cl));
        snprintf(name, sizeof(name), "policy:%u:write_consistency", p->index);
        emit(arg, name, wire_cl_name(p->write_cl));
    }
}

bool tiers_stats(struct tiers *t, const char *args, size_t len,
                 void (*emit)(void *arg, const char *name, const char *value), void *arg)
{
    if (t == NULL)
        return false;
    if (mc_text_args_are(args, len, "backend") && t->cb != NULL) {
        cbackend_stats(t->cb, emit, arg);
        stats_latency(t, emit, arg);
    } else if (mc_text_args_are(args, len, "backend"))
        stats_backend(t, emit, arg);
    else if (mc_text_args_are(args, len, "tiers"))
        stats_tiers(t, emit, arg);
    else if (mc_text_args_are(args, len, "policies"))
        stats_policies(t, emit, arg);
    else if (mc_text_args_are(args, len, "journal") && t->wb != NULL)
        writebehind_stats(t->wb, emit, arg);
    else
        return false;
    return true;
}
