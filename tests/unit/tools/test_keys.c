/*
 * test_keys.c - strata-bench's key space: formatting and parsing keys, and
 * the distributions (uniform spread, sequential wrap, Zipf frequencies
 * against the exact probabilities for several exponents and sizes).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tools/strata-bench/keys.h"

static void test_format_parse(void **state)
{
    (void)state;
    struct keys k;
    assert_int_equal(keys_init(&k, "key:", 1000, KEYS_UNIFORM, 0), ST_OK);
    char buf[KEYS_LEN_MAX];
    size_t n = keys_format(&k, 0, buf);
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "key:0", 5);
    n = keys_format(&k, 987, buf);
    assert_memory_equal(buf, "key:987", n);
    assert_int_equal(keys_max_len(&k), 7);
    uint64_t id;
    assert_true(keys_parse(&k, "key:987", 7, &id));
    assert_int_equal(id, 987);
    assert_true(keys_parse(&k, "key:0", 5, &id));
    assert_int_equal(id, 0);
    assert_false(keys_parse(&k, "key:", 4, &id));
    assert_false(keys_parse(&k, "kez:1", 5, &id));
    assert_false(keys_parse(&k, "key:01", 6, &id));
    assert_false(keys_parse(&k, "key:1a", 6, &id));
    assert_false(keys_parse(&k, "key:123456789012345678901", 25, &id));
}

static void test_init_rejects(void **state)
{
    (void)state;
    struct keys k;
    assert_int_equal(keys_init(&k, "a b", 10, KEYS_UNIFORM, 0), ST_INVAL);
    assert_int_equal(keys_init(&k, "a\r", 10, KEYS_UNIFORM, 0), ST_INVAL);
    assert_int_equal(keys_init(&k, "k", 0, KEYS_UNIFORM, 0), ST_INVAL);
    assert_int_equal(keys_init(&k, "k", 10, KEYS_ZIPF, -1), ST_INVAL);
    assert_int_equal(keys_init(&k, "k", 10, KEYS_ZIPF, 11), ST_INVAL);
    char big[KEYS_PREFIX_MAX + 2];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(keys_init(&k, big, 10, KEYS_UNIFORM, 0), ST_INVAL);
    assert_int_equal(keys_init(&k, "", 10, KEYS_UNIFORM, 0), ST_OK);
}

static void test_uniform(void **state)
{
    (void)state;
    struct keys k;
    assert_int_equal(keys_init(&k, "k", 10, KEYS_UNIFORM, 0), ST_OK);
    struct rng r;
    rng_seed(&r, 3);
    uint64_t cursor = 0, counts[10] = {0};
    const int n = 1000000;
    for (int i = 0; i < n; i++) {
        uint64_t id = keys_pick(&k, &r, &cursor);
        assert_true(id < 10);
        counts[id]++;
    }
    double chi2 = 0;
    for (int i = 0; i < 10; i++)
        chi2 += pow((double)counts[i] - n / 10.0, 2) / (n / 10.0);
    assert_true(chi2 < 30); /* 9 degrees of freedom: p < 0.001 above 27.9 */
}

static void test_sequential(void **state)
{
    (void)state;
    struct keys k;
    assert_int_equal(keys_init(&k, "k", 3, KEYS_SEQUENTIAL, 0), ST_OK);
    struct rng r;
    rng_seed(&r, 3);
    uint64_t cursor = 1;
    const uint64_t want[] = {1, 2, 0, 1, 2, 0};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(keys_pick(&k, &r, &cursor), want[i]);
}

/* Draws n ranks and compares the frequency of the first ranks with
 * k^-s / H(N, s). */
static void check_zipf(uint64_t count, double s, int n, double tol)
{
    struct keys k;
    assert_int_equal(keys_init(&k, "k", count, KEYS_ZIPF, s), ST_OK);
    struct rng r;
    rng_seed(&r, 11);
    enum { TOP = 10 };
    uint64_t top[TOP] = {0};
    for (int i = 0; i < n; i++) {
        uint64_t rank = keys_zipf_rank(&k, &r);
        assert_true(rank >= 1 && rank <= count);
        if (rank <= TOP)
            top[rank - 1]++;
    }
    double h = 0;
    for (uint64_t i = 1; i <= count; i++)
        h += pow((double)i, -s);
    for (int i = 0; i < TOP && (uint64_t)i < count; i++) {
        double p = pow(i + 1.0, -s) / h;
        double got = (double)top[i] / n;
        double sigma = sqrt(p * (1 - p) / n);
        if (fabs(got - p) > tol * p + 5 * sigma)
            fail_msg("N=%llu s=%.2f rank %d: frequency %.5f, expected %.5f",
                     (unsigned long long)count, s, i + 1, got, p);
    }
}

static void test_zipf_frequencies(void **state)
{
    (void)state;
    check_zipf(1000, 0.99, 1000000, 0.02);
    check_zipf(1000, 1.0, 1000000, 0.02);
    check_zipf(100000, 0.99, 1000000, 0.02);
    check_zipf(50, 0.5, 1000000, 0.02);
    check_zipf(10, 2.0, 1000000, 0.02);
    check_zipf(1, 0.99, 1000, 0.0);
}

static void test_zipf_huge_space(void **state)
{
    (void)state;
    struct keys k;
    assert_int_equal(keys_init(&k, "k", 1000000000000ull, KEYS_ZIPF, 0.99), ST_OK);
    struct rng r;
    rng_seed(&r, 5);
    uint64_t cursor = 0, first = 0, big = 0;
    for (int i = 0; i < 200000; i++) {
        uint64_t id = keys_pick(&k, &r, &cursor);
        assert_true(id < 1000000000000ull);
        first += id == 0;
        big += id > 1000000;
    }
    assert_true(first > 0);
    assert_true(big > 0); /* the tail is reached */
    assert_true(first > big / 100);
}

static void test_zipf_skew_zero_is_uniform(void **state)
{
    (void)state;
    struct keys k;
    assert_int_equal(keys_init(&k, "k", 4, KEYS_ZIPF, 0), ST_OK);
    struct rng r;
    rng_seed(&r, 9);
    uint64_t cursor = 0, counts[4] = {0};
    for (int i = 0; i < 400000; i++)
        counts[keys_pick(&k, &r, &cursor)]++;
    for (int i = 0; i < 4; i++)
        assert_true(counts[i] > 98000 && counts[i] < 102000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_parse),
        cmocka_unit_test(test_init_rejects),
        cmocka_unit_test(test_uniform),
        cmocka_unit_test(test_sequential),
        cmocka_unit_test(test_zipf_frequencies),
        cmocka_unit_test(test_zipf_huge_space),
        cmocka_unit_test(test_zipf_skew_zero_is_uniform),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
