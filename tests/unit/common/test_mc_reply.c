/* test_mc_reply.c - the L2 client's reply parser: every reply memcached
 * 1.6 sends to meta commands, partial input, and streams to give up on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/mc_reply.h"

static enum mc_reply_parse parse(const char *s, struct mc_reply *r)
{
    return mc_reply_parse(s, strlen(s), 1024, r);
}

static void test_value(void **state)
{
    (void)state;
    struct mc_reply r;
    const char *s = "VA 2 f5 t-1 c17 Oa3 W\r\nhi\r\nHD\r\n";
    assert_int_equal(parse(s, &r), MC_REPLY_DONE);
    assert_int_equal(r.code, MC_REPLY_VA);
    assert_int_equal(r.nvalue, 2);
    assert_memory_equal(r.value, "hi", 2);
    assert_int_equal(r.size, strlen("VA 2 f5 t-1 c17 Oa3 W\r\nhi\r\n"));
    uint64_t v;
    assert_true(mc_reply_flag_u64(&r, 'c', &v));
    assert_int_equal(v, 17);
    assert_true(mc_reply_flag_u64(&r, 'f', &v));
    assert_int_equal(v, 5);
    assert_false(mc_reply_flag_u64(&r, 't', &v)); /* -1 is not unsigned */
    assert_true(mc_reply_has(&r, 'W'));
    assert_false(mc_reply_has(&r, 'Z'));
    size_t n;
    const char *o = mc_reply_flag(&r, 'O', &n);
    assert_non_null(o);
    assert_memory_equal(o, "a3", n);
    /* an empty value, and a value holding "\r\n" */
    assert_int_equal(parse("VA 0 Z\r\n\r\n", &r), MC_REPLY_DONE);
    assert_int_equal(r.nvalue, 0);
    assert_int_equal(parse("VA 4\r\n\r\n\r\n\r\n", &r), MC_REPLY_DONE);
    assert_memory_equal(r.value, "\r\n\r\n", 4);
}

static void test_codes(void **state)
{
    (void)state;
    struct mc_reply r;
    static const struct {
        const char *s;
        enum mc_reply_code c;
    } cases[] = {
        {"HD Oa2\r\n", MC_REPLY_HD},
        {"EN\r\n", MC_REPLY_EN},
        {"NF Ox\r\n", MC_REPLY_NF},
        {"NS\r\n", MC_REPLY_NS},
        {"EX c3\r\n", MC_REPLY_EX},
        {"MN\r\n", MC_REPLY_MN},
        {"OK\r\n", MC_REPLY_OK},
        {"VERSION 1.6.18\r\n", MC_REPLY_VERSION},
        {"ERROR\r\n", MC_REPLY_ERROR},
        {"CLIENT_ERROR bad data chunk\r\n", MC_REPLY_CLIENT_ERROR},
        {"SERVER_ERROR out of memory\r\n", MC_REPLY_SERVER_ERROR},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(parse(cases[i].s, &r), MC_REPLY_DONE);
        assert_int_equal(r.code, cases[i].c);
        assert_int_equal(r.size, strlen(cases[i].s));
    }
    assert_int_equal(parse("SERVER_ERROR out of memory\r\n", &r), MC_REPLY_DONE);
    assert_memory_equal(r.text, "out of memory", r.ntext);
}

static void test_partial(void **state)
{
    (void)state;
    const char *s = "VA 5 c1\r\nhello\r\n";
    struct mc_reply r;
    for (size_t i = 0; i < strlen(s); i++)
        assert_int_equal(mc_reply_parse(s, i, 1024, &r), MC_REPLY_PARTIAL);
    assert_int_equal(mc_reply_parse(s, strlen(s), 1024, &r), MC_REPLY_DONE);
}

static void test_bad(void **state)
{
    (void)state;
    struct mc_reply r;
    const char *bad[] = {
        "XX\r\n",                /* unknown code */
        "HDX\r\n",               /* a code must end at a space */
        "HD\n",                  /* no \r */
        "VA x\r\n",              /* no length */
        "VA 2000 c1\r\n",        /* over value_max */
        "VA 2\r\nhiXX",          /* the block's terminator */
        "VALUE k 0 2\r\nhi\r\n", /* a text-protocol reply on a meta link */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parse(bad[i], &r), MC_REPLY_BAD);
    /* a line that never ends is given up once it passes the limit */
    char big[MC_REPLY_LINE_MAX + 10];
    memset(big, 'a', sizeof(big));
    assert_int_equal(mc_reply_parse(big, sizeof(big), 1024, &r), MC_REPLY_BAD);
    assert_int_equal(mc_reply_parse(big, 100, 1024, &r), MC_REPLY_PARTIAL);
    /* too many flags */
    char many[200] = "HD";
    for (int i = 0; i < MC_REPLY_FLAGS_MAX + 1; i++)
        strcat(many, " a");
    strcat(many, "\r\n");
    assert_int_equal(parse(many, &r), MC_REPLY_BAD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value),
        cmocka_unit_test(test_codes),
        cmocka_unit_test(test_partial),
        cmocka_unit_test(test_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
