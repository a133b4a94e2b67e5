/* test_db_tables.c - which tables are stored compressed
 * (compress_from_level). Version bounds of tables: test_db_versions.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "db_fixture.h"
#include "storage/db_int.h"

/* Compressible values: 2,000 x ~1 KiB. Flushes and (leveled) tables below
 * compress_from_level are stored raw; the deepest level is compressed. */
static uint64_t table_bytes_after(struct fx *f, int compress_from_level, bool compact, int *deepest)
{
    f->o.compress_from_level = compress_from_level;
    f->o.memtable_size = 16u << 20; /* one flush holds everything */
    open_db(f);
    char v[1024];
    memset(v, 'z', sizeof(v) - 1);
    v[sizeof(v) - 1] = '\0';
    for (int i = 0; i < 2000; i++) {
        char k[32];
        snprintf(k, sizeof(k), "key%05d", i);
        assert_int_equal(put(f->db, k, v, 1), ST_OK);
    }
    assert_int_equal(lsm_flush(f->db), ST_OK);
    if (compact)
        assert_int_equal(lsm_compact_all(f->db), ST_OK);
    struct lsm_stats s;
    lsm_stats(f->db, &s);
    uint64_t total = 0;
    *deepest = 0;
    for (int l = 0; l < LSM_MAX_LEVELS; l++) {
        total += s.level_bytes[l];
        if (s.level_files[l] > 0)
            *deepest = l;
    }
    expect(f->db, "key01999", v);
    lsm_close(&f->db);
    return total;
}

static void test_compression_by_level(void **state)
{
    struct fx *f = *state;
    const uint64_t raw = 2000 * 1023;
    int deepest;
    /* Default (2): the flushed L0 table is raw. */
    uint64_t flushed = table_bytes_after(f, 2, false, &deepest);
    assert_int_equal(deepest, 0);
    assert_true(flushed > raw);
    /* Compacted into L1, the bottom here: compressed all the same. */
    uint64_t compacted = table_bytes_after(f, 2, true, &deepest);
    assert_int_equal(deepest, 1);
    assert_true(compacted < raw / 10);
    /* 0: every table compressed, the flush too. */
    uint64_t all = table_bytes_after(f, 0, false, &deepest);
    assert_true(all < raw / 10);

    /* The rule itself, for the cases the public API cannot stage on
     * demand (a compaction into L1 while L2 holds data). */
    struct lsm_options o;
    lsm_options_init(&o);
    assert_true(compaction_stores_raw(&o, 0, true, false));   /* flush */
    assert_true(compaction_stores_raw(&o, 0, false, false));  /* L0 merge */
    assert_true(compaction_stores_raw(&o, 1, false, false));  /* into L1, L2 below */
    assert_false(compaction_stores_raw(&o, 1, false, true));  /* into L1, the bottom */
    assert_false(compaction_stores_raw(&o, 2, false, false)); /* L2 */
    o.compaction_style = LSM_COMPACTION_TIERED;
    assert_true(compaction_stores_raw(&o, 0, true, false));
    assert_false(compaction_stores_raw(&o, 0, false, false)); /* a merged run */
    o.compress_from_level = 0;
    o.compaction_style = LSM_COMPACTION_LEVELED;
    assert_false(compaction_stores_raw(&o, 0, true, false));
    assert_false(compaction_stores_raw(&o, 1, false, false));
}

int main(void)
{
#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_compression_by_level),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
