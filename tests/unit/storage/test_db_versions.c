/* test_db_versions.c - blind writes: every version of a key is stored and
 * the highest wins on read, in scans and in compaction, whatever the order
 * the versions arrived in. Covers the read descent and its per-table and
 * memtable version bounds (how often a get reads past its first hit), a
 * table holding only older versions of a key that a shallower table also
 * has (and the reverse), tombstones and expiry against older versions that
 * arrive late, and the compaction rule that a tombstone is dropped only
 * when no older version may exist outside the compaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "db_fixture.h"

static void fill(struct lsm_db *db, int from, int to, uint64_t hlc)
{
    for (int i = from; i < to; i++) {
        char k[32], v[64];
        snprintf(k, sizeof(k), "fill%05d", i);
        snprintf(v, sizeof(v), "v%llu-%0*d", (unsigned long long)hlc, 40, i);
        assert_int_equal(put(db, k, v, hlc), ST_OK);
    }
}

static struct lsm_stats stats(struct lsm_db *db)
{
    struct lsm_stats s;
    lsm_stats(db, &s);
    return s;
}

/* The version a get returns (tombstones included); 0 if absent. */
static uint64_t get_hlc(struct lsm_db *db, const char *k)
{
    struct lsm_record *r = NULL;
    assert_int_equal(lsm_get(db, k, strlen(k), LSM_READ_TOMBSTONES | LSM_READ_EXPIRED, &r), ST_OK);
    uint64_t h = r != NULL ? r->version.hlc : 0;
    lsm_record_free(&r);
    return h;
}

/* Every record a full scan returns for key k: exactly one, the get's. */
static void expect_scan_agrees(struct lsm_db *db, const char *k)
{
    uint64_t t = lsm_token(k, strlen(k));
    struct lsm_iter *it = NULL;
    assert_int_equal(lsm_iter_create(db, NULL, t, t, LSM_READ_TOMBSTONES | LSM_READ_EXPIRED, &it),
                     ST_OK);
    struct lsm_record r;
    int n = 0;
    uint64_t hlc = 0;
    while (lsm_iter_next(it, &r)) {
        if (r.key_len == strlen(k) && memcmp(r.key, k, r.key_len) == 0) {
            n++;
            hlc = r.version.hlc;
        }
    }
    assert_int_equal(lsm_iter_status(it), ST_OK);
    lsm_iter_destroy(&it);
    uint64_t want = get_hlc(db, k);
    assert_int_equal(n, want != 0 ? 1 : 0);
    assert_true(hlc == want);
}

/* Written in version order across several tables and levels, every get
 * stops at its first hit: the version bounds say nothing deeper is newer. */
static void test_in_order_reads_stop_at_first_hit(void **state)
{
    struct fx *f = *state;
    open_db(f);
    for (uint64_t round = 1; round <= 4; round++) {
        fill(f->db, 0, 300, round);
        assert_int_equal(lsm_flush(f->db), ST_OK);
        if (round == 2)
            assert_int_equal(lsm_compact_all(f->db), ST_OK);
    }
    fill(f->db, 0, 100, 5); /* and some in the memtable */
    struct lsm_stats s = stats(f->db);
    assert_true(s.level_files[0] >= 2);
    for (int i = 0; i < 300; i++) {
        char k[32];
        snprintf(k, sizeof(k), "fill%05d", i);
        assert_true(get_hlc(f->db, k) == (i < 100 ? 5u : 4u));
    }
    s = stats(f->db);
    assert_true(s.gets_past_first_hit == 0);
    assert_true(s.gets_newer_below == 0);
}

/* Versions inserted out of order into one memtable sort newest first: a
 * get, a scan and the flush all see the newest. */
static void test_memtable_keeps_every_version_newest_first(void **state)
{
    struct fx *f = *state;
    open_db(f);
    uint64_t order[] = {5, 9, 3, 7, 9};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        char v[8];
        snprintf(v, sizeof(v), "v%llu", (unsigned long long)order[i]);
        assert_int_equal(put(f->db, "k", v, order[i]), ST_OK);
    }
    expect(f->db, "k", "v9");
    expect_scan_agrees(f->db, "k");
    assert_int_equal(lsm_flush(f->db), ST_OK);
    expect(f->db, "k", "v9");
    struct lsm_stats s = stats(f->db);
    assert_true(s.table_records == 1); /* the flush kept the newest only */
}

/* A deeper table holding only older versions of a key that a shallower
 * table also has is never read for it; a shallower table holding only an
 * older version (written late) makes the get read deeper, and the deeper,
 * newer version wins. Both survive a reopen (bounds from the manifest). */
static void test_table_bounds_both_ways(void **state)
{
    struct fx *f = *state;
    open_db(f);
    /* "a": v10 deep, v40 shallow. "b": v30 deep, v3 shallow (late). The
     * deep table's newest version is 30: below a's 40, above b's 3. */
    assert_int_equal(put(f->db, "a", "a10", 10), ST_OK);
    assert_int_equal(put(f->db, "b", "b30", 30), ST_OK);
    fill(f->db, 0, 200, 1);
    assert_int_equal(lsm_compact_all(f->db), ST_OK);
    assert_int_equal(put(f->db, "a", "a40", 40), ST_OK);
    assert_int_equal(put(f->db, "b", "b3", 3), ST_OK);
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 1)
            assert_int_equal(lsm_flush(f->db), ST_OK); /* shallow = an L0 table */
        if (pass == 2) {
            lsm_close(&f->db);
            open_db(f);
        }
        struct lsm_stats s0 = stats(f->db);
        expect(f->db, "a", "a40");
        struct lsm_stats s1 = stats(f->db);
        assert_true(s1.gets_past_first_hit == s0.gets_past_first_hit);
        expect(f->db, "b", "b30");
        struct lsm_stats s2 = stats(f->db);
        assert_true(s2.gets_past_first_hit == s1.gets_past_first_hit + 1);
        assert_true(s2.gets_newer_below == s1.gets_newer_below + 1);
        expect_scan_agrees(f->db, "a");
        expect_scan_agrees(f->db, "b");
    }
    /* After a full compaction exactly the newest of each survives. */
    assert_int_equal(lsm_compact_all(f->db), ST_OK);
    expect(f->db, "a", "a40");
    expect(f->db, "b", "b30");
    assert_true(stats(f->db).table_records == 202);
}

/* Batches: a key repeated in a batch with an older version, and a batch
 * whose records are older than what is stored, lose on read. */
static void test_batch_out_of_order(void **state)
{
    struct fx *f = *state;
    open_db(f);
    assert_int_equal(put(f->db, "x", "x50", 50), ST_OK);
    assert_int_equal(lsm_flush(f->db), ST_OK);
    struct lsm_batch *b = NULL;
    assert_int_equal(lsm_batch_create(&b), ST_OK);
    struct lsm_record r = {.key = (const uint8_t *)"y", .key_len = 1, .value_len = 2};
    r.value = (const uint8_t *)"y9";
    r.version = ver(9);
    assert_int_equal(lsm_batch_put(b, &r), ST_OK);
    r.value = (const uint8_t *)"y4";
    r.version = ver(4);
    assert_int_equal(lsm_batch_put(b, &r), ST_OK);
    r.key = (const uint8_t *)"x";
    r.value = (const uint8_t *)"x7";
    r.version = ver(7);
    assert_int_equal(lsm_batch_put(b, &r), ST_OK);
    assert_int_equal(lsm_batch_delete(b, "x", 1, ver(8), 0), ST_OK);
    assert_int_equal(lsm_write(f->db, b), ST_OK);
    lsm_batch_destroy(&b);
    expect(f->db, "y", "y9");
    expect(f->db, "x", "x50");
    expect_scan_agrees(f->db, "x");
    expect_scan_agrees(f->db, "y");
    /* The WAL replays them the same way. */
    lsm_close(&f->db);
    open_db(f);
    expect(f->db, "y", "y9");
    expect(f->db, "x", "x50");
    assert_int_equal(lsm_compact_all(f->db), ST_OK);
    expect(f->db, "x", "x50");
    assert_true(stats(f->db).table_records == 2);
}

/* A tombstone shadows older puts that arrive after it, in the memtable,
 * after a flush and after compaction; once past gc_grace, a full
 * compaction (whose inputs hold the older puts too) drops the lot. */
static void test_tombstone_against_late_older_puts(void **state)
{
    struct fx *f = *state;
    f->o.gc_grace_seconds = 100;
    open_db(f);
    assert_int_equal(put(f->db, "t", "t5", 5), ST_OK);
    assert_int_equal(lsm_delete(f->db, "t", 1, ver(8), 0), ST_OK);
    fill(f->db, 0, 50, 1);
    assert_int_equal(lsm_compact_all(f->db), ST_OK); /* tombstone deep */
    assert_int_equal(put(f->db, "t", "t6", 6), ST_OK);
    expect(f->db, "t", NULL);
    assert_int_equal(lsm_flush(f->db), ST_OK);
    expect(f->db, "t", NULL);
    assert_int_equal(put(f->db, "t", "t7", 7), ST_OK);
    expect(f->db, "t", NULL);
    expect_scan_agrees(f->db, "t");
    assert_int_equal(lsm_compact_all(f->db), ST_OK); /* within gc_grace: kept */
    expect(f->db, "t", NULL);
    assert_true(get_hlc(f->db, "t") == 8);
    __atomic_fetch_add(&f->now, 101, __ATOMIC_RELAXED);
    assert_int_equal(lsm_compact_all(f->db), ST_OK);
    assert_true(get_hlc(f->db, "t") == 0); /* nothing older came back */
    assert_true(stats(f->db).table_records == 50);
    /* A newer put after all that is simply the value. */
    assert_int_equal(put(f->db, "t", "t9", 9), ST_OK);
    expect(f->db, "t", "t9");
}

/* An expired newest version hides older ones (it does not fall back to
 * them), before and after compaction drops it. */
static void test_expiry_hides_older_versions(void **state)
{
    struct fx *f = *state;
    open_db(f);
    struct lsm_record r = {.key = (const uint8_t *)"e",
                           .key_len = 1,
                           .value = (const uint8_t *)"e10",
                           .value_len = 3,
                           .expiry = f->now + 5,
                           .version = ver(10)};
    assert_int_equal(lsm_put(f->db, &r), ST_OK);
    fill(f->db, 0, 50, 1);
    assert_int_equal(lsm_compact_all(f->db), ST_OK);
    assert_int_equal(put(f->db, "e", "e7", 7), ST_OK); /* older, never expires */
    expect(f->db, "e", "e10");
    __atomic_fetch_add(&f->now, 6, __ATOMIC_RELAXED);
    expect(f->db, "e", NULL);
    assert_int_equal(lsm_flush(f->db), ST_OK);
    expect(f->db, "e", NULL);
    assert_int_equal(lsm_compact_all(f->db), ST_OK);
    expect(f->db, "e", NULL);
    assert_true(get_hlc(f->db, "e") == 0);
}

/* Size-tiered: a merge of two runs whose tombstone is past gc_grace keeps
 * it while a run outside the merge holds an older version of the key;
 * once that run is merged too, both go. */
static void test_tombstone_kept_while_older_outside(void **state)
{
    struct fx *f = *state;
    f->o.compaction_style = LSM_COMPACTION_TIERED;
    f->o.tiered_min_merge = 2;
    f->o.tiered_size_ratio_pct = 150;
    f->o.memtable_size = 4u << 20;
    f->o.gc_grace_seconds = 10;
    open_db(f);
    /* A: a big run with the tombstone. */
    assert_int_equal(lsm_delete(f->db, "t", 1, ver(8), 0), ST_OK);
    fill(f->db, 0, 3000, 2);
    assert_int_equal(lsm_flush(f->db), ST_OK);
    /* C: a small run with an older put (too small to merge with A). */
    assert_int_equal(put(f->db, "t", "t5", 5), ST_OK);
    assert_int_equal(lsm_flush(f->db), ST_OK);
    expect(f->db, "t", NULL);
    __atomic_fetch_add(&f->now, 11, __ATOMIC_RELAXED);
    /* B: a big run; A and B merge, C stays outside. */
    fill(f->db, 3000, 6000, 3);
    assert_int_equal(lsm_flush(f->db), ST_OK);
    for (int i = 0; i < 500 && stats(f->db).compactions < 1; i++)
        usleep(10000);
    struct lsm_stats s = stats(f->db);
    assert_true(s.compactions >= 1);
    assert_int_equal(s.level_files[0], 2);
    expect(f->db, "t", NULL); /* t5 did not come back */
    assert_true(get_hlc(f->db, "t") == 8);
    assert_int_equal(lsm_compact_all(f->db), ST_OK);
    assert_true(get_hlc(f->db, "t") == 0);
    assert_true(stats(f->db).table_records == 6000);
}

/* The same write replayed (equal version) is one record after a flush. */
static void test_equal_version_replay(void **state)
{
    struct fx *f = *state;
    open_db(f);
    for (int i = 0; i < 3; i++)
        assert_int_equal(put(f->db, "r", "same", 4), ST_OK);
    expect(f->db, "r", "same");
    expect_scan_agrees(f->db, "r");
    assert_int_equal(lsm_flush(f->db), ST_OK);
    assert_int_equal(put(f->db, "r", "same", 4), ST_OK);
    assert_int_equal(lsm_compact_all(f->db), ST_OK);
    assert_true(stats(f->db).table_records == 1);
}

int main(void)
{
#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_in_order_reads_stop_at_first_hit),
        T(test_memtable_keeps_every_version_newest_first),
        T(test_table_bounds_both_ways),
        T(test_batch_out_of_order),
        T(test_tombstone_against_late_older_puts),
        T(test_expiry_hides_older_versions),
        T(test_tombstone_kept_while_older_outside),
        T(test_equal_version_replay),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
