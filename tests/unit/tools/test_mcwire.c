/*
 * test_wire.c - strata-bench's protocol layer: requests composed byte for
 * byte (text, meta, binary), reply streams parsed whole, split at every
 * byte and fed one byte at a time with the same events, malformed replies
 * rejected, and replies matched to requests (hits, misses, order, errors).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tools/strata-bench/mcwire.h"

static struct keys ks;

static int setup(void **state)
{
    (void)state;
    return keys_init(&ks, "key:", 1000, KEYS_UNIFORM, 0) == ST_OK ? 0 : -1;
}

/* ---- composing ---- */

static void test_compose_text(void **state)
{
    (void)state;
    char buf[512];
    uint64_t ids[] = {1, 22, 333};
    size_t n = mcwire_compose_get(MCWIRE_TEXT, buf, &ks, ids, 1, 0);
    assert_int_equal(n, 11);
    assert_memory_equal(buf, "get key:1\r\n", n);
    n = mcwire_compose_get(MCWIRE_TEXT, buf, &ks, ids, 3, 0);
    assert_memory_equal(buf, "get key:1 key:22 key:333\r\n", n);
    assert_int_equal(n, strlen("get key:1 key:22 key:333\r\n"));
    n = mcwire_compose_set(MCWIRE_TEXT, buf, &ks, 5, 100, 0, 0);
    assert_memory_equal(buf, "set key:5 0 0 100\r\n", n);
    n = mcwire_compose_set(MCWIRE_TEXT, buf, &ks, 5, 7, 3600, 0);
    assert_memory_equal(buf, "set key:5 0 3600 7\r\n", n);
    assert_string_equal(mcwire_set_trailer(MCWIRE_TEXT), "\r\n");
}

static void test_compose_meta(void **state)
{
    (void)state;
    char buf[512];
    uint64_t ids[] = {1, 2};
    size_t n = mcwire_compose_get(MCWIRE_META, buf, &ks, ids, 1, 0);
    assert_memory_equal(buf, "mg key:1 v\r\n", n);
    assert_int_equal(n, 12);
    n = mcwire_compose_get(MCWIRE_META, buf, &ks, ids, 2, 0);
    const char *want = "mg key:1 v q\r\nmg key:2 v q\r\nmn\r\n";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(buf, want, n);
    n = mcwire_compose_set(MCWIRE_META, buf, &ks, 9, 100, 0, 0);
    assert_memory_equal(buf, "ms key:9 100\r\n", n);
    n = mcwire_compose_set(MCWIRE_META, buf, &ks, 9, 100, 60, 0);
    assert_memory_equal(buf, "ms key:9 100 T60\r\n", n);
    assert_string_equal(mcwire_set_trailer(MCWIRE_META), "\r\n");
}

static void test_compose_binary(void **state)
{
    (void)state;
    char buf[512];
    uint64_t ids[] = {1, 2};
    size_t n = mcwire_compose_get(MCWIRE_BINARY, buf, &ks, ids, 1, 0x01020304);
    const unsigned char getk[] = {0x80, 0x0c, 0, 5, 0, 0, 0, 0, 0, 0,   0,   5,   1,   2,  3,
                                  4,    0,    0, 0, 0, 0, 0, 0, 0, 'k', 'e', 'y', ':', '1'};
    assert_int_equal(n, sizeof(getk));
    assert_memory_equal(buf, getk, n);
    n = mcwire_compose_get(MCWIRE_BINARY, buf, &ks, ids, 2, 7);
    assert_int_equal(n, 3 * 24 + 10);
    assert_int_equal((unsigned char)buf[1], MCWIRE_BIN_GETKQ);
    assert_int_equal((unsigned char)buf[29 + 1], MCWIRE_BIN_GETKQ);
    assert_memory_equal(buf + 29 + 24, "key:2", 5);
    assert_int_equal((unsigned char)buf[58], 0x80);
    assert_int_equal((unsigned char)buf[59], MCWIRE_BIN_NOOP);
    assert_int_equal((unsigned char)buf[58 + 15], 7); /* opaque */
    n = mcwire_compose_set(MCWIRE_BINARY, buf, &ks, 5, 100, 300, 9);
    const unsigned char set[] = {0x80, 0x01, 0, 5, 8, 0,  0,   0,   0,   0,   0,  113, 0,
                                 0,    0,    9, 0, 0, 0,  0,   0,   0,   0,   0,  0,   0,
                                 0,    0,    0, 0, 1, 44, 'k', 'e', 'y', ':', '5'};
    assert_int_equal(n, sizeof(set));
    assert_memory_equal(buf, set, n);
    assert_string_equal(mcwire_set_trailer(MCWIRE_BINARY), "");
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
    static char buf[1 << 20];
    uint64_t ids[MCWIRE_WIDTH_MAX];
    for (unsigned i = 0; i < MCWIRE_WIDTH_MAX; i++)
        ids[i] = 999999999999ull;
    for (int p = MCWIRE_TEXT; p <= MCWIRE_BINARY; p++) {
        for (unsigned w = 1; w <= MCWIRE_WIDTH_MAX; w += 33) {
            size_t n = mcwire_compose_get((enum mcwire_proto)p, buf, &big, ids, w, UINT32_MAX);
            assert_true(n <= mcwire_get_size_max((enum mcwire_proto)p, kmax, w));
        }
        size_t n = mcwire_compose_set((enum mcwire_proto)p, buf, &big, ids[0], UINT32_MAX,
                                      UINT32_MAX, UINT32_MAX);
        assert_true(n <= mcwire_set_size_max((enum mcwire_proto)p, kmax));
    }
}

/* ---- parsing ---- */

struct rec {
    enum mcwire_ev type;
    char key[MCWIRE_KEY_MAX + 1];
    uint64_t vlen;
    bool has_opaque;
    uint32_t opaque;
    uint8_t opcode;
    char text[256];
};

#define MAX_RECS 64

/* Feeds the stream in chunks cut at cuts[], keeping unconsumed bytes as a
 * connection does; returns the events. Stops after a BAD event. */
static size_t feed(enum mcwire_proto p, const char *s, size_t len, const size_t *cuts, size_t ncuts,
                   struct rec *out)
{
    struct mcwire_parser ps;
    mcwire_parser_init(&ps, p);
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
            if (ev.nkey)
                memcpy(r->key, ev.key, ev.nkey);
            r->vlen = ev.vlen;
            r->has_opaque = ev.has_opaque;
            r->opaque = ev.opaque;
            r->opcode = ev.opcode;
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
        assert_string_equal(a[i].key, b[i].key);
        assert_int_equal(a[i].vlen, b[i].vlen);
        assert_int_equal(a[i].opaque, b[i].opaque);
        if (a[i].type != MCWIRE_EV_BAD) /* BAD quotes what had arrived so far */
            assert_string_equal(a[i].text, b[i].text);
    }
}

/* Parses s whole, split in two at every byte, and one byte at a time; all
 * must give the same events, which are returned. */
static size_t parse_every_split(enum mcwire_proto p, const char *s, size_t len, struct rec *out)
{
    size_t n = feed(p, s, len, NULL, 0, out);
    static struct rec other[MAX_RECS];
    for (size_t i = 1; i < len; i++) {
        size_t m = feed(p, s, len, &i, 1, other);
        assert_same(out, n, other, m);
    }
    static size_t cuts[8192];
    assert_true(len < 8192);
    for (size_t i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    size_t m = feed(p, s, len, cuts, len ? len - 1 : 0, other);
    assert_same(out, n, other, m);
    return n;
}

static void test_parse_text(void **state)
{
    (void)state;
    static const char s[] = "VALUE key:1 0 5\r\nhello\r\n"
                            "VALUE key:3 7 3 99\r\nabc\r\n"
                            "END\r\n"
                            "STORED\r\n"
                            "NOT_STORED\r\n"
                            "SERVER_ERROR out of memory storing object\r\n"
                            "END\r\n"
                            "VALUE key:2 0 0\r\n\r\n"
                            "VALUE key:4 0 7\r\n\r\nEND\r\n\r\n"
                            "END\r\n"
                            "ERROR\r\n"
                            "EXISTS\r\n";
    struct rec r[MAX_RECS];
    size_t n = parse_every_split(MCWIRE_TEXT, s, sizeof(s) - 1, r);
    assert_int_equal(n, 12);
    assert_int_equal(r[0].type, MCWIRE_EV_HIT);
    assert_string_equal(r[0].key, "key:1");
    assert_int_equal(r[0].vlen, 5);
    assert_int_equal(r[1].type, MCWIRE_EV_HIT);
    assert_string_equal(r[1].key, "key:3");
    assert_int_equal(r[1].vlen, 3);
    assert_int_equal(r[2].type, MCWIRE_EV_END);
    assert_int_equal(r[3].type, MCWIRE_EV_STORED);
    assert_int_equal(r[4].type, MCWIRE_EV_NOT_STORED);
    assert_string_equal(r[4].text, "NOT_STORED");
    assert_int_equal(r[5].type, MCWIRE_EV_ERROR);
    assert_string_equal(r[5].text, "SERVER_ERROR out of memory storing object");
    assert_int_equal(r[6].type, MCWIRE_EV_END);
    assert_int_equal(r[7].type, MCWIRE_EV_HIT);
    assert_int_equal(r[7].vlen, 0);
    assert_int_equal(r[8].type, MCWIRE_EV_HIT); /* a value that looks like replies */
    assert_int_equal(r[8].vlen, 7);
    assert_int_equal(r[9].type, MCWIRE_EV_END);
    assert_int_equal(r[10].type, MCWIRE_EV_ERROR);
    assert_int_equal(r[11].type, MCWIRE_EV_NOT_STORED);
}

static void test_parse_meta(void **state)
{
    (void)state;
    static const char s[] = "VA 5\r\nhello\r\n"
                            "EN\r\n"
                            "HD\r\n"
                            "VA 2 kkey:9 O77 f0\r\nhi\r\n"
                            "MN\r\n"
                            "NS\r\n"
                            "EX\r\n"
                            "CLIENT_ERROR bad data chunk\r\n"
                            "VA 0\r\n\r\n";
    struct rec r[MAX_RECS];
    size_t n = parse_every_split(MCWIRE_META, s, sizeof(s) - 1, r);
    assert_int_equal(n, 9);
    assert_int_equal(r[0].type, MCWIRE_EV_HIT);
    assert_int_equal(r[0].vlen, 5);
    assert_string_equal(r[0].key, "");
    assert_int_equal(r[1].type, MCWIRE_EV_MISS);
    assert_int_equal(r[2].type, MCWIRE_EV_STORED);
    assert_int_equal(r[3].type, MCWIRE_EV_HIT);
    assert_string_equal(r[3].key, "key:9");
    assert_true(r[3].has_opaque);
    assert_int_equal(r[3].opaque, 77);
    assert_int_equal(r[4].type, MCWIRE_EV_END);
    assert_int_equal(r[5].type, MCWIRE_EV_NOT_STORED);
    assert_int_equal(r[6].type, MCWIRE_EV_NOT_STORED);
    assert_int_equal(r[7].type, MCWIRE_EV_ERROR);
    assert_string_equal(r[7].text, "CLIENT_ERROR bad data chunk");
    assert_int_equal(r[8].type, MCWIRE_EV_HIT);
    assert_int_equal(r[8].vlen, 0);
}

/* Appends a binary response to buf. */
static size_t bin_res(char *buf, uint8_t op, uint16_t status, uint32_t opaque, const char *extras,
                      uint8_t nextras, const char *key, const char *value)
{
    size_t nkey = key ? strlen(key) : 0, nval = value ? strlen(value) : 0;
    uint32_t body = (uint32_t)(nextras + nkey + nval);
    unsigned char *h = (unsigned char *)buf;
    memset(h, 0, 24);
    h[0] = 0x81;
    h[1] = op;
    h[2] = (unsigned char)(nkey >> 8);
    h[3] = (unsigned char)nkey;
    h[4] = nextras;
    h[6] = (unsigned char)(status >> 8);
    h[7] = (unsigned char)status;
    h[8] = (unsigned char)(body >> 24);
    h[9] = (unsigned char)(body >> 16);
    h[10] = (unsigned char)(body >> 8);
    h[11] = (unsigned char)body;
    h[12] = (unsigned char)(opaque >> 24);
    h[13] = (unsigned char)(opaque >> 16);
    h[14] = (unsigned char)(opaque >> 8);
    h[15] = (unsigned char)opaque;
    size_t n = 24;
    if (nextras)
        memcpy(buf + n, extras, nextras);
    n += nextras;
    if (nkey)
        memcpy(buf + n, key, nkey);
    n += nkey;
    if (nval)
        memcpy(buf + n, value, nval);
    return n + nval;
}

static void test_parse_binary(void **state)
{
    (void)state;
    char s[1024];
    size_t n = 0;
    n += bin_res(s + n, MCWIRE_BIN_GETK, 0, 1, "\0\0\0\0", 4, "key:1", "hello");
    n += bin_res(s + n, MCWIRE_BIN_GETK, MCWIRE_BIN_ENOENT, 2, NULL, 0, "key:2", NULL);
    n += bin_res(s + n, MCWIRE_BIN_GETKQ, 0, 3, "\0\0\0\1", 4, "key:3", "");
    n += bin_res(s + n, MCWIRE_BIN_NOOP, 0, 3, NULL, 0, NULL, NULL);
    n += bin_res(s + n, MCWIRE_BIN_SET, 0, 4, NULL, 0, NULL, NULL);
    n += bin_res(s + n, MCWIRE_BIN_SET, MCWIRE_BIN_EEXISTS, 5, NULL, 0, NULL,
                 "Data exists for key.");
    n += bin_res(s + n, MCWIRE_BIN_GETK, 0x82, 6, NULL, 0, NULL, "Out of memory");
    struct rec r[MAX_RECS];
    size_t k = parse_every_split(MCWIRE_BINARY, s, n, r);
    assert_int_equal(k, 7);
    assert_int_equal(r[0].type, MCWIRE_EV_HIT);
    assert_string_equal(r[0].key, "key:1");
    assert_int_equal(r[0].vlen, 5);
    assert_int_equal(r[0].opaque, 1);
    assert_int_equal(r[0].opcode, MCWIRE_BIN_GETK);
    assert_int_equal(r[1].type, MCWIRE_EV_MISS);
    assert_string_equal(r[1].key, "key:2");
    assert_int_equal(r[2].type, MCWIRE_EV_HIT);
    assert_int_equal(r[2].vlen, 0);
    assert_int_equal(r[2].opcode, MCWIRE_BIN_GETKQ);
    assert_int_equal(r[3].type, MCWIRE_EV_END);
    assert_int_equal(r[3].opaque, 3);
    assert_int_equal(r[4].type, MCWIRE_EV_STORED);
    assert_int_equal(r[5].type, MCWIRE_EV_NOT_STORED);
    assert_string_equal(r[5].text, "status 0x0002: Data exists for key.");
    assert_int_equal(r[6].type, MCWIRE_EV_ERROR);
    assert_string_equal(r[6].text, "status 0x0082: Out of memory");
}

static void expect_bad(enum mcwire_proto p, const char *s, size_t len)
{
    struct rec r[MAX_RECS];
    size_t n = parse_every_split(p, s, len, r);
    assert_true(n >= 1);
    if (r[n - 1].type != MCWIRE_EV_BAD)
        fail_msg("no BAD event for %s stream \"%.40s\"", mcwire_proto_name(p), s);
    assert_true(r[n - 1].text[0] != '\0');
}

static void test_parse_malformed(void **state)
{
    (void)state;
#define BAD_STR(p, s) expect_bad(p, s, sizeof(s) - 1)
    BAD_STR(MCWIRE_TEXT, "BOGUS\r\n");
    BAD_STR(MCWIRE_TEXT, "END\n");
    BAD_STR(MCWIRE_TEXT, "\r\n");
    BAD_STR(MCWIRE_TEXT, "VALUE key:1 0 5\r\nhelloXX");
    BAD_STR(MCWIRE_TEXT, "VALUE key:1 0 5\r\nhello\rX");
    BAD_STR(MCWIRE_TEXT, "VALUE key:1 x 5\r\n");
    BAD_STR(MCWIRE_TEXT, "VALUE key:1 0 -5\r\n");
    BAD_STR(MCWIRE_TEXT, "VALUE key:1 0\r\n");
    BAD_STR(MCWIRE_TEXT, "VALUE key:1 0 5 1 2\r\n");
    BAD_STR(MCWIRE_TEXT, "STORED\r\nMN\r\n");
    BAD_STR(MCWIRE_META, "END\r\n");
    BAD_STR(MCWIRE_META, "VA x\r\n");
    BAD_STR(MCWIRE_META, "VA\r\n");
    BAD_STR(MCWIRE_META, "ENX\r\n");
    static char longline[3000];
    memset(longline, 'a', sizeof(longline));
    expect_bad(MCWIRE_TEXT, longline, sizeof(longline));
    char s[256];
    size_t n = bin_res(s, MCWIRE_BIN_GETK, 0, 1, NULL, 0, "k", "v");
    s[0] = (char)0x80;
    expect_bad(MCWIRE_BINARY, s, n);
    n = bin_res(s, MCWIRE_BIN_GETK, 0, 1, NULL, 0, "k", "v");
    s[11] = 0; /* body 0 < key length 1 */
    expect_bad(MCWIRE_BINARY, s, n);
    n = bin_res(s, MCWIRE_BIN_GETK, 0, 1, NULL, 0, "k", "v");
    s[2] = 0x10; /* key length 4097 */
    expect_bad(MCWIRE_BINARY, s, n);
    n = bin_res(s, 0x42, 0, 1, NULL, 0, NULL, NULL); /* success of a command never sent */
    expect_bad(MCWIRE_BINARY, s, n);
#undef BAD_STR
}

static void test_parse_incomplete(void **state)
{
    (void)state;
    struct mcwire_parser ps;
    struct mcwire_event ev;
    mcwire_parser_init(&ps, MCWIRE_TEXT);
    /* an incomplete line is not consumed */
    assert_int_equal(mcwire_parse(&ps, "VALUE key:1 0 5", 15, &ev), 0);
    assert_int_equal(ev.type, MCWIRE_EV_NONE);
    /* a header and part of the value are, without an event yet */
    assert_int_equal(mcwire_parse(&ps, "VALUE key:1 0 5\r\nhel", 20, &ev), 20);
    assert_int_equal(ev.type, MCWIRE_EV_NONE);
    assert_int_equal(mcwire_parse(&ps, "lo\r", 3, &ev), 3);
    assert_int_equal(ev.type, MCWIRE_EV_NONE);
    assert_int_equal(mcwire_parse(&ps, "\nEND\r\n", 6, &ev), 1);
    assert_int_equal(ev.type, MCWIRE_EV_HIT);
    assert_int_equal(ev.nkey, 5);
    assert_memory_equal(ev.key, "key:1", 5);
    mcwire_parser_init(&ps, MCWIRE_BINARY);
    char s[64];
    size_t n = bin_res(s, MCWIRE_BIN_GETK, 0, 1, "\0\0\0\0", 4, "key:1", "hello");
    assert_int_equal(mcwire_parse(&ps, s, 23, &ev), 0);
    assert_int_equal(mcwire_parse(&ps, s, 30, &ev), 0); /* key incomplete */
    assert_int_equal(mcwire_parse(&ps, s, n - 1, &ev), n - 1);
    assert_int_equal(ev.type, MCWIRE_EV_NONE);
    assert_int_equal(mcwire_parse(&ps, s + n - 1, 1, &ev), 1);
    assert_int_equal(ev.type, MCWIRE_EV_HIT);
}

/* ---- matching ---- */

static struct mcwire_event ev_of(enum mcwire_ev t, const char *key)
{
    struct mcwire_event e;
    memset(&e, 0, sizeof(e));
    e.type = t;
    if (key) {
        e.key = key;
        e.nkey = strlen(key);
    }
    return e;
}

static enum mcwire_match m(enum mcwire_proto p, struct mcwire_expect *x, struct mcwire_event e)
{
    const char *why;
    enum mcwire_match r = mcwire_match(p, &ks, x, &e, &why);
    assert_true((r == MCWIRE_MATCH_UNEXPECTED) == (why != NULL));
    return r;
}

static void test_match_text(void **state)
{
    (void)state;
    uint64_t ids[] = {1, 2, 3};
    struct mcwire_expect x;
    mcwire_expect_init(&x, MCWIRE_GET, ids, 3, 0);
    assert_int_equal(m(MCWIRE_TEXT, &x, ev_of(MCWIRE_EV_HIT, "key:1")), MCWIRE_MATCH_MORE);
    assert_int_equal(m(MCWIRE_TEXT, &x, ev_of(MCWIRE_EV_HIT, "key:3")), MCWIRE_MATCH_MORE);
    assert_int_equal(m(MCWIRE_TEXT, &x, ev_of(MCWIRE_EV_END, NULL)), MCWIRE_MATCH_DONE);
    assert_int_equal(x.hits, 2);
    assert_int_equal(x.misses, 1);
    assert_int_equal(x.errors, 0);

    mcwire_expect_init(&x, MCWIRE_GET, ids, 3, 0);
    assert_int_equal(m(MCWIRE_TEXT, &x, ev_of(MCWIRE_EV_HIT, "key:3")), MCWIRE_MATCH_MORE);
    assert_int_equal(m(MCWIRE_TEXT, &x, ev_of(MCWIRE_EV_HIT, "key:1")), MCWIRE_MATCH_UNEXPECTED);
    mcwire_expect_init(&x, MCWIRE_GET, ids, 3, 0);
    assert_int_equal(m(MCWIRE_TEXT, &x, ev_of(MCWIRE_EV_HIT, "key:9")), MCWIRE_MATCH_UNEXPECTED);
    mcwire_expect_init(&x, MCWIRE_GET, ids, 1, 0);
    assert_int_equal(m(MCWIRE_TEXT, &x, ev_of(MCWIRE_EV_END, NULL)), MCWIRE_MATCH_DONE);
    assert_int_equal(x.misses, 1);
    mcwire_expect_init(&x, MCWIRE_GET, ids, 1, 0);
    assert_int_equal(m(MCWIRE_TEXT, &x, ev_of(MCWIRE_EV_STORED, NULL)), MCWIRE_MATCH_UNEXPECTED);
    mcwire_expect_init(&x, MCWIRE_GET, ids, 1, 0);
    assert_int_equal(m(MCWIRE_TEXT, &x, ev_of(MCWIRE_EV_ERROR, NULL)), MCWIRE_MATCH_DONE);
    assert_int_equal(x.errors, 1);
    assert_int_equal(x.misses, 0);
    mcwire_expect_init(&x, MCWIRE_GET, ids, 1, 0);
    assert_int_equal(m(MCWIRE_TEXT, &x, ev_of(MCWIRE_EV_BAD, NULL)), MCWIRE_MATCH_UNEXPECTED);

    mcwire_expect_init(&x, MCWIRE_SET, ids, 1, 0);
    assert_int_equal(m(MCWIRE_TEXT, &x, ev_of(MCWIRE_EV_STORED, NULL)), MCWIRE_MATCH_DONE);
    assert_int_equal(x.errors, 0);
    mcwire_expect_init(&x, MCWIRE_SET, ids, 1, 0);
    assert_int_equal(m(MCWIRE_TEXT, &x, ev_of(MCWIRE_EV_NOT_STORED, NULL)), MCWIRE_MATCH_DONE);
    assert_int_equal(x.errors, 1);
    mcwire_expect_init(&x, MCWIRE_SET, ids, 1, 0);
    assert_int_equal(m(MCWIRE_TEXT, &x, ev_of(MCWIRE_EV_ERROR, NULL)), MCWIRE_MATCH_DONE);
    assert_int_equal(x.errors, 1);
    mcwire_expect_init(&x, MCWIRE_SET, ids, 1, 0);
    assert_int_equal(m(MCWIRE_TEXT, &x, ev_of(MCWIRE_EV_END, NULL)), MCWIRE_MATCH_UNEXPECTED);
    mcwire_expect_init(&x, MCWIRE_SET, ids, 1, 0);
    assert_int_equal(m(MCWIRE_TEXT, &x, ev_of(MCWIRE_EV_HIT, "key:1")), MCWIRE_MATCH_UNEXPECTED);
}

static void test_match_meta(void **state)
{
    (void)state;
    uint64_t ids[] = {1, 2, 3};
    struct mcwire_expect x;
    mcwire_expect_init(&x, MCWIRE_GET, ids, 1, 0);
    assert_int_equal(m(MCWIRE_META, &x, ev_of(MCWIRE_EV_HIT, NULL)), MCWIRE_MATCH_DONE);
    assert_int_equal(x.hits, 1);
    mcwire_expect_init(&x, MCWIRE_GET, ids, 1, 0);
    assert_int_equal(m(MCWIRE_META, &x, ev_of(MCWIRE_EV_MISS, NULL)), MCWIRE_MATCH_DONE);
    assert_int_equal(x.misses, 1);
    mcwire_expect_init(&x, MCWIRE_GET, ids, 1, 0);
    assert_int_equal(m(MCWIRE_META, &x, ev_of(MCWIRE_EV_END, NULL)), MCWIRE_MATCH_UNEXPECTED);
    mcwire_expect_init(&x, MCWIRE_GET, ids, 1, 0);
    assert_int_equal(m(MCWIRE_META, &x, ev_of(MCWIRE_EV_STORED, NULL)), MCWIRE_MATCH_UNEXPECTED);
    /* quiet multi-get: hits, then MN; misses are silent */
    mcwire_expect_init(&x, MCWIRE_GET, ids, 3, 0);
    assert_int_equal(m(MCWIRE_META, &x, ev_of(MCWIRE_EV_HIT, NULL)), MCWIRE_MATCH_MORE);
    assert_int_equal(m(MCWIRE_META, &x, ev_of(MCWIRE_EV_ERROR, NULL)), MCWIRE_MATCH_MORE);
    assert_int_equal(m(MCWIRE_META, &x, ev_of(MCWIRE_EV_END, NULL)), MCWIRE_MATCH_DONE);
    assert_int_equal(x.hits, 1);
    assert_int_equal(x.errors, 1);
    assert_int_equal(x.misses, 1);
    mcwire_expect_init(&x, MCWIRE_GET, ids, 3, 0);
    assert_int_equal(m(MCWIRE_META, &x, ev_of(MCWIRE_EV_MISS, NULL)), MCWIRE_MATCH_UNEXPECTED);
    mcwire_expect_init(&x, MCWIRE_GET, ids, 2, 0);
    assert_int_equal(m(MCWIRE_META, &x, ev_of(MCWIRE_EV_HIT, NULL)), MCWIRE_MATCH_MORE);
    assert_int_equal(m(MCWIRE_META, &x, ev_of(MCWIRE_EV_HIT, NULL)), MCWIRE_MATCH_MORE);
    assert_int_equal(m(MCWIRE_META, &x, ev_of(MCWIRE_EV_HIT, NULL)), MCWIRE_MATCH_UNEXPECTED);
    mcwire_expect_init(&x, MCWIRE_SET, ids, 1, 0);
    assert_int_equal(m(MCWIRE_META, &x, ev_of(MCWIRE_EV_STORED, NULL)), MCWIRE_MATCH_DONE);
}

static struct mcwire_event bin_ev(enum mcwire_ev t, uint8_t op, uint32_t opaque, const char *key)
{
    struct mcwire_event e = ev_of(t, key);
    e.opcode = op;
    e.has_opaque = true;
    e.opaque = opaque;
    return e;
}

static void test_match_binary(void **state)
{
    (void)state;
    uint64_t ids[] = {1, 2, 3};
    struct mcwire_expect x;
    mcwire_expect_init(&x, MCWIRE_GET, ids, 1, 7);
    assert_int_equal(m(MCWIRE_BINARY, &x, bin_ev(MCWIRE_EV_HIT, MCWIRE_BIN_GETK, 7, "key:1")),
                     MCWIRE_MATCH_DONE);
    mcwire_expect_init(&x, MCWIRE_GET, ids, 1, 7);
    assert_int_equal(m(MCWIRE_BINARY, &x, bin_ev(MCWIRE_EV_HIT, MCWIRE_BIN_GETK, 8, "key:1")),
                     MCWIRE_MATCH_UNEXPECTED);
    mcwire_expect_init(&x, MCWIRE_GET, ids, 1, 7);
    assert_int_equal(m(MCWIRE_BINARY, &x, bin_ev(MCWIRE_EV_HIT, MCWIRE_BIN_GETK, 7, "key:2")),
                     MCWIRE_MATCH_UNEXPECTED);
    mcwire_expect_init(&x, MCWIRE_GET, ids, 1, 7);
    assert_int_equal(m(MCWIRE_BINARY, &x, bin_ev(MCWIRE_EV_MISS, MCWIRE_BIN_GETK, 7, "key:1")),
                     MCWIRE_MATCH_DONE);
    assert_int_equal(x.misses, 1);
    mcwire_expect_init(&x, MCWIRE_GET, ids, 1, 7);
    assert_int_equal(m(MCWIRE_BINARY, &x, bin_ev(MCWIRE_EV_HIT, MCWIRE_BIN_GETKQ, 7, "key:1")),
                     MCWIRE_MATCH_UNEXPECTED);
    mcwire_expect_init(&x, MCWIRE_GET, ids, 3, 9);
    assert_int_equal(m(MCWIRE_BINARY, &x, bin_ev(MCWIRE_EV_HIT, MCWIRE_BIN_GETKQ, 9, "key:2")),
                     MCWIRE_MATCH_MORE);
    assert_int_equal(m(MCWIRE_BINARY, &x, bin_ev(MCWIRE_EV_HIT, MCWIRE_BIN_GETKQ, 9, "key:3")),
                     MCWIRE_MATCH_MORE);
    assert_int_equal(m(MCWIRE_BINARY, &x, bin_ev(MCWIRE_EV_END, MCWIRE_BIN_NOOP, 9, NULL)),
                     MCWIRE_MATCH_DONE);
    assert_int_equal(x.hits, 2);
    assert_int_equal(x.misses, 1);
    mcwire_expect_init(&x, MCWIRE_GET, ids, 3, 9);
    assert_int_equal(m(MCWIRE_BINARY, &x, bin_ev(MCWIRE_EV_MISS, MCWIRE_BIN_GETKQ, 9, "key:1")),
                     MCWIRE_MATCH_UNEXPECTED);
    mcwire_expect_init(&x, MCWIRE_SET, ids, 1, 4);
    assert_int_equal(m(MCWIRE_BINARY, &x, bin_ev(MCWIRE_EV_STORED, MCWIRE_BIN_SET, 4, NULL)),
                     MCWIRE_MATCH_DONE);
    mcwire_expect_init(&x, MCWIRE_SET, ids, 1, 4);
    assert_int_equal(m(MCWIRE_BINARY, &x, bin_ev(MCWIRE_EV_STORED, MCWIRE_BIN_GETK, 4, NULL)),
                     MCWIRE_MATCH_UNEXPECTED);
    mcwire_expect_init(&x, MCWIRE_SET, ids, 1, 4);
    assert_int_equal(m(MCWIRE_BINARY, &x, bin_ev(MCWIRE_EV_END, MCWIRE_BIN_NOOP, 4, NULL)),
                     MCWIRE_MATCH_UNEXPECTED);
    mcwire_expect_init(&x, MCWIRE_SET, ids, 1, 4);
    assert_int_equal(m(MCWIRE_BINARY, &x, bin_ev(MCWIRE_EV_ERROR, MCWIRE_BIN_SET, 4, NULL)),
                     MCWIRE_MATCH_DONE);
    assert_int_equal(x.errors, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compose_text),     cmocka_unit_test(test_compose_meta),
        cmocka_unit_test(test_compose_binary),   cmocka_unit_test(test_compose_size_bounds),
        cmocka_unit_test(test_parse_text),       cmocka_unit_test(test_parse_meta),
        cmocka_unit_test(test_parse_binary),     cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_parse_incomplete), cmocka_unit_test(test_match_text),
        cmocka_unit_test(test_match_meta),       cmocka_unit_test(test_match_binary),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
