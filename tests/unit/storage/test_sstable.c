/* test_sstable.c - SSTable builder and reader (storage/sstable.c): round
 * trip through point gets and iterators with and without compression,
 * properties, the block cache, and every truncation plus sampled bit flips
 * of a table (ST_CORRUPT, never a crash, never a wrong answer). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "storage/filename.h"
#include "storage/ikey.h"
#include "storage/sstable.h"
#include "testutil.h"

struct fx {
    char *dir;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->dir = tu_mkdtemp();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tu_rmtemp(&f->dir);
    free(f);
    return 0;
}

struct rec {
    uint8_t k[IKEY_MAX_LEN];
    size_t kl;
    char key[32];
};

static int cmp_rec(const void *a, const void *b)
{
    const struct rec *x = a, *y = b;
    return ikey_compare(x->k, x->kl, y->k, y->kl);
}

/* Builds table `number` with n keys key-i (i odd: tombstone every 7th). */
static struct rec *build(const char *dir, uint64_t number, int n, int level, struct sst_info *info)
{
    struct rec *r = calloc((size_t)n, sizeof(*r));
    for (int i = 0; i < n; i++) {
        int l = snprintf(r[i].key, sizeof(r[i].key), "key-%d", i);
        ikey_encode(r[i].k, lsm_token(r[i].key, (size_t)l), r[i].key, (size_t)l,
                    (struct lsm_version){(uint64_t)i + 1, 3});
        r[i].kl = (size_t)l + IKEY_OVERHEAD;
    }
    qsort(r, (size_t)n, sizeof(*r), cmp_rec);
    struct sst_builder_opts o = {
        .block_size = 4096, .compression_level = level, .bloom_bits_per_key = 10};
    struct sst_builder *b = NULL;
    assert_int_equal(sst_builder_create(env_posix(), dir, number, &o, &b), ST_OK);
    for (int i = 0; i < n; i++) {
        uint8_t v[RVAL_HEADER + 100];
        bool tomb = i % 7 == 0;
        rval_encode_header(v, tomb ? RVAL_TOMBSTONE : RVAL_PUT, (uint32_t)i,
                           tomb ? 5 : 1000 + (uint64_t)i);
        memset(v + RVAL_HEADER, 'a' + i % 26, 100);
        assert_int_equal(sst_builder_add(b, r[i].k, r[i].kl, v, tomb ? RVAL_HEADER : sizeof(v)),
                         ST_OK);
    }
    assert_int_equal(sst_builder_finish(&b, info), ST_OK);
    assert_null(b);
    return r;
}

static void check_table(struct sst_table *t, const struct rec *r, int n)
{
    struct buf ko = {0}, vo = {0};
    for (int i = 0; i < n; i += 3) {
        bool found = false;
        assert_int_equal(sst_table_get(t, r[i].k, r[i].kl, &found, &ko, &vo), ST_OK);
        assert_true(found);
        assert_int_equal(ko.len, r[i].kl);
        assert_memory_equal(ko.data, r[i].k, r[i].kl);
    }
    for (int i = 0; i < 200; i++) {
        char key[32];
        int l = snprintf(key, sizeof(key), "absent-%d", i);
        uint8_t k[IKEY_MAX_LEN];
        ikey_encode(k, lsm_token(key, (size_t)l), key, (size_t)l, (struct lsm_version){1, 0});
        bool found = true;
        assert_int_equal(sst_table_get(t, k, (size_t)l + IKEY_OVERHEAD, &found, &ko, &vo), ST_OK);
        assert_false(found);
    }
    struct iter *it = NULL;
    assert_int_equal(sst_iter_create(t, &it), ST_OK);
    int i = 0;
    for (it->ops->seek_first(it); it->ops->valid(it); it->ops->next(it), i++) {
        const uint8_t *k, *v;
        size_t kl, vl;
        it->ops->entry(it, &k, &kl, &v, &vl);
        assert_true(i < n);
        assert_memory_equal(k, r[i].k, kl);
    }
    assert_int_equal(i, n);
    assert_int_equal(it->ops->status(it), ST_OK);
    it->ops->seek(it, r[n / 2].k, r[n / 2].kl);
    assert_true(it->ops->valid(it));
    iter_destroy(&it);
    buf_deinit(&ko);
    buf_deinit(&vo);
}

static void test_roundtrip(void **state)
{
    struct fx *f = *state;
    /* raw, zstd level 3, and one of zstd's fast (negative) levels */
    const int levels[] = {0, 3, -1};
    for (size_t li = 0; li < sizeof(levels) / sizeof(levels[0]); li++) {
        int level = levels[li];
        struct sst_info info;
        int n = 3000;
        struct rec *r = build(f->dir, 5 + li, n, level, &info);
        assert_int_equal(info.props.records, n);
        assert_int_equal(info.props.tombstones, (n + 6) / 7);
        assert_true(info.props.earliest_expiry == 1001);
        assert_true(info.props.max_version.hlc == (uint64_t)n);
        assert_true(info.props.min_version.hlc == 1);
        assert_true(info.props.min_token <= info.props.max_token);
        assert_memory_equal(info.smallest, r[0].k, r[0].kl);
        assert_memory_equal(info.largest, r[n - 1].k, r[n - 1].kl);
        struct bcache *bc = NULL;
        assert_int_equal(bcache_create(1 << 20, &bc), ST_OK);
        struct sst_counters ctr = {0};
        struct sst_table *t = NULL;
        assert_int_equal(sst_table_open(env_posix(), f->dir, info.number, bc, &ctr, &t), ST_OK);
        assert_int_equal(sst_table_props(t)->records, n);
        check_table(t, r, n);
        check_table(t, r, n); /* second pass from the block cache */
        uint64_t hits, misses;
        bcache_counters(bc, &hits, &misses);
        assert_true(hits > 0);
        assert_true(atomic_load(&ctr.bloom_useful) > 150); /* of 400 absent */
        if (level != 0)
            assert_true(info.size < (uint64_t)n * 60); /* compressed */
        sst_table_unref(&t);
        bcache_destroy(&bc);
        free(r);
    }
    /* No temp file is left behind. */
    assert_int_equal(tu_count_suffix(f->dir, ".tmp"), 0);
}

/* Opens and fully reads a damaged table: must fail cleanly or, if it opens,
 * never return a record that was not written. */
static enum st_status probe(const char *dir, uint64_t number, const struct rec *r, int n)
{
    struct sst_table *t = NULL;
    enum st_status st = sst_table_open(env_posix(), dir, number, NULL, NULL, &t);
    if (st != ST_OK)
        return st;
    struct iter *it = NULL;
    assert_int_equal(sst_iter_create(t, &it), ST_OK);
    int i = 0;
    for (it->ops->seek_first(it); it->ops->valid(it); it->ops->next(it)) {
        const uint8_t *k, *v;
        size_t kl, vl;
        it->ops->entry(it, &k, &kl, &v, &vl);
        /* Every block is checksummed: what comes out is what went in. */
        assert_true(i < n);
        assert_int_equal(kl, r[i].kl);
        assert_memory_equal(k, r[i].k, kl);
        i++;
    }
    st = it->ops->status(it);
    iter_destroy(&it);
    struct buf ko = {0}, vo = {0};
    for (int j = 0; j < n && st == ST_OK; j += 17) {
        bool found;
        st = sst_table_get(t, r[j].k, r[j].kl, &found, &ko, &vo);
    }
    buf_deinit(&ko);
    buf_deinit(&vo);
    sst_table_unref(&t);
    if (st == ST_OK && i != n)
        return ST_CORRUPT; /* treat a short read as failure for the caller */
    return st;
}

static void test_corruption(void **state)
{
    struct fx *f = *state;

    struct sst_info info;
    int n = 300;
    struct rec *r = build(f->dir, 9, n, 3, &info);
    char path[4096 + 64];
    snprintf(path, sizeof(path), "%s/000009.sst", f->dir);
    size_t len;
    unsigned char *good = tu_read_file(path, &len);
    assert_int_equal(probe(f->dir, 9, r, n), ST_OK);
    /* Every truncation. */
    for (size_t cut = 0; cut < len; cut++) {
        tu_write_file(path, good, cut);
        assert_int_equal(probe(f->dir, 9, r, n), ST_CORRUPT);
    }
    /* Bit flips: every byte of the footer and tail, sampled elsewhere. */
    unsigned char *bad = malloc(len);
    for (size_t i = 0; i < len; i += (i + 300 < len ? 7 : 1)) {
        memcpy(bad, good, len);
        bad[i] ^= (unsigned char)(1u << (i % 8));
        tu_write_file(path, bad, len);
        enum st_status st = probe(f->dir, 9, r, n);
        assert_true(st == ST_CORRUPT);
    }
    /* A missing table is an I/O error with errno ENOENT. */
    unlink(path);
    struct sst_table *t = NULL;
    assert_int_equal(sst_table_open(env_posix(), f->dir, 9, NULL, NULL, &t), ST_IO);
    free(bad);
    free(good);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corruption, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
