/*
 * test_mcwire_resp.c - strata-bench's RESP (Redis) mode: GET and SET
 * composed byte for byte, reply streams parsed whole, split at every byte
 * and fed one byte at a time with the same events, partial replies kept
 * for the next read, error and malformed replies, replies matched to
 * pipelined requests, and the options RESP refuses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tools/strata-bench/mcwire.h"
#include "tools/strata-bench/opts.h"

static struct keys ks;

static int setup(void **state)
{
    (void)state;
    return keys_init(&ks, "key:", 1000, KEYS_UNIFORM, 0) == ST_OK ? 0 : -1;
}

/* ---- composing ---- */

static void test_compose_get(void **state)
{
    (void)state;
    char buf[512];
    uint64_t ids[] = {7};
    size_t n = mcwire_compose_get(MCWIRE_RESP, buf, &ks, ids, 1, 99);
    const char *want = "*2\r\n$3\r\nGET\r\n$5\r\nkey:7\r\n";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(buf, want, n);
    ids[0] = 999;
    n = mcwire_compose_get(MCWIRE_RESP, buf, &ks, ids, 1, 0);
    want = "*2\r\n$3\r\nGET\r\n$7\r\nkey:999\r\n";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(buf, want, n);
}

static void test_compose_set(void **state)
{
    (void)state;
    char buf[512];
    size_t n = mcwire_compose_set(MCWIRE_RESP, buf, &ks, 42, 100, 0, 5);
    const char *want = "*3\r\n$3\r\nSET\r\n$6\r\nkey:42\r\n$100\r\n";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(buf, want, n);
    n = mcwire_compose_set(MCWIRE_RESP, buf, &ks, 0, 0, 0, 0);
    want = "*3\r\n$3\r\nSET\r\n$5\r\nkey:0\r\n$0\r\n";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(buf, want, n);
    assert_string_equal(mcwire_set_trailer(MCWIRE_RESP), "\r\n");
}

static void test_compose_size_bounds(void **state)
{
    (void)state;
    struct keys big;
    char prefix[200];
    memset(prefix, 'p', sizeof(prefix) - 1);
    prefix[sizeof(prefix) - 1] = '\0';
    assert_int_equal(keys_init(&big, prefix, 1000000000000ull, KEYS_UNIFORM, 0), ST_OK);
    size_t kmax = keys_max_len(&big);
    char buf[1024];
    uint64_t ids[] = {999999999999ull};
    size_t n = mcwire_compose_get(MCWIRE_RESP, buf, &big, ids, 1, UINT32_MAX);
    assert_true(n <= mcwire_get_size_max(MCWIRE_RESP, kmax, 1));
    n = mcwire_compose_set(MCWIRE_RESP, buf, &big, ids[0], UINT32_MAX, 0, UINT32_MAX);
    assert_true(n <= mcwire_set_size_max(MCWIRE_RESP, kmax));
}

static void test_proto_name(void **state)
{
    (void)state;
    enum mcwire_proto p = MCWIRE_TEXT;
    assert_true(mcwire_proto_parse("resp", &p));
    assert_int_equal(p, MCWIRE_RESP);
    assert_string_equal(mcwire_proto_name(MCWIRE_RESP), "resp");
    assert_false(mcwire_proto_parse("redis", &p));
}

/* ---- parsing ---- */

struct rec {
    enum mcwire_ev type;
    uint64_t vlen;
    size_t nkey;
    char text[256];
};

#define MAX_RECS 64

/* Feeds the stream in chunks cut at cuts[], keeping unconsumed bytes as a
 * connection does; returns the events. Stops after a BAD event. */
static size_t feed(const char *s, size_t len, const size_t *cuts, size_t ncuts, struct rec *out)
{
    struct mcwire_parser ps;
    mcwire_parser_init(&ps, MCWIRE_RESP);
    static char buf[16384];
    size_t blen = 0, nrec = 0, from = 0;
    for (size_t c = 0; c <= ncuts; c++) {
        size_t to = c < ncuts ? cuts[c] : len;
        memcpy(buf + blen, s + from, to - from);
        blen += to - from;
        from = to;
        size_t pos = 0;
        while (pos < blen) {
            struct mcwire_event ev;
            pos += mcwire_parse(&ps, buf + pos, blen - pos, &ev);
            if (ev.type == MCWIRE_EV_NONE)
                break;
            assert_true(nrec < MAX_RECS);
            struct rec *r = &out[nrec++];
            memset(r, 0, sizeof(*r));
            r->type = ev.type;
            r->vlen = ev.vlen;
            r->nkey = ev.nkey;
            if (ev.text)
                memcpy(r->text, ev.text, ev.ntext);
            if (ev.type == MCWIRE_EV_BAD)
                return nrec;
        }
        memmove(buf, buf + pos, blen - pos);
        blen -= pos;
        assert_true(blen < MCWIRE_HEAD_MAX + 1);
    }
    return nrec;
}

static void assert_same(const struct rec *a, size_t na, const struct rec *b, size_t nb)
{
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        assert_int_equal(a[i].type, b[i].type);
        assert_int_equal(a[i].vlen, b[i].vlen);
        if (a[i].type != MCWIRE_EV_BAD) /* BAD quotes what had arrived so far */
            assert_string_equal(a[i].text, b[i].text);
    }
}

/* Parses s whole, split in two at every byte, and one byte at a time; all
 * must give the same events, which are returned. */
static size_t parse_every_split(const char *s, size_t len, struct rec *out)
{
    size_t n = feed(s, len, NULL, 0, out);
    static struct rec other[MAX_RECS];
    for (size_t i = 1; i < len; i++) {
        size_t m = feed(s, len, &i, 1, other);
        assert_same(out, n, other, m);
    }
    static size_t cuts[8192];
    assert_true(len < 8192);
    for (size_t i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    size_t m = feed(s, len, cuts, len ? len - 1 : 0, other);
    assert_same(out, n, other, m);
    return n;
}

static void test_parse_replies(void **state)
{
    (void)state;
    static const char s[] = "$5\r\nhello\r\n"
                            "$-1\r\n"
                            "+OK\r\n"
                            "$0\r\n\r\n"
                            "$9\r\n$-1\r\n+OK\r\r\n" /* a value that looks like replies */
                            "-ERR wrong number of arguments for 'get' command\r\n"
                            "-OOM command not allowed when used memory > 'maxmemory'.\r\n"
                            "+OK\r\n";
    struct rec r[MAX_RECS];
    size_t n = parse_every_split(s, sizeof(s) - 1, r);
    assert_int_equal(n, 8);
    assert_int_equal(r[0].type, MCWIRE_EV_HIT);
    assert_int_equal(r[0].vlen, 5);
    assert_int_equal(r[0].nkey, 0);
    assert_int_equal(r[1].type, MCWIRE_EV_MISS);
    assert_int_equal(r[2].type, MCWIRE_EV_STORED);
    assert_int_equal(r[3].type, MCWIRE_EV_HIT);
    assert_int_equal(r[3].vlen, 0);
    assert_int_equal(r[4].type, MCWIRE_EV_HIT);
    assert_int_equal(r[4].vlen, 9);
    assert_int_equal(r[5].type, MCWIRE_EV_ERROR);
    assert_string_equal(r[5].text, "ERR wrong number of arguments for 'get' command");
    assert_int_equal(r[6].type, MCWIRE_EV_ERROR);
    assert_string_equal(r[6].text, "OOM command not allowed when used memory > 'maxmemory'.");
    assert_int_equal(r[7].type, MCWIRE_EV_STORED);
}

/* A large value arrives over many reads and is skipped, never buffered. */
static void test_parse_large_value(void **state)
{
    (void)state;
    static char s[12000];
    size_t n = (size_t)snprintf(s, sizeof(s), "$10000\r\n");
    memset(s + n, 'v', 10000);
    n += 10000;
    memcpy(s + n, "\r\n$-1\r\n", 7);
    n += 7;
    struct rec r[MAX_RECS];
    size_t cuts[] = {3, 8, 100, 4096, 9000, 10007, 10009};
    size_t k = feed(s, n, cuts, sizeof(cuts) / sizeof(cuts[0]), r);
    assert_int_equal(k, 2);
    assert_int_equal(r[0].type, MCWIRE_EV_HIT);
    assert_int_equal(r[0].vlen, 10000);
    assert_int_equal(r[1].type, MCWIRE_EV_MISS);
}

static void test_parse_partial(void **state)
{
    (void)state;
    struct mcwire_parser ps;
    struct mcwire_event ev;
    mcwire_parser_init(&ps, MCWIRE_RESP);
    /* an incomplete line is not consumed */
    assert_int_equal(mcwire_parse(&ps, "$5", 2, &ev), 0);
    assert_int_equal(ev.type, MCWIRE_EV_NONE);
    assert_int_equal(mcwire_parse(&ps, "$5\r", 3, &ev), 0);
    assert_int_equal(ev.type, MCWIRE_EV_NONE);
    /* the length line and part of the value are, without an event yet */
    assert_int_equal(mcwire_parse(&ps, "$5\r\nhel", 7, &ev), 7);
    assert_int_equal(ev.type, MCWIRE_EV_NONE);
    assert_int_equal(mcwire_parse(&ps, "lo\r", 3, &ev), 3);
    assert_int_equal(ev.type, MCWIRE_EV_NONE);
    /* the reply ends at its CRLF; what follows is left for the next call */
    assert_int_equal(mcwire_parse(&ps, "\n+OK\r\n", 6, &ev), 1);
    assert_int_equal(ev.type, MCWIRE_EV_HIT);
    assert_int_equal(ev.vlen, 5);
    assert_int_equal(mcwire_parse(&ps, "+OK\r\n", 5, &ev), 5);
    assert_int_equal(ev.type, MCWIRE_EV_STORED);
    /* a partial error line, then the rest */
    assert_int_equal(mcwire_parse(&ps, "-ERR bo", 7, &ev), 0);
    assert_int_equal(ev.type, MCWIRE_EV_NONE);
    assert_int_equal(mcwire_parse(&ps, "-ERR boom\r\n", 11, &ev), 11);
    assert_int_equal(ev.type, MCWIRE_EV_ERROR);
    assert_int_equal(ev.ntext, 8);
    assert_memory_equal(ev.text, "ERR boom", 8);
    /* a miss split before its CRLF */
    assert_int_equal(mcwire_parse(&ps, "$-1\r", 4, &ev), 0);
    assert_int_equal(mcwire_parse(&ps, "$-1\r\n", 5, &ev), 5);
    assert_int_equal(ev.type, MCWIRE_EV_MISS);
}

static void expect_bad(const char *s, size_t len)
{
    struct rec r[MAX_RECS];
    size_t n = parse_every_split(s, len, r);
    assert_true(n >= 1);
    if (r[n - 1].type != MCWIRE_EV_BAD)
        fail_msg("no BAD event for RESP stream \"%.40s\"", s);
    assert_true(r[n - 1].text[0] != '\0');
}

static void test_parse_malformed(void **state)
{
    (void)state;
#define BAD_STR(s) expect_bad(s, sizeof(s) - 1)
    BAD_STR(":1\r\n");            /* an integer answers neither GET nor SET */
    BAD_STR("*1\r\n$1\r\na\r\n"); /* an array (MGET's reply) is not followed */
    BAD_STR("*-1\r\n");
    BAD_STR("+QUEUED\r\n"); /* a simple string other than OK */
    BAD_STR("_\r\n");       /* RESP3 null */
    BAD_STR("$\r\n");
    BAD_STR("$x\r\n");
    BAD_STR("$-2\r\n");
    BAD_STR("$+5\r\n");
    BAD_STR("$99999999999\r\n"); /* longer than any value */
    BAD_STR("$5\r\nhelloXX");    /* value not followed by CRLF */
    BAD_STR("$5\r\nhello\rX");
    BAD_STR("+OK\n"); /* LF alone */
    BAD_STR("\r\n");
    BAD_STR("VALUE key:1 0 5\r\n"); /* memcached's reply on a RESP connection */
    BAD_STR("STORED\r\n");
#undef BAD_STR
    static char longline[3000];
    memset(longline, 'a', sizeof(longline));
    longline[0] = '-';
    expect_bad(longline, sizeof(longline));
}

/* ---- matching ---- */

static struct mcwire_event ev_of(enum mcwire_ev t)
{
    struct mcwire_event e;
    memset(&e, 0, sizeof(e));
    e.type = t;
    return e;
}

static enum mcwire_match m(struct mcwire_expect *x, enum mcwire_ev t)
{
    const char *why;
    struct mcwire_event e = ev_of(t);
    enum mcwire_match r = mcwire_match(MCWIRE_RESP, &ks, x, &e, &why);
    assert_true((r == MCWIRE_MATCH_UNEXPECTED) == (why != NULL));
    return r;
}

static void test_match(void **state)
{
    (void)state;
    uint64_t ids[] = {1};
    struct mcwire_expect x;
    mcwire_expect_init(&x, MCWIRE_GET, ids, 1, 0);
    assert_int_equal(m(&x, MCWIRE_EV_HIT), MCWIRE_MATCH_DONE);
    assert_int_equal(x.hits, 1);
    mcwire_expect_init(&x, MCWIRE_GET, ids, 1, 0);
    assert_int_equal(m(&x, MCWIRE_EV_MISS), MCWIRE_MATCH_DONE);
    assert_int_equal(x.misses, 1);
    mcwire_expect_init(&x, MCWIRE_GET, ids, 1, 0);
    assert_int_equal(m(&x, MCWIRE_EV_ERROR), MCWIRE_MATCH_DONE);
    assert_int_equal(x.errors, 1);
    assert_int_equal(x.hits + x.misses, 0);
    mcwire_expect_init(&x, MCWIRE_GET, ids, 1, 0);
    assert_int_equal(m(&x, MCWIRE_EV_STORED), MCWIRE_MATCH_UNEXPECTED);
    mcwire_expect_init(&x, MCWIRE_GET, ids, 1, 0);
    assert_int_equal(m(&x, MCWIRE_EV_BAD), MCWIRE_MATCH_UNEXPECTED);

    mcwire_expect_init(&x, MCWIRE_SET, ids, 1, 0);
    assert_int_equal(m(&x, MCWIRE_EV_STORED), MCWIRE_MATCH_DONE);
    assert_int_equal(x.errors, 0);
    mcwire_expect_init(&x, MCWIRE_SET, ids, 1, 0);
    assert_int_equal(m(&x, MCWIRE_EV_ERROR), MCWIRE_MATCH_DONE);
    assert_int_equal(x.errors, 1);
    mcwire_expect_init(&x, MCWIRE_SET, ids, 1, 0);
    assert_int_equal(m(&x, MCWIRE_EV_MISS), MCWIRE_MATCH_UNEXPECTED);
    mcwire_expect_init(&x, MCWIRE_SET, ids, 1, 0);
    assert_int_equal(m(&x, MCWIRE_EV_HIT), MCWIRE_MATCH_UNEXPECTED);
}

/* A pipeline of sets and gets (depth 4) parsed from one stream split at
 * every byte, each reply matched to the request at the head, in order. */
static void test_pipeline(void **state)
{
    (void)state;
    static const char s[] = "+OK\r\n$3\r\nabc\r\n$-1\r\n-ERR nope\r\n";
    uint64_t ids[4] = {1, 2, 3, 4};
    const enum mcwire_op ops[4] = {MCWIRE_SET, MCWIRE_GET, MCWIRE_GET, MCWIRE_GET};
    for (size_t cut = 0; cut <= sizeof(s) - 1; cut++) {
        struct mcwire_parser ps;
        mcwire_parser_init(&ps, MCWIRE_RESP);
        struct mcwire_expect x[4];
        for (unsigned i = 0; i < 4; i++)
            mcwire_expect_init(&x[i], ops[i], &ids[i], 1, i);
        unsigned head = 0;
        char buf[64];
        size_t blen = 0;
        size_t parts[2][2] = {{0, cut}, {cut, sizeof(s) - 1}};
        for (unsigned part = 0; part < 2; part++) {
            memcpy(buf + blen, s + parts[part][0], parts[part][1] - parts[part][0]);
            blen += parts[part][1] - parts[part][0];
            size_t pos = 0;
            while (pos < blen) {
                struct mcwire_event ev;
                pos += mcwire_parse(&ps, buf + pos, blen - pos, &ev);
                if (ev.type == MCWIRE_EV_NONE)
                    break;
                assert_true(head < 4);
                const char *why;
                assert_int_equal(mcwire_match(MCWIRE_RESP, &ks, &x[head], &ev, &why),
                                 MCWIRE_MATCH_DONE);
                head++;
            }
            memmove(buf, buf + pos, blen - pos);
            blen -= pos;
        }
        assert_int_equal(head, 4);
        assert_int_equal(blen, 0);
        assert_int_equal(x[1].hits, 1);
        assert_int_equal(x[2].misses, 1);
        assert_int_equal(x[3].errors, 1);
    }
}

/* ---- options ---- */

static enum opts_result parse(struct bench_opts *o, const char *const *args)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)"strata-bench";
    for (; *args != NULL; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    return opts_parse(o, argc, argv);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_opts(void **state)
{
    (void)state;
    struct bench_opts o;
    assert_int_equal(parse(&o, ARGS("--protocol", "resp", "-d", "16", "--preload")), OPTS_RUN);
    assert_int_equal(o.proto, MCWIRE_RESP);
    assert_int_equal(o.depth, 16);
    assert_int_equal(parse(&o, ARGS("-P", "resp", "-m", "1")), OPTS_RUN);
    /* refused with a message: multi-get and exptime */
    assert_int_equal(parse(&o, ARGS("-P", "resp", "-m", "2")), OPTS_USAGE);
    assert_int_equal(parse(&o, ARGS("-m", "10", "--protocol", "resp")), OPTS_USAGE);
    assert_int_equal(parse(&o, ARGS("-P", "resp", "-e", "60")), OPTS_USAGE);
    assert_int_equal(parse(&o, ARGS("-P", "redis")), OPTS_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compose_get),
        cmocka_unit_test(test_compose_set),
        cmocka_unit_test(test_compose_size_bounds),
        cmocka_unit_test(test_proto_name),
        cmocka_unit_test(test_parse_replies),
        cmocka_unit_test(test_parse_large_value),
        cmocka_unit_test(test_parse_partial),
        cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_opts),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
