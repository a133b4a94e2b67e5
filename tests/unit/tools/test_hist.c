/*
 * test_hist.c - strata-bench's log-bucketed histogram: bucket bounds hold
 * every value and are at most 1/32 wide, percentiles of known
 * distributions fall within a bucket of the truth, merge is exact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tools/strata-bench/hist.h"
#include "tools/strata-bench/rng.h"

static void check_value(uint64_t v)
{
    unsigned b = hist_bucket_of(v);
    assert_true(b < HIST_BUCKETS);
    assert_true(hist_bucket_low(b) <= v);
    assert_true(v <= hist_bucket_high(b));
}

static void test_bucket_bounds(void **state)
{
    (void)state;
    for (uint64_t v = 0; v < 5000; v++)
        check_value(v);
    for (unsigned s = 0; s < 64; s++) {
        uint64_t p = (uint64_t)1 << s;
        check_value(p);
        check_value(p - 1);
        check_value(p + 1);
    }
    check_value(UINT64_MAX);
    struct rng r;
    rng_seed(&r, 7);
    for (int i = 0; i < 100000; i++)
        check_value(rng_next(&r) >> (rng_next(&r) % 64));
}

static void test_buckets_contiguous_and_narrow(void **state)
{
    (void)state;
    for (unsigned b = 0; b + 1 < HIST_BUCKETS; b++) {
        assert_int_equal(hist_bucket_high(b) + 1, hist_bucket_low(b + 1));
        uint64_t lo = hist_bucket_low(b), width = hist_bucket_high(b) - lo + 1;
        if (lo >= HIST_SUB)
            assert_true(width * HIST_SUB <= lo); /* at most 1/32 of the value */
    }
    assert_int_equal(hist_bucket_of(0), 0);
    assert_int_equal(hist_bucket_of(31), 31);
    assert_int_equal(hist_bucket_of(32), 32);
}

static void test_empty(void **state)
{
    (void)state;
    struct hist h;
    hist_init(&h);
    assert_int_equal(hist_quantile(&h, 0.5), 0);
    assert_int_equal(hist_quantile(&h, 1.0), 0);
    assert_true(hist_mean(&h) == 0.0);
}

static void test_single_value(void **state)
{
    (void)state;
    struct hist h;
    hist_init(&h);
    hist_record(&h, 123456);
    assert_int_equal(hist_quantile(&h, 0.0), 123456);
    assert_int_equal(hist_quantile(&h, 0.5), 123456);
    assert_int_equal(hist_quantile(&h, 0.999), 123456);
    assert_int_equal(hist_quantile(&h, 1.0), 123456);
}

static void assert_near(uint64_t got, double want)
{
    double err = ((double)got - want) / want;
    if (err < 0)
        err = -err;
    if (err > 1.0 / HIST_SUB + 1e-9)
        fail_msg("got %llu, want %.0f (error %.4f)", (unsigned long long)got, want, err);
}

static void test_uniform_percentiles(void **state)
{
    (void)state;
    struct hist h;
    hist_init(&h);
    for (uint64_t v = 1; v <= 100000; v++)
        hist_record(&h, v * 1000); /* 1 us .. 100 ms */
    assert_int_equal(h.count, 100000);
    assert_near(hist_quantile(&h, 0.5), 50000e3);
    assert_near(hist_quantile(&h, 0.9), 90000e3);
    assert_near(hist_quantile(&h, 0.99), 99000e3);
    assert_near(hist_quantile(&h, 0.999), 99900e3);
    assert_int_equal(hist_quantile(&h, 1.0), 100000000);
    assert_int_equal(h.min, 1000);
    assert_true(hist_mean(&h) > 50000e3 && hist_mean(&h) < 50001e3);
    /* percentiles never decrease */
    uint64_t prev = 0;
    for (double q = 0; q <= 1.0; q += 0.001) {
        uint64_t v = hist_quantile(&h, q);
        assert_true(v >= prev);
        prev = v;
    }
}

static void test_tail(void **state)
{
    (void)state;
    struct hist h;
    hist_init(&h);
    for (int i = 0; i < 990; i++)
        hist_record(&h, 100000); /* 100 us */
    for (int i = 0; i < 10; i++)
        hist_record(&h, 10000000); /* 10 ms */
    assert_near(hist_quantile(&h, 0.5), 100000);
    assert_near(hist_quantile(&h, 0.99), 100000); /* the 990th value */
    assert_near(hist_quantile(&h, 0.991), 10000000);
    assert_int_equal(hist_quantile(&h, 1.0), 10000000);
}

static void test_merge(void **state)
{
    (void)state;
    struct hist a, b, all;
    hist_init(&a);
    hist_init(&b);
    hist_init(&all);
    struct rng r;
    rng_seed(&r, 1);
    for (int i = 0; i < 50000; i++) {
        uint64_t v = rng_below(&r, 10000000);
        hist_record(i % 2 ? &a : &b, v);
        hist_record(&all, v);
    }
    struct hist empty;
    hist_init(&empty);
    hist_merge(&a, &empty);
    hist_merge(&a, &b);
    assert_memory_equal(&a, &all, sizeof(a));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_bounds),
        cmocka_unit_test(test_buckets_contiguous_and_narrow),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_single_value),
        cmocka_unit_test(test_uniform_percentiles),
        cmocka_unit_test(test_tail),
        cmocka_unit_test(test_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
