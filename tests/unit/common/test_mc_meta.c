/*
 * test_mc_meta.c - the meta command parser and base64 key codec: command
 * recognition, flag preparse, error lines in memcached 1.6.18's order,
 * whether an ms error swallows its data, and strict base64.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/mc_meta.h"

static enum mc_parse parse(const char *line, struct mc_meta_request *req)
{
    return mc_meta_parse(line, strlen(line), req);
}

struct err_case {
    const char *line;
    const char *error; /* NULL: plain "ERROR" */
    bool swallow;
};

static void test_errors(void **state)
{
    (void)state;
    static const struct err_case cases[] = {
        {"mg", NULL, false},
        {"mx key", NULL, false},
        {"mg key x", "CLIENT_ERROR invalid flag\r\n", false},
        {"mg key v v", "CLIENT_ERROR duplicate flag\r\n", false},
        {"mg key T", "CLIENT_ERROR bad token in command line format\r\n", false},
        {"mg key F", "CLIENT_ERROR bad command line format\r\n", false},
        {"mg key M", "CLIENT_ERROR incorrect length for M token\r\n", false},
        {"mg !!!! b", "CLIENT_ERROR error decoding key\r\n", false},
        {"md key x", "CLIENT_ERROR invalid or duplicate flag\r\n", false},
        {"ma key D-1", "CLIENT_ERROR invalid or duplicate flag\r\n", false},
        {"me", "CLIENT_ERROR bad command line format\r\n", false},
        {"me !!!! b", "CLIENT_ERROR bad command line format\r\n", false},
        {"ms key", "CLIENT_ERROR bad command line format\r\n", false},
        {"ms key x", "CLIENT_ERROR bad command line format\r\n", false},
        {"ms key 2147483646", "CLIENT_ERROR bad command line format\r\n", false},
        {"ms key 2 x", "CLIENT_ERROR invalid flag\r\n", true},
        {"ms key 2 MX", "CLIENT_ERROR invalid mode for ms M token\r\n", true},
        {"ms key 2 Oxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "CLIENT_ERROR opaque token too long\r\n",
         true},
        {"ms key 2 c f h k l O1 P L s t u v T0 F0 I N0 R0",
         "CLIENT_ERROR options flags too long\r\n", false},
        {"mg key c f h k l O1 P L s t u v T0 F0 I N0 R0 D0",
         "CLIENT_ERROR options flags are too long\r\n", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mc_meta_request req;
        enum mc_parse r = parse(cases[i].line, &req);
        if (cases[i].error == NULL) {
            assert_int_equal(r, MC_PARSE_ERROR);
            continue;
        }
        assert_int_equal(r, MC_PARSE_CLIENT_ERROR);
        assert_string_equal(req.error, cases[i].error);
        assert_int_equal(req.swallow, cases[i].swallow);
    }
}

static void test_get_flags(void **state)
{
    (void)state;
    struct mc_meta_request req;
    assert_int_equal(parse("mg  foo  v T30 N-1 R5 C7 q O123 k", &req), MC_PARSE_OK);
    assert_int_equal(req.cmd, MC_META_GET);
    assert_int_equal(req.nkey, 3);
    assert_memory_equal(req.key, "foo", 3);
    assert_true(req.value && req.quiet && req.has_ttl && req.has_vivify && req.has_recache);
    assert_int_equal(req.ttl, 30);
    assert_int_equal(req.vivify_ttl, -1);
    assert_int_equal(req.recache_ttl, 5);
    assert_true(req.has_cas);
    assert_int_equal(req.cas, 7);
    assert_int_equal(req.nflags, 8);
    assert_int_equal(req.flags[6].n, 4);
    assert_false(req.opaque_too_long);
    assert_int_equal(parse("mn x y", &req), MC_PARSE_OK);
    assert_int_equal(req.cmd, MC_META_NOOP);
}

static void test_set_and_arith(void **state)
{
    (void)state;
    struct mc_meta_request req;
    assert_int_equal(parse("ms key 5 F4294967296 MA I", &req), MC_PARSE_OK);
    assert_int_equal(req.cmd, MC_META_SET);
    assert_int_equal(req.vlen, 5);
    assert_int_equal(req.client_flags, 0);
    assert_int_equal(req.mode, 'A');
    assert_true(req.invalidate);
    assert_int_equal(parse("ma key", &req), MC_PARSE_OK);
    assert_int_equal(req.delta, 1);
    assert_int_equal(parse("ma key D18446744073709551615 J3 MD", &req), MC_PARSE_OK);
    assert_true(req.delta == UINT64_MAX);
    assert_int_equal(req.initial, 3);
    assert_int_equal(req.mode, 'D');
}

static void test_meta_detection(void **state)
{
    (void)state;
    assert_true(mc_meta_is_meta("mn", 2));
    assert_true(mc_meta_is_meta("mg k", 4));
    assert_false(mc_meta_is_meta("mnx", 3));
    assert_false(mc_meta_is_meta("mg\tk", 4));
    assert_false(mc_meta_is_meta("m", 1));
}

static void test_base64(void **state)
{
    (void)state;
    char out[MC_KEY_MAX];
    char enc[16];
    assert_int_equal(mc_base64_decode("Zm9vYg==", 8, out, sizeof(out)), 4);
    assert_memory_equal(out, "foob", 4);
    assert_int_equal(mc_base64_decode("Zm9v", 4, out, sizeof(out)), 3);
    static const char *bad[] = {"Zm9v==", "Zm9vYg", "Ym", "Y===", "!!!!", "Z=9v", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(mc_base64_decode(bad[i], strlen(bad[i]), out, sizeof(out)), 0);
    assert_int_equal(mc_base64_encode("foob", 4, enc), 8);
    assert_memory_equal(enc, "Zm9vYg==", 8);
    assert_int_equal(mc_base64_encode("\x00\xff", 2, enc), 4);
    assert_memory_equal(enc, "AP8=", 4);

    struct mc_meta_request req;
    assert_int_equal(parse("mg Zm9vYg== b k", &req), MC_PARSE_OK);
    assert_true(req.key_binary);
    assert_int_equal(req.nkey, 4);
    assert_memory_equal(req.key, "foob", 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),        cmocka_unit_test(test_get_flags),
        cmocka_unit_test(test_set_and_arith), cmocka_unit_test(test_meta_detection),
        cmocka_unit_test(test_base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
