/* test_db.c - the engine through its public API (storage/include/lsm.h):
 * reads and writes, last-write-wins, expiry, batches, snapshots and token
 * range iterators, reopen (WAL replay and tables), compaction merge rules,
 * group commit, and failure handling on the fault env (fsync EIO makes the
 * engine read-only without acknowledging; simulated power loss keeps every
 * synced write; WAL and table corruption reported). Randomized runs against
 * a model are in test_db_model.c. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "db_fixture.h"

static void test_put_get_delete(void **state)
{
    struct fx *f = *state;
    open_db(f);
    assert_int_equal(put(f->db, "alpha", "one", 10), ST_OK);
    expect(f->db, "alpha", "one");
    expect(f->db, "beta", NULL);
    struct lsm_record *r = NULL;
    assert_int_equal(lsm_get(f->db, "alpha", 5, 0, &r), ST_OK);
    assert_int_equal(r->flags, 7);
    assert_true(r->version.hlc == 10 && r->version.node == 1);
    assert_false(r->tombstone);
    lsm_record_free(&r);
    assert_int_equal(lsm_delete(f->db, "alpha", 5, ver(11), 0), ST_OK);
    expect(f->db, "alpha", NULL);
    assert_int_equal(lsm_get(f->db, "alpha", 5, LSM_READ_TOMBSTONES, &r), ST_OK);
    assert_non_null(r);
    assert_true(r->tombstone);
    assert_true(r->expiry == f->now); /* deletion time defaults to now */
    lsm_record_free(&r);
    /* Empty values are values. */
    assert_int_equal(put(f->db, "empty", "", 1), ST_OK);
    expect(f->db, "empty", "");
    /* Limits. */
    char big[300];
    memset(big, 'k', sizeof(big));
    struct lsm_record bad = {.key = (uint8_t *)big, .key_len = 251, .version = ver(1)};
    assert_int_equal(lsm_put(f->db, &bad), ST_INVAL);
    bad.key_len = 0;
    assert_int_equal(lsm_put(f->db, &bad), ST_INVAL);
    bad.key_len = 250;
    assert_int_equal(lsm_put(f->db, &bad), ST_OK);
    bad.value_len = f->o.max_value_len + 1;
    bad.value = calloc(1, bad.value_len);
    assert_int_equal(lsm_put(f->db, &bad), ST_INVAL);
    bad.value_len--;
    bad.version = ver(2);
    assert_int_equal(lsm_put(f->db, &bad), ST_OK); /* exactly 1 MiB */
    free((void *)bad.value);
    assert_int_equal(lsm_get(f->db, big, 250, 0, &r), ST_OK);
    assert_int_equal(r->value_len, f->o.max_value_len);
    lsm_record_free(&r);
}

static void test_lww(void **state)
{
    struct fx *f = *state;
    open_db(f);
    assert_int_equal(put(f->db, "k", "v5", 5), ST_OK);
    assert_int_equal(put(f->db, "k", "v3", 3), ST_OK);
    assert_int_equal(put(f->db, "k", "v5b", 5), ST_OK);
    expect(f->db, "k", "v5");
    /* Node id breaks ties on the clock. */
    struct lsm_record r = {.key = (uint8_t *)"k",
                           .key_len = 1,
                           .value = (uint8_t *)"n2",
                           .value_len = 2,
                           .version = {5, 2}};
    assert_int_equal(lsm_put(f->db, &r), ST_OK);
    expect(f->db, "k", "n2");
    /* A delete older than the value loses, a newer one wins, and a put
     * older than the tombstone stays dead. */
    assert_int_equal(lsm_delete(f->db, "k", 1, ver(4), 0), ST_OK);
    expect(f->db, "k", "n2");
    assert_int_equal(lsm_delete(f->db, "k", 1, ver(8), 0), ST_OK);
    assert_int_equal(put(f->db, "k", "v7", 7), ST_OK);
    expect(f->db, "k", NULL);
    /* Older versions arriving after a flush lose to the one on disk. */
    assert_int_equal(put(f->db, "d", "v10", 10), ST_OK);
    assert_int_equal(lsm_flush(f->db), ST_OK);
    assert_int_equal(put(f->db, "d", "v9", 9), ST_OK);
    assert_int_equal(put(f->db, "k", "v7", 7), ST_OK);
    expect(f->db, "d", "v10");
    expect(f->db, "k", NULL);
    assert_int_equal(put(f->db, "d", "v11", 11), ST_OK);
    expect(f->db, "d", "v11");
    /* And after a full compaction exactly the newest survives. */
    assert_int_equal(lsm_compact_all(f->db), ST_OK);
    expect(f->db, "d", "v11");
    expect(f->db, "k", NULL);
    struct lsm_stats s;
    lsm_stats(f->db, &s);
    assert_true(s.table_records == 2); /* d@11 and k's tombstone @8 */
}

static void test_expiry(void **state)
{
    struct fx *f = *state;
    open_db(f);
    struct lsm_record r = {.key = (uint8_t *)"ttl",
                           .key_len = 3,
                           .value = (uint8_t *)"x",
                           .value_len = 1,
                           .expiry = f->now + 10,
                           .version = ver(1)};
    assert_int_equal(lsm_put(f->db, &r), ST_OK);
    expect(f->db, "ttl", "x");
    __atomic_fetch_add(&f->now, 10, __ATOMIC_RELAXED);
    expect(f->db, "ttl", NULL);
    struct lsm_record *got = NULL;
    assert_int_equal(lsm_get(f->db, "ttl", 3, LSM_READ_EXPIRED, &got), ST_OK);
    assert_non_null(got);
    lsm_record_free(&got);
    /* Also from a table. */
    assert_int_equal(lsm_flush(f->db), ST_OK);
    expect(f->db, "ttl", NULL);
    __atomic_fetch_sub(&f->now, 5, __ATOMIC_RELAXED);
    expect(f->db, "ttl", "x");
}

static void fill(struct lsm_db *db, int from, int to, uint64_t hlc, const char *tag)
{
    for (int i = from; i < to; i++) {
        char k[32], v[64];
        snprintf(k, sizeof(k), "key%05d", i);
        snprintf(v, sizeof(v), "%s-%d-%0*d", tag, i, 20, i);
        assert_int_equal(put(db, k, v, hlc), ST_OK);
    }
}

static void check(struct lsm_db *db, int from, int to, const char *tag)
{
    for (int i = from; i < to; i++) {
        char k[32], v[64];
        snprintf(k, sizeof(k), "key%05d", i);
        snprintf(v, sizeof(v), "%s-%d-%0*d", tag ? tag : "", i, 20, i);
        expect(db, k, tag ? v : NULL);
    }
}

static void test_reopen(void **state)
{
    struct fx *f = *state;
    open_db(f);
    fill(f->db, 0, 3000, 1, "a"); /* spills several memtables */
    fill(f->db, 0, 100, 2, "b");  /* overwrites in the memtable */
    lsm_close(&f->db);
    open_db(f);
    check(f->db, 100, 3000, "a");
    check(f->db, 0, 100, "b");
    /* Reopen again (the replayed WAL was turned into a table). */
    lsm_close(&f->db);
    open_db(f);
    check(f->db, 0, 100, "b");
    struct lsm_stats s;
    lsm_stats(f->db, &s);
    uint64_t files = 0;
    for (int l = 0; l < LSM_MAX_LEVELS; l++)
        files += s.level_files[l];
    assert_true(files > 0);
    /* Only one WAL segment survives an open. */
    assert_int_equal(tu_count_suffix(f->dir, ".wal"), 1);
    assert_int_equal(tu_count_suffix(f->dir, ".tmp"), 0);
    /* The LOCK keeps a second open out. */
    struct lsm_db *second = NULL;
    assert_int_equal(lsm_open(f->dir, &f->o, &second), ST_IO);
    /* Options that forbid creating or reusing. */
    lsm_close(&f->db);
    f->o.error_if_exists = true;
    assert_int_equal(lsm_open(f->dir, &f->o, &second), ST_INVAL);
    f->o.error_if_exists = false;
    f->o.create_if_missing = false;
    char other[4200];
    snprintf(other, sizeof(other), "%s/nothing", f->dir);
    assert_int_equal(lsm_open(other, &f->o, &second), ST_INVAL);
    /* An existing directory without a database, too. */
    mkdir(other, 0755);
    assert_int_equal(lsm_open(other, &f->o, &second), ST_INVAL);
}

struct scan {
    int n;
    char keys[5000][16];
};

static void scan_all(struct lsm_db *db, const struct lsm_snapshot *snap, uint64_t lo, uint64_t hi,
                     unsigned flags, struct scan *s)
{
    struct lsm_iter *it = NULL;
    assert_int_equal(lsm_iter_create(db, snap, lo, hi, flags, &it), ST_OK);
    struct lsm_record r;
    s->n = 0;
    uint64_t prev = 0;
    while (lsm_iter_next(it, &r)) {
        uint64_t t = lsm_token(r.key, r.key_len);
        assert_true(t >= lo && t <= hi);
        assert_true(t >= prev);
        prev = t;
        assert_true(s->n < 5000);
        snprintf(s->keys[s->n], 16, "%.*s", (int)r.key_len, (const char *)r.key);
        s->n++;
    }
    assert_int_equal(lsm_iter_status(it), ST_OK);
    lsm_iter_destroy(&it);
    assert_null(it);
}

static void test_iterators_and_snapshots(void **state)
{
    struct fx *f = *state;
    open_db(f);
    fill(f->db, 0, 1000, 1, "a");
    assert_int_equal(lsm_flush(f->db), ST_OK);
    fill(f->db, 1000, 2000, 1, "a");
    fill(f->db, 0, 500, 2, "b"); /* newer versions over the table */
    for (int i = 0; i < 2000; i += 10) {
        char k[32];
        snprintf(k, sizeof(k), "key%05d", i);
        assert_int_equal(lsm_delete(f->db, k, strlen(k), ver(3), 0), ST_OK);
    }
    static struct scan s;
    scan_all(f->db, NULL, 0, UINT64_MAX, 0, &s);
    assert_int_equal(s.n, 1800); /* one per live key, versions merged */
    scan_all(f->db, NULL, 0, UINT64_MAX, LSM_READ_TOMBSTONES, &s);
    assert_int_equal(s.n, 2000);
    /* Token sub-ranges partition the keyspace. */
    static struct scan a, b;
    scan_all(f->db, NULL, 0, UINT64_MAX / 2, 0, &a);
    scan_all(f->db, NULL, UINT64_MAX / 2 + 1, UINT64_MAX, 0, &b);
    assert_int_equal(a.n + b.n, 1800);
    assert_true(a.n > 700 && b.n > 700);
    /* A single token. */
    uint64_t t = lsm_token("key00001", 8);
    scan_all(f->db, NULL, t, t, 0, &a);
    assert_int_equal(a.n, 1);
    assert_string_equal(a.keys[0], "key00001");
    assert_int_equal(lsm_iter_create(f->db, NULL, 5, 4, 0, &(struct lsm_iter *){NULL}), ST_INVAL);

    /* A snapshot ignores later writes, flushes and compactions. */
    struct lsm_snapshot *snap = NULL;
    assert_int_equal(lsm_snapshot_create(f->db, &snap), ST_OK);
    fill(f->db, 2000, 2500, 5, "c");
    for (int i = 1; i < 500; i += 10) {
        char k[32];
        snprintf(k, sizeof(k), "key%05d", i);
        assert_int_equal(lsm_delete(f->db, k, strlen(k), ver(6), 0), ST_OK);
    }
    assert_int_equal(lsm_compact_all(f->db), ST_OK);
    scan_all(f->db, snap, 0, UINT64_MAX, 0, &s);
    assert_int_equal(s.n, 1800);
    scan_all(f->db, NULL, 0, UINT64_MAX, 0, &s);
    assert_int_equal(s.n, 1800 + 500 - 50);
    /* An iterator made from the snapshot outlives the snapshot. */
    struct lsm_iter *it = NULL;
    assert_int_equal(lsm_iter_create(f->db, snap, 0, UINT64_MAX, 0, &it), ST_OK);
    lsm_snapshot_destroy(f->db, &snap);
    assert_null(snap);
    int n = 0;
    struct lsm_record r;
    while (lsm_iter_next(it, &r)) {
        if (memcmp(r.key, "key00000", 8) == 0) {
            /* key00000 was deleted at version 3 before the snapshot */
            fail_msg("deleted key visible");
        }
        n++;
    }
    assert_int_equal(n, 1800);
    lsm_iter_destroy(&it);
}

static void test_batch(void **state)
{
    struct fx *f = *state;
    open_db(f);
    assert_int_equal(put(f->db, "x", "old", 10), ST_OK);
    struct lsm_batch *b = NULL;
    assert_int_equal(lsm_batch_create(&b), ST_OK);
    struct lsm_record r = {.key = (uint8_t *)"x",
                           .key_len = 1,
                           .value = (uint8_t *)"stale",
                           .value_len = 5,
                           .version = ver(5)};
    assert_int_equal(lsm_batch_put(b, &r), ST_OK); /* loses to "old" */
    r.key = (uint8_t *)"y";
    r.value = (uint8_t *)"y1";
    r.value_len = 2;
    r.version = ver(1);
    assert_int_equal(lsm_batch_put(b, &r), ST_OK);
    r.value = (uint8_t *)"y2";
    r.version = ver(2);
    assert_int_equal(lsm_batch_put(b, &r), ST_OK); /* beats y1 */
    r.value = (uint8_t *)"y0";
    r.version = ver(0);
    assert_int_equal(lsm_batch_put(b, &r), ST_OK); /* loses to y2 */
    assert_int_equal(lsm_batch_delete(b, "z", 1, ver(1), 0), ST_OK);
    assert_int_equal(lsm_batch_count(b), 5);
    assert_int_equal(lsm_write(f->db, b), ST_OK);
    expect(f->db, "x", "old");
    expect(f->db, "y", "y2");
    struct lsm_record *got = NULL;
    assert_int_equal(lsm_get(f->db, "z", 1, LSM_READ_TOMBSTONES, &got), ST_OK);
    assert_true(got != NULL && got->tombstone);
    lsm_record_free(&got);
    /* Reusable after clear; survives reopen. */
    lsm_batch_clear(b);
    for (int i = 0; i < 100; i++) {
        char k[16];
        snprintf(k, sizeof(k), "b%d", i);
        r.key = (uint8_t *)k;
        r.key_len = strlen(k);
        r.value = (uint8_t *)k;
        r.value_len = strlen(k);
        r.version = ver(1);
        assert_int_equal(lsm_batch_put(b, &r), ST_OK);
    }
    assert_int_equal(lsm_write(f->db, b), ST_OK);
    lsm_batch_destroy(&b);
    assert_null(b);
    lsm_close(&f->db);
    open_db(f);
    expect(f->db, "b42", "b42");
    expect(f->db, "y", "y2");
}

static void test_compaction_rules(void **state)
{
    struct fx *f = *state;
    f->o.gc_grace_seconds = 1000;
    f->o.expired_grace_seconds = 100;
    open_db(f);
    fill(f->db, 0, 4000, 1, "a");
    assert_int_equal(lsm_flush(f->db), ST_OK);
    fill(f->db, 0, 2000, 2, "b");
    /* old tombstones (deleted at now) and recent ones (deleted later) */
    for (int i = 0; i < 100; i++) {
        char k[32];
        snprintf(k, sizeof(k), "key%05d", i);
        assert_int_equal(lsm_delete(f->db, k, strlen(k), ver(3), f->now), ST_OK);
        snprintf(k, sizeof(k), "key%05d", 3000 + i);
        assert_int_equal(lsm_delete(f->db, k, strlen(k), ver(3), f->now + 5000), ST_OK);
        snprintf(k, sizeof(k), "ttl%05d", i);
        struct lsm_record r = {.key = (uint8_t *)k,
                               .key_len = strlen(k),
                               .value = (uint8_t *)"t",
                               .value_len = 1,
                               .expiry = f->now + 10,
                               .version = ver(1)};
        assert_int_equal(lsm_put(f->db, &r), ST_OK);
    }
    assert_int_equal(lsm_compact_all(f->db), ST_OK);
    struct lsm_stats s;
    lsm_stats(f->db, &s);
    assert_int_equal(s.level_files[0], 0);
    /* Everything is now in one level: newest versions only. */
    check(f->db, 100, 2000, "b");
    check(f->db, 2000, 3000, "a");
    check(f->db, 0, 100, NULL);
    static struct scan sc;
    scan_all(f->db, NULL, 0, UINT64_MAX, LSM_READ_TOMBSTONES | LSM_READ_EXPIRED, &sc);
    assert_int_equal(sc.n, 4000 + 100); /* nothing dropped yet */

    /* Past gc_grace of the old tombstones and the expiry grace. */
    __atomic_fetch_add(&f->now, 1000 + 10, __ATOMIC_RELAXED);
    assert_int_equal(lsm_compact_all(f->db), ST_OK);
    scan_all(f->db, NULL, 0, UINT64_MAX, LSM_READ_TOMBSTONES | LSM_READ_EXPIRED, &sc);
    /* old tombstones and expired records gone; recent tombstones kept */
    assert_int_equal(sc.n, 4000 - 100);
    struct lsm_record *r = NULL;
    assert_int_equal(lsm_get(f->db, "key03005", 8, LSM_READ_TOMBSTONES, &r), ST_OK);
    assert_non_null(r);
    assert_true(r->tombstone);
    lsm_record_free(&r);
    assert_int_equal(lsm_get(f->db, "key00005", 8, LSM_READ_TOMBSTONES, &r), ST_OK);
    assert_null(r);
    /* Regression: times near UINT64_MAX must not wrap into "long ago". */
    struct lsm_record far = {.key = (uint8_t *)"far",
                             .key_len = 3,
                             .value = (uint8_t *)"f",
                             .value_len = 1,
                             .expiry = UINT64_MAX - 1,
                             .version = ver(9)};
    assert_int_equal(lsm_put(f->db, &far), ST_OK);
    assert_int_equal(lsm_delete(f->db, "farx", 4, ver(9), UINT64_MAX), ST_OK);
    assert_int_equal(lsm_compact_all(f->db), ST_OK);
    expect(f->db, "far", "f");
    assert_int_equal(lsm_get(f->db, "farx", 4, LSM_READ_TOMBSTONES, &r), ST_OK);
    assert_non_null(r);
    lsm_record_free(&r);
    lsm_stats(f->db, &s);
    assert_true(s.compactions >= 2);
    assert_true(s.write_amplification > 1.0);
    assert_true(s.space_amplification >= 1.0 && s.space_amplification < 1.2);
}

static void test_background_compaction(void **state)
{
    struct fx *f = *state;
    f->o.memtable_size = 64u << 10;
    f->o.l0_compaction_trigger = 2;
    f->o.l0_slowdown_trigger = 3;
    f->o.l0_stop_trigger = 4;
    f->o.l1_target_size = 64u << 10;
    f->o.target_file_size = 64u << 10;
    open_db(f);
    for (int round = 0; round < 4; round++)
        fill(f->db, 0, 2500, (uint64_t)round + 1, round % 2 ? "odd" : "even");
    check(f->db, 0, 2500, "odd");
    /* Give the compactor a moment, then check the shape. */
    struct lsm_stats s;
    for (int i = 0; i < 200; i++) {
        lsm_stats(f->db, &s);
        if (s.level_files[0] < 2)
            break;
        usleep(10000);
    }
    assert_true(s.flushes >= 4);
    assert_true(s.compactions >= 1);
    uint64_t deeper = 0;
    for (int l = 1; l < LSM_MAX_LEVELS; l++)
        deeper += s.level_files[l];
    assert_true(deeper > 0);
    check(f->db, 0, 2500, "odd");
    lsm_close(&f->db);
    open_db(f);
    check(f->db, 0, 2500, "odd");
}

struct writer_arg {
    struct lsm_db *db;
    int id;
};

static void *writer_main(void *p)
{
    struct writer_arg *a = p;
    for (int i = 0; i < 200; i++) {
        char k[32];
        snprintf(k, sizeof(k), "w%d-%d", a->id, i);
        if (put(a->db, k, k, 1) != ST_OK)
            return (void *)1;
    }
    return NULL;
}

static void test_group_commit(void **state)
{
    struct fx *f = *state;
    f->o.sync_mode = LSM_SYNC_ALWAYS;
    open_db(f);
    pthread_t t[8];
    struct writer_arg a[8];
    for (int i = 0; i < 8; i++) {
        a[i] = (struct writer_arg){f->db, i};
        pthread_create(&t[i], NULL, writer_main, &a[i]);
    }
    for (int i = 0; i < 8; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        assert_null(rc);
    }
    struct lsm_stats s;
    lsm_stats(f->db, &s);
    assert_true(s.puts == 1600);
    assert_true(s.wal_syncs >= 1 && s.wal_syncs <= 1600);
    assert_true(s.group_commits <= 1600);
    /* Power loss right now: every acknowledged write is synced. */
    env_fault_fail(f->fenv, ENV_FAULT_WRITE, 1, EIO, 1);
    env_fault_fail(f->fenv, ENV_FAULT_SYNC, 1, EIO, 1);
    lsm_close(&f->db);
    assert_int_equal(env_fault_crash(f->fenv), ST_OK);
    open_db(f);
    for (int w = 0; w < 8; w++)
        for (int i = 0; i < 200; i++) {
            char k[32];
            snprintf(k, sizeof(k), "w%d-%d", w, i);
            expect(f->db, k, k);
        }
}

static void test_power_loss_interval(void **state)
{
    struct fx *f = *state;
    f->o.sync_mode = LSM_SYNC_ALWAYS;
    open_db(f);
    fill(f->db, 0, 3000, 1, "a"); /* several flushes and tables */
    env_fault_fail(f->fenv, ENV_FAULT_WRITE, 1, EIO, 1);
    env_fault_fail(f->fenv, ENV_FAULT_SYNC, 1, EIO, 1);
    lsm_close(&f->db);
    assert_int_equal(env_fault_crash(f->fenv), ST_OK);
    open_db(f);
    check(f->db, 0, 3000, "a");
    lsm_close(&f->db);
    /* sync=none: unsynced writes may vanish, but what remains is a prefix
     * and the database opens cleanly. */
    f->o.sync_mode = LSM_SYNC_NONE;
    open_db(f);
    fill(f->db, 0, 50, 2, "b");
    env_fault_fail(f->fenv, ENV_FAULT_WRITE, 1, EIO, 1);
    env_fault_fail(f->fenv, ENV_FAULT_SYNC, 1, EIO, 1);
    lsm_close(&f->db);
    assert_int_equal(env_fault_crash(f->fenv), ST_OK);
    open_db(f);
    check(f->db, 50, 3000, "a");
}

static void test_fsync_failure_read_only(void **state)
{
    struct fx *f = *state;
    f->o.sync_mode = LSM_SYNC_ALWAYS;
    open_db(f);
    assert_int_equal(put(f->db, "before", "1", 1), ST_OK);
    env_fault_fail(f->fenv, ENV_FAULT_SYNC, 1, EIO, 0);
    assert_int_equal(put(f->db, "failed", "2", 1), ST_IO);
    struct lsm_stats s;
    lsm_stats(f->db, &s);
    assert_true(s.read_only);
    assert_int_equal(s.bg_error, ST_IO);
    /* Even though the next sync would work, the engine stays read-only. */
    assert_int_equal(put(f->db, "after", "3", 1), ST_IO);
    expect(f->db, "before", "1");
    expect(f->db, "failed", NULL); /* never acknowledged, never visible */
    assert_int_equal(lsm_flush(f->db), ST_IO);
    lsm_close(&f->db);
    open_db(f);
    expect(f->db, "before", "1");
    assert_int_equal(put(f->db, "after", "3", 2), ST_OK);
    /* ENOSPC on the WAL append: same contract. */
    env_fault_fail(f->fenv, ENV_FAULT_WRITE, 1, ENOSPC, 0);
    assert_int_equal(put(f->db, "full", "4", 1), ST_IO);
    lsm_stats(f->db, &s);
    assert_true(s.read_only);
}

static void test_flush_failure(void **state)
{
    struct fx *f = *state;
    open_db(f);
    fill(f->db, 0, 200, 1, "a");
    /* The table sync during the flush fails: the flush fails, the engine
     * goes read-only, and the WAL still holds everything. */
    env_fault_fail(f->fenv, ENV_FAULT_SYNC, 1, EIO, 0);
    assert_int_equal(lsm_flush(f->db), ST_IO);
    struct lsm_stats s;
    lsm_stats(f->db, &s);
    assert_true(s.read_only);
    check(f->db, 0, 200, "a");
    lsm_close(&f->db);
    open_db(f);
    check(f->db, 0, 200, "a");
}

static void test_wal_corruption(void **state)
{
    struct fx *f = *state;
    open_db(f);
    fill(f->db, 0, 100, 1, "a");
    lsm_close(&f->db); /* close syncs; the WAL holds 100 records */
    char wal[4200];
    assert_true(tu_find_suffix(f->dir, ".wal", wal, sizeof(wal)));
    size_t len;
    unsigned char *d = tu_read_file(wal, &len);
    assert_true(len > 2000);
    unsigned char *saved = malloc(len);
    memcpy(saved, d, len);
    /* A torn tail: the last record cut in half is ignored. */
    tu_write_file(wal, d, len - 20);
    open_db(f);
    check(f->db, 0, 99, "a");
    expect(f->db, "key00099", NULL);
    lsm_close(&f->db);
    /* That open turned the WAL into a table; rebuild the scenario in a
     * fresh directory for the mid-log case. */
    tu_rmrf(f->dir);
    mkdir(f->dir, 0755);
    open_db(f);
    fill(f->db, 0, 100, 1, "a");
    lsm_close(&f->db);
    assert_true(tu_find_suffix(f->dir, ".wal", wal, sizeof(wal)));
    free(d);
    d = tu_read_file(wal, &len);
    d[len / 2] ^= 0x20;
    tu_write_file(wal, d, len);
    assert_int_equal(lsm_open(f->dir, &f->o, &f->db), ST_CORRUPT);
    assert_null(f->db);
    f->o.wal_recover_to_corruption = true;
    open_db(f);
    int present = 0;
    for (int i = 0; i < 100; i++) {
        char k[32];
        snprintf(k, sizeof(k), "key%05d", i);
        struct lsm_record *r = NULL;
        assert_int_equal(lsm_get(f->db, k, strlen(k), 0, &r), ST_OK);
        if (r != NULL) {
            assert_int_equal(present, i); /* a prefix */
            present++;
        }
        lsm_record_free(&r);
    }
    assert_true(present > 10 && present < 100);
    free(d);
    free(saved);
}

static void test_missing_and_corrupt_table(void **state)
{
    struct fx *f = *state;
    open_db(f);
    fill(f->db, 0, 500, 1, "a");
    assert_int_equal(lsm_flush(f->db), ST_OK);
    lsm_close(&f->db);
    char sst[4200];
    assert_true(tu_find_suffix(f->dir, ".sst", sst, sizeof(sst)));
    size_t len;
    unsigned char *d = tu_read_file(sst, &len);
    /* Damaged footer: the open reports corruption (the log names it). */
    d[len - 1] ^= 1;
    tu_write_file(sst, d, len);
    assert_int_equal(lsm_open(f->dir, &f->o, &f->db), ST_CORRUPT);
    /* Damaged data block: the open succeeds (footer, index, filter are
     * fine) but reads report ST_CORRUPT instead of a missing key. */
    d[len - 1] ^= 1;
    d[10] ^= 1;
    tu_write_file(sst, d, len);
    open_db(f);
    int corrupt = 0;
    for (int i = 0; i < 500; i++) {
        char k[32];
        snprintf(k, sizeof(k), "key%05d", i);
        struct lsm_record *r = NULL;
        enum st_status st = lsm_get(f->db, k, strlen(k), 0, &r);
        assert_true(st == ST_OK || st == ST_CORRUPT);
        if (st == ST_OK)
            assert_non_null(r);
        corrupt += st == ST_CORRUPT;
        lsm_record_free(&r);
    }
    assert_true(corrupt > 0);
    struct lsm_iter *it = NULL;
    assert_int_equal(lsm_iter_create(f->db, NULL, 0, UINT64_MAX, 0, &it), ST_OK);
    struct lsm_record r;
    while (lsm_iter_next(it, &r))
        ;
    assert_int_equal(lsm_iter_status(it), ST_CORRUPT);
    lsm_iter_destroy(&it);
    lsm_close(&f->db);
    /* Missing table. */
    unlink(sst);
    assert_int_equal(lsm_open(f->dir, &f->o, &f->db), ST_CORRUPT);
    free(d);
}

static void test_wal_rotation_and_interval_sync(void **state)
{
    struct fx *f = *state;
    f->o.memtable_size = 4u << 20;
    f->o.wal_segment_size = 64u << 10;
    f->o.sync_mode = LSM_SYNC_INTERVAL;
    f->o.sync_interval_ms = 10;
    f->o.sync_interval_writes = 1000000;
    open_db(f);
    fill(f->db, 0, 4000, 1, "a"); /* ~300 KB of WAL, no memtable switch */
    assert_true(tu_count_suffix(f->dir, ".wal") >= 4);
    /* The background syncer catches up: wait (5 s at most) until nothing
     * written is unsynced. */
    for (int i = 0; i < 500 && env_fault_unsynced_bytes(f->fenv) > 0; i++)
        usleep(10000);
    assert_int_equal(env_fault_unsynced_bytes(f->fenv), 0);
    struct lsm_stats s;
    lsm_stats(f->db, &s);
    assert_true(s.wal_syncs >= 4);
    assert_int_equal(s.flushes, 0);
    /* Power loss now: the syncer made everything durable. */
    env_fault_fail(f->fenv, ENV_FAULT_WRITE, 1, EIO, 1);
    env_fault_fail(f->fenv, ENV_FAULT_SYNC, 1, EIO, 1);
    lsm_close(&f->db);
    assert_int_equal(env_fault_crash(f->fenv), ST_OK);
    open_db(f);
    check(f->db, 0, 4000, "a");
    assert_int_equal(tu_count_suffix(f->dir, ".wal"), 1);
}

static void test_table_cache_budget(void **state)
{
    struct fx *f = *state;
    f->o.max_open_files = 16;
    f->o.l0_compaction_trigger = 100; /* keep many small tables around */
    f->o.l0_slowdown_trigger = 100;
    f->o.l0_stop_trigger = 100;
    f->o.block_cache_size = 0;
    open_db(f);
    for (int i = 0; i < 40; i++) {
        fill(f->db, i * 50, i * 50 + 50, 1, "a");
        assert_int_equal(lsm_flush(f->db), ST_OK);
    }
    struct lsm_stats s;
    lsm_stats(f->db, &s);
    assert_int_equal(s.level_files[0], 40);
    check(f->db, 0, 2000, "a");
    check(f->db, 0, 2000, "a");
    lsm_stats(f->db, &s);
    assert_true(s.table_cache_opens > 40); /* reopened after eviction */
    assert_true(s.bloom_useful > 0);
    assert_int_equal(s.block_cache_hits, 0);
    static struct scan sc;
    scan_all(f->db, NULL, 0, UINT64_MAX, 0, &sc);
    assert_int_equal(sc.n, 2000);
}

struct rw_arg {
    struct lsm_db *db;
    atomic_int *stop;
    int bad;
};

static void *scanner_main(void *p)
{
    struct rw_arg *a = p;
    while (!atomic_load(a->stop)) {
        struct lsm_iter *it = NULL;
        if (lsm_iter_create(a->db, NULL, 0, UINT64_MAX, 0, &it) != ST_OK) {
            a->bad++;
            break;
        }
        struct lsm_record r;
        int n = 0;
        uint64_t prev = 0;
        while (lsm_iter_next(it, &r)) {
            uint64_t t = lsm_token(r.key, r.key_len);
            if (t < prev)
                a->bad++;
            prev = t;
            /* values always match their key's fill pattern */
            if (r.value_len < 2 || (r.value[0] != 'a' && r.value[0] != 'b'))
                a->bad++;
            n++;
        }
        if (lsm_iter_status(it) != ST_OK || n < 1000)
            a->bad++;
        lsm_iter_destroy(&it);
    }
    return NULL;
}

static void test_concurrent_readers_writers(void **state)
{
    struct fx *f = *state;
    f->o.memtable_size = 64u << 10;
    f->o.l0_compaction_trigger = 2;
    f->o.l1_target_size = 64u << 10;
    f->o.target_file_size = 64u << 10;
    open_db(f);
    fill(f->db, 0, 1000, 1, "a");
    atomic_int stop = 0;
    struct rw_arg a = {f->db, &stop, 0};
    pthread_t t;
    pthread_create(&t, NULL, scanner_main, &a);
    for (int round = 2; round < 8; round++)
        fill(f->db, 0, 1000, (uint64_t)round, round % 2 ? "a" : "b");
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    assert_int_equal(a.bad, 0);
    check(f->db, 0, 1000, "a");
}

static void test_stalls_counted(void **state)
{
    struct fx *f = *state;
    f->o.memtable_size = 64u << 10;
    f->o.l0_compaction_trigger = 1;
    f->o.l0_slowdown_trigger = 1;
    f->o.l0_stop_trigger = 2;
    f->o.compaction_rate_mb = 1; /* slow compaction: writers must wait */
    open_db(f);
    fill(f->db, 0, 3000, 1, "a");
    struct lsm_stats s;
    lsm_stats(f->db, &s);
    assert_true(s.stall_slowdowns > 0);
    assert_true(s.stall_micros > 0);
    check(f->db, 0, 3000, "a");
}

static void test_batch_atomic_on_torn_wal(void **state)
{
    struct fx *f = *state;
    open_db(f);
    assert_int_equal(put(f->db, "single", "1", 1), ST_OK);
    struct lsm_batch *b = NULL;
    assert_int_equal(lsm_batch_create(&b), ST_OK);
    for (int i = 0; i < 50; i++) {
        char k[16];
        snprintf(k, sizeof(k), "bt%d", i);
        struct lsm_record r = {.key = (uint8_t *)k,
                               .key_len = strlen(k),
                               .value = (uint8_t *)k,
                               .value_len = strlen(k),
                               .version = ver(1)};
        assert_int_equal(lsm_batch_put(b, &r), ST_OK);
    }
    assert_int_equal(lsm_write(f->db, b), ST_OK);
    lsm_batch_destroy(&b);
    lsm_close(&f->db);
    /* The batch is the last WAL record: tear it anywhere, none survives. */
    char wal[4200];
    assert_true(tu_find_suffix(f->dir, ".wal", wal, sizeof(wal)));
    size_t len;
    unsigned char *d = tu_read_file(wal, &len);
    tu_write_file(wal, d, len - 200);
    open_db(f);
    expect(f->db, "single", "1");
    for (int i = 0; i < 50; i++) {
        char k[16];
        snprintf(k, sizeof(k), "bt%d", i);
        expect(f->db, k, NULL);
    }
    free(d);
}

static void test_large_values(void **state)
{
    struct fx *f = *state;
    f->o.max_value_len = 8u << 20;
    f->o.memtable_size = 1u << 20;
    open_db(f);
    size_t sizes[] = {0, 1, 4095, 4096, 70000, 1u << 20, (8u << 20)};
    uint8_t *buf = malloc(8u << 20);
    for (size_t i = 0; i < (8u << 20); i++)
        buf[i] = (uint8_t)(i * 31 + 7);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char k[16];
        snprintf(k, sizeof(k), "big%zu", i);
        struct lsm_record r = {.key = (uint8_t *)k,
                               .key_len = strlen(k),
                               .value = buf,
                               .value_len = sizes[i],
                               .version = ver(1)};
        assert_int_equal(lsm_put(f->db, &r), ST_OK);
    }
    for (int pass = 0; pass < 3; pass++) {
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            char k[16];
            snprintf(k, sizeof(k), "big%zu", i);
            struct lsm_record *r = NULL;
            assert_int_equal(lsm_get(f->db, k, strlen(k), 0, &r), ST_OK);
            assert_non_null(r);
            assert_int_equal(r->value_len, sizes[i]);
            assert_true(sizes[i] == 0 || memcmp(r->value, buf, sizes[i]) == 0);
            lsm_record_free(&r);
        }
        if (pass == 0)
            assert_int_equal(lsm_compact_all(f->db), ST_OK);
        if (pass == 1) {
            lsm_close(&f->db);
            open_db(f);
        }
    }
    free(buf);
}

static void test_snapshot_pins_immutable(void **state)
{
    struct fx *f = *state;
    open_db(f);
    fill(f->db, 0, 100, 1, "a");
    struct lsm_snapshot *snap = NULL;
    assert_int_equal(lsm_snapshot_create(f->db, &snap), ST_OK);
    /* Overwrite in the same memtable, then push it through a flush and a
     * full compaction: the snapshot still sees the old values. */
    fill(f->db, 0, 100, 2, "b");
    assert_int_equal(lsm_flush(f->db), ST_OK);
    fill(f->db, 0, 50, 3, "a");
    assert_int_equal(lsm_compact_all(f->db), ST_OK);
    struct lsm_iter *it = NULL;
    assert_int_equal(lsm_iter_create(f->db, snap, 0, UINT64_MAX, 0, &it), ST_OK);
    struct lsm_record r;
    int n = 0;
    while (lsm_iter_next(it, &r)) {
        assert_true(r.version.hlc == 1);
        assert_int_equal(r.value[0], 'a');
        n++;
    }
    assert_int_equal(n, 100);
    lsm_iter_destroy(&it);
    lsm_snapshot_destroy(f->db, &snap);
    check(f->db, 0, 50, "a");
    check(f->db, 50, 100, "b");
}

static void test_manifest_sync_failure(void **state)
{
    struct fx *f = *state;
    open_db(f);
    fill(f->db, 0, 100, 1, "a");
    uint64_t c0 = env_fault_count(f->fenv, ENV_FAULT_SYNC);
    assert_int_equal(lsm_flush(f->db), ST_OK);
    uint64_t per_flush = env_fault_count(f->fenv, ENV_FAULT_SYNC) - c0;
    assert_true(per_flush >= 3);
    fill(f->db, 100, 200, 1, "a");
    /* The last sync of a flush is the manifest's: fail it. */
    env_fault_fail(f->fenv, ENV_FAULT_SYNC, per_flush, EIO, 0);
    assert_int_equal(lsm_flush(f->db), ST_IO);
    struct lsm_stats s;
    lsm_stats(f->db, &s);
    assert_true(s.read_only);
    check(f->db, 0, 200, "a");
    lsm_close(&f->db);
    /* The edit reached the manifest file (only its sync failed): the table
     * it names must still exist, and everything reads back. */
    open_db(f);
    check(f->db, 0, 200, "a");
    lsm_close(&f->db);
    open_db(f);
    check(f->db, 0, 200, "a");
}

static void wait_compactions(struct lsm_db *db, uint64_t n)
{
    struct lsm_stats s;
    for (int i = 0; i < 500; i++) {
        lsm_stats(db, &s);
        if (s.compactions >= n)
            return;
        usleep(10000);
    }
    fail_msg("compaction did not run");
}

static void test_tiered_newer_run_wins(void **state)
{
    struct fx *f = *state;
    f->o.compaction_style = LSM_COMPACTION_TIERED;
    f->o.tiered_min_merge = 2;
    f->o.tiered_size_ratio_pct = 150;
    f->o.memtable_size = 4u << 20;
    open_db(f);
    /* A: small run holding k=v1 */
    assert_int_equal(put(f->db, "k", "v1", 1), ST_OK);
    fill(f->db, 0, 10, 1, "a");
    assert_int_equal(lsm_flush(f->db), ST_OK);
    /* B: big run holding k=v2 */
    assert_int_equal(put(f->db, "k", "v2", 2), ST_OK);
    fill(f->db, 100, 3000, 1, "a");
    assert_int_equal(lsm_flush(f->db), ST_OK);
    /* A2: small run; A and A2 merge into a run numbered after B */
    fill(f->db, 10, 20, 1, "a");
    assert_int_equal(lsm_flush(f->db), ST_OK);
    wait_compactions(f->db, 1);
    struct lsm_stats s;
    lsm_stats(f->db, &s);
    assert_int_equal(s.level_files[0], 2);
    for (int l = 1; l < LSM_MAX_LEVELS; l++)
        assert_int_equal(s.level_files[l], 0);
    expect(f->db, "k", "v2");
    /* An old version written now lands in the memtable, above both runs,
     * and still loses to v2. */
    assert_int_equal(put(f->db, "k", "v1b", 1), ST_OK);
    expect(f->db, "k", "v2");
    check(f->db, 0, 20, "a");
    check(f->db, 100, 3000, "a");
}

static void test_tiered_compaction(void **state)
{
    struct fx *f = *state;
    f->o.compaction_style = LSM_COMPACTION_TIERED;
    f->o.tiered_min_merge = 3;
    f->o.tiered_max_runs = 6;
    f->o.memtable_size = 64u << 10;
    f->o.gc_grace_seconds = 100;
    open_db(f);
    for (int round = 0; round < 6; round++) {
        fill(f->db, 0, 1500, (uint64_t)round + 1, round % 2 ? "odd" : "even");
        for (int i = round; i < 1500; i += 50) {
            char k[32];
            snprintf(k, sizeof(k), "key%05d", i);
            struct lsm_version dv = {(uint64_t)round + 1, 2}; /* beats the put */
            assert_int_equal(lsm_delete(f->db, k, strlen(k), dv, 0), ST_OK);
        }
    }
    /* Key i was deleted in round i % 50 (if < 6) and put again by every
     * later round: only i % 50 == 5 ends deleted. */
    struct lsm_stats s;
    lsm_stats(f->db, &s);
    assert_true(s.compactions >= 1);
    for (int l = 1; l < LSM_MAX_LEVELS; l++)
        assert_int_equal(s.level_files[l], 0);
    for (int pass = 0; pass < 3; pass++) {
        for (int i = 0; i < 1500; i++) {
            char k[32], v[64];
            snprintf(k, sizeof(k), "key%05d", i);
            snprintf(v, sizeof(v), "odd-%d-%0*d", i, 20, i);
            expect(f->db, k, i % 50 == 5 ? NULL : v);
        }
        if (pass == 0) {
            lsm_close(&f->db);
            open_db(f);
        } else if (pass == 1) {
            /* past gc_grace: full compaction drops tombstones */
            __atomic_fetch_add(&f->now, 200, __ATOMIC_RELAXED);
            assert_int_equal(lsm_compact_all(f->db), ST_OK);
            lsm_stats(f->db, &s);
            assert_int_equal(s.level_files[0], 1);
            assert_true(s.space_amplification > 0.99 && s.space_amplification < 1.01);
            static struct scan sc;
            scan_all(f->db, NULL, 0, UINT64_MAX, LSM_READ_TOMBSTONES, &sc);
            assert_int_equal(sc.n, 1500 - 30);
        }
    }
}

static void test_options_validation(void **state)
{
    struct fx *f = *state;
    struct lsm_options o = f->o;
    o.block_size = 100;
    assert_int_equal(lsm_open(f->dir, &o, &f->db), ST_INVAL);
    o = f->o;
    o.max_value_len = LSM_MAX_VALUE_LEN_LIMIT + 1;
    assert_int_equal(lsm_open(f->dir, &o, &f->db), ST_INVAL);
    o = f->o;
    o.l0_stop_trigger = 1;
    assert_int_equal(lsm_open(f->dir, &o, &f->db), ST_INVAL);
    o = f->o;
    o.compression_level = 23;
    assert_int_equal(lsm_open(f->dir, &o, &f->db), ST_INVAL);
    assert_null(f->db);
    o.compression_level = -1; /* zstd's fast levels are allowed */
    assert_int_equal(lsm_open(f->dir, &o, &f->db), ST_OK);
    lsm_close(&f->db);
}

int main(void)
{
#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_put_get_delete),
        T(test_lww),
        T(test_expiry),
        T(test_reopen),
        T(test_iterators_and_snapshots),
        T(test_batch),
        T(test_compaction_rules),
        T(test_background_compaction),
        T(test_group_commit),
        T(test_power_loss_interval),
        T(test_fsync_failure_read_only),
        T(test_flush_failure),
        T(test_wal_corruption),
        T(test_missing_and_corrupt_table),
        T(test_wal_rotation_and_interval_sync),
        T(test_table_cache_budget),
        T(test_concurrent_readers_writers),
        T(test_stalls_counted),
        T(test_batch_atomic_on_torn_wal),
        T(test_large_values),
        T(test_snapshot_pins_immutable),
        T(test_manifest_sync_failure),
        T(test_tiered_newer_run_wins),
        T(test_tiered_compaction),
        T(test_options_validation),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
