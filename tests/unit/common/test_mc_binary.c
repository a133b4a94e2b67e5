/* test_mc_binary.c - binary protocol header codec and request shape rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/mc_binary.h"

static void test_header_round_trip(void **state)
{
    (void)state;
    struct mc_bin_header h = {
        MC_BIN_REQ_MAGIC, MC_BIN_SET,           0x1234, 8, 0, 0xbeef, 0x01020304,
        0xdeadbeef,       0x0102030405060708ull};
    uint8_t buf[MC_BIN_HEADER_LEN];
    mc_bin_encode_header(buf, &h);
    /* big-endian on the wire, at memcached's offsets */
    const uint8_t want[] = {0x80, 0x01, 0x12, 0x34, 0x08, 0x00, 0xbe, 0xef, 1, 2, 3, 4,
                            0xde, 0xad, 0xbe, 0xef, 1,    2,    3,    4,    5, 6, 7, 8};
    assert_memory_equal(buf, want, sizeof(want));
    struct mc_bin_header back;
    mc_bin_decode_header(buf, &back);
    assert_memory_equal(&back, &h, sizeof(h));
}

static struct mc_bin_header req(uint8_t op, uint16_t keylen, uint8_t extlen, uint32_t bodylen)
{
    return (struct mc_bin_header){.magic = MC_BIN_REQ_MAGIC,
                                  .opcode = op,
                                  .keylen = keylen,
                                  .extlen = extlen,
                                  .bodylen = bodylen};
}

static void test_shapes(void **state)
{
    (void)state;
    struct {
        struct mc_bin_header h;
        enum mc_bin_shape want;
    } cases[] = {
        {req(MC_BIN_GET, 3, 0, 3), MC_BIN_SHAPE_OK},
        {req(MC_BIN_GET, 0, 0, 0), MC_BIN_SHAPE_INVALID},  /* key required */
        {req(MC_BIN_GET, 3, 4, 7), MC_BIN_SHAPE_INVALID},  /* no extras */
        {req(MC_BIN_GET, 3, 0, 10), MC_BIN_SHAPE_INVALID}, /* no value */
        {req(MC_BIN_SET, 3, 8, 100), MC_BIN_SHAPE_OK},
        {req(MC_BIN_SET, 3, 0, 100), MC_BIN_SHAPE_INVALID}, /* needs 8 extras */
        {req(MC_BIN_SET, 3, 8, 5), MC_BIN_SHAPE_SHORT},     /* body < key + extras */
        {req(0x50, 3, 0, 1), MC_BIN_SHAPE_SHORT},
        {req(MC_BIN_SET, 251, 8, 300), MC_BIN_SHAPE_INVALID}, /* key over 250 */
        {req(MC_BIN_APPEND, 3, 0, 9), MC_BIN_SHAPE_OK},
        {req(MC_BIN_INCREMENT, 3, 20, 23), MC_BIN_SHAPE_OK},
        {req(MC_BIN_INCREMENT, 3, 20, 30), MC_BIN_SHAPE_INVALID},
        {req(MC_BIN_FLUSH, 0, 0, 0), MC_BIN_SHAPE_OK},
        {req(MC_BIN_FLUSH, 0, 4, 4), MC_BIN_SHAPE_OK},
        {req(MC_BIN_FLUSH, 0, 2, 2), MC_BIN_SHAPE_INVALID},
        {req(MC_BIN_NOOP, 0, 0, 0), MC_BIN_SHAPE_OK},
        {req(MC_BIN_NOOP, 1, 0, 1), MC_BIN_SHAPE_INVALID},
        {req(MC_BIN_STAT, 0, 0, 0), MC_BIN_SHAPE_OK},
        {req(MC_BIN_STAT, 5, 0, 5), MC_BIN_SHAPE_OK},
        {req(MC_BIN_TOUCH, 3, 4, 7), MC_BIN_SHAPE_OK},
        {req(MC_BIN_TOUCH, 3, 4, 9), MC_BIN_SHAPE_OK}, /* body not checked (memcached) */
        {req(MC_BIN_GATKQ, 3, 4, 7), MC_BIN_SHAPE_OK},
        {req(MC_BIN_SASL_LIST_MECHS, 0, 0, 0), MC_BIN_SHAPE_OK},
        {req(MC_BIN_SASL_LIST_MECHS, 1, 0, 1), MC_BIN_SHAPE_INVALID},
        {req(MC_BIN_SASL_AUTH, 0, 0, 4), MC_BIN_SHAPE_INVALID},
        {req(MC_BIN_VERBOSITY, 0, 4, 4), MC_BIN_SHAPE_UNKNOWN}, /* not in 1.6.18 */
        {req(0x7f, 0, 0, 1000), MC_BIN_SHAPE_UNKNOWN},
        {req(0x7f, 251, 0, 251), MC_BIN_SHAPE_INVALID}, /* key checked before opcode */
        {req(0x7f, 10, 0, 5), MC_BIN_SHAPE_SHORT},
        {req(MC_BIN_STAT, 5, 0, 9), MC_BIN_SHAPE_OK}, /* body beyond the key unchecked */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (mc_bin_check_shape(&cases[i].h) != cases[i].want)
            fail_msg("case %zu: opcode 0x%02x", i, cases[i].h.opcode);
}

static void test_quiet_and_texts(void **state)
{
    (void)state;
    assert_true(mc_bin_is_quiet(MC_BIN_GETQ));
    assert_true(mc_bin_is_quiet(MC_BIN_SETQ));
    assert_false(mc_bin_is_quiet(MC_BIN_GET));
    assert_false(mc_bin_is_quiet(MC_BIN_NOOP));
    assert_string_equal(mc_bin_status_text(MC_BIN_KEY_ENOENT), "Not found");
    assert_string_equal(mc_bin_status_text(MC_BIN_UNKNOWN_COMMAND), "Unknown command");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_round_trip),
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_quiet_and_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
