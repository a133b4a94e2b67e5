/* test_memtable.c - the skip list memtable (storage/memtable.c): order
 * against a sorted reference, newest-version lookup, sequence filtering for
 * snapshots, and lock-free readers running beside the writer. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "storage/ikey.h"
#include "storage/memtable.h"

static size_t mk(uint8_t *out, const char *key, uint64_t hlc)
{
    size_t kl = strlen(key);
    ikey_encode(out, lsm_token(key, kl), key, kl, (struct lsm_version){hlc, 0});
    return kl + IKEY_OVERHEAD;
}

struct ent {
    uint8_t k[64];
    size_t kl;
};

static int cmp_ent(const void *a, const void *b)
{
    const struct ent *x = a, *y = b;
    return ikey_compare(x->k, x->kl, y->k, y->kl);
}

static void test_order(void **state)
{
    (void)state;
    struct memtable *m = NULL;
    assert_int_equal(memtable_create(1u << 20, &m), ST_OK);
    enum { N = 5000 };
    struct ent *ref = calloc(N, sizeof(*ref));
    uint8_t rv[RVAL_HEADER];
    rval_encode_header(rv, RVAL_PUT, 0, 0);
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof(key), "k%d", i % 1000);
        ref[i].kl = mk(ref[i].k, key, (uint64_t)(i / 1000) + 1);
        assert_int_equal(memtable_add(m, (uint64_t)i + 1, ref[i].k, ref[i].kl, rv, sizeof(rv)),
                         ST_OK);
    }
    qsort(ref, N, sizeof(*ref), cmp_ent);
    struct memtable_iter it;
    memtable_iter_init(&it, m, UINT64_MAX);
    memtable_iter_seek_first(&it);
    for (int i = 0; i < N; i++) {
        assert_true(memtable_iter_valid(&it));
        const uint8_t *k, *v;
        size_t kl, vl;
        memtable_iter_entry(&it, &k, &kl, &v, &vl);
        assert_int_equal(kl, ref[i].kl);
        assert_memory_equal(k, ref[i].k, kl);
        memtable_iter_next(&it);
    }
    assert_false(memtable_iter_valid(&it));
    assert_true(memtable_count(m) == N);
    assert_true(memtable_bytes(m) > 0);
    /* Seek lands on the first entry >= target. */
    memtable_iter_seek(&it, ref[1234].k, ref[1234].kl);
    const uint8_t *k, *v;
    size_t kl, vl;
    memtable_iter_entry(&it, &k, &kl, &v, &vl);
    assert_memory_equal(k, ref[1234].k, kl);
    free(ref);
    memtable_unref(&m);
    assert_null(m);
}

static void test_get_newest_and_seq(void **state)
{
    (void)state;
    struct memtable *m = NULL;
    assert_int_equal(memtable_create(1u << 20, &m), ST_OK);
    uint8_t k[64], rv[RVAL_HEADER + 1];
    size_t kl;
    uint64_t lo0, hi0;
    assert_false(memtable_hlc_bounds(m, &lo0, &hi0)); /* empty */
    for (uint64_t ver = 1; ver <= 5; ver++) {
        /* Versions inserted out of order: 3,1,5,2,4. */
        uint64_t hv = (ver * 3) % 5 + 1;
        kl = mk(k, "key", hv);
        rval_encode_header(rv, RVAL_PUT, 0, 0);
        rv[RVAL_HEADER] = (uint8_t)hv;
        assert_int_equal(memtable_add(m, ver, k, kl, rv, sizeof(rv)), ST_OK);
    }
    kl = mk(k, "key", 0);
    const uint8_t *fk, *fv;
    size_t fkl, fvl;
    uint64_t lo, hi;
    assert_true(memtable_hlc_bounds(m, &lo, &hi));
    assert_true(lo == 1 && hi == 5);
    assert_true(memtable_get(m, k, kl, UINT64_MAX, &fk, &fkl, &fv, &fvl));
    struct ikey ik;
    assert_true(ikey_decode(fk, fkl, &ik));
    assert_true(ik.version.hlc == 5);
    assert_int_equal(fv[RVAL_HEADER], 5);
    /* A snapshot at seq 2 sees only the first two inserts: hlc 4 and 2. */
    assert_true(memtable_get(m, k, kl, 2, &fk, &fkl, &fv, &fvl));
    assert_true(ikey_decode(fk, fkl, &ik));
    assert_true(ik.version.hlc == 4);
    assert_false(memtable_get(m, k, kl, 0, &fk, &fkl, &fv, &fvl));
    kl = mk(k, "other", 0);
    assert_false(memtable_get(m, k, kl, UINT64_MAX, &fk, &fkl, &fv, &fvl));
    /* Large entries get their own arena block. */
    size_t big = 3u << 20;
    uint8_t *bv = calloc(1, big);
    rval_encode_header(bv, RVAL_PUT, 0, 0);
    kl = mk(k, "big", 1);
    assert_int_equal(memtable_add(m, 6, k, kl, bv, big), ST_OK);
    assert_true(memtable_get(m, k, kl, UINT64_MAX, &fk, &fkl, &fv, &fvl));
    assert_int_equal(fvl, big);
    assert_true(memtable_bytes(m) >= big);
    free(bv);
    memtable_unref(&m);
}

struct reader_arg {
    struct memtable *m;
    atomic_int *stop;
    long scans;
};

static void *reader(void *p)
{
    struct reader_arg *a = p;
    while (!atomic_load(a->stop)) {
        struct memtable_iter it;
        memtable_iter_init(&it, a->m, UINT64_MAX);
        const uint8_t *pk = NULL;
        size_t pkl = 0;
        for (memtable_iter_seek_first(&it); memtable_iter_valid(&it); memtable_iter_next(&it)) {
            const uint8_t *k, *v;
            size_t kl, vl;
            memtable_iter_entry(&it, &k, &kl, &v, &vl);
            if (pk != NULL && ikey_compare(pk, pkl, k, kl) >= 0)
                fail_msg("reader saw keys out of order");
            pk = k;
            pkl = kl;
        }
        a->scans++;
    }
    return NULL;
}

static void test_concurrent_readers(void **state)
{
    (void)state;
    struct memtable *m = NULL;
    assert_int_equal(memtable_create(1u << 20, &m), ST_OK);
    atomic_int stop = 0;
    struct reader_arg a = {m, &stop, 0};
    pthread_t t;
    pthread_create(&t, NULL, reader, &a);
    uint8_t k[64], rv[RVAL_HEADER];
    rval_encode_header(rv, RVAL_PUT, 0, 0);
    for (int i = 0; i < 20000; i++) {
        char key[32];
        snprintf(key, sizeof(key), "c%d", i);
        size_t kl = mk(k, key, 1);
        assert_int_equal(memtable_add(m, (uint64_t)i + 1, k, kl, rv, sizeof(rv)), ST_OK);
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    assert_true(a.scans > 0);
    memtable_unref(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_get_newest_and_seq),
        cmocka_unit_test(test_concurrent_readers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
