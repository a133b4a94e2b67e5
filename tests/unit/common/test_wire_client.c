/* test_wire_client.c - the cluster protocol's codecs for clients of the
 * cluster (strata-proxy): RING (head and nodes), COORD_READ and COORD_WRITE. Round trips
 * through whole frames, the byte layout pinned against the spec
 * (docs/formats/cluster-protocol.md), every bound refused on parse and on
 * compose, truncations at every byte and trailing bytes. Inputs to the
 * parsers are copied into heap blocks of their exact size so that the
 * sanitizer build catches any read past them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/wire.h"

/* ---- Helpers --------------------------------------------------------------- */

/* A heap copy of exactly n bytes (at least one allocated). */
static uint8_t *copy_exact(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n > 0 ? n : 1);
    assert_non_null(c);
    if (n > 0)
        memcpy(c, p, n);
    return c;
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* A ring node as a test writes it: the fields, plus its tokens. */
struct tnode {
    uint8_t id[WIRE_NODE_ID_LEN];
    uint16_t short_id;
    char addr[WIRE_ADDR_MAX + 2];
    size_t addr_len;
    char rack[WIRE_RACK_MAX + 2];
    size_t rack_len;
    uint8_t state;
    uint32_t ntokens;
    uint64_t tokens[WIRE_RING_VNODES_MAX + 1];
};

static struct tnode nodes[6];

static struct wire_ring_node wnode_of(const struct tnode *t)
{
    struct wire_ring_node n;
    memset(&n, 0, sizeof(n));
    memcpy(n.id, t->id, WIRE_NODE_ID_LEN);
    n.short_id = t->short_id;
    n.addr = t->addr;
    n.addr_len = t->addr_len;
    n.rack = t->rack;
    n.rack_len = t->rack_len;
    n.state = t->state;
    n.ntokens = t->ntokens;
    n.put_tokens = t->tokens;
    return n;
}

static void set_str(char *dst, size_t *len, const char *s)
{
    *len = strlen(s);
    memcpy(dst, s, *len + 1);
}

/* Six nodes covering every field's range: racks and none, an unknown
 * address, every state, 1 token, many, the most. */
static int setup_nodes(void **state)
{
    (void)state;
    memset(nodes, 0, sizeof(nodes));
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 6; i++) {
        struct tnode *t = &nodes[i];
        for (int k = 0; k < WIRE_NODE_ID_LEN; k++)
            t->id[k] = (uint8_t)(0x11 * (i + 1) + k);
        t->short_id = (uint16_t)(i == 5 ? UINT16_MAX : 100 + i);
        t->state = (uint8_t)(i % 3);
        for (uint32_t k = 0; k < WIRE_RING_VNODES_MAX; k++) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            t->tokens[k] = x * 0x2545f4914f6cdd1dull;
        }
    }
    set_str(nodes[0].addr, &nodes[0].addr_len, "10.0.0.1:7311");
    set_str(nodes[0].rack, &nodes[0].rack_len, "rack-a");
    nodes[0].ntokens = 16;
    set_str(nodes[1].addr, &nodes[1].addr_len, "10.0.0.2:7311");
    set_str(nodes[1].rack, &nodes[1].rack_len, "rack-b");
    nodes[1].ntokens = 1;
    nodes[1].tokens[0] = 0; /* token 0 and UINT64_MAX are tokens like others */
    set_str(nodes[2].addr, &nodes[2].addr_len, "[::1]:7312");
    nodes[2].rack_len = 0; /* no rack */
    nodes[2].ntokens = 3;
    nodes[2].tokens[2] = UINT64_MAX;
    nodes[3].addr_len = 0; /* address unknown to the answering node */
    set_str(nodes[3].rack, &nodes[3].rack_len, "r");
    nodes[3].ntokens = WIRE_RING_VNODES_MAX;
    /* the longest address and rack */
    memset(nodes[4].addr, 'h', WIRE_ADDR_MAX);
    memcpy(nodes[4].addr + WIRE_ADDR_MAX - 5, ":7311", 5);
    nodes[4].addr_len = WIRE_ADDR_MAX;
    memset(nodes[4].rack, 'k', WIRE_RACK_MAX);
    nodes[4].rack_len = WIRE_RACK_MAX;
    nodes[4].ntokens = 128; /* a two-byte varint */
    set_str(nodes[5].addr, &nodes[5].addr_len, "n5:1");
    nodes[5].ntokens = 127; /* the largest one-byte varint */
    return 0;
}

/* A RING body of head h and the first h->count test nodes (h->count <= 6)
 * into a fresh buffer; asserts no error. */
static void ring_body(struct wire_buf *b, const struct wire_ring_head *h)
{
    wire_buf_init(b);
    wire_put_ring_head(b, h);
    for (uint32_t i = 0; i < h->count; i++) {
        struct wire_ring_node n = wnode_of(&nodes[i]);
        wire_put_ring_node(b, &n);
    }
    assert_int_equal(b->err, ST_OK);
}

/* The whole client-side decode of a RING body: head, each node, then
 * nothing left. WIRE_OK only when all of it holds. */
static enum wire_result ring_parse_all(const uint8_t *body, size_t len)
{
    uint8_t *c = copy_exact(body, len);
    struct wire_reader r;
    struct wire_ring_head h;
    enum wire_result res = wire_parse_ring_head(c, len, &r, &h);
    if (res == WIRE_OK) {
        for (uint32_t i = 0; i < h.count && !r.bad; i++) {
            struct wire_ring_node n;
            wire_get_ring_node(&r, &n);
            if (!r.bad) {
                /* a node that reads well has tokens inside the body */
                assert_true(n.ntokens >= 1 && n.ntokens <= WIRE_RING_VNODES_MAX);
                assert_true(n.tokens >= c && n.tokens + (size_t)n.ntokens * 8 <= c + len);
                assert_true(n.state <= 2);
            } else {
                assert_int_equal(n.ntokens, 0);
            }
        }
        res = wire_reader_done(&r) ? WIRE_OK : WIRE_MALFORMED;
    } else {
        assert_int_equal(h.count, 0);
    }
    free(c);
    return res;
}

static void assert_node_equal(const struct wire_ring_node *got, const struct tnode *want)
{
    assert_memory_equal(got->id, want->id, WIRE_NODE_ID_LEN);
    assert_int_equal(got->short_id, want->short_id);
    assert_int_equal(got->addr_len, want->addr_len);
    if (want->addr_len > 0)
        assert_memory_equal(got->addr, want->addr, want->addr_len);
    assert_int_equal(got->rack_len, want->rack_len);
    if (want->rack_len > 0)
        assert_memory_equal(got->rack, want->rack, want->rack_len);
    assert_int_equal(got->state, want->state);
    assert_int_equal(got->ntokens, want->ntokens);
    assert_non_null(got->tokens);
    for (uint32_t k = 0; k < want->ntokens; k++)
        assert_int_equal(wire_ring_token(got, k), want->tokens[k]);
}

/* ---- RING: round trips ----------------------------------------------------- */

/* A RING answer of several nodes as a node sends it (one frame, RESPONSE)
 * parses back to the same head, nodes and tokens. */
static void test_ring_round_trip(void **state)
{
    (void)state;
    static const struct wire_ring_head heads[] = {
        {.version = 0x0102030405060708ull, .replicas = 3, .count = 6},
        {.version = 1, .replicas = 1, .count = 1},
        {.version = UINT64_MAX, .replicas = 64, .count = 2},
        {.version = 0, .replicas = 2, .count = 0}, /* a node without members */
    };
    for (size_t hi = 0; hi < sizeof(heads) / sizeof(heads[0]); hi++) {
        const struct wire_ring_head *h = &heads[hi];
        struct wire_buf b;
        wire_buf_init(&b);
        size_t mark = wire_begin_frame(&b, WIRE_OP_RING, WIRE_FLAG_RESPONSE, 77 + hi);
        wire_put_ring_head(&b, h);
        for (uint32_t i = 0; i < h->count; i++) {
            struct wire_ring_node n = wnode_of(&nodes[i]);
            wire_put_ring_node(&b, &n);
        }
        assert_int_equal(wire_end_frame(&b, mark, WIRE_FRAME_MAX_DEFAULT), ST_OK);

        uint8_t *c = copy_exact(b.data, b.len);
        struct wire_frame f;
        size_t need = 0;
        assert_int_equal(wire_parse_frame(c, b.len, WIRE_FRAME_MAX_DEFAULT, &f, &need), WIRE_OK);
        assert_int_equal(f.opcode, WIRE_OP_RING);
        assert_int_equal(f.flags, WIRE_FLAG_RESPONSE);
        assert_int_equal(f.id, 77 + hi);
        assert_int_equal(f.size, b.len);

        struct wire_reader r;
        struct wire_ring_head got;
        assert_int_equal(wire_parse_ring_head(f.body, f.body_len, &r, &got), WIRE_OK);
        assert_int_equal(got.version, h->version);
        assert_int_equal(got.replicas, h->replicas);
        assert_int_equal(got.count, h->count);
        for (uint32_t i = 0; i < got.count; i++) {
            struct wire_ring_node n;
            wire_get_ring_node(&r, &n);
            assert_false(r.bad);
            assert_node_equal(&n, &nodes[i]);
        }
        assert_true(wire_reader_done(&r));
        free(c);
        wire_buf_deinit(&b);
    }
}

/* The layout, byte by byte, as the spec's RING tables give it. */
static void test_ring_golden(void **state)
{
    (void)state;
    struct wire_ring_head h = {.version = 0x1122334455667788ull, .replicas = 2, .count = 1};
    struct tnode t;
    memset(&t, 0, sizeof(t));
    for (int k = 0; k < WIRE_NODE_ID_LEN; k++)
        t.id[k] = (uint8_t)(0xa0 + k);
    t.short_id = 0x0201;
    set_str(t.addr, &t.addr_len, "h:1");
    set_str(t.rack, &t.rack_len, "rk");
    t.state = 1;
    t.ntokens = 2;
    t.tokens[0] = 0x0807060504030201ull;
    t.tokens[1] = 0xf0e0d0c0b0a09080ull;
    struct wire_buf b;
    wire_buf_init(&b);
    wire_put_ring_head(&b, &h);
    struct wire_ring_node n = wnode_of(&t);
    wire_put_ring_node(&b, &n);
    assert_int_equal(b.err, ST_OK);

    uint8_t want[64];
    size_t w = 0;
    for (int i = 0; i < 8; i++)
        want[w++] = (uint8_t)(h.version >> (8 * i)); /* u64 LE */
    want[w++] = 2;                                   /* replicas */
    want[w++] = 1;                                   /* varint count */
    memcpy(want + w, t.id, 16);                      /* raw id */
    w += 16;
    want[w++] = 0x01; /* u16 LE short id */
    want[w++] = 0x02;
    want[w++] = 3; /* addr */
    memcpy(want + w, "h:1", 3);
    w += 3;
    want[w++] = 2; /* rack */
    memcpy(want + w, "rk", 2);
    w += 2;
    want[w++] = 1; /* state */
    want[w++] = 2; /* varint ntokens */
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 8; i++)
            want[w++] = (uint8_t)(t.tokens[k] >> (8 * i));
    assert_int_equal(b.len, w);
    assert_memory_equal(b.data, want, w);
    /* the smallest node is 30 bytes, as the head's count check assumes */
    assert_int_equal(16 + 2 + 1 + 1 + 1 + 1 + 8, 30);
    wire_buf_deinit(&b);
}

/* Every prefix of a valid RING body is refused by the whole decode, and so
 * is the body with any byte appended. */
static void test_ring_truncated_or_long(void **state)
{
    (void)state;
    struct wire_ring_head h = {.version = 9, .replicas = 3, .count = 4};
    struct wire_buf b;
    ring_body(&b, &h);
    assert_int_equal(ring_parse_all(b.data, b.len), WIRE_OK);
    for (size_t len = 0; len < b.len; len++)
        assert_int_equal(ring_parse_all(b.data, len), WIRE_MALFORMED);
    for (int extra = 1; extra <= 9; extra++) {
        uint8_t *longer = calloc(1, b.len + (size_t)extra);
        assert_non_null(longer);
        memcpy(longer, b.data, b.len);
        assert_int_equal(ring_parse_all(longer, b.len + (size_t)extra), WIRE_MALFORMED);
        /* the head and every node still read: only wire_reader_done sees it */
        struct wire_reader r;
        struct wire_ring_head got;
        assert_int_equal(wire_parse_ring_head(longer, b.len + (size_t)extra, &r, &got), WIRE_OK);
        for (uint32_t i = 0; i < got.count; i++) {
            struct wire_ring_node n;
            wire_get_ring_node(&r, &n);
            assert_false(r.bad);
        }
        assert_false(wire_reader_done(&r));
        free(longer);
    }
    wire_buf_deinit(&b);
}

/* ---- RING: bounds on parse ------------------------------------------------- */

/* A head written field by field, bypassing the composer's checks. */
static void raw_head(struct wire_buf *b, uint64_t version, uint8_t replicas, uint64_t count)
{
    wire_put_u64(b, version);
    wire_put_u8(b, replicas);
    wire_put_varint(b, count);
}

/* A node written field by field: any addr / rack length, state, token count
 * (the varint) and number of tokens actually present. */
static void raw_node(struct wire_buf *b, size_t addr_len, size_t rack_len, uint8_t state,
                     uint64_t ntokens, size_t present)
{
    static uint8_t filler[WIRE_ADDR_MAX + 8];
    memset(filler, 'x', sizeof(filler));
    uint8_t id[WIRE_NODE_ID_LEN];
    memset(id, 0x42, sizeof(id));
    wire_put_raw(b, id, sizeof(id));
    wire_put_u16(b, 7);
    wire_put_bytes(b, filler, addr_len);
    wire_put_bytes(b, filler, rack_len);
    wire_put_u8(b, state);
    wire_put_varint(b, ntokens);
    for (size_t k = 0; k < present; k++)
        wire_put_u64(b, 1000 + k);
}

/* What wire_parse_ring_head says about a head of replicas / count followed
 * by `tail` filler bytes. */
static enum wire_result head_only(uint8_t replicas, uint64_t count, size_t tail)
{
    struct wire_buf b;
    wire_buf_init(&b);
    raw_head(&b, 5, replicas, count);
    uint8_t *zeros = calloc(1, tail > 0 ? tail : 1);
    assert_non_null(zeros);
    wire_put_raw(&b, zeros, tail);
    free(zeros);
    assert_int_equal(b.err, ST_OK);
    uint8_t *c = copy_exact(b.data, b.len);
    struct wire_reader r;
    struct wire_ring_head h;
    memset(&h, 0xee, sizeof(h));
    enum wire_result res = wire_parse_ring_head(c, b.len, &r, &h);
    if (res == WIRE_OK) {
        assert_int_equal(h.replicas, replicas);
        assert_int_equal(h.count, count);
    } else {
        assert_int_equal(h.count, 0);
    }
    free(c);
    wire_buf_deinit(&b);
    return res;
}

static void test_ring_head_bounds(void **state)
{
    (void)state;
    /* replicas 1..64 */
    assert_int_equal(head_only(0, 0, 0), WIRE_MALFORMED);
    assert_int_equal(head_only(65, 0, 0), WIRE_MALFORMED);
    assert_int_equal(head_only(255, 0, 0), WIRE_MALFORMED);
    assert_int_equal(head_only(1, 0, 0), WIRE_OK);
    assert_int_equal(head_only(64, 0, 0), WIRE_OK);
    /* count: no more nodes than the body can hold at 30 bytes a node */
    assert_int_equal(head_only(3, 1, 29), WIRE_MALFORMED);
    assert_int_equal(head_only(3, 1, 30), WIRE_OK);
    assert_int_equal(head_only(3, 2, 59), WIRE_MALFORMED);
    assert_int_equal(head_only(3, 2, 60), WIRE_OK);
    assert_int_equal(head_only(3, 1000, 30 * 999), WIRE_MALFORMED);
    assert_int_equal(head_only(3, UINT32_MAX, 100), WIRE_MALFORMED);
    assert_int_equal(head_only(3, (uint64_t)UINT32_MAX + 1, 100), WIRE_MALFORMED); /* 2^32 */
    assert_int_equal(head_only(3, UINT64_MAX, 100), WIRE_MALFORMED);
    /* and never over WIRE_RING_NODES_MAX, whatever the body holds */
    assert_int_equal(head_only(3, WIRE_RING_NODES_MAX + 1, 30 * (WIRE_RING_NODES_MAX + 1)),
                     WIRE_MALFORMED);
    assert_int_equal(head_only(3, WIRE_RING_NODES_MAX, 30 * WIRE_RING_NODES_MAX), WIRE_OK);

    /* a short head: each length below 8 + 1 + 1 */
    struct wire_buf b;
    wire_buf_init(&b);
    raw_head(&b, 5, 3, 0);
    for (size_t len = 0; len < b.len; len++) {
        uint8_t *c = copy_exact(b.data, len);
        struct wire_reader r;
        struct wire_ring_head h;
        assert_int_equal(wire_parse_ring_head(c, len, &r, &h), WIRE_MALFORMED);
        free(c);
    }
    /* a count varint in a longer form than needed */
    wire_buf_clear(&b);
    wire_put_u64(&b, 5);
    wire_put_u8(&b, 3);
    wire_put_u8(&b, 0x80); /* 0 in two bytes */
    wire_put_u8(&b, 0x00);
    uint8_t *c = copy_exact(b.data, b.len);
    struct wire_reader r;
    struct wire_ring_head h;
    assert_int_equal(wire_parse_ring_head(c, b.len, &r, &h), WIRE_MALFORMED);
    free(c);
    wire_buf_deinit(&b);
}

/* A body of one valid head (replicas 3, `count`) then the node written by
 * `node` (and, if good_first, a valid node before it): the whole decode. */
static enum wire_result one_bad_node(uint64_t count, bool good_first, size_t addr_len,
                                     size_t rack_len, uint8_t state, uint64_t ntokens,
                                     size_t present)
{
    struct wire_buf b;
    wire_buf_init(&b);
    raw_head(&b, 5, 3, count);
    if (good_first) {
        struct wire_ring_node n = wnode_of(&nodes[0]);
        wire_put_ring_node(&b, &n);
    }
    raw_node(&b, addr_len, rack_len, state, ntokens, present);
    assert_int_equal(b.err, ST_OK);
    enum wire_result res = ring_parse_all(b.data, b.len);
    wire_buf_deinit(&b);
    return res;
}

static void test_ring_node_bounds(void **state)
{
    (void)state;
    for (int first = 0; first <= 1; first++) {
        uint64_t count = first ? 2 : 1;
        bool g = first != 0;
        /* the valid edges read */
        assert_int_equal(one_bad_node(count, g, 0, 0, 0, 1, 1), WIRE_OK);
        assert_int_equal(one_bad_node(count, g, WIRE_ADDR_MAX, WIRE_RACK_MAX, 2, 4, 4), WIRE_OK);
        assert_int_equal(
            one_bad_node(count, g, 10, 3, 1, WIRE_RING_VNODES_MAX, WIRE_RING_VNODES_MAX), WIRE_OK);
        /* tokens: 0, and 1025 with all of them present */
        assert_int_equal(one_bad_node(count, g, 10, 3, 0, 0, 0), WIRE_MALFORMED);
        assert_int_equal(one_bad_node(count, g, 10, 3, 0, 0, 1), WIRE_MALFORMED);
        assert_int_equal(
            one_bad_node(count, g, 10, 3, 0, WIRE_RING_VNODES_MAX + 1, WIRE_RING_VNODES_MAX + 1),
            WIRE_MALFORMED);
        assert_int_equal(one_bad_node(count, g, 10, 3, 0, UINT64_MAX, 4), WIRE_MALFORMED);
        /* state over 2 */
        assert_int_equal(one_bad_node(count, g, 10, 3, 3, 1, 1), WIRE_MALFORMED);
        assert_int_equal(one_bad_node(count, g, 10, 3, 255, 1, 1), WIRE_MALFORMED);
        /* addr and rack one over */
        assert_int_equal(one_bad_node(count, g, WIRE_ADDR_MAX + 1, 0, 0, 1, 1), WIRE_MALFORMED);
        assert_int_equal(one_bad_node(count, g, 0, WIRE_RACK_MAX + 1, 0, 1, 1), WIRE_MALFORMED);
        /* a truncated token list: one token missing, or a part of one */
        assert_int_equal(one_bad_node(count, g, 10, 3, 0, 4, 3), WIRE_MALFORMED);
        assert_int_equal(one_bad_node(count, g, 10, 3, 0, 2, 0), WIRE_MALFORMED);
        /* trailing bytes after the last node: a node more than count */
        assert_int_equal(one_bad_node(count - 1, g, 10, 3, 0, 1, 1), WIRE_MALFORMED);
    }

    /* A count the head cannot rule out (the nodes are big) but the body
     * does not hold: the last node's read fails. */
    struct wire_buf b;
    wire_buf_init(&b);
    raw_head(&b, 5, 3, 3);
    raw_node(&b, 100, 10, 0, 2, 2); /* ~150 bytes: 5 nodes' worth at 30 */
    raw_node(&b, 100, 10, 0, 2, 2);
    uint8_t *c = copy_exact(b.data, b.len);
    struct wire_reader r;
    struct wire_ring_head h;
    assert_int_equal(wire_parse_ring_head(c, b.len, &r, &h), WIRE_OK);
    assert_int_equal(h.count, 3);
    struct wire_ring_node n;
    wire_get_ring_node(&r, &n);
    assert_false(r.bad);
    assert_int_equal(n.addr_len, 100);
    assert_int_equal(n.rack_len, 10);
    assert_int_equal(n.ntokens, 2);
    assert_int_equal(wire_ring_token(&n, 0), 1000);
    assert_int_equal(wire_ring_token(&n, 1), 1001);
    wire_get_ring_node(&r, &n);
    assert_false(r.bad);
    wire_get_ring_node(&r, &n);
    assert_true(r.bad);
    assert_int_equal(n.ntokens, 0);
    assert_false(wire_reader_done(&r));
    /* once bad, every later node read is bad too */
    wire_get_ring_node(&r, &n);
    assert_true(r.bad);
    assert_int_equal(n.ntokens, 0);
    free(c);
    wire_buf_deinit(&b);
}

/* Tokens are read as written, little-endian, from the body (not aligned). */
static void test_ring_tokens_unaligned(void **state)
{
    (void)state;
    struct wire_buf b;
    wire_buf_init(&b);
    struct wire_ring_head h = {.version = 1, .replicas = 1, .count = 1};
    wire_put_ring_head(&b, &h);
    struct tnode t = nodes[0];
    set_str(t.addr, &t.addr_len, "a:1"); /* odd lengths: tokens at odd offsets */
    set_str(t.rack, &t.rack_len, "");
    t.ntokens = 5;
    for (uint32_t k = 0; k < 5; k++)
        t.tokens[k] = 0x0101010101010101ull * (k + 1) + k;
    struct wire_ring_node wn = wnode_of(&t);
    wire_put_ring_node(&b, &wn);
    assert_int_equal(b.err, ST_OK);
    /* the tokens are the body's last 40 bytes */
    for (uint32_t k = 0; k < 5; k++)
        assert_int_equal(get_le64(b.data + b.len - 40 + 8 * k), t.tokens[k]);
    uint8_t *c = copy_exact(b.data, b.len);
    struct wire_reader r;
    struct wire_ring_head got;
    assert_int_equal(wire_parse_ring_head(c, b.len, &r, &got), WIRE_OK);
    struct wire_ring_node n;
    wire_get_ring_node(&r, &n);
    assert_true(wire_reader_done(&r));
    assert_node_equal(&n, &t);
    assert_ptr_equal(n.tokens, c + b.len - 40);
    free(c);
    wire_buf_deinit(&b);
}

/* ---- RING: compose refuses invalid fields ---------------------------------- */

static void test_ring_compose_invalid(void **state)
{
    (void)state;
    struct wire_buf b;
    wire_buf_init(&b);
    size_t mark = wire_begin_frame(&b, WIRE_OP_PING, 0, 1);
    wire_compose_ping(&b, 1);
    assert_int_equal(wire_end_frame(&b, mark, WIRE_FRAME_MAX_DEFAULT), ST_OK);
    size_t good = b.len;

    static const struct wire_ring_head bad_heads[] = {
        {.version = 1, .replicas = 0, .count = 1},
        {.version = 1, .replicas = 65, .count = 1},
        {.version = 1, .replicas = 255, .count = 1},
        {.version = 1, .replicas = 3, .count = WIRE_RING_NODES_MAX + 1},
        {.version = 1, .replicas = 3, .count = UINT32_MAX},
    };
    for (size_t i = 0; i < sizeof(bad_heads) / sizeof(bad_heads[0]); i++) {
        mark = wire_begin_frame(&b, WIRE_OP_RING, WIRE_FLAG_RESPONSE, 2);
        wire_put_ring_head(&b, &bad_heads[i]);
        assert_int_equal(b.err, ST_INVAL);
        struct wire_ring_node n = wnode_of(&nodes[0]);
        wire_put_ring_node(&b, &n); /* a no-op: the error is sticky */
        assert_int_equal(wire_end_frame(&b, mark, WIRE_FRAME_MAX_DEFAULT), ST_INVAL);
        assert_int_equal(b.len, good);
        assert_int_equal(b.err, ST_OK);
    }

    for (int i = 0; i < 8; i++) {
        struct tnode t = nodes[1];
        switch (i) {
        case 0: t.addr_len = WIRE_ADDR_MAX + 1; break;
        case 1: t.rack_len = WIRE_RACK_MAX + 1; break;
        case 2: t.state = 3; break;
        case 3: t.state = 255; break;
        case 4: t.ntokens = 0; break;
        case 5: t.ntokens = WIRE_RING_VNODES_MAX + 1; break;
        case 6: t.ntokens = UINT32_MAX; break;
        case 7: t.addr_len = SIZE_MAX; break;
        }
        struct wire_ring_head h = {.version = 1, .replicas = 3, .count = 1};
        mark = wire_begin_frame(&b, WIRE_OP_RING, WIRE_FLAG_RESPONSE, 3);
        wire_put_ring_head(&b, &h);
        assert_int_equal(b.err, ST_OK);
        struct wire_ring_node n = wnode_of(&t);
        wire_put_ring_node(&b, &n);
        assert_int_equal(b.err, ST_INVAL);
        assert_int_equal(wire_end_frame(&b, mark, WIRE_FRAME_MAX_DEFAULT), ST_INVAL);
        assert_int_equal(b.len, good);
        assert_int_equal(b.err, ST_OK);
    }

    /* the edges compose */
    struct wire_ring_head h = {.version = 1, .replicas = 64, .count = 2};
    mark = wire_begin_frame(&b, WIRE_OP_RING, WIRE_FLAG_RESPONSE, 4);
    wire_put_ring_head(&b, &h);
    struct wire_ring_node n3 = wnode_of(&nodes[3]); /* 1024 tokens, no addr */
    struct wire_ring_node n4 = wnode_of(&nodes[4]); /* longest addr and rack */
    wire_put_ring_node(&b, &n3);
    wire_put_ring_node(&b, &n4);
    assert_int_equal(wire_end_frame(&b, mark, WIRE_FRAME_MAX_DEFAULT), ST_OK);
    struct wire_frame f;
    size_t need;
    assert_int_equal(
        wire_parse_frame(b.data + good, b.len - good, WIRE_FRAME_MAX_DEFAULT, &f, &need), WIRE_OK);
    assert_int_equal(f.id, 4);
    assert_int_equal(ring_parse_all(f.body, f.body_len), WIRE_OK);
    /* the frame before is untouched */
    assert_int_equal(wire_parse_frame(b.data, b.len, WIRE_FRAME_MAX_DEFAULT, &f, &need), WIRE_OK);
    assert_int_equal(f.opcode, WIRE_OP_PING);
    assert_int_equal(f.size, good);
    wire_buf_deinit(&b);
}

/* parse(body, len) says WIRE_MALFORMED for body with a byte more, and
 * for body less its last byte. */
static void assert_exact_length(const uint8_t *body, size_t len,
                                enum wire_result (*parse)(const uint8_t *body, size_t len))
{
    uint8_t *longer = calloc(1, len + 1);
    assert_non_null(longer);
    memcpy(longer, body, len);
    assert_int_equal(parse(longer, len + 1), WIRE_MALFORMED);
    free(longer);
    uint8_t *shorter = copy_exact(body, len - 1);
    assert_int_equal(parse(shorter, len - 1), WIRE_MALFORMED);
    free(shorter);
}

static enum wire_result parse_read_reply_only(const uint8_t *body, size_t len)
{
    bool found;
    struct wire_record rec;
    return wire_parse_read_reply(body, len, &found, &rec);
}

static enum wire_result parse_coord_write_only(const uint8_t *body, size_t len)
{
    uint8_t cl;
    struct wire_record rec;
    return wire_parse_coord_write(body, len, &cl, &rec);
}

/* ---- COORD_READ -------------------------------------------------------------- */

static uint8_t keybuf[WIRE_REC_KEY_MAX + 2];

static enum wire_result parse_coord_exact(const uint8_t *p, size_t n, uint8_t *cl,
                                          const uint8_t **key, size_t *key_len, uint8_t **copy)
{
    *copy = copy_exact(p, n);
    return wire_parse_coord_read(*copy, n, cl, key, key_len);
}

static void test_coord_read_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(keybuf); i++)
        keybuf[i] = (uint8_t)('A' + i % 26);
    static const size_t lens[] = {1, 2, 127, 128, WIRE_REC_KEY_MAX};
    for (uint8_t cl = WIRE_CL_ONE; cl <= WIRE_CL_ALL; cl++) {
        for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
            size_t klen = lens[li];
            struct wire_buf b;
            wire_buf_init(&b);
            size_t mark = wire_begin_frame(&b, WIRE_OP_COORD_READ, 0, 1000 + klen);
            wire_compose_coord_read(&b, cl, keybuf, klen);
            assert_int_equal(wire_end_frame(&b, mark, WIRE_FRAME_MAX_DEFAULT), ST_OK);
            /* layout: read level, varint key length, key */
            const uint8_t *body = b.data + WIRE_HEADER_LEN;
            size_t vlen = klen < 128 ? 1 : 2;
            assert_int_equal(b.len, WIRE_HEADER_LEN + 1 + vlen + klen);
            assert_int_equal(body[0], cl);
            if (klen < 128) {
                assert_int_equal(body[1], klen);
            } else {
                assert_int_equal(body[1], (klen & 0x7f) | 0x80);
                assert_int_equal(body[2], klen >> 7);
            }
            assert_memory_equal(body + 1 + vlen, keybuf, klen);

            uint8_t *c = copy_exact(b.data, b.len);
            struct wire_frame f;
            size_t need;
            assert_int_equal(wire_parse_frame(c, b.len, WIRE_FRAME_MAX_DEFAULT, &f, &need),
                             WIRE_OK);
            assert_int_equal(f.opcode, WIRE_OP_COORD_READ);
            assert_int_equal(f.flags, 0);
            assert_int_equal(f.id, 1000 + klen);
            uint8_t got_cl = 0;
            const uint8_t *key = NULL;
            size_t key_len = 0;
            assert_int_equal(wire_parse_coord_read(f.body, f.body_len, &got_cl, &key, &key_len),
                             WIRE_OK);
            assert_int_equal(got_cl, cl);
            assert_int_equal(key_len, klen);
            assert_memory_equal(key, keybuf, klen);
            assert_ptr_equal(key, f.body + 1 + vlen); /* a view, not a copy */
            free(c);
            wire_buf_deinit(&b);
        }
    }
}

/* The response is a READ data response: found, tombstone-free, or none. */
static void test_coord_read_reply(void **state)
{
    (void)state;
    struct wire_record rec = {.key = (const uint8_t *)"user:1",
                              .key_len = 6,
                              .value = (const uint8_t *)"v-1",
                              .value_len = 3,
                              .flags = 0x01020304,
                              .expiry = 1700000000,
                              .version = {0xabcdef, 3},
                              .tombstone = false};
    for (int found = 0; found <= 1; found++) {
        struct wire_buf b;
        wire_buf_init(&b);
        size_t mark = wire_begin_frame(&b, WIRE_OP_COORD_READ, WIRE_FLAG_RESPONSE, 42);
        wire_compose_read_reply(&b, found ? &rec : NULL);
        assert_int_equal(wire_end_frame(&b, mark, WIRE_FRAME_MAX_DEFAULT), ST_OK);
        uint8_t *c = copy_exact(b.data, b.len);
        struct wire_frame f;
        size_t need;
        assert_int_equal(wire_parse_frame(c, b.len, WIRE_FRAME_MAX_DEFAULT, &f, &need), WIRE_OK);
        assert_int_equal(f.flags, WIRE_FLAG_RESPONSE);
        bool got_found = !found;
        struct wire_record got;
        memset(&got, 0, sizeof(got));
        assert_int_equal(wire_parse_read_reply(f.body, f.body_len, &got_found, &got), WIRE_OK);
        assert_int_equal(got_found, found != 0);
        if (found) {
            assert_int_equal(got.key_len, rec.key_len);
            assert_memory_equal(got.key, rec.key, rec.key_len);
            assert_int_equal(got.value_len, rec.value_len);
            assert_memory_equal(got.value, rec.value, rec.value_len);
            assert_int_equal(got.flags, rec.flags);
            assert_int_equal(got.expiry, rec.expiry);
            assert_int_equal(got.version.hlc, rec.version.hlc);
            assert_int_equal(got.version.node, rec.version.node);
            assert_false(got.tombstone);
        } else {
            assert_int_equal(f.body_len, 1);
        }
        /* a reply with a byte more, or one less, is malformed */
        assert_exact_length(f.body, f.body_len, parse_read_reply_only);
        free(c);
        wire_buf_deinit(&b);
    }
}

/* What wire_parse_coord_read says about a body written field by field. */
static enum wire_result coord_raw(uint8_t cl, size_t key_len, size_t trailing)
{
    struct wire_buf b;
    wire_buf_init(&b);
    wire_put_u8(&b, cl);
    wire_put_bytes(&b, keybuf, key_len);
    for (size_t i = 0; i < trailing; i++)
        wire_put_u8(&b, (uint8_t)i);
    uint8_t *c;
    uint8_t got_cl;
    const uint8_t *key;
    size_t got_len = 99;
    enum wire_result r = parse_coord_exact(b.data, b.len, &got_cl, &key, &got_len, &c);
    if (r == WIRE_OK) {
        assert_int_equal(got_cl, cl);
        assert_int_equal(got_len, key_len);
    }
    free(c);
    wire_buf_deinit(&b);
    return r;
}

static void test_coord_read_bounds(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(keybuf); i++)
        keybuf[i] = (uint8_t)('a' + i % 26);
    /* read level 1..3 */
    assert_int_equal(coord_raw(0, 5, 0), WIRE_MALFORMED);
    assert_int_equal(coord_raw(WIRE_CL_ANY, 5, 0), WIRE_MALFORMED); /* 4: writes only */
    assert_int_equal(coord_raw(255, 5, 0), WIRE_MALFORMED);
    assert_int_equal(coord_raw(1, 5, 0), WIRE_OK);
    assert_int_equal(coord_raw(3, 5, 0), WIRE_OK);
    /* key 1..250 bytes */
    assert_int_equal(coord_raw(1, 0, 0), WIRE_MALFORMED);
    assert_int_equal(coord_raw(1, WIRE_REC_KEY_MAX + 1, 0), WIRE_MALFORMED);
    assert_int_equal(coord_raw(1, 1, 0), WIRE_OK);
    assert_int_equal(coord_raw(1, WIRE_REC_KEY_MAX, 0), WIRE_OK);
    /* trailing bytes */
    assert_int_equal(coord_raw(1, 5, 1), WIRE_MALFORMED);
    assert_int_equal(coord_raw(2, WIRE_REC_KEY_MAX, 7), WIRE_MALFORMED);

    /* every prefix of a valid body */
    struct wire_buf b;
    wire_buf_init(&b);
    wire_compose_coord_read(&b, WIRE_CL_QUORUM, keybuf, 200);
    assert_int_equal(b.err, ST_OK);
    for (size_t len = 0; len < b.len; len++) {
        uint8_t *c;
        uint8_t cl;
        const uint8_t *key;
        size_t key_len;
        assert_int_equal(parse_coord_exact(b.data, len, &cl, &key, &key_len, &c), WIRE_MALFORMED);
        free(c);
    }
    /* a key length longer than the body, and one in a longer form */
    wire_buf_clear(&b);
    wire_put_u8(&b, 1);
    wire_put_varint(&b, 10);
    wire_put_raw(&b, keybuf, 9);
    uint8_t *c;
    uint8_t cl;
    const uint8_t *key;
    size_t key_len;
    assert_int_equal(parse_coord_exact(b.data, b.len, &cl, &key, &key_len, &c), WIRE_MALFORMED);
    free(c);
    wire_buf_clear(&b);
    wire_put_u8(&b, 1);
    wire_put_u8(&b, 0x85); /* 5 in two bytes */
    wire_put_u8(&b, 0x00);
    wire_put_raw(&b, keybuf, 5);
    assert_int_equal(parse_coord_exact(b.data, b.len, &cl, &key, &key_len, &c), WIRE_MALFORMED);
    free(c);
    wire_buf_deinit(&b);
}

static void test_coord_read_compose_invalid(void **state)
{
    (void)state;
    struct wire_buf b;
    wire_buf_init(&b);
    size_t mark = wire_begin_frame(&b, WIRE_OP_PING, 0, 1);
    wire_compose_ping(&b, 1);
    assert_int_equal(wire_end_frame(&b, mark, WIRE_FRAME_MAX_DEFAULT), ST_OK);
    size_t good = b.len;
    static const struct {
        uint8_t cl;
        size_t len;
    } bad[] = {
        {0, 5}, {WIRE_CL_ANY, 5}, {255, 5}, {1, 0}, {1, WIRE_REC_KEY_MAX + 1}, {2, SIZE_MAX},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mark = wire_begin_frame(&b, WIRE_OP_COORD_READ, 0, 2);
        wire_compose_coord_read(&b, bad[i].cl, keybuf, bad[i].len);
        assert_int_equal(b.err, ST_INVAL);
        assert_int_equal(b.len, good + WIRE_HEADER_LEN); /* nothing of the body */
        assert_int_equal(wire_end_frame(&b, mark, WIRE_FRAME_MAX_DEFAULT), ST_INVAL);
        assert_int_equal(b.len, good);
        assert_int_equal(b.err, ST_OK);
    }
    /* a composer after an error adds nothing, even a valid one */
    mark = wire_begin_frame(&b, WIRE_OP_COORD_READ, 0, 3);
    wire_compose_coord_read(&b, 0, keybuf, 5);
    wire_compose_coord_read(&b, 1, keybuf, 5);
    assert_int_equal(wire_end_frame(&b, mark, WIRE_FRAME_MAX_DEFAULT), ST_INVAL);
    assert_int_equal(b.len, good);
    /* and the buffer works afterwards */
    mark = wire_begin_frame(&b, WIRE_OP_COORD_READ, 0, 4);
    wire_compose_coord_read(&b, WIRE_CL_ALL, keybuf, WIRE_REC_KEY_MAX);
    assert_int_equal(wire_end_frame(&b, mark, WIRE_FRAME_MAX_DEFAULT), ST_OK);
    struct wire_frame f;
    size_t need;
    assert_int_equal(
        wire_parse_frame(b.data + good, b.len - good, WIRE_FRAME_MAX_DEFAULT, &f, &need), WIRE_OK);
    assert_int_equal(f.id, 4);
    uint8_t cl;
    const uint8_t *key;
    size_t key_len;
    assert_int_equal(wire_parse_coord_read(f.body, f.body_len, &cl, &key, &key_len), WIRE_OK);
    assert_int_equal(cl, WIRE_CL_ALL);
    assert_int_equal(key_len, WIRE_REC_KEY_MAX);
    wire_buf_deinit(&b);
}

/* ---- COORD_WRITE ------------------------------------------------------------- */

/* A record at every level, a tombstone, and the largest key: the body is
 * the level, then the RECORD; what is parsed is what was written. */
static void test_coord_write_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(keybuf); i++)
        keybuf[i] = (uint8_t)('A' + i % 26);
    struct wire_record recs[] = {
        {.key = (const uint8_t *)"user:1",
         .key_len = 6,
         .value = (const uint8_t *)"v-1",
         .value_len = 3,
         .flags = 0x01020304,
         .expiry = 1700000000,
         .version = {0xabcdef, 3}},
        {.key = keybuf, .key_len = WIRE_REC_KEY_MAX, .version = {7, 0xffff}, .tombstone = true},
    };
    for (uint8_t cl = WIRE_CL_ONE; cl <= WIRE_CL_ANY; cl++) {
        for (size_t i = 0; i < sizeof(recs) / sizeof(recs[0]); i++) {
            struct wire_buf b, rec_only;
            wire_buf_init(&b);
            wire_buf_init(&rec_only);
            size_t mark = wire_begin_frame(&b, WIRE_OP_COORD_WRITE, 0, 77);
            wire_compose_coord_write(&b, cl, &recs[i]);
            assert_int_equal(wire_end_frame(&b, mark, WIRE_FRAME_MAX_DEFAULT), ST_OK);
            wire_put_record(&rec_only, &recs[i]);
            assert_int_equal(b.len, WIRE_HEADER_LEN + 1 + rec_only.len);
            assert_int_equal(b.data[WIRE_HEADER_LEN], cl);
            assert_memory_equal(b.data + WIRE_HEADER_LEN + 1, rec_only.data, rec_only.len);

            uint8_t *c = copy_exact(b.data, b.len);
            struct wire_frame f;
            size_t need;
            assert_int_equal(wire_parse_frame(c, b.len, WIRE_FRAME_MAX_DEFAULT, &f, &need),
                             WIRE_OK);
            assert_int_equal(f.opcode, WIRE_OP_COORD_WRITE);
            uint8_t got_cl = 0;
            struct wire_record got;
            memset(&got, 0, sizeof(got));
            assert_int_equal(wire_parse_coord_write(f.body, f.body_len, &got_cl, &got), WIRE_OK);
            assert_int_equal(got_cl, cl);
            assert_int_equal(got.key_len, recs[i].key_len);
            assert_memory_equal(got.key, recs[i].key, recs[i].key_len);
            assert_int_equal(got.value_len, recs[i].value_len);
            if (recs[i].value_len > 0)
                assert_memory_equal(got.value, recs[i].value, recs[i].value_len);
            assert_int_equal(got.flags, recs[i].flags);
            assert_int_equal(got.expiry, recs[i].expiry);
            assert_int_equal(got.version.hlc, recs[i].version.hlc);
            assert_int_equal(got.version.node, recs[i].version.node);
            assert_int_equal(got.tombstone, recs[i].tombstone);
            /* a byte more or one less is malformed */
            assert_exact_length(f.body, f.body_len, parse_coord_write_only);
            free(c);
            wire_buf_deinit(&b);
            wire_buf_deinit(&rec_only);
        }
    }
}

/* Levels outside 1..4 and invalid records are refused on both sides. */
static void test_coord_write_bounds(void **state)
{
    (void)state;
    struct wire_record rec = {.key = (const uint8_t *)"k", .key_len = 1, .version = {1, 1}};
    static const uint8_t bad_cl[] = {0, WIRE_CL_ANY + 1, 255};
    for (size_t i = 0; i < sizeof(bad_cl); i++) {
        struct wire_buf b;
        wire_buf_init(&b);
        wire_compose_coord_write(&b, bad_cl[i], &rec);
        assert_int_equal(b.err, ST_INVAL);
        wire_buf_deinit(&b);
        /* written field by field, the parser refuses it too */
        wire_buf_init(&b);
        wire_put_u8(&b, bad_cl[i]);
        wire_put_record(&b, &rec);
        uint8_t *c = copy_exact(b.data, b.len);
        uint8_t cl;
        struct wire_record got;
        assert_int_equal(wire_parse_coord_write(c, b.len, &cl, &got), WIRE_MALFORMED);
        free(c);
        wire_buf_deinit(&b);
    }
    /* a tombstone with a value, an empty key: not composed */
    struct wire_record bad[] = {
        {.key = (const uint8_t *)"k",
         .key_len = 1,
         .value = (const uint8_t *)"v",
         .value_len = 1,
         .tombstone = true},
        {.key = (const uint8_t *)"", .key_len = 0},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct wire_buf b;
        wire_buf_init(&b);
        wire_compose_coord_write(&b, WIRE_CL_ONE, &bad[i]);
        assert_int_equal(b.err, ST_INVAL);
        wire_buf_deinit(&b);
    }
    /* a COORD_READ body is no COORD_WRITE */
    struct wire_buf b;
    wire_buf_init(&b);
    wire_compose_coord_read(&b, WIRE_CL_ONE, (const uint8_t *)"k", 1);
    uint8_t *c = copy_exact(b.data, b.len);
    uint8_t cl;
    struct wire_record got;
    assert_int_equal(wire_parse_coord_write(c, b.len, &cl, &got), WIRE_MALFORMED);
    free(c);
    wire_buf_deinit(&b);
}

/* ---- Bodies of one kind given to the other parser -------------------------- */

/* A COORD_READ request is no RING answer and the reverse; a READ reply is
 * neither. (A confused peer's worst: the right frame, the wrong body.) */
static void test_cross_parsers(void **state)
{
    (void)state;
    struct wire_buf ring;
    struct wire_ring_head h = {.version = 1, .replicas = 1, .count = 1};
    ring_body(&ring, &h);
    uint8_t *c;
    uint8_t cl;
    const uint8_t *key;
    size_t key_len;
    assert_int_equal(parse_coord_exact(ring.data, ring.len, &cl, &key, &key_len, &c),
                     WIRE_MALFORMED);
    free(c);

    struct wire_buf coord;
    wire_buf_init(&coord);
    wire_compose_coord_read(&coord, 1, (const uint8_t *)"k", 1);
    assert_int_equal(ring_parse_all(coord.data, coord.len), WIRE_MALFORMED);
    bool found;
    struct wire_record rec;
    c = copy_exact(ring.data, ring.len);
    assert_int_equal(wire_parse_read_reply(c, ring.len, &found, &rec), WIRE_MALFORMED);
    free(c);
    wire_buf_deinit(&ring);
    wire_buf_deinit(&coord);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_round_trip),
        cmocka_unit_test(test_ring_golden),
        cmocka_unit_test(test_ring_truncated_or_long),
        cmocka_unit_test(test_ring_head_bounds),
        cmocka_unit_test(test_ring_node_bounds),
        cmocka_unit_test(test_ring_tokens_unaligned),
        cmocka_unit_test(test_ring_compose_invalid),
        cmocka_unit_test(test_coord_read_round_trip),
        cmocka_unit_test(test_coord_read_reply),
        cmocka_unit_test(test_coord_read_bounds),
        cmocka_unit_test(test_coord_read_compose_invalid),
        cmocka_unit_test(test_coord_write_round_trip),
        cmocka_unit_test(test_coord_write_bounds),
        cmocka_unit_test(test_cross_parsers),
    };
    return cmocka_run_group_tests(tests, setup_nodes, NULL);
}
