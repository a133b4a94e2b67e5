/*
 * test_mc_text.c - the text protocol parser, table-driven: every command,
 * every error path, with the replies memcached 1.6.18 gives (probed from
 * the real server; see tests/integration for the same on the wire).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/mc_text.h"
#include "common/numparse.h"

struct parse_case {
    const char *line;
    enum mc_parse result;
    enum mc_cmd cmd;   /* when MC_PARSE_OK */
    const char *error; /* when MC_PARSE_CLIENT_ERROR */
    int noreply;       /* expected req.noreply (-1: don't care) */
};

/* clang-format off */
#define OK(l, c) {l, MC_PARSE_OK, c, NULL, 0}
#define OKN(l, c) {l, MC_PARSE_OK, c, NULL, 1}
#define ERR(l) {l, MC_PARSE_ERROR, 0, NULL, 0}
#define CERR(l, e) {l, MC_PARSE_CLIENT_ERROR, 0, e, 0}
#define CERRN(l, e) {l, MC_PARSE_CLIENT_ERROR, 0, e, 1}
#define CLOSE(l) {l, MC_PARSE_CLOSE, 0, NULL, -1}

static const char FMT[] = "CLIENT_ERROR bad command line format";
static const char EXP[] = "CLIENT_ERROR invalid exptime argument";
static const char DELTA[] = "CLIENT_ERROR invalid numeric delta argument";
static const char DEL[] = "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]";

static const struct parse_case cases[] = {
    /* unknown, empty, too short */
    ERR(""), ERR("   "), ERR("x"), ERR("foo bar"), ERR("GET k"), ERR("mn"), ERR("sets k"),
    CLOSE("GET / HTTP/1.1"), CLOSE("POST /x HTTP/1.0"),
    /* get family */
    OK("get k", MC_CMD_GET), OK("gets a b c", MC_CMD_GETS), OK("  get  k ", MC_CMD_GET),
    OK("bget k", MC_CMD_GET), OK("get / HTTP/1.1", MC_CMD_GET),
    ERR("get"), ERR("gets"), ERR("gat"), ERR("gats"), ERR("get "),
    OK("gat 0", MC_CMD_GAT), OK("gats 10 a b", MC_CMD_GATS), CERR("gat abc k", EXP),
    OK("get k\x01y", MC_CMD_GET), OK("get a\rb", MC_CMD_GET), OK("get a\tb c", MC_CMD_GET),
    /* storage */
    OK("set k 0 0 1", MC_CMD_SET), OKN("set k 0 0 1 noreply", MC_CMD_SET),
    OK("set k 0 0 1 0", MC_CMD_SET), OK("add k 1 2 3", MC_CMD_ADD),
    OK("replace k 1 2 3", MC_CMD_REPLACE), OK("append k 1 2 3", MC_CMD_APPEND),
    OK("prepend k 1 2 3", MC_CMD_PREPEND), OK("cas k 1 2 3 4", MC_CMD_CAS),
    OKN("cas k 1 2 3 4 noreply", MC_CMD_CAS), OK("set k 0 0 1\r", MC_CMD_SET),
    OK("set k 4294967297 0 1", MC_CMD_SET), OK("set k +1 0 +1", MC_CMD_SET),
    ERR("set k 0 0"), ERR("set k 0 0 1 2 3"), ERR("cas k 0 0 1"), ERR("set"),
    ERR("set k 0 0 1 noreply extra"),
    CERR("set k 0 0 -1", FMT), CERR("set k 0 0 4294967295", FMT),
    CERR("set k 0 0 2147483647", FMT), CERR("set k 0 0 2147483646", FMT),
    CERR("set k abc 0 1", FMT), CERRN("set k abc 0 1 noreply", FMT),
    CERR("set k -1 0 1", FMT), CERR("set k 0 abc 1", FMT), CERR("set k 1x 0 1", FMT),
    CERR("cas k 0 0 1 abc", FMT), CERR("cas k 0 0 1 -1", FMT),
    CERR("cas k 0 0 1 18446744073709551616", FMT), OK("set k\x01 0 0 1", MC_CMD_SET),
    /* incr/decr */
    OK("incr k 1", MC_CMD_INCR), OKN("decr k 1 noreply", MC_CMD_DECR),
    OK("incr k 1 2", MC_CMD_INCR), ERR("incr k"), ERR("decr"), ERR("incr k 1 2 3"),
    CERR("incr k -1", DELTA), CERR("incr k abc", DELTA),
    CERR("incr k 18446744073709551616", DELTA), OK("incr k 18446744073709551615", MC_CMD_INCR),
    /* delete */
    OK("delete k", MC_CMD_DELETE), OK("delete k 0", MC_CMD_DELETE),
    OKN("delete k noreply", MC_CMD_DELETE), OKN("delete k 0 noreply", MC_CMD_DELETE),
    CERR("delete k 1", DEL), CERRN("delete k x noreply", DEL), ERR("delete"),
    ERR("delete k 0 noreply x"),
    /* touch */
    OK("touch k 10", MC_CMD_TOUCH), OKN("touch k 10 noreply", MC_CMD_TOUCH),
    OK("touch k 1 2", MC_CMD_TOUCH), ERR("touch k"), CERR("touch k abc", EXP),
    /* flush_all */
    OK("flush_all", MC_CMD_FLUSH_ALL), OK("flush_all 10", MC_CMD_FLUSH_ALL),
    OKN("flush_all noreply", MC_CMD_FLUSH_ALL), OKN("flush_all 0 noreply", MC_CMD_FLUSH_ALL),
    OK("flush_all 0 0", MC_CMD_FLUSH_ALL), OK("flush_all -1", MC_CMD_FLUSH_ALL),
    CERR("flush_all abc", EXP), ERR("flush_all 1 2 3"),
    /* misc */
    OK("version", MC_CMD_VERSION), OK("version x", MC_CMD_VERSION), OK("quit", MC_CMD_QUIT),
    OK("quit x", MC_CMD_QUIT), OK("verbosity 1", MC_CMD_VERBOSITY),
    OKN("verbosity 1 noreply", MC_CMD_VERBOSITY), OK("verbosity 1 2", MC_CMD_VERBOSITY),
    ERR("verbosity"), CERR("verbosity abc", FMT), OK("stats", MC_CMD_STATS),
    OK("stats items", MC_CMD_STATS), OK("shutdown", MC_CMD_SHUTDOWN),
};
/* clang-format on */

static void test_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct parse_case *c = &cases[i];
        struct mc_request req;
        enum mc_parse r = mc_text_parse(c->line, strlen(c->line), &req);
        if (r != c->result)
            fail_msg("case %zu '%s': result %d, want %d", i, c->line, r, c->result);
        if (r == MC_PARSE_OK && req.cmd != c->cmd)
            fail_msg("case %zu '%s': cmd %d, want %d", i, c->line, req.cmd, c->cmd);
        if (r == MC_PARSE_CLIENT_ERROR && strcmp(req.error, c->error) != 0)
            fail_msg("case %zu '%s': error '%s', want '%s'", i, c->line, req.error, c->error);
        if (c->noreply >= 0 && req.noreply != (c->noreply == 1))
            fail_msg("case %zu '%s': noreply %d", i, c->line, req.noreply);
    }
}

static void test_storage_fields(void **state)
{
    (void)state;
    struct mc_request req;
    const char *l = "cas mykey 4294967297 4294967296 17 99 noreply";
    assert_int_equal(mc_text_parse(l, strlen(l), &req), MC_PARSE_OK);
    assert_int_equal(req.nkey, 5);
    assert_memory_equal(req.key, "mykey", 5);
    assert_int_equal(req.flags, 1);   /* truncated to 32 bits, as memcached */
    assert_int_equal(req.exptime, 0); /* truncated to 32 bits, as memcached */
    assert_int_equal(req.nbytes, 17);
    assert_int_equal(req.cas, 99);
    assert_true(req.noreply);

    l = "set k 0 2147483648 1"; /* wraps negative: already expired */
    assert_int_equal(mc_text_parse(l, strlen(l), &req), MC_PARSE_OK);
    assert_true(req.exptime < 0);
}

static void test_key_limits(void **state)
{
    (void)state;
    char line[400];
    struct mc_request req;
    memcpy(line, "get ", 4);
    memset(line + 4, 'a', 251);
    assert_int_equal(mc_text_parse(line, 4 + 250, &req), MC_PARSE_OK);
    assert_null(req.keys_error);
    /* a key too long is an error after the keys before it (none here) */
    assert_int_equal(mc_text_parse(line, 4 + 251, &req), MC_PARSE_OK);
    const char *cur = req.keys, *k;
    size_t nk;
    assert_false(mc_text_next_key(&cur, req.keys + req.keys_len, &k, &nk));
    assert_string_equal(req.keys_error, FMT);
    memcpy(line, "get b cc ", 9);
    memset(line + 9, 'a', 251);
    memcpy(line + 9 + 251, " d", 2);
    assert_int_equal(mc_text_parse(line, 9 + 251 + 2, &req), MC_PARSE_OK);
    cur = req.keys;
    assert_true(mc_text_next_key(&cur, req.keys + req.keys_len, &k, &nk));
    assert_memory_equal(k, "b", nk);
    assert_true(mc_text_next_key(&cur, req.keys + req.keys_len, &k, &nk));
    assert_memory_equal(k, "cc", nk);
    assert_false(mc_text_next_key(&cur, req.keys + req.keys_len, &k, &nk));
    assert_string_equal(req.keys_error, FMT);

    memcpy(line, "set ", 4);
    memset(line + 4, 'k', 251);
    memcpy(line + 4 + 251, " 0 0 1", 6);
    assert_int_equal(mc_text_parse(line, 4 + 251 + 6, &req), MC_PARSE_CLIENT_ERROR);
    memmove(line + 4 + 250, line + 4 + 251, 6);
    assert_int_equal(mc_text_parse(line, 4 + 250 + 6, &req), MC_PARSE_OK);
    assert_int_equal(req.nkey, 250);

    assert_true(mc_key_valid("a", 1));
    assert_false(mc_key_valid("", 0));
    assert_true(mc_key_valid("a\x7f\x01", 3));         /* as memcached */
    assert_true(mc_key_valid("\xc3\xa9t\xc3\xa9", 5)); /* UTF-8 is fine */
}

static void test_nul_ends_line(void **state)
{
    (void)state;
    struct mc_request req;
    /* memcached reads the line as a C string */
    assert_int_equal(mc_text_parse("get k\0tail", 10, &req), MC_PARSE_OK);
    assert_int_equal(req.keys_len, 2);
    assert_int_equal(mc_text_parse("set k\0x 0 0 1", 14, &req), MC_PARSE_ERROR);
}

static void test_key_iteration(void **state)
{
    (void)state;
    struct mc_request req;
    const char *l = "gets  a bb   ccc ";
    assert_int_equal(mc_text_parse(l, strlen(l), &req), MC_PARSE_OK);
    const char *cur = req.keys, *end = req.keys + req.keys_len, *k;
    size_t n;
    const char *want[] = {"a", "bb", "ccc"};
    for (int i = 0; i < 3; i++) {
        assert_true(mc_text_next_key(&cur, end, &k, &n));
        assert_int_equal(n, strlen(want[i]));
        assert_memory_equal(k, want[i], n);
    }
    assert_false(mc_text_next_key(&cur, end, &k, &n));
}

static void test_long_line_rule(void **state)
{
    (void)state;
    assert_true(mc_text_is_long_line_ok("get a b", 7));
    assert_true(mc_text_is_long_line_ok("  gets a", 8));
    assert_false(mc_text_is_long_line_ok("gat 0 a", 7)); /* memcached: get/gets only */
    assert_false(mc_text_is_long_line_ok("set a", 5));
    assert_false(mc_text_is_long_line_ok("xxxxxxx", 7));
}

static void test_numparse(void **state)
{
    (void)state;
    uint64_t u;
    int32_t i;
    uint32_t f;
    assert_true(numparse_u64("18446744073709551615", 20, &u));
    assert_int_equal(u, UINT64_MAX);
    assert_false(numparse_u64("18446744073709551616", 20, &u));
    assert_false(numparse_u64("-1", 2, &u));
    assert_false(numparse_u64("", 0, &u));
    assert_false(numparse_u64("1x", 2, &u));
    assert_true(numparse_u64("12\r", 3, &u)); /* memcached accepts trailing space bytes */
    assert_int_equal(u, 12);
    assert_true(numparse_u64("+5", 2, &u));
    assert_true(numparse_u64("-0", 2, &u));
    assert_true(numparse_i32_trunc("-5", 2, &i));
    assert_int_equal(i, -5);
    assert_true(numparse_i32_trunc("4294967295", 10, &i));
    assert_int_equal(i, -1);
    assert_false(numparse_i32_trunc("9223372036854775808", 19, &i));
    assert_true(numparse_u32_trunc("4294967296", 10, &f));
    assert_int_equal(f, 0);
}

static void test_value_header(void **state)
{
    (void)state;
    char buf[MC_VALUE_HEADER_MAX];
    size_t n = mc_text_value_header(buf, "key", 3, 4294967295u, 0, true, UINT64_MAX);
    const char *want = "VALUE key 4294967295 0 18446744073709551615\r\n";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(buf, want, n);
    n = mc_text_value_header(buf, "k", 1, 0, 5, false, 0);
    assert_memory_equal(buf, "VALUE k 0 5\r\n", n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),   cmocka_unit_test(test_storage_fields),
        cmocka_unit_test(test_key_limits),    cmocka_unit_test(test_key_iteration),
        cmocka_unit_test(test_nul_ends_line), cmocka_unit_test(test_long_line_rule),
        cmocka_unit_test(test_numparse),      cmocka_unit_test(test_value_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
