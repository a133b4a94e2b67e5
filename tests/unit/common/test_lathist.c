/* test_lathist.c - power-of-two latency histograms: the bucket a latency
 * lands in, percentiles over one histogram and over several summed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/lathist.h"

static void test_buckets_are_powers_of_two(void **state)
{
    (void)state;
    static struct lathist h;
    memset(&h, 0, sizeof(h));
    lathist_record(&h, 0);          /* bucket 0 */
    lathist_record(&h, 1);          /* [1, 2): bucket 1 */
    lathist_record(&h, 3);          /* [2, 4): bucket 2 */
    lathist_record(&h, 1000);       /* [512, 1024): bucket 10 */
    lathist_record(&h, UINT64_MAX); /* the last bucket */
    uint64_t c[LATHIST_BUCKETS] = {0};
    lathist_add_to(&h, c);
    assert_int_equal(c[0], 1);
    assert_int_equal(c[1], 1);
    assert_int_equal(c[2], 1);
    assert_int_equal(c[10], 1);
    assert_int_equal(c[LATHIST_BUCKETS - 1], 1);
}

static void test_percentiles(void **state)
{
    (void)state;
    uint64_t none[LATHIST_BUCKETS] = {0};
    assert_int_equal(lathist_percentile(none, 0.5), 0);
    static struct lathist a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    for (int i = 0; i < 98; i++)
        lathist_record(&a, 100); /* bucket 7: up to 128 µs */
    lathist_record(&b, 5000);    /* bucket 13: up to 8192 µs */
    lathist_record(&b, 70000);   /* bucket 17: up to 131072 µs */
    uint64_t sum[LATHIST_BUCKETS] = {0};
    lathist_add_to(&a, sum);
    lathist_add_to(&b, sum);
    assert_int_equal(lathist_percentile(sum, 0.50), 128);
    assert_int_equal(lathist_percentile(sum, 0.98), 8192);
    assert_int_equal(lathist_percentile(sum, 0.999), 131072);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets_are_powers_of_two),
        cmocka_unit_test(test_percentiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
