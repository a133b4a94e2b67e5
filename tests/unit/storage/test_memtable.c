/* test_memtable.c - the skip list memtable (storage/memtable.c): order
 * against a sorted reference, newest-version lookup, sequence filtering for
 * snapshots, and lock-free readers running beside the writer. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <stdbool.h>

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

/* The index of each key's newest node, against a brute-force model:
 * versions of few keys arrive newer, older and equal (replays) in random
 * order; after every insert, a get at the latest sequence and at a random
 * older one returns what the model says, and the whole list stays in
 * order (fast-path nodes are linked at height 1 right before the key's
 * first node; seeks must still find everything). */
struct mver {
    uint64_t hlc, seq;
};

static void test_index_against_a_model(void **state)
{
    (void)state;
    struct memtable *m = NULL;
    assert_int_equal(memtable_create(1u << 16, &m), ST_OK); /* 1024 buckets: chains */
    enum { KEYS = 40, N = 4000 };
    static struct mver vers[KEYS][N];
    size_t nv[KEYS] = {0};
    uint8_t rv[RVAL_HEADER + 8];
    srand(12345);
    for (uint64_t seq = 1; seq <= N; seq++) {
        int k = rand() % KEYS;
        char key[32];
        snprintf(key, sizeof(key), "key-%d", k);
        uint64_t hlc;
        int r = rand() % 10;
        if (nv[k] == 0 || r < 6)
            hlc = 1000 + seq * 10; /* newer than all */
        else if (r < 9)
            hlc = vers[k][rand() % nv[k]].hlc - 1 - (uint64_t)(rand() % 5); /* older */
        else
            hlc = vers[k][rand() % nv[k]].hlc; /* a replay: equal */
        uint8_t ik[64];
        size_t il = mk(ik, key, hlc);
        rval_encode_header(rv, RVAL_PUT, 0, 0);
        memcpy(rv + RVAL_HEADER, &seq, 8);
        assert_int_equal(memtable_add(m, seq, ik, il, rv, sizeof(rv)), ST_OK);
        vers[k][nv[k]++] = (struct mver){hlc, seq};

        /* gets: the newest version with seq <= max_seq; among equal
         * versions, the first inserted (equal keys go after) */
        for (int probe = 0; probe < 2; probe++) {
            int q = probe == 0 ? k : rand() % KEYS;
            uint64_t max_seq = probe == 0 ? seq : 1 + (uint64_t)rand() % seq;
            const struct mver *best = NULL;
            for (size_t i = 0; i < nv[q]; i++)
                if (vers[q][i].seq <= max_seq && (best == NULL || vers[q][i].hlc > best->hlc))
                    best = &vers[q][i];
            char qkey[32];
            snprintf(qkey, sizeof(qkey), "key-%d", q);
            uint8_t qk[64];
            size_t ql = mk(qk, qkey, 0);
            const uint8_t *fk, *fv;
            size_t fkl, fvl;
            bool found = memtable_get(m, qk, ql, max_seq, &fk, &fkl, &fv, &fvl);
            assert_int_equal(found, best != NULL);
            if (found) {
                uint64_t got_seq;
                memcpy(&got_seq, fv + RVAL_HEADER, 8);
                assert_true(got_seq == best->seq);
            }
        }
    }
    /* the list: every entry, in order */
    struct memtable_iter it;
    memtable_iter_init(&it, m, UINT64_MAX);
    memtable_iter_seek_first(&it);
    uint8_t last[64];
    size_t last_len = 0, n = 0;
    while (memtable_iter_valid(&it)) {
        const uint8_t *k, *v;
        size_t kl, vl;
        memtable_iter_entry(&it, &k, &kl, &v, &vl);
        if (last_len > 0)
            assert_true(ikey_compare(last, last_len, k, kl) <= 0);
        memcpy(last, k, kl);
        last_len = kl;
        n++;
        memtable_iter_next(&it);
    }
    assert_int_equal(n, N);
    /* a seek to each key's newest version lands on it */
    for (int k = 0; k < KEYS; k++) {
        char key[32];
        snprintf(key, sizeof(key), "key-%d", k);
        uint64_t top = 0;
        for (size_t i = 0; i < nv[k]; i++)
            if (vers[k][i].hlc > top)
                top = vers[k][i].hlc;
        uint8_t ik[64];
        size_t il = mk(ik, key, top);
        memtable_iter_seek(&it, ik, il);
        assert_true(memtable_iter_valid(&it));
        const uint8_t *fk, *fv;
        size_t fkl, fvl;
        memtable_iter_entry(&it, &fk, &fkl, &fv, &fvl);
        assert_int_equal(fkl, il);
        assert_memory_equal(fk, ik, il);
    }
    memtable_unref(&m);
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

/* Rewrites (the index's fast path) beside a reader of the same keys:
 * every key stays found, and the version a reader sees of a key never
 * goes back. */
enum { RW_KEYS = 200, RW_ROUNDS = 60 };

struct rewrite_reader {
    struct memtable *m;
    atomic_int *stop;
    atomic_long gets;
    atomic_int failed; /* set when the reader stops on a wrong answer */
};

static uint64_t version_of(const uint8_t *ikey, size_t len)
{
    struct ikey d;
    return ikey_decode(ikey, len, &d) ? d.version.hlc : 0;
}

static void *rewrite_reader(void *arg)
{
    struct rewrite_reader *a = arg;
    uint64_t seen[RW_KEYS] = {0};
    unsigned r = 7;
    while (!atomic_load(a->stop)) {
        r = r * 1103515245u + 12345u;
        int k = (int)(r >> 8) % RW_KEYS;
        char key[32];
        snprintf(key, sizeof(key), "rw%d", k);
        uint8_t ik[64];
        size_t il = mk(ik, key, 0);
        const uint8_t *fk, *fv;
        size_t fkl, fvl;
        if (!memtable_get(a->m, ik, il, UINT64_MAX, &fk, &fkl, &fv, &fvl)) {
            atomic_store(&a->failed, 1);
            return (void *)1;
        }
        uint64_t v = version_of(fk, fkl);
        if (v < seen[k]) {
            atomic_store(&a->failed, 1);
            return (void *)2;
        }
        seen[k] = v;
        atomic_fetch_add(&a->gets, 1);
    }
    return NULL;
}

static void test_rewrites_beside_a_reader(void **state)
{
    (void)state;
    struct memtable *m = NULL;
    assert_int_equal(memtable_create(1u << 20, &m), ST_OK);
    uint8_t k[64], rv[RVAL_HEADER];
    rval_encode_header(rv, RVAL_PUT, 0, 0);
    uint64_t seq = 0;
    for (int i = 0; i < RW_KEYS; i++) {
        char key[32];
        snprintf(key, sizeof(key), "rw%d", i);
        size_t kl = mk(k, key, 1);
        assert_int_equal(memtable_add(m, ++seq, k, kl, rv, sizeof(rv)), ST_OK);
    }
    atomic_int stop = 0;
    struct rewrite_reader a = {m, &stop, 0, 0};
    pthread_t t;
    pthread_create(&t, NULL, rewrite_reader, &a);
    /* The rewrites take less time than a thread's start on a loaded box:
     * they begin once the reader reads, so the two overlap. */
    while (atomic_load(&a.gets) == 0 && !atomic_load(&a.failed))
        sched_yield();
    for (int round = 2; round <= RW_ROUNDS; round++) {
        for (int i = 0; i < RW_KEYS; i++) {
            char key[32];
            snprintf(key, sizeof(key), "rw%d", i);
            size_t kl = mk(k, key, (uint64_t)round);
            assert_int_equal(memtable_add(m, ++seq, k, kl, rv, sizeof(rv)), ST_OK);
        }
    }
    atomic_store(&stop, 1);
    void *res;
    pthread_join(t, &res);
    assert_null(res);
    assert_true(atomic_load(&a.gets) > 0);
    memtable_unref(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_get_newest_and_seq),
        cmocka_unit_test(test_concurrent_readers),
        cmocka_unit_test(test_index_against_a_model),
        cmocka_unit_test(test_rewrites_beside_a_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
