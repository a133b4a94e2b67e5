/*
 * stress.c - lsm-stress: the storage engine's stress tool with an expected
 * state, the child of the crash driver (tests/lsm/crash_test.py).
 *
 *   lsm-stress init   --dir D --state F [--keys N] [--threads T] [--seed S]
 *                     [--style leveled|tiered] [--gc-grace SECONDS]
 *   lsm-stress run    --dir D --state F [--sync always|interval|none]
 *                     [--seconds S] [--power-loss-ms MS]
 *   lsm-stress verify --dir D --state F [--invariant strong|prefix]
 *                     [--reopens N] [--compact]
 *
 *   init ─► state(cycle 0) ─► run ─(SIGKILL / kill point / power loss /
 *   clean exit)─► verify ─► state(cycle 1) ─► run ─► ...
 *
 * `run` opens the database, writes a start record to <state>.acks, then T
 * writer threads each play their deterministic stream (stress_model.h) of
 * puts, overwrites, deletes, batches, expiring writes, flushes, full
 * compactions and stale writes (versions older than the key's newest,
 * written after it) on the keys they own. Writes are blind, so the model
 * resolves last-write-wins itself; the threads read back every key a stale
 * write hit and a quarter of the others. Each acknowledged operation is
 * then appended to the ack log with one write(2) (survives a SIGKILL: the
 * page cache is the kernel's). A maintenance thread flushes, compacts,
 * scans, and now and then holds the writers to run a full compaction after
 * which the tables must hold exactly the newest version of each key. With
 * --power-loss-ms the database runs on the fault env (storage/env.h): at
 * that moment every later write and sync fails, the threads stop, and the
 * files are cut back to what was synced, as a power loss would leave them.
 *
 * `verify` reopens the database (any corruption or I/O error fails) and
 * replays each thread's stream from the state: with --invariant strong the
 * keys of thread t must equal the state after its acknowledged operations,
 * or after those plus the one in flight (all of it or nothing); with
 * prefix, the state after any prefix of its stream. Either way: nothing
 * deleted comes back, no older version wins, every record's bytes match its
 * version, gets and a full scan agree, and a second reopen sees the same.
 * With --compact it then runs a full compaction, reads everything again and
 * checks that the tables hold one record per key. On success it writes the
 * state of the next cycle. Exit status: 0 ok, 1 verification failed,
 * 3 online check failed in run, 4 unexpected engine error, 5 open failed,
 * 64 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "common/mem.h"
#include "storage/env.h"
#include "storage/include/lsm.h"
#include "tools/lsm/stress_model.h"

#define EXIT_VERIFY 1
#define EXIT_ONLINE 3
#define EXIT_ENGINE 4
#define EXIT_OPEN 5

struct args {
    const char *dir, *state;
    uint32_t keys, threads;
    uint64_t seed;
    enum lsm_compaction_style style;
    uint32_t gc_grace;
    enum lsm_sync_mode sync;
    double seconds;
    long power_loss_ms;
    bool prefix;
    bool compact;
    int reopens;
};

static void usage(void)
{
    fprintf(stderr, "usage: lsm-stress init|run|verify --dir DIR --state FILE [options]\n"
                    "  init:   --keys N (10000) --threads T (4) --seed S (1)\n"
                    "          --style leveled|tiered --gc-grace SECONDS (864000)\n"
                    "  run:    --sync always|interval|none (always) --seconds S (0 = until\n"
                    "          killed) --power-loss-ms MS (simulate a power loss then)\n"
                    "  verify: --invariant strong|prefix (strong) --reopens N (2)\n"
                    "          --compact (then a full compaction must keep exactly the\n"
                    "          newest version of every key)\n");
    exit(EX_USAGE);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void ack_path(const struct args *a, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s.acks", a->state);
}

/* Engine options: small memtables, segments, files and levels so that a
 * run of a second flushes, rotates, compacts and deletes files many times,
 * and every kill point is reached. */
static void db_options(const struct sm_config *cfg, enum lsm_sync_mode sync, struct lsm_env *env,
                       struct lsm_options *o)
{
    lsm_options_init(o);
    o->env = env;
    o->sync_mode = sync;
    o->sync_interval_ms = 20;
    o->sync_interval_writes = 64;
    o->wal_segment_size = 128u << 10;
    o->memtable_size = 256u << 10;
    o->l0_compaction_trigger = 2;
    o->l0_slowdown_trigger = 6;
    o->l0_stop_trigger = 10;
    o->block_size = 4096;
    o->compression_level = 1;
    o->target_file_size = 256u << 10;
    o->l1_target_size = 1u << 20;
    o->level_multiplier = 4;
    o->block_cache_size = 512u << 10;
    o->max_open_files = 16;
    o->compaction_style = (enum lsm_compaction_style)cfg->style;
    o->gc_grace_seconds = cfg->gc_grace;
    o->tiered_min_merge = 3;
    o->tiered_max_runs = 8;
}

/* ---------------------------------------------------------------- run -- */

/* Writers pass the gate for each operation; the maintenance thread closes
 * it to compact and check with no operation in flight, when the writers'
 * models are exactly what the database holds. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool closed;
    unsigned active; /* writers inside */
};

struct run {
    const struct args *a;
    struct sm_state st;
    struct lsm_db *db;
    struct lsm_env *fenv; /* fault env with --power-loss-ms, else NULL */
    int ack_fd;
    uint64_t t0;
    bool tomb_may_vanish;
    struct gate gate;
    atomic_bool stop;
    atomic_bool power_lost;
    atomic_uint_fast64_t ops, stale_ops, stale_entries, batches, flushes_op, compactions_op;
    atomic_uint_fast64_t reads, flushes, compactions, checked_compactions, scans, scanned;
    atomic_uint_fast64_t parked;
};

struct writer {
    struct run *r;
    uint32_t thread;
    pthread_t tid;
};

/* False when the run is stopping. */
static bool gate_enter(struct run *r)
{
    pthread_mutex_lock(&r->gate.mu);
    while (r->gate.closed && !atomic_load(&r->stop))
        pthread_cond_wait(&r->gate.cv, &r->gate.mu);
    bool ok = !atomic_load(&r->stop);
    if (ok)
        r->gate.active++;
    pthread_mutex_unlock(&r->gate.mu);
    return ok;
}

static void gate_leave(struct run *r)
{
    pthread_mutex_lock(&r->gate.mu);
    if (--r->gate.active == 0)
        pthread_cond_broadcast(&r->gate.cv);
    pthread_mutex_unlock(&r->gate.mu);
}

/* Closes the gate and waits until no writer is inside. */
static void gate_close(struct run *r)
{
    pthread_mutex_lock(&r->gate.mu);
    r->gate.closed = true;
    while (r->gate.active > 0)
        pthread_cond_wait(&r->gate.cv, &r->gate.mu);
    pthread_mutex_unlock(&r->gate.mu);
}

static void gate_open(struct run *r)
{
    pthread_mutex_lock(&r->gate.mu);
    r->gate.closed = false;
    pthread_cond_broadcast(&r->gate.cv);
    pthread_mutex_unlock(&r->gate.mu);
}

static _Noreturn void online_fail(const char *what, uint32_t idx, const struct sm_entry *m,
                                  const struct lsm_record *got)
{
    fprintf(stderr,
            "ONLINE CHECK FAILED: %s: key %u model kind %u hlc %llx node %u "
            "len %u exp %llu; db %s hlc %llx node %u len %zu exp %llu\n",
            what, idx, m->kind, (unsigned long long)m->hlc, m->node, m->value_len,
            (unsigned long long)m->expiry,
            got == NULL      ? "absent"
            : got->tombstone ? "tombstone"
                             : "live",
            got ? (unsigned long long)got->version.hlc : 0ull, got ? got->version.node : 0,
            got ? got->value_len : 0, got ? (unsigned long long)got->expiry : 0ull);
    _exit(EXIT_ONLINE);
}

static _Noreturn void engine_fail(const char *what, enum st_status st)
{
    fprintf(stderr, "ENGINE ERROR: %s: %s\n", what, st_status_name(st));
    _exit(EXIT_ENGINE);
}

/* An operation failed: expected after a simulated power loss, else fatal. */
static bool op_failed(struct run *r, const char *what, enum st_status st)
{
    if (atomic_load(&r->power_lost))
        return true;
    engine_fail(what, st);
}

/* The record of model entry e for key index idx; fills val with its bytes. */
static struct lsm_record record_of(uint32_t idx, const struct sm_entry *e, const char *key,
                                   size_t kl, uint8_t *val)
{
    sm_value(idx, e, val);
    return (struct lsm_record){.key = (const uint8_t *)key,
                               .key_len = kl,
                               .value = val,
                               .value_len = e->value_len,
                               .flags = e->flags,
                               .expiry = e->expiry,
                               .version = {e->hlc, e->node}};
}

/* Issues `op`: the engine call(s) of a write, flush or compaction. */
static enum st_status issue(struct run *r, const struct sm_op *op, struct lsm_batch *b,
                            uint8_t *val)
{
    char key[SM_KEY_CAP];
    switch (op->kind) {
    case SM_OP_FLUSH: return lsm_flush(r->db);
    case SM_OP_COMPACT: return lsm_compact_all(r->db);
    case SM_OP_BATCH: {
        enum st_status st = ST_OK;
        lsm_batch_clear(b);
        for (int i = 0; i < op->n && st == ST_OK; i++) {
            const struct sm_entry *e = &op->rec[i];
            size_t kl = sm_key(op->key[i], key);
            struct lsm_version v = {e->hlc, e->node};
            if (e->kind == SM_TOMB) {
                st = lsm_batch_delete(b, key, kl, v, 0);
            } else {
                struct lsm_record rec = record_of(op->key[i], e, key, kl, val);
                st = lsm_batch_put(b, &rec);
            }
        }
        if (st != ST_OK)
            engine_fail("batch build", st);
        return lsm_write(r->db, b);
    }
    default: {
        const struct sm_entry *e = &op->rec[0];
        size_t kl = sm_key(op->key[0], key);
        if (op->kind == SM_OP_DEL)
            return lsm_delete(r->db, key, kl, (struct lsm_version){e->hlc, e->node}, 0);
        struct lsm_record rec = record_of(op->key[0], e, key, kl, val);
        return lsm_put(r->db, &rec);
    }
    }
}

/* Reads key idx back and compares it with the model (false: the run is
 * ending after a power loss). */
static bool read_back(struct run *r, uint32_t idx, const char *what, uint8_t *scratch)
{
    char key[SM_KEY_CAP];
    size_t kl = sm_key(idx, key);
    struct lsm_record *rec = NULL;
    enum st_status st = lsm_get(r->db, key, kl, LSM_READ_TOMBSTONES | LSM_READ_EXPIRED, &rec);
    if (st != ST_OK)
        return !op_failed(r, "get", st);
    uint64_t now_hi = (uint64_t)time(NULL) + 1;
    if (!sm_match(idx, &r->st.e[idx], rec, now_hi, r->tomb_may_vanish, scratch))
        online_fail(what, idx, &r->st.e[idx], rec);
    lsm_record_free(&rec);
    atomic_fetch_add_explicit(&r->reads, 1, memory_order_relaxed);
    return true;
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    struct run *r = w->r;
    struct sm_entry *model = r->st.e;
    struct sm_gen g;
    sm_gen_init(&g, &r->st.cfg, r->st.cycle, w->thread, r->t0);
    uint8_t *val = mem_alloc(MEM_OTHER, SM_MAX_VALUE);
    uint8_t *scratch = mem_alloc(MEM_OTHER, SM_MAX_VALUE);
    struct lsm_batch *b = NULL;
    if (val == NULL || scratch == NULL || lsm_batch_create(&b) != ST_OK)
        engine_fail("allocation", ST_NOMEM);
    uint64_t rng = sm_mix(r->t0 ^ w->thread);

    while (gate_enter(r)) {
        struct sm_op op;
        sm_gen_next(&g, model, &op);
        if (op.deadline != 0 && (uint64_t)time(NULL) + SM_STALE_GUARD >= op.deadline) {
            /* A stale write against a record about to expire: once it has
             * expired, compaction may drop it and the stale write would
             * then legitimately apply. The stream is fixed, so this thread
             * stops here (the op was never issued: not in flight). */
            gate_leave(r);
            atomic_fetch_add_explicit(&r->parked, 1, memory_order_relaxed);
            while (!atomic_load(&r->stop))
                usleep(10000);
            break;
        }
        struct sm_entry saved[SM_MAX_BATCH];
        for (int i = 0; i < op.n; i++)
            saved[i] = model[op.key[i]];
        /* The model resolves last-write-wins itself: the engine no longer
         * says whether a write won. */
        sm_apply(model, &op, NULL);
        enum st_status st = issue(r, &op, b, val);
        if (st != ST_OK) {
            /* Not acknowledged: the model goes back (the verifier treats
             * it as the operation in flight). */
            for (int i = op.n - 1; i >= 0; i--)
                model[op.key[i]] = saved[i];
            gate_leave(r);
            op_failed(r, "write", st);
            break;
        }
        if (sm_ack_write(r->ack_fd, r->st.cycle, w->thread, g.next - 1) != 0) {
            fprintf(stderr, "ack log write: %s\n", strerror(errno));
            _exit(EXIT_ENGINE);
        }
        gate_leave(r);
        atomic_fetch_add_explicit(&r->ops, 1, memory_order_relaxed);
        if (op.nstale > 0) {
            atomic_fetch_add_explicit(&r->stale_ops, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&r->stale_entries, (uint64_t)op.nstale, memory_order_relaxed);
        }
        if (op.kind == SM_OP_BATCH)
            atomic_fetch_add_explicit(&r->batches, 1, memory_order_relaxed);
        else if (op.kind == SM_OP_FLUSH)
            atomic_fetch_add_explicit(&r->flushes_op, 1, memory_order_relaxed);
        else if (op.kind == SM_OP_COMPACT)
            atomic_fetch_add_explicit(&r->compactions_op, 1, memory_order_relaxed);

        /* Read back every key a stale entry hit (the newer version must
         * still win, wherever it sits), and a quarter of the time one of
         * the others: we are their only writer. */
        bool ok = true;
        for (int i = 0; ok && i < op.n; i++)
            if (op.stale[i])
                ok = read_back(r, op.key[i], "stale write won", scratch);
        if (ok && op.n > 0 && sm_rand(&rng) % 4 == 0)
            ok = read_back(r, op.key[sm_rand(&rng) % (uint64_t)op.n], "read back", scratch);
        if (!ok)
            break;
    }
    lsm_batch_destroy(&b);
    mem_free(MEM_OTHER, val, SM_MAX_VALUE);
    mem_free(MEM_OTHER, scratch, SM_MAX_VALUE);
    return NULL;
}

/* Scans a random token range (sometimes through a snapshot): every record
 * must be a key of the model whose bytes match its version. */
static void scan_check(struct run *r, uint64_t *rng, uint8_t *scratch)
{
    uint64_t first = sm_rand(rng), span = sm_rand(rng) >> (sm_rand(rng) % 8);
    uint64_t last = first + span < first ? UINT64_MAX : first + span;
    struct lsm_snapshot *snap = NULL;
    if (sm_rand(rng) % 2 == 0 && lsm_snapshot_create(r->db, &snap) != ST_OK) {
        op_failed(r, "snapshot", ST_NOMEM);
        return;
    }
    struct lsm_iter *it = NULL;
    enum st_status st = lsm_iter_create(r->db, snap, first, last, LSM_READ_TOMBSTONES, &it);
    if (st == ST_OK) {
        struct lsm_record rec;
        uint64_t prev = 0, n = 0;
        while (lsm_iter_next(it, &rec)) {
            uint32_t idx;
            uint64_t tok = lsm_token(rec.key, rec.key_len);
            if (!sm_key_parse(rec.key, rec.key_len, &idx) || tok < first || tok > last ||
                (n > 0 && tok < prev)) {
                fprintf(stderr, "ONLINE CHECK FAILED: scan returned a "
                                "foreign or misordered key\n");
                _exit(EXIT_ONLINE);
            }
            prev = tok;
            n++;
            if (!rec.tombstone) {
                struct sm_entry e = {.hlc = rec.version.hlc,
                                     .node = rec.version.node,
                                     .value_len = (uint32_t)rec.value_len};
                sm_value(idx, &e, scratch);
                if (rec.value_len > SM_MAX_VALUE ||
                    memcmp(scratch, rec.value, rec.value_len) != 0) {
                    fprintf(stderr,
                            "ONLINE CHECK FAILED: scan: key %u value "
                            "does not match its version\n",
                            idx);
                    _exit(EXIT_ONLINE);
                }
            }
        }
        st = lsm_iter_status(it);
        atomic_fetch_add_explicit(&r->scanned, n, memory_order_relaxed);
    }
    lsm_iter_destroy(&it);
    lsm_snapshot_destroy(r->db, &snap);
    if (st != ST_OK)
        op_failed(r, "scan", st);
    atomic_fetch_add_explicit(&r->scans, 1, memory_order_relaxed);
}

/*
 * With the writers held at the gate: a full compaction, then a full scan
 * (tombstones and expired records included) must show every key exactly as
 * the model has it, and the tables must hold one record per key the scan
 * found: a full compaction keeps only the newest version. `table_records`
 * is read after the scan, so a compaction finishing in between (which can
 * only drop records) does not make it fail.
 */
static void compact_check(struct run *r, uint8_t *scratch)
{
    uint32_t keys = r->st.cfg.keys;
    const struct sm_entry *model = r->st.e;
    gate_close(r);
    enum st_status st = lsm_compact_all(r->db);
    atomic_fetch_add_explicit(&r->compactions, 1, memory_order_relaxed);
    bool *seen = NULL;
    struct lsm_iter *it = NULL;
    if (st == ST_OK) {
        seen = mem_calloc(MEM_OTHER, keys, sizeof(*seen));
        st = seen == NULL ? ST_NOMEM
                          : lsm_iter_create(r->db, NULL, 0, UINT64_MAX,
                                            LSM_READ_TOMBSTONES | LSM_READ_EXPIRED, &it);
    }
    uint64_t n = 0, may = 0;
    if (st == ST_OK) {
        struct lsm_record rec;
        uint64_t now_hi = (uint64_t)time(NULL) + 1;
        while (lsm_iter_next(it, &rec)) {
            uint32_t idx;
            if (!sm_key_parse(rec.key, rec.key_len, &idx) || idx >= keys || seen[idx]) {
                fprintf(stderr, "ONLINE CHECK FAILED: scan after full compaction returned "
                                "a foreign or repeated key\n");
                _exit(EXIT_ONLINE);
            }
            if (!sm_match(idx, &model[idx], &rec, now_hi, r->tomb_may_vanish, scratch))
                online_fail("after full compaction", idx, &model[idx], &rec);
            seen[idx] = true;
            n++;
        }
        st = lsm_iter_status(it);
        for (uint32_t i = 0; st == ST_OK && i < keys; i++) {
            if (!seen[i] && !sm_match(i, &model[i], NULL, now_hi, r->tomb_may_vanish, scratch))
                online_fail("missing after full compaction", i, &model[i], NULL);
            may += model[i].kind != SM_NONE;
        }
    }
    lsm_iter_destroy(&it);
    if (st == ST_OK && !atomic_load(&r->power_lost)) {
        struct lsm_stats s;
        lsm_stats(r->db, &s);
        if (s.table_records > n || s.table_records > may) {
            fprintf(stderr,
                    "ONLINE CHECK FAILED: after a full compaction the tables hold %llu "
                    "records for %llu keys found (%llu the model allows): older versions "
                    "survived\n",
                    (unsigned long long)s.table_records, (unsigned long long)n,
                    (unsigned long long)may);
            _exit(EXIT_ONLINE);
        }
        atomic_fetch_add_explicit(&r->checked_compactions, 1, memory_order_relaxed);
    }
    if (seen != NULL)
        mem_free(MEM_OTHER, seen, keys * sizeof(*seen));
    gate_open(r);
    if (st != ST_OK && st != ST_CLOSED)
        op_failed(r, "full compaction check", st);
}

static void *maint_main(void *arg)
{
    struct run *r = arg;
    uint64_t rng = sm_mix(r->t0 ^ 0x5ca1ab1e);
    uint8_t *scratch = mem_alloc(MEM_OTHER, SM_MAX_VALUE);
    if (scratch == NULL)
        engine_fail("allocation", ST_NOMEM);
    while (!atomic_load(&r->stop)) {
        usleep((useconds_t)(20000 + sm_rand(&rng) % 280000));
        if (atomic_load(&r->stop))
            break;
        uint32_t p = (uint32_t)(sm_rand(&rng) % 20);
        enum st_status st = ST_OK;
        if (p < 6) {
            st = lsm_flush(r->db);
            atomic_fetch_add_explicit(&r->flushes, 1, memory_order_relaxed);
        } else if (p < 7) {
            st = lsm_compact_all(r->db);
            atomic_fetch_add_explicit(&r->compactions, 1, memory_order_relaxed);
        } else if (p < 9) {
            compact_check(r, scratch);
        } else {
            scan_check(r, &rng, scratch);
        }
        if (st != ST_OK && st != ST_CLOSED && op_failed(r, "maintenance", st))
            break;
        if (atomic_load(&r->power_lost))
            break;
    }
    mem_free(MEM_OTHER, scratch, SM_MAX_VALUE);
    return NULL;
}

static int cmd_run(const struct args *a)
{
    struct run r = {.a = a, .ack_fd = -1};
    if (sm_state_load(a->state, &r.st) != 0) {
        fprintf(stderr, "cannot load state %s: %s\n", a->state, strerror(errno));
        return EX_NOINPUT;
    }
    char ap[4096];
    ack_path(a, ap, sizeof(ap));
    /* A second run of the same cycle would write the same versions again
     * over a state that does not know the first: every run must be
     * followed by verify, which writes the next cycle's state. */
    uint64_t acked[SM_MAX_THREADS], t0_prev;
    bool started_prev;
    if (sm_ack_read(ap, r.st.cycle, r.st.cfg.threads, acked, &t0_prev, &started_prev) != 0 ||
        started_prev) {
        fprintf(stderr, "cycle %u already ran: run `lsm-stress verify` first\n", r.st.cycle);
        return EX_USAGE;
    }
    r.ack_fd = sm_ack_open(ap);
    if (r.ack_fd < 0) {
        fprintf(stderr, "cannot open %s: %s\n", ap, strerror(errno));
        return EX_CANTCREAT;
    }
    if (a->power_loss_ms >= 0 && env_fault_create(env_posix(), &r.fenv) != ST_OK)
        return EXIT_ENGINE;
    struct lsm_options o;
    db_options(&r.st.cfg, a->sync, r.fenv, &o);
    uint64_t start = now_ms();
    enum st_status st = lsm_open(a->dir, &o, &r.db);
    if (st != ST_OK) {
        fprintf(stderr, "OPEN FAILED: %s: %s\n", a->dir, st_status_name(st));
        return EXIT_OPEN;
    }
    r.t0 = (uint64_t)time(NULL);
    r.tomb_may_vanish = r.st.cfg.gc_grace < SM_TOMB_SAFE_GRACE;
    pthread_mutex_init(&r.gate.mu, NULL);
    pthread_cond_init(&r.gate.cv, NULL);
    if (sm_ack_write(r.ack_fd, r.st.cycle, SM_ACK_START, r.t0) != 0)
        return EXIT_ENGINE;

    uint32_t nt = r.st.cfg.threads;
    struct writer w[SM_MAX_THREADS];
    for (uint32_t t = 0; t < nt; t++) {
        w[t] = (struct writer){.r = &r, .thread = t};
        if (pthread_create(&w[t].tid, NULL, writer_main, &w[t]) != 0)
            return EXIT_ENGINE;
    }
    pthread_t maint;
    if (pthread_create(&maint, NULL, maint_main, &r) != 0)
        return EXIT_ENGINE;

    uint64_t until = a->power_loss_ms >= 0 ? start + (uint64_t)a->power_loss_ms
                     : a->seconds > 0      ? start + (uint64_t)(a->seconds * 1000)
                                           : UINT64_MAX;
    while (now_ms() < until)
        usleep(5000);
    if (r.fenv != NULL) {
        /* The power goes out: from here on nothing reaches the disk. */
        atomic_store(&r.power_lost, true);
        env_fault_fail(r.fenv, ENV_FAULT_WRITE, 1, EIO, 1);
        env_fault_fail(r.fenv, ENV_FAULT_SYNC, 1, EIO, 1);
    }
    atomic_store(&r.stop, true);
    pthread_mutex_lock(&r.gate.mu);
    pthread_cond_broadcast(&r.gate.cv);
    pthread_mutex_unlock(&r.gate.mu);
    for (uint32_t t = 0; t < nt; t++)
        pthread_join(w[t].tid, NULL);
    pthread_join(maint, NULL);
    struct lsm_stats s;
    lsm_stats(r.db, &s);
    lsm_close(&r.db);
    if (r.fenv != NULL) {
        if (env_fault_crash(r.fenv) != ST_OK) {
            fprintf(stderr, "power loss simulation failed\n");
            return EXIT_ENGINE;
        }
        env_fault_destroy(&r.fenv);
    }
    printf("run: cycle %u: %llu ops (%llu batches, %llu with %llu stale entries, %llu flushes "
           "and %llu compactions in the streams), %llu reads (%llu past the first hit, %llu "
           "newer below), %llu flushes, %llu compactions (%llu checked), %llu scans (%llu "
           "records), %llu wal syncs, %llu groups, %llu writers parked%s\n",
           r.st.cycle, (unsigned long long)r.ops, (unsigned long long)r.batches,
           (unsigned long long)r.stale_ops, (unsigned long long)r.stale_entries,
           (unsigned long long)r.flushes_op, (unsigned long long)r.compactions_op,
           (unsigned long long)r.reads, (unsigned long long)s.gets_past_first_hit,
           (unsigned long long)s.gets_newer_below, (unsigned long long)r.flushes,
           (unsigned long long)r.compactions, (unsigned long long)r.checked_compactions,
           (unsigned long long)r.scans, (unsigned long long)r.scanned,
           (unsigned long long)s.wal_syncs, (unsigned long long)s.group_commits,
           (unsigned long long)r.parked, a->power_loss_ms >= 0 ? "; power loss simulated" : "");
    pthread_mutex_destroy(&r.gate.mu);
    pthread_cond_destroy(&r.gate.cv);
    close(r.ack_fd);
    sm_state_deinit(&r.st);
    return 0;
}

/* ------------------------------------------------------------- verify -- */

struct fetched {
    struct lsm_record **rec; /* per key, with tombstones and expired */
    bool *visible;           /* a plain get found it */
    uint64_t scanned;        /* records of the full scan */
};

static void fetched_free(struct fetched *f, uint32_t keys)
{
    if (f->rec != NULL)
        for (uint32_t i = 0; i < keys; i++)
            lsm_record_free(&f->rec[i]);
    mem_free(MEM_OTHER, f->rec, keys * sizeof(*f->rec));
    mem_free(MEM_OTHER, f->visible, keys * sizeof(*f->visible));
    f->rec = NULL;
    f->visible = NULL;
}

static bool vfail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool vfail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("VERIFY FAILED: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return false;
}

static bool same_version(const struct lsm_record *x, const struct lsm_record *y)
{
    if (x == NULL || y == NULL)
        return x == y;
    return x->tombstone == y->tombstone && x->version.hlc == y->version.hlc &&
           x->version.node == y->version.node && x->value_len == y->value_len &&
           x->expiry == y->expiry && x->flags == y->flags;
}

/* A record that compaction may drop between two reads. */
static bool may_vanish(const struct lsm_record *x, uint64_t now_hi, bool tomb_may_vanish)
{
    if (x == NULL)
        return false;
    if (x->tombstone)
        return tomb_may_vanish;
    return x->expiry != 0 && x->expiry <= now_hi;
}

static void show_record(const char *what, const struct lsm_record *x)
{
    fprintf(stderr, "  %s: %s hlc %llx node %u len %zu flags %x exp %llu\n", what,
            x == NULL      ? "absent"
            : x->tombstone ? "tombstone"
                           : "live",
            x ? (unsigned long long)x->version.hlc : 0ull, x ? x->version.node : 0,
            x ? x->value_len : 0, x ? x->flags : 0u, x ? (unsigned long long)x->expiry : 0ull);
}

/* Reads every key twice (with and without tombstones/expired) and scans
 * the whole token space; checks gets, visibility and the scan agree. */
static bool fetch_all(struct lsm_db *db, uint32_t keys, bool tomb_may_vanish, struct fetched *f,
                      uint64_t *now_hi_out)
{
    f->rec = mem_calloc(MEM_OTHER, keys, sizeof(*f->rec));
    f->visible = mem_calloc(MEM_OTHER, keys, sizeof(*f->visible));
    if (f->rec == NULL || f->visible == NULL)
        return vfail("out of memory");
    uint64_t now_lo = (uint64_t)time(NULL);
    for (uint32_t i = 0; i < keys; i++) {
        char key[SM_KEY_CAP];
        size_t kl = sm_key(i, key);
        enum st_status st =
            lsm_get(db, key, kl, LSM_READ_TOMBSTONES | LSM_READ_EXPIRED, &f->rec[i]);
        if (st != ST_OK)
            return vfail("get key %u: %s", i, st_status_name(st));
        struct lsm_record *plain = NULL;
        st = lsm_get(db, key, kl, 0, &plain);
        if (st != ST_OK)
            return vfail("get key %u: %s", i, st_status_name(st));
        f->visible[i] = plain != NULL;
        if (plain != NULL && !same_version(plain, f->rec[i]))
            return vfail("key %u: plain get and raw get disagree", i);
        lsm_record_free(&plain);
    }
    uint64_t now_hi = (uint64_t)time(NULL) + 1;
    *now_hi_out = now_hi;
    for (uint32_t i = 0; i < keys; i++) {
        const struct lsm_record *x = f->rec[i];
        bool live = x != NULL && !x->tombstone;
        bool want = live && (x->expiry == 0 || x->expiry > now_hi);
        bool either = live && x->expiry != 0 && x->expiry >= now_lo && x->expiry <= now_hi;
        if (!either && f->visible[i] != want)
            return vfail("key %u: %s by a plain get (expiry %llu, now %llu)", i,
                         f->visible[i] ? "visible" : "invisible",
                         (unsigned long long)(x ? x->expiry : 0), (unsigned long long)now_lo);
    }
    /* Full scan: exactly the keys the gets found, in token order. */
    bool *seen = mem_calloc(MEM_OTHER, keys, sizeof(*seen));
    struct lsm_iter *it = NULL;
    enum st_status st = seen == NULL ? ST_NOMEM
                                     : lsm_iter_create(db, NULL, 0, UINT64_MAX,
                                                       LSM_READ_TOMBSTONES | LSM_READ_EXPIRED, &it);
    bool ok = true;
    if (st == ST_OK) {
        struct lsm_record rec;
        uint64_t prev = 0;
        bool first = true;
        while (ok && lsm_iter_next(it, &rec)) {
            uint32_t idx;
            uint64_t tok = lsm_token(rec.key, rec.key_len);
            if (!sm_key_parse(rec.key, rec.key_len, &idx) || idx >= keys)
                ok = vfail("scan: foreign key (%zu bytes)", rec.key_len);
            else if (!first && tok < prev)
                ok = vfail("scan: token order broken at key %u", idx);
            else if (seen[idx])
                ok = vfail("scan: key %u twice", idx);
            else if (!same_version(&rec, f->rec[idx])) {
                /* Nothing writes during verify: between the gets and the
                 * scan a record may vanish (compaction), never appear or
                 * change version. */
                ok = vfail("scan: key %u differs from its get", idx);
                show_record("get", f->rec[idx]);
                show_record("scan", &rec);
                struct lsm_record *again = NULL;
                if (lsm_get(db, rec.key, rec.key_len, LSM_READ_TOMBSTONES | LSM_READ_EXPIRED,
                            &again) == ST_OK)
                    show_record("get again", again);
                lsm_record_free(&again);
            } else
                seen[idx] = true;
            f->scanned += ok;
            prev = tok;
            first = false;
        }
        if (ok)
            st = lsm_iter_status(it);
    }
    lsm_iter_destroy(&it);
    if (ok && st != ST_OK)
        ok = vfail("scan: %s", st_status_name(st));
    for (uint32_t i = 0; ok && i < keys; i++)
        if (f->rec[i] != NULL && !seen[i] && !may_vanish(f->rec[i], now_hi, tomb_may_vanish))
            ok = vfail("scan: key %u missing", i);
    mem_free(MEM_OTHER, seen, keys * sizeof(*seen));
    return ok;
}

static void describe(uint32_t idx, const struct sm_entry *m, const struct lsm_record *x)
{
    fprintf(stderr,
            "  key %u: expected %s hlc %llx node %u len %u exp %llu; "
            "found %s hlc %llx node %u len %zu exp %llu\n",
            idx,
            m->kind == SM_NONE   ? "absent"
            : m->kind == SM_TOMB ? "tombstone"
                                 : "live",
            (unsigned long long)m->hlc, m->node, m->value_len, (unsigned long long)m->expiry,
            x == NULL      ? "absent"
            : x->tombstone ? "tombstone"
                           : "live",
            x ? (unsigned long long)x->version.hlc : 0ull, x ? x->version.node : 0,
            x ? x->value_len : 0, x ? (unsigned long long)x->expiry : 0ull);
}

struct thread_result {
    uint64_t chosen;                   /* operations of the stream the database holds */
    uint64_t stale_ops, stale_entries; /* among them */
    bool ok;
};

/* Replays thread t's stream over `model` (its keys only), counting keys
 * that differ from the database after each prefix; picks the longest
 * prefix allowed by the invariant and leaves `model` at it. */
static struct thread_result check_thread(const struct sm_state *st, struct sm_entry *model,
                                         uint32_t t, uint64_t acked, bool started, uint64_t t0,
                                         bool prefix, const struct fetched *f, uint64_t now_hi,
                                         uint8_t *scratch)
{
    const struct sm_config *cfg = &st->cfg;
    bool tv = cfg->gc_grace < SM_TOMB_SAFE_GRACE;
    uint64_t last = started ? acked + 1 : 0; /* prefixes 0..last */
    struct thread_result res = {.ok = false};
    struct sm_entry *start = mem_alloc(MEM_OTHER, cfg->keys * sizeof(*start));
    if (start == NULL)
        return res;
    memcpy(start, model, cfg->keys * sizeof(*start));
    uint64_t mm = 0;
    for (uint32_t k = t; k < cfg->keys; k += cfg->threads)
        mm += !sm_match(k, &model[k], f->rec[k], now_hi, tv, scratch);
    bool found = false;
    uint64_t best = 0;
    if (mm == 0 && (prefix || acked == 0)) {
        found = true;
        best = 0;
    }
    struct sm_gen g;
    sm_gen_init(&g, cfg, st->cycle, t, t0);
    for (uint64_t p = 0; p < last; p++) {
        struct sm_op op;
        sm_gen_next(&g, model, &op);
        bool changed = false;
        for (int i = 0; i < op.n; i++) {
            uint32_t k = op.key[i];
            mm -= !sm_match(k, &model[k], f->rec[k], now_hi, tv, scratch);
            struct sm_op one = op;
            bool applied;
            one.n = 1;
            one.key[0] = k;
            one.rec[0] = op.rec[i];
            sm_apply(model, &one, &applied);
            changed |= applied;
            mm += !sm_match(k, &model[k], f->rec[k], now_hi, tv, scratch);
        }
        /* An operation that changed nothing (stale) is not counted as
         * applied when the shorter prefix already matched. */
        bool allowed = prefix || p + 1 >= acked;
        if (mm == 0 && allowed && (!found || changed || best != p)) {
            found = true;
            best = p + 1;
        }
    }
    if (!found) {
        vfail("thread %u: no allowed prefix of its %llu acknowledged (+1 in "
              "flight) ops matches the database (%s invariant)",
              t, (unsigned long long)acked, prefix ? "prefix" : "strong");
        /* Differences against the acknowledged state. */
        memcpy(model, start, cfg->keys * sizeof(*start));
        sm_gen_init(&g, cfg, st->cycle, t, t0);
        for (uint64_t p = 0; p < acked; p++) {
            struct sm_op op;
            sm_gen_next(&g, model, &op);
            sm_apply(model, &op, NULL);
        }
        int shown = 0;
        for (uint32_t k = t; k < cfg->keys && shown < 10; k += cfg->threads)
            if (!sm_match(k, &model[k], f->rec[k], now_hi, tv, scratch)) {
                describe(k, &model[k], f->rec[k]);
                shown++;
            }
        mem_free(MEM_OTHER, start, cfg->keys * sizeof(*start));
        return res;
    }
    /* Leave the model at the chosen prefix. */
    memcpy(model, start, cfg->keys * sizeof(*start));
    sm_gen_init(&g, cfg, st->cycle, t, t0);
    for (uint64_t p = 0; p < best; p++) {
        struct sm_op op;
        sm_gen_next(&g, model, &op);
        sm_apply(model, &op, NULL);
        res.stale_ops += op.nstale > 0;
        res.stale_entries += (uint64_t)op.nstale;
    }
    mem_free(MEM_OTHER, start, cfg->keys * sizeof(*start));
    res.ok = true;
    res.chosen = best;
    return res;
}

/*
 * Once the streams are resolved (`model` is what the database holds): a
 * full compaction, then gets and a full scan must agree, every key must
 * still be the model's newest version (or gone, if compaction may drop
 * it), and the tables must hold one record per key: exactly the newest
 * version survives. *records / *may_hold: the tables' records and the keys
 * the model says may have one (live, tombstoned or expired).
 */
static bool compact_verify(const char *dir, const struct lsm_options *o, const struct sm_state *st,
                           bool tv, uint8_t *scratch, uint64_t *records, uint64_t *may_hold)
{
    uint32_t keys = st->cfg.keys;
    struct lsm_db *db = NULL;
    enum st_status s = lsm_open(dir, o, &db);
    if (s != ST_OK)
        return vfail("open for the full compaction: %s", st_status_name(s));
    s = lsm_compact_all(db);
    bool ok = s == ST_OK || vfail("full compaction: %s", st_status_name(s));
    struct fetched f = {0};
    uint64_t now_hi = 0, may = 0;
    if (ok)
        ok = fetch_all(db, keys, tv, &f, &now_hi);
    for (uint32_t i = 0; ok && i < keys; i++) {
        if (!sm_match(i, &st->e[i], f.rec[i], now_hi, tv, scratch)) {
            ok = vfail("key %u differs from the model after a full compaction", i);
            describe(i, &st->e[i], f.rec[i]);
        }
        may += st->e[i].kind != SM_NONE;
    }
    /* Read after the scan: a compaction finishing meanwhile only drops. */
    struct lsm_stats stats;
    lsm_stats(db, &stats);
    if (ok && (stats.table_records > f.scanned || stats.table_records > may))
        ok = vfail("after a full compaction the tables hold %llu records for %llu keys "
                   "scanned (the model allows %llu): an older version survived",
                   (unsigned long long)stats.table_records, (unsigned long long)f.scanned,
                   (unsigned long long)may);
    *records = stats.table_records;
    *may_hold = may;
    fetched_free(&f, keys);
    lsm_close(&db);
    return ok;
}

static int cmd_verify(const struct args *a)
{
    struct sm_state st;
    if (sm_state_load(a->state, &st) != 0) {
        fprintf(stderr, "cannot load state %s: %s\n", a->state, strerror(errno));
        return EX_NOINPUT;
    }
    const struct sm_config *cfg = &st.cfg;
    char ap[4096];
    ack_path(a, ap, sizeof(ap));
    uint64_t acked[SM_MAX_THREADS], t0;
    bool started;
    if (sm_ack_read(ap, st.cycle, cfg->threads, acked, &t0, &started) != 0) {
        fprintf(stderr, "cannot read %s: %s\n", ap, strerror(errno));
        return EX_NOINPUT;
    }
    bool tv = cfg->gc_grace < SM_TOMB_SAFE_GRACE;
    struct lsm_options o;
    db_options(cfg, LSM_SYNC_ALWAYS, NULL, &o);
    o.create_if_missing = true; /* a kill before the first open completed */
    uint8_t *scratch = mem_alloc(MEM_OTHER, SM_MAX_VALUE);
    struct fetched f = {0}, f2 = {0};
    struct lsm_db *db = NULL;
    bool ok = scratch != NULL;
    uint64_t now_hi = 0, now2 = 0;
    uint64_t t_open = now_ms();
    enum st_status s = lsm_open(a->dir, &o, &db);
    t_open = now_ms() - t_open;
    if (s != ST_OK)
        ok = vfail("open %s: %s", a->dir, st_status_name(s));
    if (ok)
        ok = fetch_all(db, cfg->keys, tv, &f, &now_hi);
    struct lsm_stats stats = {0};
    if (db != NULL)
        lsm_stats(db, &stats);
    lsm_close(&db);
    /* A second recovery must find the same records. */
    for (int round = 1; ok && round < a->reopens; round++) {
        s = lsm_open(a->dir, &o, &db);
        if (s != ST_OK) {
            ok = vfail("reopen %d: %s", round, st_status_name(s));
            break;
        }
        ok = fetch_all(db, cfg->keys, tv, &f2, &now2);
        for (uint32_t i = 0; ok && i < cfg->keys; i++)
            if (!same_version(f.rec[i], f2.rec[i]) &&
                !(f2.rec[i] == NULL && may_vanish(f.rec[i], now2, tv)))
                ok = vfail("reopen %d: key %u changed", round, i);
        fetched_free(&f2, cfg->keys);
        lsm_close(&db);
        now_hi = now2 > now_hi ? now2 : now_hi;
    }
    uint64_t total_acked = 0, inflight_applied = 0, lost = 0, stale_ops = 0, stale_entries = 0;
    for (uint32_t t = 0; ok && t < cfg->threads; t++) {
        struct thread_result tr =
            check_thread(&st, st.e, t, acked[t], started, t0, a->prefix, &f, now_hi, scratch);
        ok = tr.ok;
        total_acked += acked[t];
        stale_ops += tr.stale_ops;
        stale_entries += tr.stale_entries;
        if (tr.chosen > acked[t])
            inflight_applied++;
        else
            lost += acked[t] - tr.chosen;
    }
    uint64_t live = 0, tomb = 0;
    for (uint32_t i = 0; ok && i < cfg->keys; i++) {
        live += f.rec[i] != NULL && !f.rec[i]->tombstone;
        tomb += f.rec[i] != NULL && f.rec[i]->tombstone;
    }
    fetched_free(&f, cfg->keys);
    uint64_t records = 0, may_hold = 0;
    if (ok && a->compact)
        ok = compact_verify(a->dir, &o, &st, tv, scratch, &records, &may_hold);
    mem_free(MEM_OTHER, scratch, SM_MAX_VALUE);
    if (!ok) {
        fprintf(stderr, "verify: cycle %u FAILED (%s invariant)\n", st.cycle,
                a->prefix ? "prefix" : "strong");
        sm_state_deinit(&st);
        return EXIT_VERIFY;
    }
    char levels[128];
    int n = 0;
    for (int l = 0; l < LSM_MAX_LEVELS; l++)
        n += snprintf(levels + n, sizeof(levels) - (size_t)n, "%s%llu", l ? "/" : "",
                      (unsigned long long)stats.level_files[l]);
    char compacted[96] = "not compacted";
    if (a->compact)
        snprintf(compacted, sizeof(compacted), "compacted: %llu table records for %llu keys",
                 (unsigned long long)records, (unsigned long long)may_hold);
    printf("verify: cycle %u ok (%s): %llu acked ops, %llu in-flight ops "
           "applied, %llu acked ops lost (allowed), %llu live + %llu tombstones, "
           "%llu stale ops (%llu entries), files %s, open %llu ms, %s\n",
           st.cycle, a->prefix ? "prefix" : "strong", (unsigned long long)total_acked,
           (unsigned long long)inflight_applied, (unsigned long long)lost, (unsigned long long)live,
           (unsigned long long)tomb, (unsigned long long)stale_ops,
           (unsigned long long)stale_entries, levels, (unsigned long long)t_open, compacted);
    st.cycle++;
    int rc = 0;
    if (sm_state_save(a->state, &st) != 0 || truncate(ap, 0) != 0) {
        fprintf(stderr, "cannot save state: %s\n", strerror(errno));
        rc = EX_IOERR;
    }
    sm_state_deinit(&st);
    return rc;
}

/* --------------------------------------------------------------- init -- */

static int cmd_init(const struct args *a)
{
    if (a->threads == 0 || a->threads > SM_MAX_THREADS || a->keys < a->threads || a->keys > 9999999)
        usage();
    struct sm_config cfg = {.seed = a->seed,
                            .keys = a->keys,
                            .threads = a->threads,
                            .style = a->style,
                            .gc_grace = a->gc_grace};
    struct sm_state st;
    if (sm_state_create(&st, &cfg) != 0)
        return EXIT_ENGINE;
    char ap[4096];
    ack_path(a, ap, sizeof(ap));
    int rc = 0;
    if (sm_state_save(a->state, &st) != 0 || (unlink(ap) != 0 && errno != ENOENT)) {
        fprintf(stderr, "cannot write %s: %s\n", a->state, strerror(errno));
        rc = EX_CANTCREAT;
    }
    sm_state_deinit(&st);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    const char *cmd = argv[1];
    struct args a = {.keys = 10000,
                     .threads = 4,
                     .seed = 1,
                     .style = LSM_COMPACTION_LEVELED,
                     .gc_grace = 864000,
                     .sync = LSM_SYNC_ALWAYS,
                     .power_loss_ms = -1,
                     .reopens = 2};
    static const struct option lo[] = {
        {"dir", required_argument, NULL, 'd'},
        {"state", required_argument, NULL, 'f'},
        {"keys", required_argument, NULL, 'k'},
        {"threads", required_argument, NULL, 't'},
        {"seed", required_argument, NULL, 's'},
        {"style", required_argument, NULL, 'y'},
        {"gc-grace", required_argument, NULL, 'g'},
        {"sync", required_argument, NULL, 'S'},
        {"seconds", required_argument, NULL, 'T'},
        {"power-loss-ms", required_argument, NULL, 'P'},
        {"invariant", required_argument, NULL, 'i'},
        {"reopens", required_argument, NULL, 'r'},
        {"compact", no_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'd': a.dir = optarg; break;
        case 'f': a.state = optarg; break;
        case 'k': a.keys = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 't': a.threads = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 's': a.seed = strtoull(optarg, NULL, 10); break;
        case 'g': a.gc_grace = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'T': a.seconds = strtod(optarg, NULL); break;
        case 'P': a.power_loss_ms = strtol(optarg, NULL, 10); break;
        case 'r': a.reopens = atoi(optarg); break;
        case 'c': a.compact = true; break;
        case 'y':
            if (strcmp(optarg, "leveled") == 0)
                a.style = LSM_COMPACTION_LEVELED;
            else if (strcmp(optarg, "tiered") == 0)
                a.style = LSM_COMPACTION_TIERED;
            else
                usage();
            break;
        case 'S':
            if (strcmp(optarg, "always") == 0)
                a.sync = LSM_SYNC_ALWAYS;
            else if (strcmp(optarg, "interval") == 0)
                a.sync = LSM_SYNC_INTERVAL;
            else if (strcmp(optarg, "none") == 0)
                a.sync = LSM_SYNC_NONE;
            else
                usage();
            break;
        case 'i':
            if (strcmp(optarg, "strong") == 0)
                a.prefix = false;
            else if (strcmp(optarg, "prefix") == 0)
                a.prefix = true;
            else
                usage();
            break;
        default: usage();
        }
    }
    if (a.dir == NULL || a.state == NULL || optind != argc)
        usage();
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(cmd, "init") == 0)
        return cmd_init(&a);
    if (strcmp(cmd, "run") == 0)
        return cmd_run(&a);
    if (strcmp(cmd, "verify") == 0)
        return cmd_verify(&a);
    usage();
}
