/* test_wire.c - cluster protocol codec: frame layout, body round trips,
 * truncation, bit flips, size limits, back-to-back frames and garbage. Inputs
 * to the parsers are copied into heap blocks of their exact size so that the
 * sanitizer build catches any read past them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "common/mem.h"
#include "common/wire.h"

/* ---- Helpers --------------------------------------------------------------- */

/* xorshift64*: the same sequence on every libc, unlike rand(). */
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dull;
}

/* A heap copy of exactly n bytes (at least one allocated). */
static uint8_t *copy_exact(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n > 0 ? n : 1);
    assert_non_null(c);
    if (n > 0)
        memcpy(c, p, n);
    return c;
}

/* wire_parse_frame on an exact-size copy; the frame's body is not usable
 * afterwards (the copy is gone), its header fields are. */
static enum wire_result parse_exact(const uint8_t *p, size_t n, size_t limit, struct wire_frame *f,
                                    size_t *need)
{
    uint8_t *c = copy_exact(p, n);
    enum wire_result r = wire_parse_frame(c, n, limit, f, need);
    free(c);
    return r;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/* The lowest frame flag bit that has no meaning yet (a sender must not
 * set it, a receiver refuses it), whichever bits are defined today. */
static uint16_t undefined_flag(void)
{
    uint16_t bit = 1;
    while ((bit & WIRE_FLAGS_DEFINED) != 0)
        bit = (uint16_t)(bit << 1);
    return bit;
}

/* Recomputes a header's check after a test edited it, the way the spec
 * defines it (independently of wire.c). */
static void reseal_header(uint8_t *h)
{
    put_le32(h + 20, (uint32_t)XXH3_64bits(h, 20));
}

/* ---- Samples ---------------------------------------------------------------- */

static uint8_t big_key[WIRE_REC_KEY_MAX];
static uint8_t big_value[3000];
static char long_msg[WIRE_MSG_MAX];

static int setup_samples(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(big_key); i++)
        big_key[i] = (uint8_t)('a' + i % 26);
    for (size_t i = 0; i < sizeof(big_value); i++)
        big_value[i] = (uint8_t)(i * 7 + 3);
    memset(long_msg, 'm', sizeof(long_msg));
    return 0;
}

static struct wire_record rec_plain(void)
{
    return (struct wire_record){.key = (const uint8_t *)"user:42",
                                .key_len = 7,
                                .value = (const uint8_t *)"hello world",
                                .value_len = 11,
                                .flags = 0xdeadbeef,
                                .expiry = 1700000000,
                                .version = {0x0123456789abcdefull, 7},
                                .tombstone = false};
}

static struct wire_record rec_tomb(void)
{
    return (struct wire_record){.key = (const uint8_t *)"gone",
                                .key_len = 4,
                                .value = NULL,
                                .value_len = 0,
                                .flags = 0,
                                .expiry = 1700000123,
                                .version = {UINT64_MAX, UINT16_MAX},
                                .tombstone = true};
}

static struct wire_record rec_big(void)
{
    return (struct wire_record){.key = big_key,
                                .key_len = sizeof(big_key),
                                .value = big_value,
                                .value_len = sizeof(big_value),
                                .flags = 1,
                                .expiry = 0,
                                .version = {1, 0},
                                .tombstone = false};
}

static struct wire_handshake hs_sample(void)
{
    struct wire_handshake h = {.version = WIRE_VERSION_MAX,
                               .cluster = "prod-eu",
                               .cluster_len = 7,
                               .short_id = 0x1234,
                               .generation = 0x0011223344556677ull,
                               .addr = "10.0.0.5:7311",
                               .addr_len = 13};
    for (int i = 0; i < WIRE_NODE_ID_LEN; i++)
        h.node_id[i] = (uint8_t)(0xa0 + i);
    return h;
}

static struct wire_handshake_reply hs_accept(void)
{
    struct wire_handshake_reply h = {.accept = true, .version = 1, .short_id = 9, .generation = 77};
    for (int i = 0; i < WIRE_NODE_ID_LEN; i++)
        h.node_id[i] = (uint8_t)(0x10 + i);
    return h;
}

static struct wire_handshake_reply hs_refuse(void)
{
    return (struct wire_handshake_reply){.accept = false,
                                         .reason = WIRE_REFUSE_CLUSTER,
                                         .msg = "cluster name prod-eu != prod-us",
                                         .msg_len = 31};
}

static void c_handshake(struct wire_buf *b)
{
    struct wire_handshake h = hs_sample();
    wire_compose_handshake(b, &h);
}

static void c_accept(struct wire_buf *b)
{
    struct wire_handshake_reply h = hs_accept();
    wire_compose_handshake_reply(b, &h);
}

static void c_refuse(struct wire_buf *b)
{
    struct wire_handshake_reply h = hs_refuse();
    wire_compose_handshake_reply(b, &h);
}

static void c_refuse_empty(struct wire_buf *b)
{
    struct wire_handshake_reply h = {.accept = false, .reason = WIRE_REFUSE_SHUTDOWN};
    wire_compose_handshake_reply(b, &h);
}

static void c_ping(struct wire_buf *b)
{
    wire_compose_ping(b, 0x1122334455667788ull);
}

static void c_error(struct wire_buf *b)
{
    struct wire_error e = {.code = WIRE_ERR_NOT_PRIMARY, .msg = "not primary", .msg_len = 11};
    wire_compose_error(b, &e);
}

static void c_error_long(struct wire_buf *b)
{
    struct wire_error e = {.code = WIRE_ERR_INTERNAL, .msg = long_msg, .msg_len = WIRE_MSG_MAX};
    wire_compose_error(b, &e);
}

static void c_read(struct wire_buf *b)
{
    wire_compose_read(b, (const uint8_t *)"user:42", 7);
}

static void c_read_found(struct wire_buf *b)
{
    struct wire_record r = rec_plain();
    wire_compose_read_reply(b, &r);
}

static void c_read_tomb(struct wire_buf *b)
{
    struct wire_record r = rec_tomb();
    wire_compose_read_reply(b, &r);
}

static void c_read_big(struct wire_buf *b)
{
    struct wire_record r = rec_big();
    wire_compose_read_reply(b, &r);
}

static void c_read_miss(struct wire_buf *b)
{
    wire_compose_read_reply(b, NULL);
}

static void c_digest_found(struct wire_buf *b)
{
    struct wire_record r = rec_plain();
    wire_compose_digest_reply(b, &r);
}

static void c_digest_miss(struct wire_buf *b)
{
    wire_compose_digest_reply(b, NULL);
}

static void c_write(struct wire_buf *b)
{
    struct wire_record recs[3] = {rec_plain(), rec_tomb(), rec_big()};
    wire_compose_write(b, recs, 3);
}

static struct wire_rmw rmw_add(void)
{
    return (struct wire_rmw){.op = WIRE_RMW_ADD,
                             .read_cl = WIRE_CL_QUORUM,
                             .write_cl = WIRE_CL_QUORUM,
                             .rflags = WIRE_RMW_RETURN,
                             .key = (const uint8_t *)"user:42",
                             .key_len = 7,
                             .value = (const uint8_t *)"hello world",
                             .value_len = 11,
                             .flags = 0xdeadbeef,
                             .expiry = 1700000000,
                             .cas_in = 0};
}

static struct wire_rmw rmw_incr(void)
{
    return (struct wire_rmw){.op = WIRE_RMW_INCR,
                             .read_cl = WIRE_CL_ONE,
                             .write_cl = WIRE_CL_ANY,
                             .rflags = WIRE_RMW_FLAGS_DEFINED,
                             .key = big_key,
                             .key_len = sizeof(big_key),
                             .expiry = 1700000001,
                             .expiry2 = 1700000002,
                             .cas_in = 0x0123456789abcdefull,
                             .delta = UINT64_MAX,
                             .initial = 42};
}

static struct wire_rmw rmw_delete(void)
{
    return (struct wire_rmw){.op = WIRE_RMW_DELETE,
                             .read_cl = WIRE_CL_ALL,
                             .write_cl = WIRE_CL_ALL,
                             .key = (const uint8_t *)"k",
                             .key_len = 1};
}

static struct wire_rmw_reply rmw_reply_rec(void)
{
    return (struct wire_rmw_reply){.result = WIRE_RMW_STORED,
                                   .cas = 0x1122334455667788ull,
                                   .number = 43,
                                   .old_expiry = 1700000000,
                                   .created = true,
                                   .has_record = true,
                                   .rec = rec_plain()};
}

static struct wire_rmw_reply rmw_reply_plain(void)
{
    return (struct wire_rmw_reply){.result = WIRE_RMW_NOT_FOUND, .old_expiry = UINT64_MAX};
}

static void c_rmw_add(struct wire_buf *b)
{
    struct wire_rmw q = rmw_add();
    wire_compose_rmw(b, &q);
}

static void c_rmw_incr(struct wire_buf *b)
{
    struct wire_rmw q = rmw_incr();
    wire_compose_rmw(b, &q);
}

static void c_rmw_delete(struct wire_buf *b)
{
    struct wire_rmw q = rmw_delete();
    wire_compose_rmw(b, &q);
}

static void c_rmw_reply_rec(struct wire_buf *b)
{
    struct wire_rmw_reply r = rmw_reply_rec();
    wire_compose_rmw_reply(b, &r);
}

static void c_rmw_reply_plain(struct wire_buf *b)
{
    struct wire_rmw_reply r = rmw_reply_plain();
    wire_compose_rmw_reply(b, &r);
}

/* Anti-entropy samples: a session's first request (the root of a wrapping
 * range), a descent round, their answers, and range reads and pages. */
static const uint64_t merkle_nodes[] = {0, 3, 17, 31}; /* of level 5 */

static struct wire_merkle_req merkle_root(void)
{
    return (struct wire_merkle_req){.session = 0x5e5510a0b1c2d3e4ull,
                                    .range_start = UINT64_MAX - 99,
                                    .range_end = 100,
                                    .depth = 15,
                                    .as_of = 1700000000,
                                    .gc_grace = 864000,
                                    .level = 0,
                                    .step = 0,
                                    .n = 1};
}

static struct wire_merkle_req merkle_descend(void)
{
    struct wire_merkle_req q = merkle_root();
    q.range_start = 1000;
    q.range_end = 2000;
    q.level = 5;
    q.step = 5;
    q.n = sizeof(merkle_nodes) / sizeof(merkle_nodes[0]);
    return q;
}

/* The i-th hash of the sample replies. */
static uint64_t sample_hash(size_t i)
{
    return (uint64_t)(i + 1) * 0x9e3779b97f4a7c15ull;
}

static void c_merkle_root(struct wire_buf *b)
{
    struct wire_merkle_req q = merkle_root();
    static const uint64_t root[] = {0};
    wire_compose_merkle_req(b, &q, root);
}

static void c_merkle_descend(struct wire_buf *b)
{
    struct wire_merkle_req q = merkle_descend();
    wire_compose_merkle_req(b, &q, merkle_nodes);
}

static void c_merkle_reply_root(struct wire_buf *b)
{
    uint64_t h = sample_hash(0);
    wire_compose_merkle_reply(b, &h, 1, 3);
}

static void c_merkle_reply(struct wire_buf *b)
{
    uint64_t h[32];
    for (size_t i = 0; i < 32; i++)
        h[i] = sample_hash(i);
    wire_compose_merkle_reply(b, h, 32, 123456789);
}

static struct wire_range_req range_first(void)
{
    return (struct wire_range_req){.range_start = 0,
                                   .range_end = 0, /* the whole ring */
                                   .after = NULL,
                                   .after_len = 0,
                                   .max_records = 1024,
                                   .max_bytes = 1u << 20};
}

static struct wire_range_req range_next(void)
{
    return (struct wire_range_req){.range_start = UINT64_MAX - 7,
                                   .range_end = 7,
                                   .after = big_key,
                                   .after_len = sizeof(big_key),
                                   .max_records = 1,
                                   .max_bytes = 0};
}

static void c_range_first(struct wire_buf *b)
{
    struct wire_range_req q = range_first();
    wire_compose_range_req(b, &q);
}

static void c_range_next(struct wire_buf *b)
{
    struct wire_range_req q = range_next();
    wire_compose_range_req(b, &q);
}

static void c_range_page(struct wire_buf *b)
{
    struct wire_record recs[3] = {rec_plain(), rec_tomb(), rec_big()};
    wire_compose_range_reply(b, true, recs, 3);
}

static void c_range_last(struct wire_buf *b)
{
    wire_compose_range_reply(b, false, NULL, 0);
}

static void c_empty(struct wire_buf *b)
{
    (void)b;
}

/* Which parser a body belongs to. */
enum parser {
    P_HANDSHAKE,
    P_HS_REPLY,
    P_PING,
    P_ERROR,
    P_READ,
    P_READ_REPLY,
    P_DIGEST_REPLY,
    P_WRITE,
    P_RMW,
    P_RMW_REPLY,
    P_MERKLE_REQ,
    P_MERKLE_REPLY,
    P_RANGE_REQ,
    P_RANGE_REPLY,
    P_EMPTY, /* WRITE response: no body */
    P_COUNT
};

struct sample {
    const char *name;
    uint8_t op;
    uint16_t flags;
    enum parser parser;
    void (*compose)(struct wire_buf *b);
};

#define R WIRE_FLAG_RESPONSE
#define D WIRE_FLAG_DIGEST
static const struct sample samples[] = {
    {"handshake", WIRE_OP_HANDSHAKE, 0, P_HANDSHAKE, c_handshake},
    {"accept", WIRE_OP_HANDSHAKE, R, P_HS_REPLY, c_accept},
    {"refuse", WIRE_OP_HANDSHAKE, R, P_HS_REPLY, c_refuse},
    {"refuse-empty", WIRE_OP_HANDSHAKE, R, P_HS_REPLY, c_refuse_empty},
    {"ping", WIRE_OP_PING, 0, P_PING, c_ping},
    {"pong", WIRE_OP_PING, R, P_PING, c_ping},
    {"error", WIRE_OP_ERROR, R, P_ERROR, c_error},
    {"error-long", WIRE_OP_ERROR, R, P_ERROR, c_error_long},
    {"read", WIRE_OP_READ, 0, P_READ, c_read},
    {"read-digest", WIRE_OP_READ, D, P_READ, c_read},
    {"read-found", WIRE_OP_READ, R, P_READ_REPLY, c_read_found},
    {"read-tomb", WIRE_OP_READ, R, P_READ_REPLY, c_read_tomb},
    {"read-big", WIRE_OP_READ, R, P_READ_REPLY, c_read_big},
    {"read-miss", WIRE_OP_READ, R, P_READ_REPLY, c_read_miss},
    {"digest-found", WIRE_OP_READ, R | D, P_DIGEST_REPLY, c_digest_found},
    {"digest-miss", WIRE_OP_READ, R | D, P_DIGEST_REPLY, c_digest_miss},
    {"write", WIRE_OP_WRITE, 0, P_WRITE, c_write},
    {"write-ack", WIRE_OP_WRITE, R, P_EMPTY, c_empty},
    {"rmw-add", WIRE_OP_RMW, 0, P_RMW, c_rmw_add},
    {"rmw-incr", WIRE_OP_RMW, 0, P_RMW, c_rmw_incr},
    {"rmw-delete", WIRE_OP_RMW, 0, P_RMW, c_rmw_delete},
    {"rmw-reply-rec", WIRE_OP_RMW, R, P_RMW_REPLY, c_rmw_reply_rec},
    {"rmw-reply-plain", WIRE_OP_RMW, R, P_RMW_REPLY, c_rmw_reply_plain},
    {"merkle-root", WIRE_OP_MERKLE_TREE, 0, P_MERKLE_REQ, c_merkle_root},
    {"merkle-descend", WIRE_OP_MERKLE_TREE, 0, P_MERKLE_REQ, c_merkle_descend},
    {"merkle-reply-root", WIRE_OP_MERKLE_TREE, R, P_MERKLE_REPLY, c_merkle_reply_root},
    {"merkle-reply", WIRE_OP_MERKLE_TREE, R, P_MERKLE_REPLY, c_merkle_reply},
    {"range-first", WIRE_OP_RANGE_READ, 0, P_RANGE_REQ, c_range_first},
    {"range-next", WIRE_OP_RANGE_READ, 0, P_RANGE_REQ, c_range_next},
    {"range-page", WIRE_OP_RANGE_READ, R, P_RANGE_REPLY, c_range_page},
    {"range-last", WIRE_OP_RANGE_READ, R, P_RANGE_REPLY, c_range_last},
};
#undef R
#undef D
#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

/* Parses a body with the parser of its kind. A WRITE that parses is also
 * walked record by record, as its contract promises that works. */
static enum wire_result parse_as(enum parser p, const uint8_t *body, size_t len)
{
    switch (p) {
    case P_HANDSHAKE: {
        struct wire_handshake h;
        return wire_parse_handshake(body, len, &h);
    }
    case P_HS_REPLY: {
        struct wire_handshake_reply h;
        return wire_parse_handshake_reply(body, len, &h);
    }
    case P_PING: {
        uint64_t hlc;
        return wire_parse_ping(body, len, &hlc);
    }
    case P_ERROR: {
        struct wire_error e;
        return wire_parse_error(body, len, &e);
    }
    case P_READ: {
        const uint8_t *key;
        size_t key_len;
        return wire_parse_read(body, len, &key, &key_len);
    }
    case P_READ_REPLY: {
        bool found;
        struct wire_record rec;
        return wire_parse_read_reply(body, len, &found, &rec);
    }
    case P_DIGEST_REPLY: {
        struct wire_digest d;
        return wire_parse_digest_reply(body, len, &d);
    }
    case P_WRITE: {
        struct wire_reader r;
        size_t n = 0;
        enum wire_result res = wire_parse_write(body, len, &r, &n);
        if (res == WIRE_OK) {
            assert_true(n >= 1);
            for (size_t i = 0; i < n; i++) {
                struct wire_record rec;
                wire_get_record(&r, &rec);
                assert_false(r.bad);
            }
            assert_true(wire_reader_done(&r));
        }
        return res;
    }
    case P_RMW: {
        struct wire_rmw q;
        return wire_parse_rmw(body, len, &q);
    }
    case P_RMW_REPLY: {
        struct wire_rmw_reply r;
        return wire_parse_rmw_reply(body, len, &r);
    }
    case P_MERKLE_REQ: {
        /* what parses keeps every rule the contract states */
        struct wire_merkle_req q;
        enum wire_result res = wire_parse_merkle_req(body, len, &q);
        if (res == WIRE_OK) {
            assert_true(q.depth >= 1 && q.depth <= WIRE_MERKLE_DEPTH_MAX);
            assert_true(q.level + q.step <= q.depth);
            assert_true(q.n >= 1 && (q.n << q.step) <= WIRE_MERKLE_HASHES_MAX);
            for (size_t i = 0; i < q.n; i++)
                assert_true(wire_u64_at(q.nodes, i) < ((uint64_t)1 << q.level));
        }
        return res;
    }
    case P_MERKLE_REPLY: {
        const uint8_t *hashes;
        size_t n;
        uint64_t records;
        enum wire_result res = wire_parse_merkle_reply(body, len, &hashes, &n, &records);
        if (res == WIRE_OK) {
            assert_true(n <= WIRE_MERKLE_HASHES_MAX);
            for (size_t i = 0; i < n; i++)
                (void)wire_u64_at(hashes, i); /* inside the body: ASan */
        }
        return res;
    }
    case P_RANGE_REQ: {
        struct wire_range_req q;
        enum wire_result res = wire_parse_range_req(body, len, &q);
        if (res == WIRE_OK)
            assert_true(q.after_len <= WIRE_REC_KEY_MAX && q.max_records >= 1);
        return res;
    }
    case P_RANGE_REPLY: {
        struct wire_reader r;
        bool more = false;
        size_t n = 0;
        enum wire_result res = wire_parse_range_reply(body, len, &more, &r, &n);
        if (res == WIRE_OK) {
            for (size_t i = 0; i < n; i++) {
                struct wire_record rec;
                wire_get_record(&r, &rec);
                assert_false(r.bad);
            }
            assert_true(wire_reader_done(&r));
        }
        return res;
    }
    case P_EMPTY: return len == 0 ? WIRE_OK : WIRE_MALFORMED;
    case P_COUNT: break;
    }
    fail_msg("bad parser %d", (int)p);
    return WIRE_MALFORMED;
}

/* Composes sample s as one frame at the end of b; returns its offset. */
static size_t compose_sample(struct wire_buf *b, const struct sample *s, uint64_t id)
{
    size_t mark = wire_begin_frame(b, s->op, s->flags, id);
    s->compose(b);
    assert_int_equal(wire_end_frame(b, mark, WIRE_FRAME_MAX_DEFAULT), ST_OK);
    return mark;
}

/* Only the body of sample s, in a fresh buffer (caller deinits). */
static void compose_body(struct wire_buf *b, const struct sample *s)
{
    wire_buf_init(b);
    s->compose(b);
    assert_int_equal(b->err, ST_OK);
}

static void assert_record_equal(const struct wire_record *a, const struct wire_record *b)
{
    assert_int_equal(a->key_len, b->key_len);
    assert_memory_equal(a->key, b->key, a->key_len);
    assert_int_equal(a->value_len, b->value_len);
    if (a->value_len > 0)
        assert_memory_equal(a->value, b->value, a->value_len);
    assert_int_equal(a->flags, b->flags);
    assert_int_equal(a->expiry, b->expiry);
    assert_int_equal(a->version.hlc, b->version.hlc);
    assert_int_equal(a->version.node, b->version.node);
    assert_int_equal(a->tombstone, b->tombstone);
}

/* ---- Frame layout --------------------------------------------------------- */

/* Pins the header to the spec's table, byte by byte. */
static void test_header_golden(void **state)
{
    (void)state;
    struct wire_buf b;
    wire_buf_init(&b);
    size_t m = wire_begin_frame(&b, WIRE_OP_PING, WIRE_FLAG_RESPONSE, 0x0102030405060708ull);
    wire_compose_ping(&b, 0x1122334455667788ull);
    assert_int_equal(wire_end_frame(&b, m, WIRE_FRAME_MAX_DEFAULT), ST_OK);
    assert_int_equal(b.len, WIRE_HEADER_LEN + 8);

    const uint8_t want[20] = {'S', 'T', 'R', 'C', 1, 0x02, 0x01, 0x00, 8, 7,
                              6,   5,   4,   3,   2, 1,    8,    0,    0, 0};
    assert_memory_equal(b.data, want, sizeof(want));
    assert_int_equal(get_le32(b.data + 20), (uint32_t)XXH3_64bits(b.data, 20));
    const uint8_t body[8] = {0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11};
    assert_memory_equal(b.data + 32, body, 8);
    assert_int_equal(get_le64(b.data + 24), XXH3_64bits(body, 8));

    struct wire_frame f;
    size_t need = 0;
    assert_int_equal(wire_parse_frame(b.data, b.len, WIRE_FRAME_MAX_DEFAULT, &f, &need), WIRE_OK);
    assert_int_equal(f.version, 1);
    assert_int_equal(f.opcode, WIRE_OP_PING);
    assert_int_equal(f.flags, WIRE_FLAG_RESPONSE);
    assert_int_equal(f.id, 0x0102030405060708ull);
    assert_int_equal(f.body_len, 8);
    assert_ptr_equal(f.body, b.data + 32);
    assert_int_equal(f.size, 40);
    wire_buf_deinit(&b);
}

/* The numbers in the spec's opcode table, flags and codes: renumbering any
 * breaks mixed-version clusters, so it must break this test first. */
static void test_numbers_and_names(void **state)
{
    (void)state;
    static const struct {
        uint8_t op;
        const char *name;
    } ops[] = {
        {0x01, "HANDSHAKE"},  {0x02, "PING"},        {0x03, "ERROR"},       {0x10, "GOSSIP_SYN"},
        {0x11, "GOSSIP_ACK"}, {0x12, "GOSSIP_ACK2"}, {0x20, "READ"},        {0x21, "WRITE"},
        {0x22, "RMW"},        {0x30, "MERKLE_TREE"}, {0x31, "RANGE_READ"},  {0x32, "HINT_REPLAY"},
        {0x04, "RING"},       {0x23, "COORD_READ"},  {0x24, "COORD_WRITE"},
    };
    unsigned named = 0;
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        assert_non_null(wire_opcode_name(ops[i].op));
        assert_string_equal(wire_opcode_name(ops[i].op), ops[i].name);
    }
    for (unsigned op = 0; op < 256; op++)
        named += wire_opcode_name((uint8_t)op) != NULL;
    assert_int_equal(named, sizeof(ops) / sizeof(ops[0]));
    assert_int_equal(WIRE_FLAG_RESPONSE, 1);
    assert_int_equal(WIRE_FLAG_DIGEST, 2);
    assert_int_equal(WIRE_FLAG_FRESH, 4);
    assert_int_equal(WIRE_FLAGS_DEFINED, 7);
    assert_int_equal(WIRE_ERR_UNKNOWN_OPCODE, 1);
    assert_int_equal(WIRE_ERR_INTERNAL, 9);
    assert_int_equal(WIRE_ERR_CLOCK, 10);
    assert_int_equal(WIRE_REFUSE_CLUSTER, 1);
    assert_int_equal(WIRE_REFUSE_SHUTDOWN, 7);
    for (int r = WIRE_OK; r <= WIRE_MALFORMED; r++)
        assert_non_null(wire_result_name((enum wire_result)r));
}

/* ---- Body fields -------------------------------------------------------- */

static const uint64_t varints[] = {0,          1,
                                   127,        128,
                                   255,        16383,
                                   16384,      (1ull << 32) - 1,
                                   1ull << 32, (1ull << 63) - 1,
                                   1ull << 63, UINT64_MAX - 1,
                                   UINT64_MAX};
static const size_t varint_sizes[] = {1, 1, 1, 2, 2, 2, 3, 5, 5, 9, 10, 10, 10};

static void put_all_fields(struct wire_buf *b)
{
    wire_put_u8(b, 0xab);
    wire_put_u16(b, 0xbeef);
    wire_put_u32(b, 0xcafef00d);
    wire_put_u64(b, 0x0123456789abcdefull);
    for (size_t i = 0; i < sizeof(varints) / sizeof(varints[0]); i++)
        wire_put_varint(b, varints[i]);
    wire_put_raw(b, "0123456789abcdef", 16);
    wire_put_bytes(b, "abc", 3);
    wire_put_bytes(b, NULL, 0);
}

/* Reads back what put_all_fields wrote; returns false once the reader went
 * bad (all later values must then be 0 / NULL). */
static bool get_all_fields(struct wire_reader *r, bool check)
{
    uint8_t u8 = wire_get_u8(r);
    uint16_t u16 = wire_get_u16(r);
    uint32_t u32 = wire_get_u32(r);
    uint64_t u64 = wire_get_u64(r);
    if (check) {
        assert_int_equal(u8, 0xab);
        assert_int_equal(u16, 0xbeef);
        assert_int_equal(u32, 0xcafef00d);
        assert_int_equal(u64, 0x0123456789abcdefull);
    }
    for (size_t i = 0; i < sizeof(varints) / sizeof(varints[0]); i++) {
        uint64_t v = wire_get_varint(r);
        if (check)
            assert_int_equal(v, varints[i]);
        else if (r->bad)
            assert_int_equal(v, 0);
    }
    const uint8_t *raw = wire_get_raw(r, 16);
    size_t n1 = 99, n2 = 99;
    const uint8_t *s1 = wire_get_bytes(r, 3, &n1);
    const uint8_t *s2 = wire_get_bytes(r, 0, &n2);
    if (check) {
        assert_non_null(raw);
        assert_memory_equal(raw, "0123456789abcdef", 16);
        assert_int_equal(n1, 3);
        assert_memory_equal(s1, "abc", 3);
        assert_non_null(s2);
        assert_int_equal(n2, 0);
    }
    if (r->bad) {
        assert_null(s2);
        assert_int_equal(n2, 0);
        assert_int_equal(wire_get_u64(r), 0);
        assert_null(wire_get_raw(r, 0));
    }
    return !r->bad;
}

static void test_fields_round_trip(void **state)
{
    (void)state;
    struct wire_buf b;
    wire_buf_init(&b);
    for (size_t i = 0; i < sizeof(varints) / sizeof(varints[0]); i++) {
        size_t before = b.len;
        wire_put_varint(&b, varints[i]);
        assert_int_equal(b.len - before, varint_sizes[i]);
    }
    wire_buf_clear(&b);
    put_all_fields(&b);
    assert_int_equal(b.err, ST_OK);

    uint8_t *c = copy_exact(b.data, b.len);
    struct wire_reader r;
    wire_reader_init(&r, c, b.len);
    assert_true(get_all_fields(&r, true));
    assert_true(wire_reader_done(&r));
    /* one byte more than there is */
    assert_int_equal(wire_get_u8(&r), 0);
    assert_true(r.bad);
    assert_false(wire_reader_done(&r));
    free(c);
    wire_buf_deinit(&b);
}

/* Every prefix of the field sequence: the reader goes bad, returns zeros,
 * never reads past the prefix (exact-size copies under ASan). */
static void test_reader_bounds(void **state)
{
    (void)state;
    struct wire_buf b;
    wire_buf_init(&b);
    put_all_fields(&b);
    for (size_t k = 0; k < b.len; k++) {
        uint8_t *c = copy_exact(b.data, k);
        struct wire_reader r;
        wire_reader_init(&r, c, k);
        assert_false(get_all_fields(&r, false));
        assert_false(wire_reader_done(&r));
        free(c);
    }
    /* a NULL, empty body */
    struct wire_reader r;
    wire_reader_init(&r, NULL, 0);
    assert_int_equal(wire_get_varint(&r), 0);
    assert_true(r.bad);
    wire_buf_deinit(&b);
}

static void test_varint_and_bytes_rules(void **state)
{
    (void)state;
    static const struct {
        uint8_t bytes[12];
        size_t n;
        bool ok;
        uint64_t v;
    } cases[] = {
        {{0x00}, 1, true, 0},
        {{0x7f}, 1, true, 127},
        {{0x80, 0x01}, 2, true, 128},
        {{0x80}, 1, false, 0},             /* ends inside */
        {{0x80, 0x00}, 2, false, 0},       /* longer form of 0 */
        {{0xff, 0x80, 0x00}, 3, false, 0}, /* longer form of 127 */
        {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 10, true, UINT64_MAX},
        {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, 10, false, 0}, /* 65 bits */
        {{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, 11, false, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t *c = copy_exact(cases[i].bytes, cases[i].n);
        struct wire_reader r;
        wire_reader_init(&r, c, cases[i].n);
        uint64_t v = wire_get_varint(&r);
        if (r.bad == cases[i].ok)
            fail_msg("varint case %zu", i);
        assert_int_equal(v, cases[i].v);
        if (cases[i].ok)
            assert_true(wire_reader_done(&r));
        free(c);
    }

    /* byte strings: over max, over what is left, a 64-bit length */
    static const uint8_t over_max[] = {4, 'a', 'b', 'c', 'd'};
    static const uint8_t over_left[] = {5, 'a', 'b', 'c', 'd'};
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    struct wire_reader r;
    size_t n = 99;
    wire_reader_init(&r, over_max, sizeof(over_max));
    assert_null(wire_get_bytes(&r, 3, &n));
    assert_int_equal(n, 0);
    assert_true(r.bad);
    wire_reader_init(&r, over_max, sizeof(over_max));
    assert_non_null(wire_get_bytes(&r, 4, &n));
    assert_true(wire_reader_done(&r));
    wire_reader_init(&r, over_left, sizeof(over_left));
    assert_null(wire_get_bytes(&r, SIZE_MAX, &n));
    assert_true(r.bad);
    wire_reader_init(&r, huge, sizeof(huge));
    assert_null(wire_get_bytes(&r, SIZE_MAX, &n));
    assert_true(r.bad);
}

/* ---- Bodies ------------------------------------------------------------- */

/* Composes a body in a frame, parses the frame back, returns the body view
 * (valid until b is deinit'ed). */
static const uint8_t *frame_body(struct wire_buf *b, const struct sample *s, uint32_t *len)
{
    wire_buf_init(b);
    compose_sample(b, s, 42);
    struct wire_frame f;
    size_t need;
    assert_int_equal(wire_parse_frame(b->data, b->len, WIRE_FRAME_MAX_DEFAULT, &f, &need), WIRE_OK);
    assert_int_equal(f.opcode, s->op);
    assert_int_equal(f.flags, s->flags);
    assert_int_equal(f.id, 42);
    assert_int_equal(f.size, b->len);
    *len = f.body_len;
    return f.body;
}

static const struct sample *sample_named(const char *name)
{
    for (size_t i = 0; i < NSAMPLES; i++)
        if (strcmp(samples[i].name, name) == 0)
            return &samples[i];
    fail_msg("no sample %s", name);
    return NULL;
}

/* Composing a parsed body again gives the same bytes: one encoding. */
static void assert_recomposes(const uint8_t *body, uint32_t len, struct wire_buf *again)
{
    assert_int_equal(again->err, ST_OK);
    assert_int_equal(again->len, len);
    assert_memory_equal(again->data, body, len);
    wire_buf_deinit(again);
}

static void test_handshake_round_trip(void **state)
{
    (void)state;
    struct wire_buf b, again;
    uint32_t len;
    const uint8_t *body = frame_body(&b, sample_named("handshake"), &len);
    struct wire_handshake want = hs_sample(), got;
    assert_int_equal(wire_parse_handshake(body, len, &got), WIRE_OK);
    assert_int_equal(got.version, want.version);
    assert_int_equal(got.cluster_len, want.cluster_len);
    assert_memory_equal(got.cluster, want.cluster, want.cluster_len);
    assert_memory_equal(got.node_id, want.node_id, WIRE_NODE_ID_LEN);
    assert_int_equal(got.short_id, want.short_id);
    assert_int_equal(got.generation, want.generation);
    assert_int_equal(got.addr_len, want.addr_len);
    assert_memory_equal(got.addr, want.addr, want.addr_len);
    wire_buf_init(&again);
    wire_compose_handshake(&again, &got);
    assert_recomposes(body, len, &again);
    wire_buf_deinit(&b);

    /* accept */
    body = frame_body(&b, sample_named("accept"), &len);
    struct wire_handshake_reply wa = hs_accept(), ga;
    assert_int_equal(wire_parse_handshake_reply(body, len, &ga), WIRE_OK);
    assert_true(ga.accept);
    assert_int_equal(ga.version, wa.version);
    assert_memory_equal(ga.node_id, wa.node_id, WIRE_NODE_ID_LEN);
    assert_int_equal(ga.short_id, wa.short_id);
    assert_int_equal(ga.generation, wa.generation);
    wire_buf_init(&again);
    wire_compose_handshake_reply(&again, &ga);
    assert_recomposes(body, len, &again);
    wire_buf_deinit(&b);

    /* refuse */
    body = frame_body(&b, sample_named("refuse"), &len);
    struct wire_handshake_reply wr = hs_refuse(), gr;
    assert_int_equal(wire_parse_handshake_reply(body, len, &gr), WIRE_OK);
    assert_false(gr.accept);
    assert_int_equal(gr.reason, wr.reason);
    assert_int_equal(gr.msg_len, wr.msg_len);
    assert_memory_equal(gr.msg, wr.msg, wr.msg_len);
    wire_buf_init(&again);
    wire_compose_handshake_reply(&again, &gr);
    assert_recomposes(body, len, &again);
    wire_buf_deinit(&b);
}

static void test_ping_error_round_trip(void **state)
{
    (void)state;
    struct wire_buf b, again;
    uint32_t len;
    const uint8_t *body = frame_body(&b, sample_named("ping"), &len);
    uint64_t hlc = 0;
    assert_int_equal(wire_parse_ping(body, len, &hlc), WIRE_OK);
    assert_int_equal(hlc, 0x1122334455667788ull);
    wire_buf_deinit(&b);

    body = frame_body(&b, sample_named("error"), &len);
    struct wire_error e;
    assert_int_equal(wire_parse_error(body, len, &e), WIRE_OK);
    assert_int_equal(e.code, WIRE_ERR_NOT_PRIMARY);
    assert_int_equal(e.msg_len, 11);
    assert_memory_equal(e.msg, "not primary", 11);
    wire_buf_init(&again);
    wire_compose_error(&again, &e);
    assert_recomposes(body, len, &again);
    wire_buf_deinit(&b);

    body = frame_body(&b, sample_named("error-long"), &len);
    assert_int_equal(wire_parse_error(body, len, &e), WIRE_OK);
    assert_int_equal(e.msg_len, WIRE_MSG_MAX);
    wire_buf_deinit(&b);
}

static void test_read_write_round_trip(void **state)
{
    (void)state;
    struct wire_buf b, again;
    uint32_t len;

    const uint8_t *body = frame_body(&b, sample_named("read-digest"), &len);
    const uint8_t *key;
    size_t key_len;
    assert_int_equal(wire_parse_read(body, len, &key, &key_len), WIRE_OK);
    assert_int_equal(key_len, 7);
    assert_memory_equal(key, "user:42", 7);
    wire_buf_deinit(&b);

    static const struct {
        const char *sample;
        struct wire_record (*rec)(void);
    } replies[] = {{"read-found", rec_plain}, {"read-tomb", rec_tomb}, {"read-big", rec_big}};
    for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
        body = frame_body(&b, sample_named(replies[i].sample), &len);
        struct wire_record want = replies[i].rec(), got;
        bool found = false;
        assert_int_equal(wire_parse_read_reply(body, len, &found, &got), WIRE_OK);
        assert_true(found);
        assert_record_equal(&got, &want);
        wire_buf_init(&again);
        wire_compose_read_reply(&again, &got);
        assert_recomposes(body, len, &again);
        wire_buf_deinit(&b);
    }

    body = frame_body(&b, sample_named("read-miss"), &len);
    bool found = true;
    struct wire_record unused;
    assert_int_equal(wire_parse_read_reply(body, len, &found, &unused), WIRE_OK);
    assert_false(found);
    assert_int_equal(len, 1);
    wire_buf_deinit(&b);

    body = frame_body(&b, sample_named("digest-found"), &len);
    struct wire_digest d;
    struct wire_record plain = rec_plain();
    assert_int_equal(wire_parse_digest_reply(body, len, &d), WIRE_OK);
    assert_true(d.found);
    assert_int_equal(d.version.hlc, plain.version.hlc);
    assert_int_equal(d.version.node, plain.version.node);
    assert_int_equal(d.digest, wire_record_digest(&plain));
    wire_buf_deinit(&b);

    body = frame_body(&b, sample_named("digest-miss"), &len);
    assert_int_equal(wire_parse_digest_reply(body, len, &d), WIRE_OK);
    assert_false(d.found);
    wire_buf_deinit(&b);

    body = frame_body(&b, sample_named("write"), &len);
    struct wire_record want[3] = {rec_plain(), rec_tomb(), rec_big()}, got[3];
    struct wire_reader r;
    size_t n = 0;
    assert_int_equal(wire_parse_write(body, len, &r, &n), WIRE_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        wire_get_record(&r, &got[i]);
        assert_false(r.bad);
        assert_record_equal(&got[i], &want[i]);
    }
    assert_true(wire_reader_done(&r));
    wire_buf_init(&again);
    wire_compose_write(&again, got, 3);
    assert_recomposes(body, len, &again);
    wire_buf_deinit(&b);
}

/* The digest is what the spec says, and every field changes it. */
static void test_record_digest(void **state)
{
    (void)state;
    struct wire_record rec = rec_plain();
    struct wire_buf b;
    wire_buf_init(&b);
    wire_put_record(&b, &rec);
    size_t prefix = b.len - rec.value_len;
    uint64_t want = XXH3_64bits_withSeed(rec.value, rec.value_len, XXH3_64bits(b.data, prefix));
    assert_int_equal(wire_record_digest(&rec), want);
    wire_buf_deinit(&b);

    struct wire_record v[8];
    for (int i = 0; i < 8; i++)
        v[i] = rec_plain();
    v[1].key = (const uint8_t *)"user:43";
    v[2].version.hlc++;
    v[3].version.node++;
    v[4].flags ^= 1;
    v[5].expiry++;
    v[6].value_len--; /* "hello worl" */
    v[7].tombstone = true;
    v[7].value_len = 0;
    for (int i = 0; i < 8; i++)
        for (int j = i + 1; j < 8; j++)
            assert_true(wire_record_digest(&v[i]) != wire_record_digest(&v[j]));
}

/* Every proper prefix of every valid body, and the body with one byte more,
 * is malformed. */
static void test_bodies_truncated_or_long(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSAMPLES; i++) {
        struct wire_buf b;
        compose_body(&b, &samples[i]);
        uint8_t *c = copy_exact(b.data, b.len);
        assert_int_equal(parse_as(samples[i].parser, c, b.len), WIRE_OK);
        free(c);
        for (size_t k = 0; k < b.len; k++) {
            c = copy_exact(b.data, k);
            if (parse_as(samples[i].parser, c, k) != WIRE_MALFORMED)
                fail_msg("%s: prefix %zu of %zu parsed", samples[i].name, k, b.len);
            free(c);
        }
        wire_put_u8(&b, 0);
        c = copy_exact(b.data, b.len);
        if (parse_as(samples[i].parser, c, b.len) != WIRE_MALFORMED)
            fail_msg("%s: trailing byte accepted", samples[i].name);
        free(c);
        wire_buf_deinit(&b);
    }
}

/* Bodies that are complete but break a field's rule. */
static void test_bodies_invalid_fields(void **state)
{
    (void)state;
    /* a RECORD after the found byte: key, hlc, node, flags, expiry, tomb, value */
#define REC_TAIL(tomb, ...)                                                                      \
    1, 2, 3, 4, 5, 6, 7, 8, /* hlc */ 1, 0, /* node */ 0, 0, 0, 0, /* flags */ 0, 0, 0, 0, 0, 0, \
        0, 0, /* expiry */ tomb, __VA_ARGS__
    static const uint8_t key0[] = {1, 0, REC_TAIL(0, 0)};
    static const uint8_t ok[] = {1, 1, 'k', REC_TAIL(0, 0)};
    static const uint8_t tomb2[] = {1, 1, 'k', REC_TAIL(2, 0)};
    static const uint8_t tomb_val[] = {1, 1, 'k', REC_TAIL(1, 1, 'v')};
    static const uint8_t found2[] = {2, 1, 'k', REC_TAIL(0, 0)};
#undef REC_TAIL
    assert_int_equal(parse_as(P_READ_REPLY, ok, sizeof(ok)), WIRE_OK);
    assert_int_equal(parse_as(P_READ_REPLY, key0, sizeof(key0)), WIRE_MALFORMED);
    assert_int_equal(parse_as(P_READ_REPLY, tomb2, sizeof(tomb2)), WIRE_MALFORMED);
    assert_int_equal(parse_as(P_READ_REPLY, tomb_val, sizeof(tomb_val)), WIRE_MALFORMED);
    assert_int_equal(parse_as(P_READ_REPLY, found2, sizeof(found2)), WIRE_MALFORMED);

    /* key of 251 bytes (length varint 0xfb 0x01) */
    uint8_t long_key[2 + 251];
    long_key[0] = 0xfb;
    long_key[1] = 0x01;
    memset(long_key + 2, 'k', 251);
    assert_int_equal(parse_as(P_READ, long_key, sizeof(long_key)), WIRE_MALFORMED);
    static const uint8_t key250_hdr[] = {0xfa, 0x01};
    uint8_t key250[2 + 250];
    memcpy(key250, key250_hdr, 2);
    memset(key250 + 2, 'k', 250);
    assert_int_equal(parse_as(P_READ, key250, sizeof(key250)), WIRE_OK);

    /* WRITE counts: zero, and more than the bytes can hold */
    static const uint8_t count0[] = {0};
    static const uint8_t count_huge[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    assert_int_equal(parse_as(P_WRITE, count0, sizeof(count0)), WIRE_MALFORMED);
    assert_int_equal(parse_as(P_WRITE, count_huge, sizeof(count_huge)), WIRE_MALFORMED);

    /* handshake reply outcome 2; a message one byte over the limit */
    static const uint8_t outcome2[] = {2, 0, 0, 0};
    assert_int_equal(parse_as(P_HS_REPLY, outcome2, sizeof(outcome2)), WIRE_MALFORMED);
    struct wire_buf b;
    wire_buf_init(&b);
    wire_put_u16(&b, 1);
    wire_put_varint(&b, WIRE_MSG_MAX + 1);
    for (int i = 0; i < WIRE_MSG_MAX + 1; i++)
        wire_put_u8(&b, 'x');
    assert_int_equal(parse_as(P_ERROR, b.data, b.len), WIRE_MALFORMED);

    /* handshake: empty cluster name, empty address */
    wire_buf_clear(&b);
    struct wire_handshake h = hs_sample();
    wire_put_u8(&b, 1);
    wire_put_bytes(&b, "", 0);
    wire_put_raw(&b, h.node_id, WIRE_NODE_ID_LEN);
    wire_put_u16(&b, 1);
    wire_put_u64(&b, 1);
    wire_put_bytes(&b, "a:1", 3);
    assert_int_equal(parse_as(P_HANDSHAKE, b.data, b.len), WIRE_MALFORMED);
    wire_buf_clear(&b);
    wire_put_u8(&b, 1);
    wire_put_bytes(&b, "c", 1);
    wire_put_raw(&b, h.node_id, WIRE_NODE_ID_LEN);
    wire_put_u16(&b, 1);
    wire_put_u64(&b, 1);
    wire_put_bytes(&b, "", 0);
    assert_int_equal(parse_as(P_HANDSHAKE, b.data, b.len), WIRE_MALFORMED);
    wire_buf_deinit(&b);

    /* digest found byte 3 */
    static const uint8_t digest3[] = {3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(parse_as(P_DIGEST_REPLY, digest3, sizeof(digest3)), WIRE_MALFORMED);
}

/* A composer given an invalid field leaves nothing behind: the frames
 * before stay intact, the error is reported once, and the next frame
 * composes normally. */
static void test_compose_rejects_invalid(void **state)
{
    (void)state;
    struct wire_buf b;
    wire_buf_init(&b);
    compose_sample(&b, sample_named("ping"), 1);
    size_t good = b.len;

    struct wire_record long_key = rec_big();
    long_key.key_len = WIRE_REC_KEY_MAX + 1;
    struct wire_record no_key = rec_plain();
    no_key.key_len = 0;
    struct wire_record tomb_val = rec_plain();
    tomb_val.tombstone = true;
    struct wire_handshake h = hs_sample();
    h.cluster_len = 0;
    struct wire_error e = {.code = 1, .msg = long_msg, .msg_len = WIRE_MSG_MAX + 1};

    for (int i = 0; i < 8; i++) {
        size_t m = wire_begin_frame(&b, WIRE_OP_WRITE, 0, 2);
        switch (i) {
        case 0: wire_compose_write(&b, &long_key, 1); break;
        case 1: wire_compose_write(&b, &no_key, 1); break;
        case 2: wire_compose_write(&b, &tomb_val, 1); break;
        case 3: wire_compose_write(&b, NULL, 0); break;
        case 4: wire_compose_read_reply(&b, &long_key); break;
        case 5: wire_compose_handshake(&b, &h); break;
        case 6: wire_compose_error(&b, &e); break;
        case 7: wire_compose_read(&b, NULL, 0); break;
        }
        wire_put_u64(&b, 5); /* ignored: the error is sticky */
        assert_int_equal(wire_end_frame(&b, m, WIRE_FRAME_MAX_DEFAULT), ST_INVAL);
        assert_int_equal(b.len, good);
        assert_int_equal(b.err, ST_OK);
    }
    /* undefined flag bits */
    size_t m = wire_begin_frame(&b, WIRE_OP_PING, undefined_flag(), 3);
    wire_compose_ping(&b, 1);
    assert_int_equal(wire_end_frame(&b, m, WIRE_FRAME_MAX_DEFAULT), ST_INVAL);
    assert_int_equal(b.len, good);
    /* abort */
    m = wire_begin_frame(&b, WIRE_OP_PING, 0, 4);
    wire_compose_ping(&b, 1);
    wire_abort_frame(&b, m);
    assert_int_equal(b.len, good);

    compose_sample(&b, sample_named("write"), 5);
    struct wire_frame f;
    size_t need;
    assert_int_equal(wire_parse_frame(b.data, b.len, WIRE_FRAME_MAX_DEFAULT, &f, &need), WIRE_OK);
    assert_int_equal(f.id, 1);
    assert_int_equal(f.size, good);
    assert_int_equal(
        wire_parse_frame(b.data + good, b.len - good, WIRE_FRAME_MAX_DEFAULT, &f, &need), WIRE_OK);
    assert_int_equal(f.id, 5);
    wire_buf_deinit(&b);
}

/* ---- Consistency levels and RMW ------------------------------------------ */

static void test_cl(void **state)
{
    (void)state;
    /* the numbers are on the wire */
    assert_int_equal(WIRE_CL_ONE, 1);
    assert_int_equal(WIRE_CL_QUORUM, 2);
    assert_int_equal(WIRE_CL_ALL, 3);
    assert_int_equal(WIRE_CL_ANY, 4);
    static const struct {
        uint8_t cl;
        const char *name;
    } names[] = {{1, "ONE"}, {2, "QUORUM"}, {3, "ALL"}, {4, "ANY"}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        assert_non_null(wire_cl_name(names[i].cl));
        assert_string_equal(wire_cl_name(names[i].cl), names[i].name);
    }
    unsigned named = 0;
    for (unsigned cl = 0; cl < 256; cl++)
        named += wire_cl_name((uint8_t)cl) != NULL;
    assert_int_equal(named, 4);
    assert_null(wire_cl_name(0));
    assert_null(wire_cl_name(5));
    assert_null(wire_cl_name(255));

    static const struct {
        const char *s;
        bool ok;
        enum wire_cl cl;
    } parses[] = {
        {"one", true, WIRE_CL_ONE},
        {"ONE", true, WIRE_CL_ONE},
        {"One", true, WIRE_CL_ONE},
        {"quorum", true, WIRE_CL_QUORUM},
        {"QuOrUm", true, WIRE_CL_QUORUM},
        {"all", true, WIRE_CL_ALL},
        {"ALL", true, WIRE_CL_ALL},
        {"any", true, WIRE_CL_ANY},
        {"aNY", true, WIRE_CL_ANY},
        {"", false, 0},
        {"on", false, 0},
        {"ones", false, 0},
        {" one", false, 0},
        {"quorum ", false, 0},
        {"two", false, 0},
        {"local_quorum", false, 0},
        {"1", false, 0},
    };
    for (size_t i = 0; i < sizeof(parses) / sizeof(parses[0]); i++) {
        enum wire_cl out = (enum wire_cl)99;
        bool ok = wire_cl_parse(parses[i].s, &out);
        if (ok != parses[i].ok)
            fail_msg("wire_cl_parse(\"%s\") gave %d", parses[i].s, ok);
        assert_int_equal(out, ok ? parses[i].cl : 99); /* untouched on failure */
        if (ok)
            assert_string_equal(wire_cl_name((uint8_t)out), names[out - 1].name);
    }

    /* needed replicas for n = 1..7 */
    static const unsigned quorum[] = {1, 2, 2, 3, 3, 4, 4};
    for (unsigned n = 1; n <= 7; n++) {
        assert_int_equal(wire_cl_needed(WIRE_CL_ONE, n), 1);
        assert_int_equal(wire_cl_needed(WIRE_CL_QUORUM, n), quorum[n - 1]);
        assert_int_equal(wire_cl_needed(WIRE_CL_ALL, n), n);
        assert_int_equal(wire_cl_needed(WIRE_CL_ANY, n), 1);
    }
    assert_int_equal(wire_cl_needed(WIRE_CL_QUORUM, 255), 128);
}

/* body[0..len) parses as p; each proper prefix, and the body with one more
 * byte, is malformed. Exact-size copies, so ASan sees any overread. */
static void assert_exact_body(enum parser p, const uint8_t *body, size_t len, const char *what)
{
    uint8_t *c = copy_exact(body, len);
    if (parse_as(p, c, len) != WIRE_OK)
        fail_msg("%s: does not parse", what);
    free(c);
    for (size_t k = 0; k < len; k++) {
        c = copy_exact(body, k);
        if (parse_as(p, c, k) != WIRE_MALFORMED)
            fail_msg("%s: prefix %zu of %zu parsed", what, k, len);
        free(c);
    }
    c = malloc(len + 1);
    assert_non_null(c);
    memcpy(c, body, len);
    c[len] = 0;
    if (parse_as(p, c, len + 1) != WIRE_MALFORMED)
        fail_msg("%s: trailing byte accepted", what);
    free(c);
}

static void assert_rmw_equal(const struct wire_rmw *a, const struct wire_rmw *b)
{
    assert_int_equal(a->op, b->op);
    assert_int_equal(a->read_cl, b->read_cl);
    assert_int_equal(a->write_cl, b->write_cl);
    assert_int_equal(a->rflags, b->rflags);
    assert_int_equal(a->key_len, b->key_len);
    assert_memory_equal(a->key, b->key, a->key_len);
    assert_int_equal(a->value_len, b->value_len);
    if (a->value_len > 0)
        assert_memory_equal(a->value, b->value, a->value_len);
    assert_int_equal(a->flags, b->flags);
    assert_int_equal(a->expiry, b->expiry);
    assert_int_equal(a->expiry2, b->expiry2);
    assert_int_equal(a->cas_in, b->cas_in);
    assert_int_equal(a->delta, b->delta);
    assert_int_equal(a->initial, b->initial);
}

/* p[0..n) lies inside body[0..len): a view, not a copy. */
static void assert_view(const uint8_t *p, size_t n, const uint8_t *body, size_t len)
{
    assert_non_null(p);
    assert_true(p >= body && p + n <= body + len);
}

/* Bytes of n as a varint (n < 2^21). */
static size_t varint_len(size_t n)
{
    return n < 128 ? 1 : n < 16384 ? 2 : 3;
}

static bool rmw_op_stores(uint8_t op)
{
    return op >= WIRE_RMW_ADD && op <= WIRE_RMW_CAS;
}

static bool rmw_op_counts(uint8_t op)
{
    return op == WIRE_RMW_INCR || op == WIRE_RMW_DECR;
}

/* Every op, with and without a value, client flags and each request flag it
 * allows, across the consistency levels: compose in a frame, parse, compare,
 * compose again to the same bytes; every truncation and a trailing byte are
 * malformed. */
static void test_rmw_round_trip(void **state)
{
    (void)state;
    /* the numbers are on the wire */
    assert_int_equal(WIRE_RMW_ADD, 1);
    assert_int_equal(WIRE_RMW_REPLACE, 2);
    assert_int_equal(WIRE_RMW_APPEND, 3);
    assert_int_equal(WIRE_RMW_PREPEND, 4);
    assert_int_equal(WIRE_RMW_CAS, 5);
    assert_int_equal(WIRE_RMW_DELETE, 6);
    assert_int_equal(WIRE_RMW_TOUCH, 7);
    assert_int_equal(WIRE_RMW_INCR, 8);
    assert_int_equal(WIRE_RMW_DECR, 9);
    assert_int_equal(WIRE_RMW_RETURN, 0x01);
    assert_int_equal(WIRE_RMW_VIVIFY, 0x02);
    assert_int_equal(WIRE_RMW_RETOUCH, 0x04);
    assert_int_equal(WIRE_RMW_FLAGS_DEFINED, 0x07);

    static const uint8_t rflag_sets[] = {0,
                                         WIRE_RMW_RETURN,
                                         WIRE_RMW_VIVIFY,
                                         WIRE_RMW_RETOUCH,
                                         WIRE_RMW_VIVIFY | WIRE_RMW_RETOUCH,
                                         WIRE_RMW_FLAGS_DEFINED};
    static const struct {
        const uint8_t *p;
        size_t n;
    } values[] = {
        {NULL, 0},
        {(const uint8_t *)"1", 1},
        {(const uint8_t *)"hello world", 11},
        {big_value, sizeof(big_value)},
    };
    static const uint32_t client_flags[] = {0, 0xdeadbeef};

    unsigned cases = 0, seen_ops = 0;
    for (uint8_t op = WIRE_RMW_ADD; op <= WIRE_RMW_DECR; op++) {
        for (size_t fi = 0; fi < sizeof(rflag_sets) / sizeof(rflag_sets[0]); fi++) {
            uint8_t rf = rflag_sets[fi];
            if (!rmw_op_counts(op) && (rf & (WIRE_RMW_VIVIFY | WIRE_RMW_RETOUCH)) != 0)
                continue;
            for (size_t vi = 0; vi < sizeof(values) / sizeof(values[0]); vi++) {
                if (!rmw_op_stores(op) && values[vi].n > 0)
                    continue;
                for (size_t ci = 0; ci < sizeof(client_flags) / sizeof(client_flags[0]); ci++) {
                    struct wire_rmw want = {
                        .op = op,
                        .read_cl = (uint8_t)(WIRE_CL_ONE + cases % 3),
                        .write_cl = (uint8_t)(WIRE_CL_ONE + cases % 4),
                        .rflags = rf,
                        .key = big_key,
                        .key_len = cases % 3 == 0 ? WIRE_REC_KEY_MAX : 1 + cases % 20,
                        .value = values[vi].p,
                        .value_len = values[vi].n,
                        .flags = client_flags[ci],
                        .expiry = cases % 2 ? rnd() : 0,
                        .expiry2 = rnd(),
                        .cas_in = cases % 2 ? 0 : rnd(),
                        .delta = rnd(),
                        .initial = cases % 5 ? rnd() : UINT64_MAX,
                    };
                    struct wire_buf b, again;
                    wire_buf_init(&b);
                    size_t m = wire_begin_frame(&b, WIRE_OP_RMW, 0, 1000 + cases);
                    wire_compose_rmw(&b, &want);
                    assert_int_equal(wire_end_frame(&b, m, WIRE_FRAME_MAX_DEFAULT), ST_OK);
                    struct wire_frame f;
                    size_t need;
                    assert_int_equal(
                        wire_parse_frame(b.data, b.len, WIRE_FRAME_MAX_DEFAULT, &f, &need),
                        WIRE_OK);
                    assert_int_equal(f.opcode, WIRE_OP_RMW);
                    assert_int_equal(f.id, 1000 + cases);

                    struct wire_rmw got;
                    memset(&got, 0xa5, sizeof(got));
                    assert_int_equal(wire_parse_rmw(f.body, f.body_len, &got), WIRE_OK);
                    assert_rmw_equal(&got, &want);
                    assert_view(got.key, got.key_len, f.body, f.body_len);
                    assert_view(got.value, got.value_len, f.body, f.body_len);
                    /* four u8, key, value, u32, five u64 */
                    assert_int_equal(f.body_len, 4 + varint_len(want.key_len) + want.key_len +
                                                     varint_len(want.value_len) + want.value_len +
                                                     4 + 5 * 8);

                    wire_buf_init(&again);
                    wire_compose_rmw(&again, &got);
                    assert_recomposes(f.body, f.body_len, &again);
                    assert_exact_body(P_RMW, f.body, f.body_len, "rmw");
                    wire_buf_deinit(&b);
                    seen_ops |= 1u << op;
                    cases++;
                }
            }
        }
    }
    assert_int_equal(seen_ops, 0x3feu); /* ops 1..9 */
    assert_true(cases >= 9 * 2);

    /* every pair of levels (ANY is not a read level) */
    for (uint8_t rcl = WIRE_CL_ONE; rcl <= WIRE_CL_ALL; rcl++) {
        for (uint8_t wcl = WIRE_CL_ONE; wcl <= WIRE_CL_ANY; wcl++) {
            struct wire_rmw want = rmw_delete(), got;
            want.read_cl = rcl;
            want.write_cl = wcl;
            struct wire_buf b;
            wire_buf_init(&b);
            wire_compose_rmw(&b, &want);
            assert_int_equal(b.err, ST_OK);
            assert_int_equal(wire_parse_rmw(b.data, b.len, &got), WIRE_OK);
            assert_rmw_equal(&got, &want);
            wire_buf_deinit(&b);
        }
    }
}

/* The fields of an RMW request in the spec's order, without any check, so
 * a test can write what a composer refuses to. */
static void put_rmw_raw(struct wire_buf *b, const struct wire_rmw *q)
{
    wire_put_u8(b, q->op);
    wire_put_u8(b, q->read_cl);
    wire_put_u8(b, q->write_cl);
    wire_put_u8(b, q->rflags);
    wire_put_bytes(b, q->key, q->key_len);
    wire_put_bytes(b, q->value, q->value_len);
    wire_put_u32(b, q->flags);
    wire_put_u64(b, q->expiry);
    wire_put_u64(b, q->expiry2);
    wire_put_u64(b, q->cas_in);
    wire_put_u64(b, q->delta);
    wire_put_u64(b, q->initial);
}

/* Each rule of an RMW request, both ways: the composer refuses the field
 * (ST_INVAL, nothing left behind) and the parser refuses the same body
 * written by hand (MALFORMED); the allowed neighbours of each refused value
 * pass both, and the composer writes exactly the hand-built bytes. */
static void test_rmw_invalid(void **state)
{
    (void)state;
    static uint8_t key251[WIRE_REC_KEY_MAX + 1];
    memset(key251, 'k', sizeof(key251));
    enum { F_OP, F_RCL, F_WCL, F_RFLAGS, F_KEYLEN, F_VALUE };
    static const struct {
        uint8_t op;
        int field;
        unsigned v; /* the field's value; F_VALUE: a value length */
        bool ok;
    } cases[] = {
        /* op in 1..10 */
        {WIRE_RMW_ADD, F_OP, 0, false},
        {WIRE_RMW_ADD, F_OP, 1, true},
        {WIRE_RMW_ADD, F_OP, 9, true},
        {WIRE_RMW_ADD, F_OP, 10, true},
        {WIRE_RMW_ADD, F_OP, 11, false},
        {WIRE_RMW_ADD, F_OP, 255, false},
        /* read_cl ONE..ALL */
        {WIRE_RMW_ADD, F_RCL, 0, false},
        {WIRE_RMW_ADD, F_RCL, WIRE_CL_ONE, true},
        {WIRE_RMW_ADD, F_RCL, WIRE_CL_ALL, true},
        {WIRE_RMW_ADD, F_RCL, WIRE_CL_ANY, false},
        {WIRE_RMW_ADD, F_RCL, 5, false},
        {WIRE_RMW_ADD, F_RCL, 255, false},
        /* write_cl ONE..ANY */
        {WIRE_RMW_ADD, F_WCL, 0, false},
        {WIRE_RMW_ADD, F_WCL, WIRE_CL_ONE, true},
        {WIRE_RMW_ADD, F_WCL, WIRE_CL_ANY, true},
        {WIRE_RMW_ADD, F_WCL, 5, false},
        {WIRE_RMW_ADD, F_WCL, 255, false},
        /* undefined request flags */
        {WIRE_RMW_INCR, F_RFLAGS, WIRE_RMW_FLAGS_DEFINED, true},
        {WIRE_RMW_INCR, F_RFLAGS, 0x08, false},
        {WIRE_RMW_INCR, F_RFLAGS, 0x80, false},
        {WIRE_RMW_INCR, F_RFLAGS, 0xff, false},
        /* key 1..250 bytes */
        {WIRE_RMW_TOUCH, F_KEYLEN, 0, false},
        {WIRE_RMW_TOUCH, F_KEYLEN, 1, true},
        {WIRE_RMW_TOUCH, F_KEYLEN, WIRE_REC_KEY_MAX, true},
        {WIRE_RMW_TOUCH, F_KEYLEN, WIRE_REC_KEY_MAX + 1, false},
        /* a value with the stores only */
        {WIRE_RMW_ADD, F_VALUE, 1, true},
        {WIRE_RMW_REPLACE, F_VALUE, 1, true},
        {WIRE_RMW_APPEND, F_VALUE, 1, true},
        {WIRE_RMW_PREPEND, F_VALUE, 1, true},
        {WIRE_RMW_SET, F_VALUE, 1, true},
        {WIRE_RMW_CAS, F_VALUE, sizeof(big_value), true},
        {WIRE_RMW_DELETE, F_VALUE, 1, false},
        {WIRE_RMW_TOUCH, F_VALUE, 1, false},
        {WIRE_RMW_INCR, F_VALUE, 1, false},
        {WIRE_RMW_DECR, F_VALUE, 1, false},
        {WIRE_RMW_DECR, F_VALUE, 0, true},
        /* VIVIFY and RETOUCH with INCR/DECR only; RETURN with any op */
        {WIRE_RMW_INCR, F_RFLAGS, WIRE_RMW_VIVIFY, true},
        {WIRE_RMW_DECR, F_RFLAGS, WIRE_RMW_RETOUCH, true},
        {WIRE_RMW_ADD, F_RFLAGS, WIRE_RMW_VIVIFY, false},
        {WIRE_RMW_CAS, F_RFLAGS, WIRE_RMW_RETOUCH, false},
        {WIRE_RMW_DELETE, F_RFLAGS, WIRE_RMW_VIVIFY, false},
        {WIRE_RMW_TOUCH, F_RFLAGS, WIRE_RMW_RETOUCH, false},
        {WIRE_RMW_TOUCH, F_RFLAGS, WIRE_RMW_RETURN | WIRE_RMW_VIVIFY, false},
        {WIRE_RMW_TOUCH, F_RFLAGS, WIRE_RMW_RETURN, true},
        {WIRE_RMW_DELETE, F_RFLAGS, WIRE_RMW_RETURN, true},
    };
    struct wire_buf b, raw;
    wire_buf_init(&b);
    wire_buf_init(&raw);
    compose_sample(&b, sample_named("ping"), 1);
    size_t good = b.len;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct wire_rmw q = {.op = cases[i].op,
                             .read_cl = WIRE_CL_QUORUM,
                             .write_cl = WIRE_CL_QUORUM,
                             .key = key251,
                             .key_len = 3,
                             .flags = 5,
                             .expiry = 6,
                             .expiry2 = 7,
                             .cas_in = 8,
                             .delta = 9,
                             .initial = 10};
        unsigned v = cases[i].v;
        switch (cases[i].field) {
        case F_OP: q.op = (uint8_t)v; break;
        case F_RCL: q.read_cl = (uint8_t)v; break;
        case F_WCL: q.write_cl = (uint8_t)v; break;
        case F_RFLAGS: q.rflags = (uint8_t)v; break;
        case F_KEYLEN: q.key_len = v; break;
        case F_VALUE:
            q.value = big_value;
            q.value_len = v;
            break;
        }

        size_t m = wire_begin_frame(&b, WIRE_OP_RMW, 0, 2);
        wire_compose_rmw(&b, &q);
        if (cases[i].ok) {
            assert_int_equal(b.err, ST_OK);
        } else {
            if (b.err != ST_INVAL)
                fail_msg("case %zu: composed", i);
            wire_put_u64(&b, 5); /* ignored: the error is sticky */
        }
        size_t body_at = m + WIRE_HEADER_LEN;
        size_t body_len = b.len - body_at;
        uint8_t *composed = copy_exact(b.data + body_at, body_len);
        enum st_status st = wire_end_frame(&b, m, WIRE_FRAME_MAX_DEFAULT);
        assert_int_equal(st, cases[i].ok ? ST_OK : ST_INVAL);
        if (!cases[i].ok) {
            assert_int_equal(b.len, good); /* nothing left behind */
            assert_int_equal(b.err, ST_OK);
        }
        wire_abort_frame(&b, m); /* drops an accepted frame too */
        assert_int_equal(b.len, good);

        wire_buf_clear(&raw);
        put_rmw_raw(&raw, &q);
        assert_int_equal(raw.err, ST_OK);
        enum wire_result want = cases[i].ok ? WIRE_OK : WIRE_MALFORMED;
        uint8_t *c = copy_exact(raw.data, raw.len);
        if (parse_as(P_RMW, c, raw.len) != want)
            fail_msg("case %zu: parse gave the wrong answer", i);
        free(c);
        if (cases[i].ok) {
            assert_int_equal(body_len, raw.len);
            assert_memory_equal(composed, raw.data, raw.len);
        }
        free(composed);
    }
    wire_buf_deinit(&raw);
    wire_buf_deinit(&b);
}

/* The fields of an RMW reply in the spec's order, unchecked. */
static void put_rmw_reply_raw(struct wire_buf *b, uint8_t result, uint8_t created,
                              uint8_t has_record, const struct wire_record *rec)
{
    wire_put_u8(b, result);
    wire_put_u64(b, 1);
    wire_put_u64(b, 2);
    wire_put_u64(b, 3);
    wire_put_u8(b, created);
    wire_put_u8(b, has_record);
    if (rec != NULL)
        wire_put_record(b, rec); /* a tombstone (without a value) is a valid RECORD */
}

static void test_rmw_reply(void **state)
{
    (void)state;
    assert_int_equal(WIRE_RMW_STORED, 1);
    assert_int_equal(WIRE_RMW_NOT_STORED, 2);
    assert_int_equal(WIRE_RMW_EXISTS, 3);
    assert_int_equal(WIRE_RMW_NOT_FOUND, 4);
    assert_int_equal(WIRE_RMW_NON_NUMERIC, 5);
    assert_int_equal(WIRE_RMW_TOO_LARGE, 6);

    /* round trips: with a record (a big one too), without, every result */
    struct wire_rmw_reply replies[3 + 6];
    replies[0] = rmw_reply_rec();
    replies[1] = rmw_reply_rec();
    replies[1].rec = rec_big();
    replies[1].created = false;
    replies[2] = rmw_reply_plain();
    for (uint8_t res = WIRE_RMW_STORED; res <= WIRE_RMW_TOO_LARGE; res++) {
        replies[2 + res] = (struct wire_rmw_reply){.result = res,
                                                   .cas = rnd(),
                                                   .number = rnd(),
                                                   .old_expiry = rnd(),
                                                   .created = res % 2,
                                                   .has_record = res % 3 == 0,
                                                   .rec = rec_plain()};
    }
    for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
        const struct wire_rmw_reply *want = &replies[i];
        struct wire_buf b, again;
        wire_buf_init(&b);
        size_t m = wire_begin_frame(&b, WIRE_OP_RMW, WIRE_FLAG_RESPONSE, 7);
        wire_compose_rmw_reply(&b, want);
        assert_int_equal(wire_end_frame(&b, m, WIRE_FRAME_MAX_DEFAULT), ST_OK);
        struct wire_frame f;
        size_t need;
        assert_int_equal(wire_parse_frame(b.data, b.len, WIRE_FRAME_MAX_DEFAULT, &f, &need),
                         WIRE_OK);
        struct wire_rmw_reply got;
        memset(&got, 0xa5, sizeof(got));
        assert_int_equal(wire_parse_rmw_reply(f.body, f.body_len, &got), WIRE_OK);
        assert_int_equal(got.result, want->result);
        assert_int_equal(got.cas, want->cas);
        assert_int_equal(got.number, want->number);
        assert_int_equal(got.old_expiry, want->old_expiry);
        assert_int_equal(got.created, want->created);
        assert_int_equal(got.has_record, want->has_record);
        if (want->has_record) {
            assert_record_equal(&got.rec, &want->rec);
            assert_view(got.rec.key, got.rec.key_len, f.body, f.body_len);
            assert_view(got.rec.value, got.rec.value_len, f.body, f.body_len);
        } else {
            assert_int_equal(f.body_len, 1 + 3 * 8 + 2);
        }
        wire_buf_init(&again);
        wire_compose_rmw_reply(&again, &got);
        assert_recomposes(f.body, f.body_len, &again);
        assert_exact_body(P_RMW_REPLY, f.body, f.body_len, "rmw reply");
        wire_buf_deinit(&b);
    }

    /* has_record false: the record is not looked at */
    struct wire_rmw_reply junk = rmw_reply_plain();
    junk.rec.key_len = 0;
    junk.rec.tombstone = true;
    junk.rec.value_len = 9;
    struct wire_buf b;
    wire_buf_init(&b);
    wire_compose_rmw_reply(&b, &junk);
    assert_int_equal(b.err, ST_OK);
    wire_buf_deinit(&b);

    /* the rules, on compose and on a hand-built body */
    struct wire_record plain = rec_plain(), tomb = rec_tomb(), no_key = rec_plain();
    no_key.key_len = 0;
    static const struct {
        uint8_t result, created, has_record;
        int rec; /* 0 none, 1 plain, 2 tombstone */
        bool ok;
    } cases[] = {
        {0, 0, 0, 0, false},   {1, 0, 0, 0, true},    {6, 0, 0, 0, true},  {7, 0, 0, 0, false},
        {255, 0, 0, 0, false}, {1, 1, 0, 0, true},    {1, 2, 0, 0, false}, {1, 0, 2, 0, false},
        {1, 0, 1, 1, true},    {1, 0, 1, 2, false},   {1, 0, 0, 1, false}, {1, 0, 1, 0, false},
        {1, 0, 2, 1, false},   {1, 255, 1, 1, false},
    };
    struct wire_buf raw;
    wire_buf_init(&raw);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct wire_record *rec = cases[i].rec == 1   ? &plain
                                        : cases[i].rec == 2 ? &tomb
                                                            : NULL;
        wire_buf_clear(&raw);
        put_rmw_reply_raw(&raw, cases[i].result, cases[i].created, cases[i].has_record, rec);
        assert_int_equal(raw.err, ST_OK);
        uint8_t *c = copy_exact(raw.data, raw.len);
        enum wire_result want = cases[i].ok ? WIRE_OK : WIRE_MALFORMED;
        if (parse_as(P_RMW_REPLY, c, raw.len) != want)
            fail_msg("reply case %zu: parse gave the wrong answer", i);
        free(c);
    }
    wire_buf_deinit(&raw);

    /* compose: a result out of range, a tombstone, a record without a key */
    wire_buf_init(&b);
    compose_sample(&b, sample_named("ping"), 1);
    size_t good = b.len;
    for (int i = 0; i < 4; i++) {
        struct wire_rmw_reply r = rmw_reply_rec();
        switch (i) {
        case 0: r.result = 0; break;
        case 1: r.result = WIRE_RMW_TOO_LARGE + 1; break;
        case 2: r.rec = tomb; break;
        case 3: r.rec = no_key; break;
        }
        size_t m = wire_begin_frame(&b, WIRE_OP_RMW, WIRE_FLAG_RESPONSE, 2);
        wire_compose_rmw_reply(&b, &r);
        assert_int_equal(b.err, ST_INVAL);
        assert_int_equal(wire_end_frame(&b, m, WIRE_FRAME_MAX_DEFAULT), ST_INVAL);
        assert_int_equal(b.len, good);
    }
    wire_buf_deinit(&b);
}

/* ---- Anti-entropy: MERKLE_TREE and RANGE_READ ----------------------------- */

/* The spec's byte tables, computed by hand (the same bytes as
 * tests/integration/test_clusterproto.py's golden vectors). */
static void test_anti_entropy_golden(void **state)
{
    (void)state;
    /* session 0x0102030405060708, range (2^64 - 16, 16] (wraps), depth 15,
     * as_of 1700000000, gc_grace 864000, level 5, step 5, nodes 3 and 31 */
    static const uint8_t merkle_req[] = {
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* session */
        0xf0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* range start */
        0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* range end */
        0x0f,                                           /* depth */
        0x00, 0xf1, 0x53, 0x65, 0x00, 0x00, 0x00, 0x00, /* as of */
        0x00, 0x2f, 0x0d, 0x00, 0x00, 0x00, 0x00, 0x00, /* gc grace */
        0x05, 0x05,                                     /* level, step */
        0x02,                                           /* count */
        0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* node 3 */
        0x1f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* node 31 */
    };
    /* the root's answer: one hash, 3 records */
    static const uint8_t merkle_reply[] = {
        0x01, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, /* count, hash */
        0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,       /* records */
    };
    /* range (2^63, 2^63 + 4096], after "user:42", 1024 records, 1 MiB */
    static const uint8_t range_req[] = {
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, /* range start */
        0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, /* range end */
        0x07, 'u',  's',  'e',  'r',  ':',  '4',  '2',  /* after */
        0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, /* max records, max bytes */
    };
    /* the last page: one smallest tombstone */
    static const uint8_t range_reply[] = {
        0x00, 0x01,                                     /* more, count */
        0x01, 'k',                                      /* key */
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* version hlc */
        0x03, 0x00,                                     /* version node */
        0x00, 0x00, 0x00, 0x00,                         /* flags */
        0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* expiry: deleted at */
        0x01, 0x00,                                     /* tombstone, empty value */
    };

    struct wire_buf b;
    wire_buf_init(&b);
    struct wire_merkle_req q = {.session = 0x0102030405060708ull,
                                .range_start = UINT64_MAX - 15,
                                .range_end = 16,
                                .depth = 15,
                                .as_of = 1700000000,
                                .gc_grace = 864000,
                                .level = 5,
                                .step = 5,
                                .n = 2};
    static const uint64_t nodes[] = {3, 31};
    wire_compose_merkle_req(&b, &q, nodes);
    assert_int_equal(b.err, ST_OK);
    assert_int_equal(b.len, sizeof(merkle_req));
    assert_memory_equal(b.data, merkle_req, sizeof(merkle_req));
    assert_exact_body(P_MERKLE_REQ, merkle_req, sizeof(merkle_req), "golden merkle request");

    wire_buf_clear(&b);
    uint64_t hash = 0x1122334455667788ull;
    wire_compose_merkle_reply(&b, &hash, 1, 3);
    assert_int_equal(b.len, sizeof(merkle_reply));
    assert_memory_equal(b.data, merkle_reply, sizeof(merkle_reply));
    assert_exact_body(P_MERKLE_REPLY, merkle_reply, sizeof(merkle_reply), "golden merkle reply");

    wire_buf_clear(&b);
    struct wire_range_req rq = {.range_start = 1ull << 63,
                                .range_end = (1ull << 63) + 4096,
                                .after = (const uint8_t *)"user:42",
                                .after_len = 7,
                                .max_records = 1024,
                                .max_bytes = 1u << 20};
    wire_compose_range_req(&b, &rq);
    assert_int_equal(b.len, sizeof(range_req));
    assert_memory_equal(b.data, range_req, sizeof(range_req));
    assert_exact_body(P_RANGE_REQ, range_req, sizeof(range_req), "golden range request");

    wire_buf_clear(&b);
    struct wire_record tomb = {.key = (const uint8_t *)"k",
                               .key_len = 1,
                               .expiry = 4,
                               .version = {2, 3},
                               .tombstone = true};
    wire_compose_range_reply(&b, false, &tomb, 1);
    assert_int_equal(b.len, sizeof(range_reply));
    assert_int_equal(b.len, 2 + 26); /* the smallest RECORD */
    assert_memory_equal(b.data, range_reply, sizeof(range_reply));
    assert_exact_body(P_RANGE_REPLY, range_reply, sizeof(range_reply), "golden range reply");
    wire_buf_deinit(&b);
}

static void test_u64_at(void **state)
{
    (void)state;
    uint8_t p[25];
    for (size_t i = 0; i < sizeof(p); i++)
        p[i] = (uint8_t)(i + 1);
    assert_int_equal(wire_u64_at(p, 0), 0x0807060504030201ull);
    assert_int_equal(wire_u64_at(p, 1), 0x100f0e0d0c0b0a09ull);
    assert_int_equal(wire_u64_at(p, 2), 0x1817161514131211ull);
    /* any alignment: views into a body are at any offset */
    assert_int_equal(wire_u64_at(p + 1, 0), 0x0908070605040302ull);
    assert_int_equal(wire_u64_at(p + 1, 2), 0x1918171615141312ull);
    static const uint8_t ones[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t top[8] = {0, 0, 0, 0, 0, 0, 0, 0x80};
    assert_int_equal(wire_u64_at(ones, 0), UINT64_MAX);
    assert_int_equal(wire_u64_at(top, 0), 1ull << 63);
    /* what wire_put_u64 wrote, read back */
    struct wire_buf b;
    wire_buf_init(&b);
    uint64_t v[16];
    for (size_t i = 0; i < 16; i++) {
        v[i] = rnd();
        wire_put_u64(&b, v[i]);
    }
    for (size_t i = 0; i < 16; i++)
        assert_int_equal(wire_u64_at(b.data, i), v[i]);
    wire_buf_deinit(&b);
}

/* The fields of a MERKLE_TREE request in the spec's order, unchecked:
 * `count` is written as the count, then `n` node indices. */
static void put_merkle_raw(struct wire_buf *b, const struct wire_merkle_req *q, uint64_t count,
                           const uint64_t *nodes, size_t n)
{
    wire_put_u64(b, q->session);
    wire_put_u64(b, q->range_start);
    wire_put_u64(b, q->range_end);
    wire_put_u8(b, q->depth);
    wire_put_u64(b, q->as_of);
    wire_put_u64(b, q->gc_grace);
    wire_put_u8(b, q->level);
    wire_put_u8(b, q->step);
    wire_put_varint(b, count);
    for (size_t i = 0; i < n; i++)
        wire_put_u64(b, nodes[i]);
}

/* Composes q with nodes in a frame, parses it back and checks every field,
 * the size, the views, and that composing the parsed request gives the same
 * bytes; every truncation and a trailing byte are malformed (skipped for
 * big bodies: each prefix is a copy). */
static void merkle_req_round_trip(const struct wire_merkle_req *want, const uint64_t *nodes)
{
    struct wire_buf b, again;
    wire_buf_init(&b);
    size_t m = wire_begin_frame(&b, WIRE_OP_MERKLE_TREE, 0, 11);
    wire_compose_merkle_req(&b, want, nodes);
    assert_int_equal(b.err, ST_OK);
    assert_int_equal(wire_end_frame(&b, m, WIRE_FRAME_MAX_DEFAULT), ST_OK);
    struct wire_frame f;
    size_t need;
    assert_int_equal(wire_parse_frame(b.data, b.len, WIRE_FRAME_MAX_DEFAULT, &f, &need), WIRE_OK);
    assert_int_equal(f.body_len, 43 + varint_len(want->n) + 8 * want->n);

    struct wire_merkle_req got;
    memset(&got, 0xa5, sizeof(got));
    assert_int_equal(wire_parse_merkle_req(f.body, f.body_len, &got), WIRE_OK);
    assert_int_equal(got.session, want->session);
    assert_int_equal(got.range_start, want->range_start);
    assert_int_equal(got.range_end, want->range_end);
    assert_int_equal(got.depth, want->depth);
    assert_int_equal(got.as_of, want->as_of);
    assert_int_equal(got.gc_grace, want->gc_grace);
    assert_int_equal(got.level, want->level);
    assert_int_equal(got.step, want->step);
    assert_int_equal(got.n, want->n);
    assert_view(got.nodes, 8 * got.n, f.body, f.body_len);
    uint64_t *back = malloc(got.n * sizeof(*back));
    assert_non_null(back);
    for (size_t i = 0; i < got.n; i++) {
        back[i] = wire_u64_at(got.nodes, i);
        assert_int_equal(back[i], nodes[i]);
    }
    wire_buf_init(&again);
    wire_compose_merkle_req(&again, &got, back);
    assert_recomposes(f.body, f.body_len, &again);
    free(back);
    if (f.body_len <= 4096)
        assert_exact_body(P_MERKLE_REQ, f.body, f.body_len, "merkle request");
    wire_buf_deinit(&b);
}

/* Depths 1..20, levels and steps from the root to the leaves, node counts
 * from one to the most the limit allows, wrapping and whole-ring ranges. */
static void test_merkle_req_round_trip(void **state)
{
    (void)state;
    assert_int_equal(WIRE_MERKLE_DEPTH_MAX, 20);
    assert_int_equal(WIRE_MERKLE_HASHES_MAX, 65536);
    static const struct {
        uint64_t start, end;
    } ranges[] = {
        {1000, 2000},    {UINT64_MAX - 99, 100}, /* start > end: wraps through 0 */
        {42, 42},                                /* start == end: the whole ring */
        {0, UINT64_MAX}, {UINT64_MAX, 0},
    };
    static const uint8_t depths[] = {1, 2, 5, 10, 15, 16, 20};
    static const size_t counts[] = {1, 2, 3, 32, 129, 1000};
    uint64_t *nodes = malloc(WIRE_MERKLE_HASHES_MAX * sizeof(*nodes));
    assert_non_null(nodes);
    unsigned cases = 0;
    for (size_t di = 0; di < sizeof(depths) / sizeof(depths[0]); di++) {
        uint8_t depth = depths[di];
        for (uint8_t level = 0; level <= depth; level++) {
            uint8_t steps[] = {0, 1, 5, (uint8_t)(depth - level)};
            for (size_t si = 0; si < sizeof(steps) / sizeof(steps[0]); si++) {
                uint8_t step = steps[si];
                bool again = false;
                for (size_t sj = 0; sj < si; sj++)
                    again = again || steps[sj] == step;
                if (level + step > depth || again)
                    continue;
                for (size_t ci = 0; ci < sizeof(counts) / sizeof(counts[0]); ci++) {
                    size_t n = counts[ci];
                    /* no more nodes than the level has; the limit */
                    if (n > ((size_t)1 << level) || n > (WIRE_MERKLE_HASHES_MAX >> step))
                        continue;
                    uint64_t width = (uint64_t)1 << level;
                    for (size_t i = 0; i < n; i++)
                        nodes[i] = i == 0 ? width - 1 : i == 1 ? 0 : rnd() % width;
                    struct wire_merkle_req want = {
                        .session = rnd(),
                        .range_start = ranges[cases % 5].start,
                        .range_end = ranges[cases % 5].end,
                        .depth = depth,
                        .as_of = cases % 2 ? rnd() : 1700000000,
                        .gc_grace = cases % 3 ? 864000 : UINT64_MAX,
                        .level = level,
                        .step = step,
                        .n = n,
                    };
                    merkle_req_round_trip(&want, nodes);
                    cases++;
                }
            }
        }
    }
    assert_true(cases > 300);

    /* at the limits: 65,536 nodes of level 16 (a 3-byte count); one node
     * with step 16 (65,536 hashes asked); level 20, the deepest leaves */
    struct wire_merkle_req q = merkle_root();
    q.depth = 16;
    q.level = 16;
    q.n = WIRE_MERKLE_HASHES_MAX;
    for (size_t i = 0; i < q.n; i++)
        nodes[i] = (uint64_t)i;
    merkle_req_round_trip(&q, nodes);
    q.level = 0;
    q.step = 16;
    q.n = 1;
    nodes[0] = 0;
    merkle_req_round_trip(&q, nodes);
    q.depth = 20;
    q.level = 20;
    q.step = 0;
    q.n = 2;
    nodes[0] = (1u << 20) - 1;
    nodes[1] = 1u << 19;
    merkle_req_round_trip(&q, nodes);
    q.level = 4;
    q.step = 12; /* 16 nodes x 4096 hashes: exactly the limit */
    q.n = 16;
    for (size_t i = 0; i < 16; i++)
        nodes[i] = 15 - i; /* any order */
    merkle_req_round_trip(&q, nodes);
    free(nodes);
}

/* Each rule of a MERKLE_TREE request, both ways: the composer refuses it
 * (b->err ST_INVAL, nothing left behind) and the parser refuses the same
 * body written by hand; the allowed neighbours pass both, and the composer
 * writes exactly the hand-built bytes. */
static void test_merkle_req_invalid(void **state)
{
    (void)state;
    enum { NODE_FIRST, NODE_LAST, NODE_AT };
    static const struct {
        uint8_t depth, level, step;
        size_t n;
        int nodes; /* NODE_FIRST: 0, 1, ...; NODE_LAST: 2^level - n ...; NODE_AT: bad_node */
        uint64_t bad_node;
        bool ok;
    } cases[] = {
        /* depth 1..20 */
        {0, 0, 0, 1, NODE_FIRST, 0, false},
        {1, 0, 0, 1, NODE_FIRST, 0, true},
        {20, 0, 0, 1, NODE_FIRST, 0, true},
        {21, 0, 0, 1, NODE_FIRST, 0, false},
        {64, 0, 0, 1, NODE_FIRST, 0, false},
        {255, 0, 0, 1, NODE_FIRST, 0, false},
        /* level <= depth */
        {5, 5, 0, 1, NODE_LAST, 0, true},
        {5, 6, 0, 1, NODE_FIRST, 0, false},
        {20, 21, 0, 1, NODE_FIRST, 0, false},
        {1, 255, 0, 1, NODE_FIRST, 0, false},
        /* level + step <= depth */
        {5, 3, 2, 1, NODE_LAST, 0, true},
        {5, 3, 3, 1, NODE_FIRST, 0, false},
        {5, 0, 5, 1, NODE_FIRST, 0, true},
        {5, 0, 6, 1, NODE_FIRST, 0, false},
        {5, 5, 1, 1, NODE_FIRST, 0, false},
        {20, 0, 255, 1, NODE_FIRST, 0, false},
        /* n >= 1 */
        {5, 3, 0, 0, NODE_FIRST, 0, false},
        /* n << step <= 65,536 */
        {16, 11, 5, 2048, NODE_FIRST, 0, true},
        {17, 12, 5, 2049, NODE_FIRST, 0, false},
        {16, 16, 0, 65536, NODE_FIRST, 0, true},
        {17, 17, 0, 65537, NODE_FIRST, 0, false},
        {16, 0, 16, 1, NODE_FIRST, 0, true},
        {17, 0, 17, 1, NODE_FIRST, 0, false},
        {20, 0, 20, 1, NODE_FIRST, 0, false},
        {20, 2, 15, 3, NODE_FIRST, 0, false},
        {20, 2, 14, 4, NODE_LAST, 0, true},
        /* every node index < 2^level */
        {5, 3, 0, 1, NODE_AT, 7, true},
        {5, 3, 0, 1, NODE_AT, 8, false},
        {5, 0, 0, 1, NODE_AT, 1, false},
        {5, 3, 2, 3, NODE_AT, UINT64_MAX, false},
        {20, 20, 0, 1, NODE_AT, (1u << 20) - 1, true},
        {20, 20, 0, 1, NODE_AT, 1u << 20, false},
        {20, 19, 1, 2, NODE_AT, 1ull << 63, false},
    };
    uint64_t *nodes = malloc((WIRE_MERKLE_HASHES_MAX + 1) * sizeof(*nodes));
    assert_non_null(nodes);
    struct wire_buf b, raw;
    wire_buf_init(&b);
    wire_buf_init(&raw);
    compose_sample(&b, sample_named("ping"), 1);
    size_t good = b.len;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct wire_merkle_req q = merkle_root();
        q.depth = cases[i].depth;
        q.level = cases[i].level;
        q.step = cases[i].step;
        q.n = cases[i].n;
        uint64_t width = cases[i].level < 64 ? (uint64_t)1 << cases[i].level : 0;
        for (size_t k = 0; k < q.n; k++) {
            switch (cases[i].nodes) {
            case NODE_FIRST: nodes[k] = k; break;
            case NODE_LAST: nodes[k] = width - q.n + k; break;
            default: nodes[k] = k + 1 == q.n ? cases[i].bad_node : 0; break;
            }
        }

        size_t m = wire_begin_frame(&b, WIRE_OP_MERKLE_TREE, 0, 2);
        wire_compose_merkle_req(&b, &q, nodes);
        if (cases[i].ok) {
            assert_int_equal(b.err, ST_OK);
        } else {
            if (b.err != ST_INVAL)
                fail_msg("case %zu: composed", i);
            assert_int_equal(b.len, m + WIRE_HEADER_LEN); /* nothing of the body */
            wire_put_u64(&b, 5);                          /* ignored: the error is sticky */
        }
        size_t body_at = m + WIRE_HEADER_LEN;
        size_t body_len = b.len - body_at;
        uint8_t *composed = copy_exact(b.data + body_at, body_len);
        assert_int_equal(wire_end_frame(&b, m, WIRE_FRAME_MAX_DEFAULT),
                         cases[i].ok ? ST_OK : ST_INVAL);
        if (!cases[i].ok) {
            assert_int_equal(b.len, good); /* nothing left behind */
            assert_int_equal(b.err, ST_OK);
        }
        wire_abort_frame(&b, m);
        assert_int_equal(b.len, good);

        wire_buf_clear(&raw);
        put_merkle_raw(&raw, &q, q.n, nodes, q.n);
        assert_int_equal(raw.err, ST_OK);
        uint8_t *c = copy_exact(raw.data, raw.len);
        if (parse_as(P_MERKLE_REQ, c, raw.len) != (cases[i].ok ? WIRE_OK : WIRE_MALFORMED))
            fail_msg("case %zu: parse gave the wrong answer", i);
        free(c);
        if (cases[i].ok) {
            assert_int_equal(body_len, raw.len);
            assert_memory_equal(composed, raw.data, raw.len);
        }
        free(composed);
    }

    /* counts the body does not hold: one node short, a count over the
     * limit with all its nodes, a 64-bit count with none */
    struct wire_merkle_req q = merkle_descend();
    wire_buf_clear(&raw);
    put_merkle_raw(&raw, &q, 4, merkle_nodes, 3);
    assert_int_equal(parse_as(P_MERKLE_REQ, raw.data, raw.len), WIRE_MALFORMED);
    q.depth = 17;
    q.level = 17;
    q.step = 0;
    for (size_t k = 0; k <= WIRE_MERKLE_HASHES_MAX; k++)
        nodes[k] = k;
    wire_buf_clear(&raw);
    put_merkle_raw(&raw, &q, WIRE_MERKLE_HASHES_MAX + 1, nodes, WIRE_MERKLE_HASHES_MAX + 1);
    assert_int_equal(parse_as(P_MERKLE_REQ, raw.data, raw.len), WIRE_MALFORMED);
    wire_buf_clear(&raw);
    put_merkle_raw(&raw, &q, UINT64_MAX, nodes, 1);
    assert_int_equal(parse_as(P_MERKLE_REQ, raw.data, raw.len), WIRE_MALFORMED);
    wire_buf_clear(&raw);
    put_merkle_raw(&raw, &q, (UINT64_MAX >> 3) + 1, nodes, 2); /* n * 8 wraps to 0 */
    assert_int_equal(parse_as(P_MERKLE_REQ, raw.data, raw.len), WIRE_MALFORMED);
    /* a count in a longer form than needed */
    q = merkle_root();
    wire_buf_clear(&raw);
    put_merkle_raw(&raw, &q, 1, nodes, 0);
    raw.data[raw.len - 1] = 0x81;
    wire_put_u8(&raw, 0x00);
    wire_put_u64(&raw, 0);
    assert_int_equal(parse_as(P_MERKLE_REQ, raw.data, raw.len), WIRE_MALFORMED);

    free(nodes);
    wire_buf_deinit(&raw);
    wire_buf_deinit(&b);
}

/* MERKLE_TREE responses: 0, 1, 32 and 65,536 hashes round trip; a count
 * over the limit is refused both ways. */
static void test_merkle_reply(void **state)
{
    (void)state;
    static const size_t counts[] = {0, 1, 2, 32, 127, 128, 1024, WIRE_MERKLE_HASHES_MAX};
    static const uint64_t records[] = {0, 1, 123456789, UINT64_MAX};
    uint64_t *h = malloc((WIRE_MERKLE_HASHES_MAX + 1) * sizeof(*h));
    assert_non_null(h);
    for (size_t i = 0; i <= WIRE_MERKLE_HASHES_MAX; i++)
        h[i] = i % 7 == 0 ? UINT64_MAX - i : sample_hash(i);
    for (size_t ci = 0; ci < sizeof(counts) / sizeof(counts[0]); ci++) {
        size_t n = counts[ci];
        uint64_t rec = records[ci % 4];
        struct wire_buf b, again;
        wire_buf_init(&b);
        size_t m = wire_begin_frame(&b, WIRE_OP_MERKLE_TREE, WIRE_FLAG_RESPONSE, 12);
        wire_compose_merkle_reply(&b, h, n, rec);
        assert_int_equal(wire_end_frame(&b, m, WIRE_FRAME_MAX_DEFAULT), ST_OK);
        struct wire_frame f;
        size_t need;
        assert_int_equal(wire_parse_frame(b.data, b.len, WIRE_FRAME_MAX_DEFAULT, &f, &need),
                         WIRE_OK);
        assert_int_equal(f.body_len, varint_len(n) + 8 * n + 8);
        const uint8_t *hashes = NULL;
        size_t got_n = 99;
        uint64_t got_rec = 99;
        assert_int_equal(wire_parse_merkle_reply(f.body, f.body_len, &hashes, &got_n, &got_rec),
                         WIRE_OK);
        assert_int_equal(got_n, n);
        assert_int_equal(got_rec, rec);
        assert_view(hashes, 8 * n, f.body, f.body_len);
        uint64_t *back = malloc((n > 0 ? n : 1) * sizeof(*back));
        assert_non_null(back);
        for (size_t i = 0; i < n; i++) {
            back[i] = wire_u64_at(hashes, i);
            assert_int_equal(back[i], h[i]);
        }
        wire_buf_init(&again);
        wire_compose_merkle_reply(&again, back, n, got_rec);
        assert_recomposes(f.body, f.body_len, &again);
        free(back);
        if (f.body_len <= 4096)
            assert_exact_body(P_MERKLE_REPLY, f.body, f.body_len, "merkle reply");
        wire_buf_deinit(&b);
    }

    /* 65,537 hashes: the composer refuses, and so does the parser */
    struct wire_buf b;
    wire_buf_init(&b);
    compose_sample(&b, sample_named("ping"), 1);
    size_t good = b.len;
    size_t m = wire_begin_frame(&b, WIRE_OP_MERKLE_TREE, WIRE_FLAG_RESPONSE, 2);
    wire_compose_merkle_reply(&b, h, WIRE_MERKLE_HASHES_MAX + 1, 1);
    assert_int_equal(b.err, ST_INVAL);
    assert_int_equal(wire_end_frame(&b, m, WIRE_FRAME_MAX_DEFAULT), ST_INVAL);
    assert_int_equal(b.len, good);
    wire_buf_clear(&b);
    wire_put_varint(&b, WIRE_MERKLE_HASHES_MAX + 1);
    for (size_t i = 0; i <= WIRE_MERKLE_HASHES_MAX; i++)
        wire_put_u64(&b, h[i]);
    wire_put_u64(&b, 1);
    assert_int_equal(parse_as(P_MERKLE_REPLY, b.data, b.len), WIRE_MALFORMED);
    /* a count the bytes do not hold; a 64-bit count */
    static const uint8_t short_reply[] = {2, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(parse_as(P_MERKLE_REPLY, short_reply, sizeof(short_reply)), WIRE_MALFORMED);
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                   0x01, 0,    0,    0,    0,    0,    0,    0,    0};
    assert_int_equal(parse_as(P_MERKLE_REPLY, huge, sizeof(huge)), WIRE_MALFORMED);
    wire_buf_deinit(&b);
    free(h);
}

static void assert_range_req_equal(const struct wire_range_req *a, const struct wire_range_req *b)
{
    assert_int_equal(a->range_start, b->range_start);
    assert_int_equal(a->range_end, b->range_end);
    assert_int_equal(a->after_len, b->after_len);
    if (a->after_len > 0)
        assert_memory_equal(a->after, b->after, a->after_len);
    assert_int_equal(a->max_records, b->max_records);
    assert_int_equal(a->max_bytes, b->max_bytes);
}

/* RANGE_READ requests: after keys of 0 (the first page) to 250 bytes,
 * wrapping and whole-ring ranges, the limits at their ends. */
static void test_range_req_round_trip(void **state)
{
    (void)state;
    static const size_t after_lens[] = {0, 1, 7, 127, 128, WIRE_REC_KEY_MAX};
    static const struct {
        uint64_t start, end;
    } ranges[] = {{0, 100}, {UINT64_MAX - 7, 7}, {5, 5}, {0, 0}, {UINT64_MAX, UINT64_MAX - 1}};
    static const uint32_t maxes[][2] = {{1, 0}, {1024, 1u << 20}, {UINT32_MAX, UINT32_MAX}};
    unsigned cases = 0;
    for (size_t ai = 0; ai < sizeof(after_lens) / sizeof(after_lens[0]); ai++) {
        for (size_t ri = 0; ri < sizeof(ranges) / sizeof(ranges[0]); ri++) {
            size_t xi = cases % 3;
            struct wire_range_req want = {
                .range_start = ranges[ri].start,
                .range_end = ranges[ri].end,
                .after = after_lens[ai] > 0 ? big_key : NULL,
                .after_len = after_lens[ai],
                .max_records = maxes[xi][0],
                .max_bytes = maxes[xi][1],
            };
            struct wire_buf b, again;
            wire_buf_init(&b);
            size_t m = wire_begin_frame(&b, WIRE_OP_RANGE_READ, 0, 13);
            wire_compose_range_req(&b, &want);
            assert_int_equal(b.err, ST_OK);
            assert_int_equal(wire_end_frame(&b, m, WIRE_FRAME_MAX_DEFAULT), ST_OK);
            struct wire_frame f;
            size_t need;
            assert_int_equal(wire_parse_frame(b.data, b.len, WIRE_FRAME_MAX_DEFAULT, &f, &need),
                             WIRE_OK);
            assert_int_equal(f.body_len, 16 + varint_len(want.after_len) + want.after_len + 8);
            struct wire_range_req got;
            memset(&got, 0xa5, sizeof(got));
            assert_int_equal(wire_parse_range_req(f.body, f.body_len, &got), WIRE_OK);
            assert_range_req_equal(&got, &want);
            assert_view(got.after, got.after_len, f.body, f.body_len); /* empty too */
            wire_buf_init(&again);
            wire_compose_range_req(&again, &got);
            assert_recomposes(f.body, f.body_len, &again);
            assert_exact_body(P_RANGE_REQ, f.body, f.body_len, "range request");
            wire_buf_deinit(&b);
            cases++;
        }
    }
    assert_int_equal(cases, 30);
}

/* RANGE_READ request rules: an after key over 250 bytes, max records 0. */
static void test_range_req_invalid(void **state)
{
    (void)state;
    static uint8_t key251[WIRE_REC_KEY_MAX + 1];
    memset(key251, 'k', sizeof(key251));
    static const struct {
        size_t after_len;
        uint32_t max_records;
        bool ok;
    } cases[] = {
        {0, 1, true},
        {WIRE_REC_KEY_MAX, 1, true},
        {WIRE_REC_KEY_MAX + 1, 1, false},
        {1000, 5, false},
        {0, 0, false},
        {WIRE_REC_KEY_MAX, 0, false},
        {3, UINT32_MAX, true},
    };
    struct wire_buf b, raw;
    wire_buf_init(&b);
    wire_buf_init(&raw);
    compose_sample(&b, sample_named("ping"), 1);
    size_t good = b.len;
    uint8_t *long_after = malloc(1000);
    assert_non_null(long_after);
    memset(long_after, 'a', 1000);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct wire_range_req q = range_next();
        q.after = cases[i].after_len <= sizeof(key251) ? key251 : long_after;
        q.after_len = cases[i].after_len;
        q.max_records = cases[i].max_records;
        q.max_bytes = 77;
        size_t m = wire_begin_frame(&b, WIRE_OP_RANGE_READ, 0, 2);
        wire_compose_range_req(&b, &q);
        assert_int_equal(b.err, cases[i].ok ? ST_OK : ST_INVAL);
        if (!cases[i].ok)
            assert_int_equal(b.len, m + WIRE_HEADER_LEN);
        size_t body_len = b.len - m - WIRE_HEADER_LEN;
        uint8_t *composed = copy_exact(b.data + m + WIRE_HEADER_LEN, body_len);
        assert_int_equal(wire_end_frame(&b, m, WIRE_FRAME_MAX_DEFAULT),
                         cases[i].ok ? ST_OK : ST_INVAL);
        wire_abort_frame(&b, m);
        assert_int_equal(b.len, good);
        assert_int_equal(b.err, ST_OK);

        wire_buf_clear(&raw);
        wire_put_u64(&raw, q.range_start);
        wire_put_u64(&raw, q.range_end);
        wire_put_bytes(&raw, q.after, q.after_len);
        wire_put_u32(&raw, q.max_records);
        wire_put_u32(&raw, q.max_bytes);
        uint8_t *c = copy_exact(raw.data, raw.len);
        if (parse_as(P_RANGE_REQ, c, raw.len) != (cases[i].ok ? WIRE_OK : WIRE_MALFORMED))
            fail_msg("case %zu: parse gave the wrong answer", i);
        free(c);
        if (cases[i].ok) {
            assert_int_equal(body_len, raw.len);
            assert_memory_equal(composed, raw.data, raw.len);
        }
        free(composed);
    }
    free(long_after);
    wire_buf_deinit(&raw);
    wire_buf_deinit(&b);
}

/* Composes a page, parses it, walks and compares its records, composes
 * the parsed records again to the same bytes. */
static void range_reply_round_trip(bool more, const struct wire_record *recs, size_t n, bool exact)
{
    struct wire_buf b, again;
    wire_buf_init(&b);
    size_t m = wire_begin_frame(&b, WIRE_OP_RANGE_READ, WIRE_FLAG_RESPONSE, 14);
    wire_compose_range_reply(&b, more, recs, n);
    assert_int_equal(b.err, ST_OK);
    assert_int_equal(wire_end_frame(&b, m, WIRE_FRAME_MAX_DEFAULT), ST_OK);
    struct wire_frame f;
    size_t need;
    assert_int_equal(wire_parse_frame(b.data, b.len, WIRE_FRAME_MAX_DEFAULT, &f, &need), WIRE_OK);
    bool got_more = !more;
    size_t got_n = 99;
    struct wire_reader r;
    assert_int_equal(wire_parse_range_reply(f.body, f.body_len, &got_more, &r, &got_n), WIRE_OK);
    assert_int_equal(got_more, more);
    assert_int_equal(got_n, n);
    struct wire_record *got = malloc((n > 0 ? n : 1) * sizeof(*got));
    assert_non_null(got);
    size_t bytes = 1 + varint_len(n);
    for (size_t i = 0; i < n; i++) {
        wire_get_record(&r, &got[i]);
        assert_false(r.bad);
        assert_record_equal(&got[i], &recs[i]);
        assert_view(got[i].key, got[i].key_len, f.body, f.body_len);
        bytes += varint_len(recs[i].key_len) + recs[i].key_len + 23 +
                 varint_len(recs[i].value_len) + recs[i].value_len;
    }
    assert_true(wire_reader_done(&r));
    assert_int_equal(f.body_len, bytes);
    wire_buf_init(&again);
    wire_compose_range_reply(&again, got_more, got, got_n);
    assert_recomposes(f.body, f.body_len, &again);
    free(got);
    if (exact)
        assert_exact_body(P_RANGE_REPLY, f.body, f.body_len, "range reply");
    wire_buf_deinit(&b);
}

static void test_range_reply(void **state)
{
    (void)state;
    struct wire_record three[3] = {rec_plain(), rec_tomb(), rec_big()};
    range_reply_round_trip(false, NULL, 0, true); /* the last page, empty */
    range_reply_round_trip(true, NULL, 0, true);  /* accepted; never sent */
    range_reply_round_trip(true, three, 1, true);
    range_reply_round_trip(false, three + 1, 1, true);
    range_reply_round_trip(true, three, 3, true);
    range_reply_round_trip(false, three, 3, true);
    /* 200 smallest records: the count takes 2 bytes, and the body holds
     * exactly count x 26 + 3 bytes */
    struct wire_record *many = malloc(200 * sizeof(*many));
    assert_non_null(many);
    for (size_t i = 0; i < 200; i++)
        many[i] = (struct wire_record){.key = big_key + i % 26,
                                       .key_len = 1,
                                       .version = {i, (uint16_t)i},
                                       .tombstone = i % 2 == 1};
    range_reply_round_trip(true, many, 200, false);
    range_reply_round_trip(false, many, 128, false);
    free(many);

    /* hand-built bodies: the more byte, the count, the records' rules */
    struct wire_record small = {.key = (const uint8_t *)"k", .key_len = 1};
    struct wire_buf one; /* one smallest record, 26 bytes */
    wire_buf_init(&one);
    wire_put_record(&one, &small);
    assert_int_equal(one.len, 26);
    static const struct {
        uint8_t more;
        uint64_t count;
        size_t recs; /* smallest records after the count */
        bool ok;
    } cases[] = {
        {0, 0, 0, true},           {1, 0, 0, true},    {2, 0, 0, false},    {255, 1, 1, false},
        {1, 1, 1, true},           {1, 2, 1, false},   {0, 1, 2, false},    {0, 4, 4, true},
        {0, 5, 4, false},          {0, 100, 4, false}, {0, 200, 200, true}, {0, 201, 200, false},
        {1, UINT64_MAX, 1, false},
    };
    struct wire_buf raw;
    wire_buf_init(&raw);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        wire_buf_clear(&raw);
        wire_put_u8(&raw, cases[i].more);
        wire_put_varint(&raw, cases[i].count);
        for (size_t k = 0; k < cases[i].recs; k++)
            wire_put_raw(&raw, one.data, one.len);
        uint8_t *c = copy_exact(raw.data, raw.len);
        if (parse_as(P_RANGE_REPLY, c, raw.len) != (cases[i].ok ? WIRE_OK : WIRE_MALFORMED))
            fail_msg("page case %zu: parse gave the wrong answer", i);
        free(c);
    }
    /* a tombstone with a value; a key of 0 and of 251 bytes; a tombstone
     * byte of 2: each as the 2nd record of 3 */
    static const struct {
        uint8_t tomb;
        size_t key_len, value_len;
    } bad[] = {{1, 1, 1}, {1, 1, 5}, {0, 0, 0}, {0, WIRE_REC_KEY_MAX + 1, 0}, {2, 1, 0}};
    static uint8_t key251[WIRE_REC_KEY_MAX + 1];
    memset(key251, 'k', sizeof(key251));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        wire_buf_clear(&raw);
        wire_put_u8(&raw, 1);
        wire_put_varint(&raw, 3);
        wire_put_raw(&raw, one.data, one.len);
        wire_put_bytes(&raw, key251, bad[i].key_len);
        wire_put_u64(&raw, 1);
        wire_put_u16(&raw, 2);
        wire_put_u32(&raw, 3);
        wire_put_u64(&raw, 4);
        wire_put_u8(&raw, bad[i].tomb);
        wire_put_bytes(&raw, big_value, bad[i].value_len);
        wire_put_raw(&raw, one.data, one.len);
        uint8_t *c = copy_exact(raw.data, raw.len);
        if (parse_as(P_RANGE_REPLY, c, raw.len) != WIRE_MALFORMED)
            fail_msg("bad record %zu parsed", i);
        free(c);
    }
    wire_buf_deinit(&raw);
    wire_buf_deinit(&one);

    /* compose: a tombstone with a value, a record without a key, a key of
     * 251 bytes, anywhere in the page: ST_INVAL and nothing left behind */
    struct wire_buf b;
    wire_buf_init(&b);
    compose_sample(&b, sample_named("ping"), 1);
    size_t good = b.len;
    for (int i = 0; i < 6; i++) {
        struct wire_record recs[3] = {rec_plain(), rec_tomb(), rec_big()};
        struct wire_record *r = &recs[(i + i / 3) % 3]; /* each rule at two places */
        switch (i % 3) {
        case 0:
            r->tombstone = true;
            r->value = big_value;
            r->value_len = 1;
            break;
        case 1: r->key_len = 0; break;
        case 2: r->key_len = WIRE_REC_KEY_MAX + 1; break;
        }
        size_t m = wire_begin_frame(&b, WIRE_OP_RANGE_READ, WIRE_FLAG_RESPONSE, 2);
        wire_compose_range_reply(&b, i % 2 == 0, recs, 3);
        if (b.err != ST_INVAL)
            fail_msg("bad page %d composed", i);
        assert_int_equal(b.len, m + WIRE_HEADER_LEN);
        assert_int_equal(wire_end_frame(&b, m, WIRE_FRAME_MAX_DEFAULT), ST_INVAL);
        assert_int_equal(b.len, good);
    }
    wire_buf_deinit(&b);
}

/* ---- Frames --------------------------------------------------------------- */

/* Every proper prefix of every sample frame asks for more, with the right
 * count, and never yields a frame. */
static void test_frame_truncations(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSAMPLES; i++) {
        struct wire_buf b;
        wire_buf_init(&b);
        compose_sample(&b, &samples[i], 1000 + i);
        for (size_t k = 0; k < b.len; k++) {
            struct wire_frame f;
            size_t need = 0;
            enum wire_result r = parse_exact(b.data, k, WIRE_FRAME_MAX_DEFAULT, &f, &need);
            if (r != WIRE_NEED_MORE)
                fail_msg("%s: prefix %zu gave %s", samples[i].name, k, wire_result_name(r));
            assert_int_equal(need, k < WIRE_HEADER_LEN ? WIRE_HEADER_LEN : b.len);
            assert_true(need > k);
        }
        struct wire_frame f;
        size_t need;
        assert_int_equal(parse_exact(b.data, b.len, WIRE_FRAME_MAX_DEFAULT, &f, &need), WIRE_OK);
        wire_buf_deinit(&b);
    }
}

/*
 * Every single-bit flip of every sample frame is caught, by the part of the
 * frame that covers the bit: magic bytes 0..3, version byte 4, the header
 * check bytes 5..23 (the check itself included), the body check bytes 24..31
 * and the body. No byte is left uncovered. XXH3 is a hash, not a CRC: a flip
 * that keeps a check equal is possible in principle (2^-32 for the header,
 * 2^-64 for the body), but these inputs are fixed, so the test is exact.
 */
static void test_frame_bit_flips(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSAMPLES; i++) {
        struct wire_buf b;
        wire_buf_init(&b);
        compose_sample(&b, &samples[i], 0x8000000000000001ull);
        uint8_t *c = copy_exact(b.data, b.len);
        for (size_t bit = 0; bit < b.len * 8; bit++) {
            size_t at = bit / 8;
            c[at] ^= (uint8_t)(1u << (bit % 8));
            struct wire_frame f;
            size_t need;
            enum wire_result r = wire_parse_frame(c, b.len, WIRE_FRAME_MAX_DEFAULT, &f, &need);
            enum wire_result want = at < 4    ? WIRE_BAD_MAGIC
                                    : at == 4 ? WIRE_BAD_VERSION
                                              : WIRE_BAD_CHECKSUM;
            if (r != want)
                fail_msg("%s: bit %zu (byte %zu) gave %s", samples[i].name, bit, at,
                         wire_result_name(r));
            c[at] ^= (uint8_t)(1u << (bit % 8));
        }
        free(c);
        wire_buf_deinit(&b);
    }
}

/* Sets a composed frame's body length field and reseals its header, as a
 * peer with a bigger limit (or a bug) would send it. */
static void set_body_len(uint8_t *h, uint32_t n)
{
    put_le32(h + 16, n);
    reseal_header(h);
}

static void test_frame_limits(void **state)
{
    (void)state;
    struct wire_buf b;
    wire_buf_init(&b);
    size_t m = wire_begin_frame(&b, WIRE_OP_WRITE, 0, 77);
    for (int i = 0; i < 100; i++)
        wire_put_u8(&b, (uint8_t)i);
    assert_int_equal(wire_end_frame(&b, m, WIRE_HEADER_LEN + 99), ST_INVAL);
    assert_int_equal(b.len, 0);
    m = wire_begin_frame(&b, WIRE_OP_WRITE, 0, 77);
    for (int i = 0; i < 100; i++)
        wire_put_u8(&b, (uint8_t)i);
    assert_int_equal(wire_end_frame(&b, m, WIRE_HEADER_LEN + 100), ST_OK);

    struct wire_frame f;
    size_t need;
    assert_int_equal(parse_exact(b.data, b.len, b.len, &f, &need), WIRE_OK);
    memset(&f, 0, sizeof(f));
    assert_int_equal(parse_exact(b.data, b.len, b.len - 1, &f, &need), WIRE_OVERSIZED);
    assert_int_equal(f.id, 77); /* header fields kept for an ERROR reply */
    assert_int_equal(f.body_len, 100);
    assert_null(f.body);

    /* A huge declared length is refused from the header alone, before any
     * body byte: 32 bytes are all the parser gets. */
    static const uint32_t lens[] = {UINT32_MAX, WIRE_FRAME_MAX_DEFAULT - WIRE_HEADER_LEN + 1,
                                    1u << 31};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        set_body_len(b.data, lens[i]);
        assert_int_equal(parse_exact(b.data, WIRE_HEADER_LEN, WIRE_FRAME_MAX_DEFAULT, &f, &need),
                         WIRE_OVERSIZED);
        assert_int_equal(f.body_len, lens[i]);
        assert_int_equal(f.size, (size_t)lens[i] + WIRE_HEADER_LEN);
    }
    /* exactly at the limit: wait for it */
    set_body_len(b.data, WIRE_FRAME_MAX_DEFAULT - WIRE_HEADER_LEN);
    assert_int_equal(parse_exact(b.data, b.len, WIRE_FRAME_MAX_DEFAULT, &f, &need), WIRE_NEED_MORE);
    assert_int_equal(need, WIRE_FRAME_MAX_DEFAULT);
    /* a limit below the header size refuses every frame */
    set_body_len(b.data, 0);
    assert_int_equal(parse_exact(b.data, WIRE_HEADER_LEN, 16, &f, &need), WIRE_OVERSIZED);
    wire_buf_deinit(&b);
}

/* Undefined flag bits in a verified header: malformed, header kept. */
static void test_frame_reserved_flags(void **state)
{
    (void)state;
    struct wire_buf b;
    wire_buf_init(&b);
    compose_sample(&b, sample_named("ping"), 9);
    unsigned reserved = 0;
    for (unsigned bit = 0; bit < 16; bit++) {
        if ((WIRE_FLAGS_DEFINED & (1u << bit)) != 0)
            continue;
        reserved++;
        uint8_t *c = copy_exact(b.data, b.len);
        c[6 + bit / 8] |= (uint8_t)(1u << (bit % 8));
        reseal_header(c);
        struct wire_frame f;
        size_t need;
        memset(&f, 0, sizeof(f));
        assert_int_equal(wire_parse_frame(c, b.len, WIRE_FRAME_MAX_DEFAULT, &f, &need),
                         WIRE_MALFORMED);
        assert_int_equal(f.id, 9);
        free(c);
    }
    assert_int_equal(reserved, 16 - 3);
    wire_buf_deinit(&b);
}

/* Another protocol on the port is refused from its first bytes. */
static void test_frame_early_rejects(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t n;
        enum wire_result want;
    } cases[] = {
        {"", 0, WIRE_NEED_MORE},
        {"S", 1, WIRE_NEED_MORE},
        {"STRC", 4, WIRE_NEED_MORE},
        {"STRC\x01", 5, WIRE_NEED_MORE},
        {"get foo\r\n", 9, WIRE_BAD_MAGIC},
        {"GET / HTTP/1.1\r\n", 16, WIRE_BAD_MAGIC},
        {"\x80\x00", 2, WIRE_BAD_MAGIC}, /* memcached binary */
        {"SX", 2, WIRE_BAD_MAGIC},
        {"STRC\x00", 5, WIRE_BAD_VERSION},
        {"STRC\x02", 5, WIRE_BAD_VERSION},
        {"STRC\xff", 5, WIRE_BAD_VERSION},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct wire_frame f;
        size_t need = 0;
        enum wire_result r = parse_exact((const uint8_t *)cases[i].bytes, cases[i].n,
                                         WIRE_FRAME_MAX_DEFAULT, &f, &need);
        if (r != cases[i].want)
            fail_msg("case %zu gave %s", i, wire_result_name(r));
        if (r == WIRE_NEED_MORE)
            assert_int_equal(need, WIRE_HEADER_LEN);
    }
    struct wire_frame f;
    size_t need = 0;
    assert_int_equal(wire_parse_frame(NULL, 0, WIRE_FRAME_MAX_DEFAULT, &f, &need), WIRE_NEED_MORE);
}

/* All samples back to back in one buffer, then the same byte stream fed
 * in chunks of every size from 1 to 80 bytes, as reads would deliver it. */
static void test_frames_back_to_back(void **state)
{
    (void)state;
    struct wire_buf b;
    wire_buf_init(&b);
    size_t offs[NSAMPLES + 1];
    for (size_t i = 0; i < NSAMPLES; i++)
        offs[i] = compose_sample(&b, &samples[i], i + 1);
    offs[NSAMPLES] = b.len;

    size_t pos = 0, seen = 0;
    for (;;) {
        struct wire_frame f;
        size_t need;
        enum wire_result r =
            wire_parse_frame(b.data + pos, b.len - pos, WIRE_FRAME_MAX_DEFAULT, &f, &need);
        if (r == WIRE_NEED_MORE)
            break;
        assert_int_equal(r, WIRE_OK);
        assert_int_equal(pos, offs[seen]);
        assert_int_equal(f.id, seen + 1);
        assert_int_equal(f.opcode, samples[seen].op);
        assert_int_equal(f.flags, samples[seen].flags);
        assert_int_equal(parse_as(samples[seen].parser, f.body, f.body_len), WIRE_OK);
        pos += f.size;
        seen++;
    }
    assert_int_equal(seen, NSAMPLES);
    assert_int_equal(pos, b.len);

    uint8_t *in = malloc(b.len);
    assert_non_null(in);
    for (size_t chunk = 1; chunk <= 80; chunk++) {
        size_t have = 0, done = 0, fed = 0;
        seen = 0;
        while (fed < b.len) {
            size_t n = b.len - fed < chunk ? b.len - fed : chunk;
            memcpy(in + have, b.data + fed, n);
            have += n;
            fed += n;
            for (;;) {
                struct wire_frame f;
                size_t need;
                enum wire_result r =
                    wire_parse_frame(in + done, have - done, WIRE_FRAME_MAX_DEFAULT, &f, &need);
                if (r == WIRE_NEED_MORE) {
                    assert_true(need > have - done);
                    break;
                }
                assert_int_equal(r, WIRE_OK);
                assert_int_equal(f.id, seen + 1);
                assert_memory_equal(f.body, b.data + offs[seen] + WIRE_HEADER_LEN, f.body_len);
                done += f.size;
                seen++;
            }
        }
        assert_int_equal(seen, NSAMPLES);
        assert_int_equal(done, b.len);
    }
    free(in);
    wire_buf_deinit(&b);
}

/* Random input never crashes or reads out of bounds; whatever parses is
 * consistent. Three shapes: pure noise, noise behind a valid magic and
 * version (reaches the header check), and valid frames with bytes changed
 * and the header resealed (reaches the body check and, when the body check
 * is recomputed too, the body parsers). Fixed seed, bounded. */
static void test_garbage(void **state)
{
    (void)state;
    struct wire_buf all;
    wire_buf_init(&all);
    size_t offs[NSAMPLES + 1];
    for (size_t i = 0; i < NSAMPLES; i++)
        offs[i] = compose_sample(&all, &samples[i], i);
    offs[NSAMPLES] = all.len;

    uint8_t tmp[4096];
    unsigned oks = 0, body_oks = 0;
    for (int iter = 0; iter < 30000; iter++) {
        size_t n;
        int shape = iter % 3;
        size_t which = (size_t)(rnd() % NSAMPLES);
        if (shape == 2) {
            n = offs[which + 1] - offs[which];
            memcpy(tmp, all.data + offs[which], n);
            int edits = 1 + (int)(rnd() % 4);
            for (int e = 0; e < edits; e++)
                tmp[rnd() % n] = (uint8_t)rnd();
            memcpy(tmp, WIRE_MAGIC, 4);
            tmp[4] = 1;
            if (rnd() % 2)
                tmp[6] &= (uint8_t)WIRE_FLAGS_DEFINED; /* mostly defined flags */
            reseal_header(tmp);
            if (rnd() % 2 && get_le32(tmp + 16) <= n - WIRE_HEADER_LEN) {
                uint64_t sum = XXH3_64bits(tmp + WIRE_HEADER_LEN, get_le32(tmp + 16));
                for (int i = 0; i < 8; i++)
                    tmp[24 + i] = (uint8_t)(sum >> (8 * i));
            }
        } else {
            n = (size_t)(rnd() % 200);
            for (size_t i = 0; i < n; i++)
                tmp[i] = (uint8_t)rnd();
            if (shape == 1 && n >= 5) {
                memcpy(tmp, WIRE_MAGIC, 4);
                tmp[4] = 1;
                if (n >= WIRE_HEADER_LEN && rnd() % 2) {
                    put_le32(tmp + 16, (uint32_t)(rnd() % (n - WIRE_HEADER_LEN + 1)));
                    reseal_header(tmp);
                }
            }
        }
        uint8_t *c = copy_exact(tmp, n);
        struct wire_frame f;
        size_t need = 0;
        enum wire_result r = wire_parse_frame(c, n, WIRE_FRAME_MAX_DEFAULT, &f, &need);
        assert_true(r >= WIRE_OK && r <= WIRE_MALFORMED);
        if (r == WIRE_NEED_MORE)
            assert_true(need > n && need <= WIRE_FRAME_MAX_DEFAULT);
        if (r == WIRE_OK) {
            oks++;
            assert_true(f.size <= n);
            assert_ptr_equal(f.body, c + WIRE_HEADER_LEN);
            /* every parser on the body: a body of one kind handed to
             * another is the worst a confused peer can do */
            for (int p = 0; p < P_COUNT; p++)
                body_oks += parse_as((enum parser)p, f.body, f.body_len) == WIRE_OK;
        }
        free(c);
    }
    /* the shapes did reach the deep paths */
    assert_true(oks > 1000);
    assert_true(body_oks > 100);
    wire_buf_deinit(&all);
}

/* The buffer's memory is accounted, kept across clear, and freed. */
static void test_buf_memory(void **state)
{
    (void)state;
    size_t before = mem_bytes(MEM_CONN);
    struct wire_buf b;
    wire_buf_init(&b);
    for (int i = 0; i < 2000; i++)
        compose_sample(&b, sample_named("read-big"), (uint64_t)i);
    assert_true(b.len > 2000 * 3000);
    assert_true(mem_bytes(MEM_CONN) >= before + b.cap);
    size_t cap = b.cap;
    wire_buf_clear(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, cap);
    wire_buf_deinit(&b);
    assert_int_equal(mem_bytes(MEM_CONN), before);
    assert_null(b.data);
    wire_buf_deinit(&b); /* twice is harmless */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_golden),
        cmocka_unit_test(test_numbers_and_names),
        cmocka_unit_test(test_fields_round_trip),
        cmocka_unit_test(test_reader_bounds),
        cmocka_unit_test(test_varint_and_bytes_rules),
        cmocka_unit_test(test_handshake_round_trip),
        cmocka_unit_test(test_ping_error_round_trip),
        cmocka_unit_test(test_read_write_round_trip),
        cmocka_unit_test(test_record_digest),
        cmocka_unit_test(test_bodies_truncated_or_long),
        cmocka_unit_test(test_bodies_invalid_fields),
        cmocka_unit_test(test_compose_rejects_invalid),
        cmocka_unit_test(test_cl),
        cmocka_unit_test(test_rmw_round_trip),
        cmocka_unit_test(test_rmw_invalid),
        cmocka_unit_test(test_rmw_reply),
        cmocka_unit_test(test_anti_entropy_golden),
        cmocka_unit_test(test_u64_at),
        cmocka_unit_test(test_merkle_req_round_trip),
        cmocka_unit_test(test_merkle_req_invalid),
        cmocka_unit_test(test_merkle_reply),
        cmocka_unit_test(test_range_req_round_trip),
        cmocka_unit_test(test_range_req_invalid),
        cmocka_unit_test(test_range_reply),
        cmocka_unit_test(test_frame_truncations),
        cmocka_unit_test(test_frame_bit_flips),
        cmocka_unit_test(test_frame_limits),
        cmocka_unit_test(test_frame_reserved_flags),
        cmocka_unit_test(test_frame_early_rejects),
        cmocka_unit_test(test_frames_back_to_back),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_buf_memory),
    };
    return cmocka_run_group_tests(tests, setup_samples, NULL);
}
