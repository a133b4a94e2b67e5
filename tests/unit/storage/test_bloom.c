/* test_bloom.c - bloom filter over tokens (storage/bloom.c): no false
 * negatives, measured false-positive rate <= 1% at 10 bits/key, malformed
 * filters answer "maybe". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "storage/bloom.h"
#include "storage/include/lsm.h"

static void test_fpr(void **state)
{
    (void)state;
    const size_t sizes[] = {1, 10, 100, 1000, 10000, 100000};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t n = sizes[s];
        uint64_t *tok = malloc(n * sizeof(uint64_t));
        char key[32];
        for (size_t i = 0; i < n; i++) {
            int l = snprintf(key, sizeof(key), "key-%zu", i);
            tok[i] = lsm_token(key, (size_t)l);
        }
        struct buf f = {0};
        assert_int_equal(bloom_build(tok, n, 10, &f), ST_OK);
        for (size_t i = 0; i < n; i++)
            assert_true(bloom_may_contain(f.data, f.len, tok[i]));
        size_t fp = 0, probes = 100000;
        for (size_t i = 0; i < probes; i++) {
            int l = snprintf(key, sizeof(key), "other-%zu", i);
            fp += bloom_may_contain(f.data, f.len, lsm_token(key, (size_t)l));
        }
        double rate = (double)fp / (double)probes;
        if (n >= 1000) /* tiny filters are rounded up to 64 bits */
            assert_true(rate <= 0.01);
        buf_deinit(&f);
        free(tok);
    }
}

static void test_malformed(void **state)
{
    (void)state;
    uint8_t f[9] = {0};
    assert_true(bloom_may_contain(f, 0, 42));
    assert_true(bloom_may_contain(f, 1, 42));
    f[8] = 0; /* k = 0 */
    assert_true(bloom_may_contain(f, 9, 42));
    f[8] = 200; /* k too large */
    assert_true(bloom_may_contain(f, 9, 42));
    f[8] = 3; /* valid k, all zero bits: definitely absent */
    assert_false(bloom_may_contain(f, 9, 42));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fpr),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
