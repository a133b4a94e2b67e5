/* test_coding.c - varints, fixed integers, internal keys and record values
 * (storage/coding.h, storage/ikey.h): round trips, ordering, truncation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "storage/coding.h"
#include "storage/ikey.h"

static void test_varint_roundtrip(void **state)
{
    (void)state;
    /* clang-format off */
    const uint64_t vals[] = {0, 1, 127, 128, 300, 16383, 16384, UINT32_MAX,
                             (uint64_t)UINT32_MAX + 1, UINT64_MAX / 3,
                             UINT64_MAX};
    /* clang-format on */
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        uint8_t b[10];
        size_t n = enc_varint(b, vals[i]);
        assert_int_equal(n, varint_len(vals[i]));
        const uint8_t *p = b;
        uint64_t out = 0;
        assert_true(dec_varint(&p, b + n, &out));
        assert_true(out == vals[i]);
        assert_ptr_equal(p, b + n);
        /* Every truncation fails cleanly. */
        for (size_t cut = 0; cut < n; cut++) {
            p = b;
            assert_false(dec_varint(&p, b + cut, &out));
        }
    }
    /* Over-long encodings (more than 64 bits) are rejected. */
    uint8_t bad[11];
    memset(bad, 0xff, sizeof(bad));
    const uint8_t *p = bad;
    uint64_t out;
    assert_false(dec_varint(&p, bad + sizeof(bad), &out));
    uint8_t over[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    p = over;
    assert_false(dec_varint(&p, over + 10, &out));
}

static void test_fixed(void **state)
{
    (void)state;
    uint8_t b[8];
    enc_u64le(b, 0x0102030405060708ull);
    assert_int_equal(b[0], 8);
    assert_true(dec_u64le(b) == 0x0102030405060708ull);
    enc_u64be(b, 0x0102030405060708ull);
    assert_int_equal(b[0], 1);
    assert_true(dec_u64be(b) == 0x0102030405060708ull);
    enc_u32le(b, 0xdeadbeef);
    assert_true(dec_u32le(b) == 0xdeadbeef);
    enc_u16be(b, 0xabcd);
    assert_int_equal(dec_u16be(b), 0xabcd);
}

static size_t mk(uint8_t *out, uint64_t token, const char *key, uint64_t hlc, uint16_t node)
{
    ikey_encode(out, token, key, strlen(key), (struct lsm_version){hlc, node});
    return strlen(key) + IKEY_OVERHEAD;
}

static void test_ikey_order(void **state)
{
    (void)state;
    uint8_t a[64], b[64];
    size_t al, bl;
    /* token first */
    al = mk(a, 1, "zzz", 1, 0);
    bl = mk(b, 2, "aaa", 1, 0);
    assert_true(ikey_compare(a, al, b, bl) < 0);
    /* then key bytes, shorter first on a common prefix */
    al = mk(a, 5, "ab", 1, 0);
    bl = mk(b, 5, "abc", 1, 0);
    assert_true(ikey_compare(a, al, b, bl) < 0);
    assert_true(ikey_compare(b, bl, a, al) > 0);
    /* then version descending: newest first, node breaks hlc ties */
    al = mk(a, 5, "k", 10, 0);
    bl = mk(b, 5, "k", 9, 7);
    assert_true(ikey_compare(a, al, b, bl) < 0);
    al = mk(a, 5, "k", 10, 2);
    bl = mk(b, 5, "k", 10, 1);
    assert_true(ikey_compare(a, al, b, bl) < 0);
    assert_true(ikey_same_user_key(a, al, b, bl));
    assert_int_equal(ikey_compare(a, al, a, al), 0);
    /* tokens compare as unsigned numbers */
    al = mk(a, 0x00ffffffffffffffull, "k", 1, 0);
    bl = mk(b, 0x8000000000000000ull, "k", 1, 0);
    assert_true(ikey_compare(a, al, b, bl) < 0);

    struct ikey k;
    assert_true(ikey_decode(a, al, &k));
    assert_true(k.token == 0x00ffffffffffffffull);
    assert_int_equal(k.key_len, 1);
    assert_memory_equal(k.key, "k", 1);
    assert_true(k.version.hlc == 1);
    for (size_t cut = 0; cut <= IKEY_OVERHEAD; cut++)
        assert_false(ikey_decode(a, cut, &k));
}

static void test_rval(void **state)
{
    (void)state;
    uint8_t b[RVAL_HEADER + 5];
    rval_encode_header(b, RVAL_PUT, 0xfeedface, 1234567890123ull);
    memcpy(b + RVAL_HEADER, "hello", 5);
    enum rval_kind kind;
    uint32_t flags;
    uint64_t exp;
    const uint8_t *v;
    size_t vl;
    assert_true(rval_decode(b, sizeof(b), &kind, &flags, &exp, &v, &vl));
    assert_int_equal(kind, RVAL_PUT);
    assert_true(flags == 0xfeedface);
    assert_true(exp == 1234567890123ull);
    assert_int_equal(vl, 5);
    assert_memory_equal(v, "hello", 5);
    for (size_t cut = 0; cut < RVAL_HEADER; cut++)
        assert_false(rval_decode(b, cut, &kind, &flags, &exp, &v, &vl));
    b[0] = 7; /* unknown kind */
    assert_false(rval_decode(b, sizeof(b), &kind, &flags, &exp, &v, &vl));
}

static void test_buf(void **state)
{
    (void)state;
    struct buf b = {0};
    for (int i = 0; i < 10000; i++)
        assert_int_equal(buf_append_varint(&b, (uint64_t)i * 1000), ST_OK);
    const uint8_t *p = b.data;
    for (int i = 0; i < 10000; i++) {
        uint64_t v;
        assert_true(dec_varint(&p, b.data + b.len, &v));
        assert_true(v == (uint64_t)i * 1000);
    }
    buf_deinit(&b);
    assert_null(b.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varint_roundtrip),
        cmocka_unit_test(test_fixed),
        cmocka_unit_test(test_ikey_order),
        cmocka_unit_test(test_rval),
        cmocka_unit_test(test_buf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
