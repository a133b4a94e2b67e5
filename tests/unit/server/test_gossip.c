/*
 * test_gossip.c - membership and gossip of server/gossip.c: the body codec
 * (round trips, every truncation, rule violations, random bytes, bit
 * flips), the merge rule, our own state, peer choice, ring extraction, and
 * simulated clusters of gossip instances exchanging bodies in memory with
 * scripted time (convergence, restarts, failure detection, other clusters,
 * 100 nodes, bodies over the budget).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/phi.h"
#include "common/ring.h"
#include "common/wire.h"
#include "server/gossip.h"

#define CLUSTER "test-cluster"
#define T0 UINT64_C(1000000) /* monotonic ms the simulations start at */

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static void make_id(uint32_t i, uint8_t id[GOSSIP_ID_LEN])
{
    uint64_t s = UINT64_C(0xC0FFEE) + i;
    for (size_t k = 0; k < GOSSIP_ID_LEN; k += 8) {
        uint64_t v = mix(&s);
        memcpy(id + k, &v, 8);
    }
}

static void le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static struct gossip *make(const char *addr, uint32_t idx, uint64_t gen, const char *const *seeds,
                           size_t nseeds)
{
    struct gossip_config cfg = {0};
    cfg.cluster = CLUSTER;
    make_id(idx, cfg.id);
    cfg.short_id = (uint16_t)(idx + 1);
    cfg.generation = gen;
    cfg.addr = addr;
    cfg.seeds = seeds;
    cfg.nseeds = nseeds;
    cfg.rng_seed = 77 + idx;
    struct gossip *g = NULL;
    assert_int_equal(gossip_create(&g, &cfg), ST_OK);
    assert_non_null(g);
    return g;
}

static bool views_equal(const struct gossip *a, const struct gossip *b);

/* ---- Crafting states ----------------------------------------------------- */

/* A state under construction with its own value storage. */
struct craft {
    struct gossip_state s;
    uint8_t buf[GOSSIP_APP_SLOTS][GOSSIP_VALUE_MAX];
};

static void craft_init(struct craft *c, uint32_t idx, uint16_t short_id, uint64_t gen,
                       uint64_t from, uint64_t hb)
{
    memset(&c->s, 0, sizeof(c->s));
    make_id(idx, c->s.id);
    c->s.short_id = short_id;
    c->s.generation = gen;
    c->s.from = from;
    c->s.heartbeat = hb;
}

/* Adds an app state; keys must be added in ascending order. */
static void craft_app(struct craft *c, uint8_t key, uint64_t version, const void *v, size_t len)
{
    struct gossip_app_value *a = &c->s.apps[c->s.napps++];
    memcpy(c->buf[key], v, len);
    a->key = key;
    a->version = version;
    a->value = c->buf[key];
    a->len = len;
}

static void craft_status(struct craft *c, uint64_t version, uint8_t status)
{
    craft_app(c, GOSSIP_APP_STATUS, version, &status, 1);
}

static void craft_str(struct craft *c, uint8_t key, uint64_t version, const char *s)
{
    craft_app(c, key, version, s, strlen(s));
}

static void craft_tokens(struct craft *c, uint64_t version, uint64_t seed, size_t n)
{
    uint8_t v[8 * RING_MAX_VNODES];
    for (size_t i = 0; i < n; i++)
        le64(v + 8 * i, mix(&seed));
    craft_app(c, GOSSIP_APP_TOKENS, version, v, 8 * n);
}

/* An ACK2 body holding the given states (sorted by the caller). */
static void ack2_body(struct wire_buf *b, const char *cluster, struct craft **cs, size_t n)
{
    wire_buf_clear(b);
    wire_put_bytes(b, cluster, strlen(cluster));
    wire_put_varint(b, n);
    for (size_t i = 0; i < n; i++)
        gossip_put_state(b, &cs[i]->s);
    assert_int_equal(b->err, ST_OK);
}

/* Feeds one state to g through an ACK2. */
static enum gossip_result inject(struct gossip *g, struct craft *c, uint64_t now)
{
    struct wire_buf b;
    wire_buf_init(&b);
    ack2_body(&b, CLUSTER, &c, 1);
    enum gossip_result r = gossip_handle_ack2(g, b.data, b.len, now);
    wire_buf_deinit(&b);
    return r;
}

/* A plain peer: status, address, tokens. */
static struct craft *peer_state(uint32_t idx, uint64_t gen, uint64_t hb, uint8_t status,
                                size_t ntokens)
{
    struct craft *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    char addr[32];
    snprintf(addr, sizeof(addr), "p%u:7311", idx);
    craft_init(c, idx, (uint16_t)(idx + 1), gen, 0, hb);
    if (status != 0)
        craft_status(c, 1, status);
    craft_str(c, GOSSIP_APP_ADDR, 2, addr);
    if (ntokens > 0)
        craft_tokens(c, 3, idx * 1000 + gen, ntokens);
    return c;
}

/* ---- Configuration and our own state ------------------------------------ */

static void test_config(void **state)
{
    (void)state;
    struct gossip_config cfg = {0};
    struct gossip *g = (struct gossip *)&cfg; /* must be NULLed on failure */
    cfg.cluster = CLUSTER;
    cfg.addr = "a:1";
    make_id(0, cfg.id);
    assert_int_equal(gossip_create(&g, &cfg), ST_OK);
    gossip_destroy(&g);
    assert_null(g);
    gossip_destroy(&g);
    gossip_destroy(NULL);

    char big[WIRE_ADDR_MAX + 2];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    const char *seeds[GOSSIP_MAX_SEEDS + 1];
    for (size_t i = 0; i <= GOSSIP_MAX_SEEDS; i++)
        seeds[i] = "s:1";
    const char *const empty_seed[1] = {""};
    struct phi_options bad_phi;
    phi_options_default(&bad_phi);
    bad_phi.threshold = -1;

    for (int k = 0; k < 10; k++) {
        struct gossip_config c = cfg;
        switch (k) {
        case 0: c.cluster = ""; break;
        case 1: c.cluster = NULL; break;
        case 2: c.cluster = big; break; /* over WIRE_CLUSTER_MAX too */
        case 3: c.addr = ""; break;
        case 4: c.addr = big; break;
        case 5:
            c.seeds = seeds;
            c.nseeds = GOSSIP_MAX_SEEDS + 1;
            break;
        case 6:
            c.seeds = empty_seed;
            c.nseeds = 1;
            break;
        case 7: c.max_body = GOSSIP_BODY_MIN - 1; break;
        case 8: c.max_body = GOSSIP_BODY_MAX + 1; break;
        case 9: c.phi = &bad_phi; break;
        }
        g = (struct gossip *)&cfg;
        if (gossip_create(&g, &c) != ST_INVAL)
            fail_msg("config case %d accepted", k);
        assert_null(g);
    }
    struct gossip_config c = cfg;
    c.seeds = seeds;
    c.nseeds = GOSSIP_MAX_SEEDS;
    c.max_body = GOSSIP_BODY_MIN;
    assert_int_equal(gossip_create(&g, &c), ST_OK);
    gossip_destroy(&g);

    assert_string_equal(gossip_status_name(GOSSIP_STATUS_NORMAL), "normal");
    assert_string_equal(gossip_status_name(GOSSIP_STATUS_REPLACING), "replacing");
    assert_string_equal(gossip_status_name((enum gossip_status)77), "other");
    assert_string_equal(gossip_result_name(GOSSIP_MALFORMED), "malformed");
    assert_string_equal(gossip_result_name((enum gossip_result)77), "unknown");
}

static void test_local_state(void **state)
{
    (void)state;
    struct gossip *g = make("n0:7311", 0, 5, NULL, 0);
    uint8_t id[GOSSIP_ID_LEN];
    make_id(0, id);
    struct gossip_peer p;
    assert_int_equal(gossip_count(g), 1);
    assert_true(gossip_find(g, id, &p));
    assert_true(p.self);
    assert_int_equal(p.generation, 5);
    assert_int_equal(p.short_id, 1);
    assert_int_equal(p.heartbeat, 1);
    assert_int_equal(p.versions[GOSSIP_APP_ADDR], 2);
    assert_int_equal(p.max_version, 2);
    assert_string_equal(p.addr, "n0:7311");
    assert_int_equal(p.status, GOSSIP_STATUS_NONE);
    assert_string_equal(p.rack, "");
    assert_null(p.tokens);

    uint64_t rv = gossip_ring_version(g);
    assert_int_equal(gossip_set_status(g, GOSSIP_STATUS_NORMAL, NULL), ST_OK);
    assert_int_equal(gossip_set_status(g, GOSSIP_STATUS_NORMAL, NULL), ST_OK); /* no change */
    assert_true(gossip_find(g, id, &p));
    assert_int_equal(p.versions[GOSSIP_APP_STATUS], 3);
    assert_int_equal(p.status, GOSSIP_STATUS_NORMAL);
    assert_int_equal(gossip_ring_version(g), rv); /* no tokens yet: not in the ring */

    uint64_t toks[3] = {10, 20, 30};
    assert_int_equal(gossip_set_tokens(g, toks, 3), ST_OK);
    assert_int_equal(gossip_ring_version(g), rv + 1);
    assert_int_equal(gossip_set_tokens(g, toks, 3), ST_OK);
    assert_int_equal(gossip_ring_version(g), rv + 1);
    assert_int_equal(gossip_set_load(g, 12345), ST_OK);
    assert_int_equal(gossip_set_schema(g, 99), ST_OK);
    assert_int_equal(gossip_set_protocol(g, 1), ST_OK);
    assert_int_equal(gossip_set_memcached_addr(g, "n0:11311"), ST_OK);
    assert_int_equal(gossip_ring_version(g), rv + 1); /* none of those place keys */
    assert_int_equal(gossip_set_rack(g, "r1"), ST_OK);
    assert_int_equal(gossip_ring_version(g), rv + 2);

    assert_true(gossip_find(g, id, &p));
    assert_int_equal(p.ntokens, 3);
    assert_int_equal(p.tokens[2], 30);
    assert_int_equal(p.load, 12345);
    assert_int_equal(p.schema, 99);
    assert_int_equal(p.protocol, 1);
    assert_string_equal(p.mc_addr, "n0:11311");
    assert_string_equal(p.rack, "r1");
    assert_int_equal(p.max_version, 9);

    /* Invalid values are refused and change nothing. */
    assert_int_equal(gossip_set_status(g, GOSSIP_STATUS_NONE, NULL), ST_INVAL);
    assert_int_equal(gossip_set_status(g, GOSSIP_STATUS_OTHER, NULL), ST_INVAL);
    assert_int_equal(gossip_set_status(g, GOSSIP_STATUS_REPLACING, NULL), ST_INVAL);
    uint64_t many[RING_MAX_VNODES + 1] = {0};
    assert_int_equal(gossip_set_tokens(g, many, RING_MAX_VNODES + 1), ST_INVAL);
    assert_int_equal(gossip_set_protocol(g, 0), ST_INVAL);
    char rack[RING_RACK_MAX + 2];
    memset(rack, 'r', sizeof(rack) - 1);
    rack[sizeof(rack) - 1] = 0;
    assert_int_equal(gossip_set_rack(g, rack), ST_INVAL);
    assert_int_equal(gossip_set_app(g, GOSSIP_APP_SLOTS, "x", 1), ST_INVAL);
    assert_int_equal(gossip_set_app(g, GOSSIP_APP_ADDR, "a\0b", 3), ST_INVAL);
    assert_int_equal(gossip_set_app(g, GOSSIP_APP_ADDR, "", 0), ST_INVAL);
    assert_int_equal(gossip_set_app(g, GOSSIP_APP_LOAD, "1234567", 7), ST_INVAL);
    assert_true(gossip_find(g, id, &p));
    assert_int_equal(p.max_version, 9);

    /* A later key is ours to set too (carried by every node). */
    assert_int_equal(gossip_set_app(g, 12, "future", 6), ST_OK);
    const uint8_t *v;
    size_t len;
    uint64_t ver;
    assert_true(gossip_app_value(g, id, 12, &v, &len, &ver));
    assert_int_equal(len, 6);
    assert_memory_equal(v, "future", 6);
    assert_int_equal(ver, 10);
    assert_false(gossip_app_value(g, id, GOSSIP_APP_SLOTS, &v, &len, &ver));

    uint8_t other[GOSSIP_ID_LEN];
    make_id(1, other);
    assert_int_equal(gossip_set_status(g, GOSSIP_STATUS_REPLACING, other), ST_OK);
    assert_true(gossip_find(g, id, &p));
    assert_int_equal(p.status, GOSSIP_STATUS_REPLACING);
    assert_memory_equal(p.replacing, other, GOSSIP_ID_LEN);
    assert_int_equal(gossip_ring_version(g), rv + 3); /* left the ring */

    /* Ticks take the next version as heartbeat. */
    struct gossip_target t[GOSSIP_MAX_TARGETS];
    assert_int_equal(gossip_tick(g, T0, t), 0); /* nobody to talk to */
    assert_true(gossip_find(g, id, &p));
    assert_int_equal(p.heartbeat, 12);
    assert_int_equal(p.max_version, 12);

    assert_int_equal(gossip_peer_state(g, id, T0 + 1000000), PHI_UP);
    assert_true(gossip_peer_phi(g, id, T0 + 1000000) == 0.0);
    assert_int_equal(gossip_peer_state(g, other, T0), PHI_DOWN);
    assert_false(gossip_find(g, other, &p));
    gossip_destroy(&g);
}

/* ---- Codec ----------------------------------------------------------------- */

static void test_codec_roundtrip(void **state)
{
    (void)state;
    struct wire_buf b;
    wire_buf_init(&b);

    /* SYN */
    struct gossip_digest ds[3];
    for (uint32_t i = 0; i < 3; i++) {
        make_id(0, ds[i].id);
        ds[i].id[0] = (uint8_t)i; /* ascending */
        ds[i].generation = UINT64_MAX - i;
        ds[i].version = i == 2 ? UINT64_MAX : i;
    }
    wire_put_bytes(&b, CLUSTER, strlen(CLUSTER));
    wire_put_varint(&b, 3);
    size_t expect = 1 + strlen(CLUSTER) + 1;
    for (size_t i = 0; i < 3; i++) {
        gossip_put_digest(&b, &ds[i]);
        expect += gossip_digest_size(&ds[i]);
    }
    assert_int_equal(b.len, expect);
    assert_int_equal(gossip_digest_size(&ds[2]), 16 + 8 + 10);
    struct gossip_msg m;
    assert_int_equal(gossip_parse_syn(b.data, b.len, &m), WIRE_OK);
    assert_int_equal(m.cluster_len, strlen(CLUSTER));
    assert_memory_equal(m.cluster, CLUSTER, m.cluster_len);
    assert_int_equal(m.ndigests, 3);
    assert_int_equal(m.nstates, 0);
    for (size_t i = 0; i < 3; i++) {
        struct gossip_digest d;
        gossip_get_digest(&m.digests, &d);
        assert_memory_equal(&d, &ds[i], sizeof(d));
    }
    assert_true(wire_reader_done(&m.digests));
    /* A SYN is not an ACK2 and the other way round. */
    assert_int_equal(gossip_parse_ack2(b.data, b.len, &m), WIRE_MALFORMED);

    /* ACK with the largest possible state and an ordinary one. */
    struct craft *big = calloc(1, sizeof(*big));
    assert_non_null(big);
    craft_init(big, 1, 7, UINT64_MAX, UINT64_MAX - 100, UINT64_MAX);
    big->s.id[0] = 0;
    uint8_t fill[GOSSIP_VALUE_MAX];
    memset(fill, 'v', sizeof(fill));
    fill[0] = 200; /* a status code this build does not know: any length */
    craft_app(big, GOSSIP_APP_STATUS, UINT64_MAX, fill, GOSSIP_VALUE_MAX);
    craft_app(big, GOSSIP_APP_ADDR, UINT64_MAX, fill + 1, WIRE_ADDR_MAX);
    craft_app(big, GOSSIP_APP_MC_ADDR, UINT64_MAX, fill + 1, WIRE_ADDR_MAX);
    craft_app(big, GOSSIP_APP_RACK, UINT64_MAX, fill + 1, RING_RACK_MAX);
    craft_tokens(big, UINT64_MAX, 5, RING_MAX_VNODES);
    craft_app(big, GOSSIP_APP_LOAD, UINT64_MAX, fill, 8);
    craft_app(big, GOSSIP_APP_SCHEMA, UINT64_MAX, fill, 8);
    craft_app(big, GOSSIP_APP_PROTOCOL, UINT64_MAX, fill + 1, 1);
    for (uint8_t k = GOSSIP_APP_KNOWN; k < GOSSIP_APP_SLOTS; k++)
        craft_app(big, k, UINT64_MAX, fill, GOSSIP_VALUE_MAX);
    struct craft *small = peer_state(2, 3, 9, GOSSIP_STATUS_NORMAL, 4);
    small->s.id[0] = 1;

    wire_buf_clear(&b);
    wire_put_bytes(&b, CLUSTER, strlen(CLUSTER));
    wire_put_varint(&b, 2);
    size_t at = b.len;
    gossip_put_state(&b, &big->s);
    assert_int_equal(b.len - at, gossip_state_size(&big->s));
    at = b.len;
    gossip_put_state(&b, &small->s);
    assert_int_equal(b.len - at, gossip_state_size(&small->s));
    wire_put_varint(&b, 1);
    gossip_put_digest(&b, &ds[0]);
    assert_int_equal(b.err, ST_OK);
    assert_int_equal(gossip_state_size(&big->s), 83276); /* the bound gossip.h states */

    assert_int_equal(gossip_parse_ack(b.data, b.len, &m), WIRE_OK);
    assert_int_equal(m.nstates, 2);
    assert_int_equal(m.ndigests, 1);
    struct gossip_state s;
    gossip_get_state(&m.states, &s);
    assert_memory_equal(s.id, big->s.id, GOSSIP_ID_LEN);
    assert_int_equal(s.generation, UINT64_MAX);
    assert_int_equal(s.from, UINT64_MAX - 100);
    assert_int_equal(s.napps, GOSSIP_APP_SLOTS);
    for (size_t i = 0; i < s.napps; i++) {
        assert_int_equal(s.apps[i].key, big->s.apps[i].key);
        assert_int_equal(s.apps[i].len, big->s.apps[i].len);
        assert_memory_equal(s.apps[i].value, big->s.apps[i].value, s.apps[i].len);
    }
    gossip_get_state(&m.states, &s);
    assert_int_equal(s.short_id, 3);
    assert_int_equal(s.heartbeat, 9);
    assert_int_equal(s.napps, 3);
    struct gossip_digest d;
    gossip_get_digest(&m.digests, &d);
    assert_memory_equal(&d, &ds[0], sizeof(d));
    assert_true(wire_reader_done(&m.digests));

    /* An empty ACK2 and an empty SYN. */
    wire_buf_clear(&b);
    wire_put_bytes(&b, "c", 1);
    wire_put_varint(&b, 0);
    assert_int_equal(gossip_parse_ack2(b.data, b.len, &m), WIRE_OK);
    assert_int_equal(gossip_parse_syn(b.data, b.len, &m), WIRE_OK);
    assert_int_equal(gossip_parse_ack(b.data, b.len, &m), WIRE_MALFORMED);
    assert_int_equal(gossip_parse_syn(NULL, 0, &m), WIRE_MALFORMED);

    free(big);
    free(small);
    wire_buf_deinit(&b);
}

/* Each case writes a whole ACK body that breaks one rule. */
static void bad_body(struct wire_buf *b, int k)
{
    struct craft *c = peer_state(1, 1, 5, GOSSIP_STATUS_NORMAL, 2);
    struct craft *c2 = peer_state(2, 1, 5, GOSSIP_STATUS_NORMAL, 2);
    struct gossip_digest d = {{0}, 1, 1};
    uint8_t v[GOSSIP_VALUE_MAX + 8] = {0};
    wire_buf_clear(b);
    wire_put_bytes(b, CLUSTER, k == 0 ? 0 : strlen(CLUSTER));
    switch (k) {
    case 0: /* empty cluster name */
    case 1: /* count over GOSSIP_MAX_NODES */
        wire_put_varint(b, k == 1 ? GOSSIP_MAX_NODES + 1 : 0);
        break;
    case 2: /* states out of order */
        wire_put_varint(b, 2);
        if (memcmp(c->s.id, c2->s.id, GOSSIP_ID_LEN) < 0) {
            gossip_put_state(b, &c2->s);
            gossip_put_state(b, &c->s);
        } else {
            gossip_put_state(b, &c->s);
            gossip_put_state(b, &c2->s);
        }
        break;
    case 3: /* a duplicate state */
        wire_put_varint(b, 2);
        gossip_put_state(b, &c->s);
        gossip_put_state(b, &c->s);
        break;
    case 4: /* a duplicate digest */
        wire_put_varint(b, 0);
        wire_put_varint(b, 2);
        gossip_put_digest(b, &d);
        gossip_put_digest(b, &d);
        break;
    case 5: /* non-shortest varint count */
        wire_put_u8(b, 0x80);
        wire_put_u8(b, 0x00);
        break;
    default: {
        /* One STATE written by hand with one broken field. */
        wire_put_varint(b, 1);
        wire_put_raw(b, c->s.id, GOSSIP_ID_LEN);
        wire_put_u16(b, 1);
        wire_put_u64(b, 1);
        wire_put_varint(b, k == 9 ? 5 : 0);               /* from */
        wire_put_varint(b, k == 6 ? 0 : 1);               /* heartbeat */
        wire_put_varint(b, k == 7 ? 17 : k == 8 ? 2 : 1); /* app count */
        uint8_t key = 0;
        size_t len = 1;
        v[0] = GOSSIP_STATUS_NORMAL;
        switch (k) {
        case 8: /* keys not ascending */
            wire_put_u8(b, GOSSIP_APP_ADDR);
            wire_put_varint(b, 1);
            wire_put_bytes(b, "a:1", 3);
            key = GOSSIP_APP_ADDR;
            len = 3;
            memcpy(v, "a:1", 3);
            break;
        case 9: break; /* version 1 <= from 5 */
        case 10: key = GOSSIP_APP_SLOTS; break;
        case 11: v[0] = 0; break; /* status NONE */
        case 12: len = 2; break;  /* NORMAL with a trailing byte */
        case 13: v[0] = GOSSIP_STATUS_REPLACING; break;
        case 14: key = GOSSIP_APP_ADDR, len = 0; break;
        case 15: key = GOSSIP_APP_ADDR, memcpy(v, "a\0b", 3), len = 3; break;
        case 16: key = GOSSIP_APP_TOKENS, len = 7; break;
        case 17: key = GOSSIP_APP_TOKENS, len = GOSSIP_VALUE_MAX + 8; break;
        case 18: key = GOSSIP_APP_LOAD, len = 9; break;
        case 19: key = GOSSIP_APP_PROTOCOL, v[0] = 0; break;
        case 20:
            key = GOSSIP_APP_RACK, memset(v, 'r', RING_RACK_MAX + 1), len = RING_RACK_MAX + 1;
            break;
        case 21: key = 9, len = GOSSIP_VALUE_MAX + 1; break;
        case 22: key = GOSSIP_APP_SCHEMA, len = 0; break;
        }
        wire_put_u8(b, key);
        wire_put_varint(b, k == 23 ? 0 : 1); /* version 0 */
        wire_put_bytes(b, v, len);
        break;
    }
    }
    if (k >= 2 && k != 4)
        wire_put_varint(b, 0); /* no requests */
    assert_int_equal(b->err, ST_OK);
    free(c);
    free(c2);
}
#define BAD_BODIES 24

/* A broken body of kind 0 (SYN), 1 (ACK) or 2 (ACK2): rejected, nothing
 * changes, nothing is appended. (A cut ACK may well be a valid ACK2, so each
 * kind is fed to its own parser.) */
static void expect_rejected(struct gossip *g, int kind, const uint8_t *body, size_t len)
{
    struct wire_buf out;
    wire_buf_init(&out);
    size_t count = gossip_count(g);
    uint64_t rv = gossip_ring_version(g);
    struct gossip_msg m;
    switch (kind) {
    case 0:
        assert_int_equal(gossip_parse_syn(body, len, &m), WIRE_MALFORMED);
        assert_int_equal(gossip_handle_syn(g, body, len, T0, &out), GOSSIP_MALFORMED);
        break;
    case 1:
        assert_int_equal(gossip_parse_ack(body, len, &m), WIRE_MALFORMED);
        assert_int_equal(gossip_handle_ack(g, body, len, T0, &out), GOSSIP_MALFORMED);
        break;
    default:
        assert_int_equal(gossip_parse_ack2(body, len, &m), WIRE_MALFORMED);
        assert_int_equal(gossip_handle_ack2(g, body, len, T0), GOSSIP_MALFORMED);
        break;
    }
    assert_int_equal(out.len, 0);
    assert_int_equal(gossip_count(g), count);
    assert_int_equal(gossip_ring_version(g), rv);
    wire_buf_deinit(&out);
}

static void test_malformed(void **state)
{
    (void)state;
    struct gossip *g = make("n0:7311", 0, 1, NULL, 0);
    struct wire_buf b, out;
    wire_buf_init(&b);
    wire_buf_init(&out);

    for (int k = 0; k < BAD_BODIES; k++) {
        bad_body(&b, k);
        struct gossip_msg m;
        if (gossip_parse_ack(b.data, b.len, &m) != WIRE_MALFORMED)
            fail_msg("bad body %d parsed", k);
        assert_int_equal(gossip_handle_ack(g, b.data, b.len, T0, &out), GOSSIP_MALFORMED);
        assert_int_equal(out.len, 0);
    }
    struct gossip_stats st;
    gossip_stats(g, &st);
    assert_int_equal(st.malformed, BAD_BODIES);
    assert_int_equal(gossip_count(g), 1);

    /* Every truncation of a rich body of each kind, and a trailing byte. */
    struct craft *cs[3];
    for (uint32_t i = 0; i < 3; i++)
        cs[i] = peer_state(i + 1, 2, 7, GOSSIP_STATUS_NORMAL, 3);
    craft_app(cs[0], 9, 4, "later", 5);
    for (size_t i = 0; i < 3; i++)
        for (size_t j = i + 1; j < 3; j++)
            if (memcmp(cs[i]->s.id, cs[j]->s.id, GOSSIP_ID_LEN) > 0) {
                struct craft *t = cs[i];
                cs[i] = cs[j];
                cs[j] = t;
            }
    struct wire_buf bodies[3];
    for (int kind = 0; kind < 3; kind++) {
        struct wire_buf *x = &bodies[kind];
        wire_buf_init(x);
        wire_put_bytes(x, CLUSTER, strlen(CLUSTER));
        if (kind != 0) {
            wire_put_varint(x, 3);
            for (size_t i = 0; i < 3; i++)
                gossip_put_state(x, &cs[i]->s);
        }
        if (kind != 2) {
            wire_put_varint(x, 3);
            for (size_t i = 0; i < 3; i++) {
                struct gossip_digest d;
                memcpy(d.id, cs[i]->s.id, GOSSIP_ID_LEN);
                d.generation = 2;
                d.version = 300 + i;
                gossip_put_digest(x, &d);
            }
        }
        assert_int_equal(x->err, ST_OK);
        for (size_t len = 0; len < x->len; len++)
            expect_rejected(g, kind, x->data, len);
        wire_put_u8(x, 0);
        expect_rejected(g, kind, x->data, x->len);
        x->len--;
    }
    struct gossip_msg m;
    assert_int_equal(gossip_parse_syn(bodies[0].data, bodies[0].len, &m), WIRE_OK);
    assert_int_equal(gossip_parse_ack(bodies[1].data, bodies[1].len, &m), WIRE_OK);
    assert_int_equal(gossip_parse_ack2(bodies[2].data, bodies[2].len, &m), WIRE_OK);

    /* Bit flips of the ACK: parse or reject, never crash; when it parses,
     * handling succeeds. A fresh view every few flips keeps it small. */
    const struct wire_buf *ack = &bodies[1];
    uint8_t *copy = malloc(ack->len);
    assert_non_null(copy);
    size_t parsed = 0;
    for (size_t bit = 0; bit < ack->len * 8; bit++) {
        memcpy(copy, ack->data, ack->len);
        copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        wire_buf_clear(&out);
        enum gossip_result r = gossip_handle_ack(g, copy, ack->len, T0 + bit, &out);
        assert_true(r == GOSSIP_OK || r == GOSSIP_MALFORMED || r == GOSSIP_OTHER_CLUSTER);
        if (gossip_parse_ack(copy, ack->len, &m) == WIRE_OK) {
            parsed++;
            assert_true(r != GOSSIP_MALFORMED);
        }
        if (bit % 64 == 0) {
            gossip_destroy(&g);
            g = make("n0:7311", 0, 1, NULL, 0);
        }
    }
    assert_true(parsed > 0);

    /* Random bytes, bare and behind a valid cluster name. */
    uint64_t seed = 42;
    uint8_t rnd[512];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = mix(&seed) % sizeof(rnd);
        for (size_t i = 0; i < len; i++)
            rnd[i] = (uint8_t)mix(&seed);
        if (iter % 2 && len > 20) {
            rnd[0] = (uint8_t)strlen(CLUSTER);
            memcpy(rnd + 1, CLUSTER, strlen(CLUSTER));
            rnd[1 + strlen(CLUSTER)] %= 4; /* a small count */
        }
        wire_buf_clear(&out);
        (void)gossip_parse_syn(rnd, len, &m);
        (void)gossip_parse_ack(rnd, len, &m);
        (void)gossip_parse_ack2(rnd, len, &m);
        (void)gossip_handle_syn(g, rnd, len, T0, &out);
        wire_buf_clear(&out);
        (void)gossip_handle_ack(g, rnd, len, T0, &out);
        (void)gossip_handle_ack2(g, rnd, len, T0);
    }
    free(copy);
    for (int kind = 0; kind < 3; kind++)
        wire_buf_deinit(&bodies[kind]);
    for (size_t i = 0; i < 3; i++)
        free(cs[i]);
    wire_buf_deinit(&out);
    wire_buf_deinit(&b);
    gossip_destroy(&g);
}

/* ---- Merge rule ------------------------------------------------------------ */

static const char *peer_rack(struct gossip *g, uint32_t idx)
{
    uint8_t id[GOSSIP_ID_LEN];
    struct gossip_peer p;
    make_id(idx, id);
    assert_true(gossip_find(g, id, &p));
    return p.rack;
}

static void test_merge_rules(void **state)
{
    (void)state;
    struct gossip *g = make("n0:7311", 0, 1, NULL, 0);
    struct craft *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    uint8_t x[GOSSIP_ID_LEN];
    make_id(1, x);
    struct gossip_peer p;
    struct gossip_stats st;
    uint64_t rv0 = gossip_ring_version(g);

    /* A new endpoint, whole. */
    craft_init(c, 1, 2, 5, 0, 10);
    craft_status(c, 3, GOSSIP_STATUS_NORMAL);
    craft_str(c, GOSSIP_APP_ADDR, 2, "x:1");
    craft_str(c, GOSSIP_APP_RACK, 4, "a");
    craft_tokens(c, 5, 1, 4);
    assert_int_equal(inject(g, c, T0), GOSSIP_OK);
    assert_true(gossip_find(g, x, &p));
    assert_false(p.self);
    assert_int_equal(p.generation, 5);
    assert_int_equal(p.heartbeat, 10);
    assert_int_equal(p.max_version, 10);
    assert_int_equal(p.ntokens, 4);
    assert_string_equal(p.rack, "a");
    assert_int_equal(gossip_ring_version(g), rv0 + 1);

    /* A delta that connects (from <= our max) with a newer rack. */
    craft_init(c, 1, 2, 5, 10, 12);
    craft_str(c, GOSSIP_APP_RACK, 11, "b");
    assert_int_equal(inject(g, c, T0 + 1000), GOSSIP_OK);
    assert_string_equal(peer_rack(g, 1), "b");
    assert_int_equal(gossip_ring_version(g), rv0 + 2);

    /* Older versions are ignored field by field; newer ones in the same
     * state are taken. */
    craft_init(c, 1, 2, 5, 0, 11);
    craft_str(c, GOSSIP_APP_MC_ADDR, 13, "x:2");
    craft_str(c, GOSSIP_APP_RACK, 4, "c");
    assert_int_equal(inject(g, c, T0 + 2000), GOSSIP_OK);
    assert_true(gossip_find(g, x, &p));
    assert_string_equal(p.rack, "b");
    assert_string_equal(p.mc_addr, "x:2");
    assert_int_equal(p.heartbeat, 12); /* 11 is older */
    assert_int_equal(p.max_version, 13);
    assert_int_equal(gossip_ring_version(g), rv0 + 2); /* mc address places nothing */

    /* A delta that does not connect (from above our max) is dropped. */
    gossip_stats(g, &st);
    uint64_t gaps = st.gaps;
    craft_init(c, 1, 2, 5, 50, 60);
    craft_str(c, GOSSIP_APP_RACK, 55, "gap");
    assert_int_equal(inject(g, c, T0), GOSSIP_OK);
    assert_string_equal(peer_rack(g, 1), "b");
    gossip_stats(g, &st);
    assert_int_equal(st.gaps, gaps + 1);

    /* Same generation, another short id: a conflict, ignored. */
    craft_init(c, 1, 99, 5, 0, 70);
    craft_str(c, GOSSIP_APP_RACK, 65, "conflict");
    assert_int_equal(inject(g, c, T0), GOSSIP_OK);
    assert_string_equal(peer_rack(g, 1), "b");
    gossip_stats(g, &st);
    assert_int_equal(st.conflicts, 1);

    /* A higher generation replaces everything, with lower versions. */
    craft_init(c, 1, 2, 6, 0, 1);
    craft_str(c, GOSSIP_APP_ADDR, 1, "x:9");
    assert_int_equal(inject(g, c, T0 + 3000), GOSSIP_OK);
    assert_true(gossip_find(g, x, &p));
    assert_int_equal(p.generation, 6);
    assert_int_equal(p.heartbeat, 1);
    assert_int_equal(p.max_version, 1);
    assert_string_equal(p.addr, "x:9");
    assert_string_equal(p.rack, "");
    assert_string_equal(p.mc_addr, "");
    assert_int_equal(p.status, GOSSIP_STATUS_NONE);
    assert_int_equal(p.versions[GOSSIP_APP_RACK], 0);
    assert_int_equal(p.ntokens, 0);
    assert_int_equal(gossip_ring_version(g), rv0 + 3); /* it left the ring */
    gossip_stats(g, &st);
    assert_int_equal(st.restarts, 1);

    /* A newer generation that is only a delta cannot replace anything. */
    craft_init(c, 1, 2, 7, 3, 9);
    craft_str(c, GOSSIP_APP_RACK, 8, "partial");
    assert_int_equal(inject(g, c, T0), GOSSIP_OK);
    assert_true(gossip_find(g, x, &p));
    assert_int_equal(p.generation, 6);

    /* An older generation is ignored, however high its versions. */
    craft_init(c, 1, 2, 5, 0, 1000);
    craft_str(c, GOSSIP_APP_RACK, 999, "old");
    assert_int_equal(inject(g, c, T0), GOSSIP_OK);
    assert_true(gossip_find(g, x, &p));
    assert_int_equal(p.generation, 6);
    assert_string_equal(p.rack, "");
    gossip_stats(g, &st);
    assert_int_equal(st.stale, 1);

    /* Nobody else's word about ourselves is taken. */
    uint8_t self[GOSSIP_ID_LEN];
    make_id(0, self);
    craft_init(c, 0, 1, 2, 0, 5);
    craft_str(c, GOSSIP_APP_ADDR, 1, "impostor:1");
    assert_int_equal(inject(g, c, T0), GOSSIP_OK);
    assert_true(gossip_find(g, self, &p));
    assert_true(p.self);
    assert_int_equal(p.generation, 1);
    assert_string_equal(p.addr, "n0:7311");
    gossip_stats(g, &st);
    assert_int_equal(st.self_conflicts, 1);

    /* An unknown endpoint must come whole. */
    uint8_t y[GOSSIP_ID_LEN];
    make_id(2, y);
    craft_init(c, 2, 3, 1, 4, 9);
    craft_str(c, GOSSIP_APP_ADDR, 5, "y:1");
    assert_int_equal(inject(g, c, T0), GOSSIP_OK);
    assert_false(gossip_find(g, y, &p));

    /* Keys and status codes of later builds are kept, not interpreted. */
    craft_init(c, 2, 3, 1, 0, 9);
    uint8_t later_status[4] = {9, 1, 2, 3};
    craft_app(c, GOSSIP_APP_STATUS, 2, later_status, sizeof(later_status));
    craft_str(c, GOSSIP_APP_ADDR, 5, "y:1");
    craft_tokens(c, 6, 7, 2);
    craft_app(c, 14, 7, "later", 5);
    assert_int_equal(inject(g, c, T0), GOSSIP_OK);
    assert_true(gossip_find(g, y, &p));
    assert_int_equal(p.status, GOSSIP_STATUS_OTHER);
    assert_int_equal(p.status_code, 9);
    const uint8_t *v;
    size_t len;
    uint64_t ver;
    assert_true(gossip_app_value(g, y, 14, &v, &len, &ver));
    assert_int_equal(ver, 7);
    assert_memory_equal(v, "later", 5);
    struct ring_node rn[4];
    assert_int_equal(gossip_ring_nodes(g, rn, 4), 0); /* nobody NORMAL with tokens */

    /* Another cluster's body changes nothing. */
    struct wire_buf b;
    wire_buf_init(&b);
    craft_init(c, 3, 4, 1, 0, 1);
    craft_str(c, GOSSIP_APP_ADDR, 1, "z:1");
    ack2_body(&b, "other-cluster", &c, 1);
    assert_int_equal(gossip_handle_ack2(g, b.data, b.len, T0), GOSSIP_OTHER_CLUSTER);
    assert_int_equal(gossip_count(g), 3);
    gossip_stats(g, &st);
    assert_int_equal(st.other_cluster, 1);

    /* A full view: new endpoints are dropped and counted. */
    gossip_destroy(&g);
    g = make("n0:7311", 0, 1, NULL, 0);
    for (uint32_t i = 1; i <= GOSSIP_MAX_NODES; i++) {
        craft_init(c, i, (uint16_t)i, 1, 0, 1);
        assert_int_equal(inject(g, c, T0), GOSSIP_OK);
    }
    assert_int_equal(gossip_count(g), GOSSIP_MAX_NODES);
    gossip_stats(g, &st);
    assert_int_equal(st.dropped, 1);
    /* Its SYN still fits the smallest budget. */
    wire_buf_clear(&b);
    assert_int_equal(gossip_compose_syn(g, &b), ST_OK);
    assert_true(b.len <= GOSSIP_BODY_MIN);

    wire_buf_deinit(&b);
    free(c);
    gossip_destroy(&g);
}

/* Heartbeats learned feed the detector: a peer whose heartbeat stops
 * increasing goes suspect, then down, and is up again at the next one. */
static void test_heartbeat_liveness(void **state)
{
    (void)state;
    struct gossip *g = make("n0:7311", 0, 1, NULL, 0);
    struct craft *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    uint8_t x[GOSSIP_ID_LEN];
    make_id(1, x);
    uint64_t t = T0;
    uint64_t hb = 1;
    for (int i = 0; i < 30; i++, t += 1000) {
        craft_init(c, 1, 2, 1, 0, hb++);
        craft_str(c, GOSSIP_APP_ADDR, 1, "x:1");
        assert_int_equal(inject(g, c, t), GOSSIP_OK);
        assert_int_equal(gossip_peer_state(g, x, t + 500), PHI_UP);
    }
    /* The same heartbeat again is no news. */
    t -= 1000;
    craft_init(c, 1, 2, 1, 0, hb - 1);
    craft_str(c, GOSSIP_APP_ADDR, 1, "x:1");
    assert_int_equal(inject(g, c, t + 4000), GOSSIP_OK);
    uint64_t suspect = 0, down = 0;
    for (uint64_t dt = 0; dt < 20000 && !down; dt += 10) {
        enum phi_state s = gossip_peer_state(g, x, t + dt);
        if (s == PHI_SUSPECT && !suspect)
            suspect = dt;
        if (s == PHI_DOWN)
            down = dt;
    }
    assert_true(suspect > 3000 && suspect < 6000);
    assert_true(down > suspect && down < 6000);
    assert_true(gossip_peer_phi(g, x, t + down) >= 8.0);
    /* Back: a newer heartbeat. */
    craft_init(c, 1, 2, 1, 0, hb++);
    craft_str(c, GOSSIP_APP_ADDR, 1, "x:1");
    assert_int_equal(inject(g, c, t + 30000), GOSSIP_OK);
    assert_int_equal(gossip_peer_state(g, x, t + 30000), PHI_UP);
    free(c);
    gossip_destroy(&g);
}

/* One exchange, message by message: a fresh node's SYN to a node that knows
 * three peers brings it everything (states it lacked pushed in the ACK),
 * the ACK asks for the fresh node's state, and the ACK2 carries it. Then a
 * SYN of equal views is answered by an ACK that carries only heartbeats. */
static void test_one_exchange(void **state)
{
    (void)state;
    struct gossip *a = make("n0:7311", 0, 1, NULL, 0);
    struct gossip *b = make("n9:7311", 9, 4, NULL, 0);
    for (uint32_t i = 1; i <= 3; i++) {
        struct craft *c = peer_state(i, 1, 5, GOSSIP_STATUS_NORMAL, 2);
        assert_int_equal(inject(a, c, T0), GOSSIP_OK);
        free(c);
    }
    struct wire_buf syn, ack, ack2;
    wire_buf_init(&syn);
    wire_buf_init(&ack);
    wire_buf_init(&ack2);
    assert_int_equal(gossip_compose_syn(b, &syn), ST_OK);
    struct gossip_msg m;
    assert_int_equal(gossip_parse_syn(syn.data, syn.len, &m), WIRE_OK);
    assert_int_equal(m.ndigests, 1);

    assert_int_equal(gossip_handle_syn(a, syn.data, syn.len, T0, &ack), GOSSIP_OK);
    assert_int_equal(gossip_parse_ack(ack.data, ack.len, &m), WIRE_OK);
    assert_int_equal(m.nstates, 4); /* a itself and its three peers, whole */
    for (size_t i = 0; i < 4; i++) {
        struct gossip_state s;
        gossip_get_state(&m.states, &s);
        assert_int_equal(s.from, 0);
    }
    assert_int_equal(m.ndigests, 1); /* b's state, all of it */
    struct gossip_digest d;
    gossip_get_digest(&m.digests, &d);
    uint8_t idb[GOSSIP_ID_LEN];
    make_id(9, idb);
    assert_memory_equal(d.id, idb, GOSSIP_ID_LEN);
    assert_int_equal(d.generation, 4);
    assert_int_equal(d.version, 0);

    assert_int_equal(gossip_handle_ack(b, ack.data, ack.len, T0, &ack2), GOSSIP_OK);
    assert_int_equal(gossip_count(b), 5);
    assert_int_equal(gossip_parse_ack2(ack2.data, ack2.len, &m), WIRE_OK);
    assert_int_equal(m.nstates, 1);
    assert_int_equal(gossip_handle_ack2(a, ack2.data, ack2.len, T0), GOSSIP_OK);
    assert_int_equal(gossip_count(a), 5);
    assert_true(views_equal(a, b));

    /* Equal views; b ticks (a newer heartbeat of b), a ticks twice. */
    struct gossip_target t[GOSSIP_MAX_TARGETS];
    (void)gossip_tick(b, T0 + 1000, t);
    (void)gossip_tick(a, T0 + 1000, t);
    (void)gossip_tick(a, T0 + 1000, t);
    wire_buf_clear(&syn);
    wire_buf_clear(&ack);
    wire_buf_clear(&ack2);
    assert_int_equal(gossip_compose_syn(b, &syn), ST_OK);
    assert_int_equal(gossip_handle_syn(a, syn.data, syn.len, T0 + 1000, &ack), GOSSIP_OK);
    assert_int_equal(gossip_parse_ack(ack.data, ack.len, &m), WIRE_OK);
    assert_int_equal(m.nstates, 1); /* a's heartbeat only */
    struct gossip_state s;
    gossip_get_state(&m.states, &s);
    assert_int_equal(s.napps, 0);
    assert_int_equal(m.ndigests, 1); /* b's heartbeat, from what a holds */
    gossip_get_digest(&m.digests, &d);
    assert_true(d.version > 0);
    assert_int_equal(gossip_handle_ack(b, ack.data, ack.len, T0 + 1000, &ack2), GOSSIP_OK);
    assert_int_equal(gossip_parse_ack2(ack2.data, ack2.len, &m), WIRE_OK);
    assert_int_equal(m.nstates, 1);
    gossip_get_state(&m.states, &s);
    assert_int_equal(s.napps, 0);
    assert_int_equal(s.from, d.version);
    struct gossip_peer p;
    assert_true(gossip_find(a, idb, &p));
    uint64_t before = p.heartbeat;
    assert_int_equal(gossip_handle_ack2(a, ack2.data, ack2.len, T0 + 1000), GOSSIP_OK);
    assert_true(gossip_find(a, idb, &p));
    assert_true(p.heartbeat > before);

    wire_buf_deinit(&syn);
    wire_buf_deinit(&ack);
    wire_buf_deinit(&ack2);
    gossip_destroy(&a);
    gossip_destroy(&b);
}

/* ---- Peer choice ------------------------------------------------------------- */

/* Injects peers 1..n with addresses "p<i>:7311" and the given statuses. */
static void beat_peers(struct gossip *g, uint32_t from, uint32_t to, uint64_t hb, uint64_t now)
{
    for (uint32_t i = from; i <= to; i++) {
        struct craft *c = peer_state(i, 1, hb, GOSSIP_STATUS_NORMAL, 0);
        assert_int_equal(inject(g, c, now), GOSSIP_OK);
        free(c);
    }
}

static void test_peer_choice(void **state)
{
    (void)state;
    struct gossip_target t[GOSSIP_MAX_TARGETS];

    /* Knowing nobody: a seed, never ourselves. */
    const char *seeds[] = {"n0:7311", "s1:7311", "s2:7311"};
    struct gossip *g = make("n0:7311", 0, 1, seeds, 3);
    int seen[3] = {0};
    for (int i = 0; i < 200; i++) {
        assert_int_equal(gossip_tick(g, T0 + i * 1000, t), 1);
        assert_false(t[0].has_id);
        assert_string_not_equal(t[0].addr, "n0:7311");
        seen[t[0].addr[1] - '0']++;
    }
    assert_true(seen[1] > 50 && seen[2] > 50);
    gossip_destroy(&g);

    /* No seeds, nobody known: nothing to do. A seed list of ourselves only
     * is the same. */
    g = make("n0:7311", 0, 1, seeds, 1);
    assert_int_equal(gossip_tick(g, T0, t), 0);
    gossip_destroy(&g);

    /* A live seed is enough: seeds {p1}, live {p1}. Known by id now. */
    const char *p1[] = {"p1:7311"};
    g = make("n0:7311", 0, 1, p1, 1);
    uint64_t now = T0;
    for (int i = 0; i < 100; i++, now += 1000) {
        beat_peers(g, 1, 1, (uint64_t)i + 1, now);
        assert_int_equal(gossip_tick(g, now, t), 1);
        assert_true(t[0].has_id);
        assert_string_equal(t[0].addr, "p1:7311");
    }
    gossip_destroy(&g);

    /* The live peer is no seed: seeds / (live + down) = 1, so the seed too,
     * not yet known by id. */
    g = make("n0:7311", 0, 1, p1, 1);
    now = T0;
    for (int i = 0; i < 50; i++, now += 1000) {
        beat_peers(g, 2, 2, (uint64_t)i + 1, now);
        assert_int_equal(gossip_tick(g, now, t), 2);
        assert_string_equal(t[0].addr, "p2:7311");
        assert_false(t[1].has_id);
        assert_string_equal(t[1].addr, "p1:7311");
    }
    gossip_destroy(&g);

    /* Seeds {p1}, live {p1..p4}: the seed joins with probability 1/4 when
     * the live pick was another peer: 3/4 * 1/4 of the rounds. */
    g = make("n0:7311", 0, 1, p1, 1);
    now = T0;
    int with_seed = 0, rounds = 4000;
    int picked[5] = {0};
    for (int i = 0; i < rounds; i++, now += 1000) {
        beat_peers(g, 1, 4, (uint64_t)i + 1, now);
        size_t n = gossip_tick(g, now, t);
        assert_true(n == 1 || n == 2);
        picked[t[0].addr[1] - '0']++;
        if (n == 2) {
            assert_string_not_equal(t[0].addr, "p1:7311");
            assert_string_equal(t[1].addr, "p1:7311");
            assert_true(t[1].has_id);
            with_seed++;
        }
    }
    assert_true(with_seed > rounds * 0.1875 * 0.8 && with_seed < rounds * 0.1875 * 1.2);
    for (int i = 1; i <= 4; i++)
        assert_true(picked[i] > rounds / 4 * 0.8 && picked[i] < rounds / 4 * 1.2);
    gossip_destroy(&g);

    /* One live, one down peer and no seeds: the down one with probability
     * down / (live + 1) = 1/2. LEFT peers and peers without an address are
     * never picked. */
    g = make("n0:7311", 0, 1, NULL, 0);
    now = T0;
    beat_peers(g, 2, 2, 1, now);
    struct craft *c = peer_state(3, 1, 1, GOSSIP_STATUS_LEFT, 0);
    assert_int_equal(inject(g, c, now), GOSSIP_OK);
    craft_init(c, 4, 5, 1, 0, 1); /* no address */
    assert_int_equal(inject(g, c, now), GOSSIP_OK);
    free(c);
    now += 60000;
    int down = 0;
    rounds = 4000;
    for (int i = 0; i < rounds; i++, now += 1000) {
        beat_peers(g, 1, 1, (uint64_t)i + 1, now);
        uint8_t p2[GOSSIP_ID_LEN];
        make_id(2, p2);
        assert_int_equal(gossip_peer_state(g, p2, now), PHI_DOWN);
        size_t n = gossip_tick(g, now, t);
        assert_true(n == 1 || n == 2);
        assert_string_equal(t[0].addr, "p1:7311");
        if (n == 2) {
            assert_string_equal(t[1].addr, "p2:7311");
            down++;
        }
    }
    assert_true(down > rounds / 2 * 0.8 && down < rounds / 2 * 1.2);
    struct gossip_stats st;
    gossip_stats(g, &st);
    assert_int_equal(st.rounds, rounds);
    gossip_destroy(&g);
}

/* ---- Ring extraction ---------------------------------------------------------- */

static void test_ring_nodes(void **state)
{
    (void)state;
    struct gossip *g = make("n0:7311", 0, 1, NULL, 0);
    uint64_t toks[2] = {100, 200};
    assert_int_equal(gossip_set_status(g, GOSSIP_STATUS_NORMAL, NULL), ST_OK);
    assert_int_equal(gossip_set_tokens(g, toks, 2), ST_OK);
    assert_int_equal(gossip_set_rack(g, "r0"), ST_OK);

    /* 1 JOINING, 2 NORMAL without tokens, 3 LEAVING, 4 LEFT, 5 REPLACING,
     * 6 NORMAL, 7 NORMAL with 6's short id (larger id loses), 8 no status. */
    static const uint8_t status[9] = {0,
                                      GOSSIP_STATUS_JOINING,
                                      GOSSIP_STATUS_NORMAL,
                                      GOSSIP_STATUS_LEAVING,
                                      GOSSIP_STATUS_LEFT,
                                      GOSSIP_STATUS_NORMAL,
                                      GOSSIP_STATUS_NORMAL,
                                      GOSSIP_STATUS_NORMAL,
                                      0};
    uint8_t id6[GOSSIP_ID_LEN], id7[GOSSIP_ID_LEN];
    make_id(6, id6);
    make_id(7, id7);
    for (uint32_t i = 1; i <= 8; i++) {
        struct craft *c = peer_state(i, 1, 1, status[i], i == 2 || i == 8 ? 0 : 3);
        if (i == 5) { /* REPLACING: status + id16 */
            uint8_t v[1 + GOSSIP_ID_LEN] = {GOSSIP_STATUS_REPLACING};
            make_id(9, v + 1);
            memcpy(c->buf[0], v, sizeof(v));
            c->s.apps[0].len = sizeof(v);
        }
        if (i == 7)
            c->s.short_id = 7; /* peer 6's */
        uint64_t rv = gossip_ring_version(g);
        assert_int_equal(inject(g, c, T0), GOSSIP_OK);
        bool enters = i == 3 || i == 6 || i == 7;
        assert_int_equal(gossip_ring_version(g), rv + enters);
        free(c);
    }
    uint32_t winner = memcmp(id6, id7, GOSSIP_ID_LEN) < 0 ? 6 : 7;
    struct ring_node rn[8];
    size_t n = gossip_ring_nodes(g, rn, 8);
    assert_int_equal(n, 3); /* ourselves, 3 and the winner of 6/7 */
    bool have[10] = {false};
    for (size_t i = 0; i < n; i++) {
        for (uint32_t k = 0; k < 10; k++) {
            uint8_t id[GOSSIP_ID_LEN];
            make_id(k, id);
            if (memcmp(rn[i].id, id, GOSSIP_ID_LEN) == 0)
                have[k] = true;
        }
        if (i > 0)
            assert_true(memcmp(rn[i - 1].id, rn[i].id, GOSSIP_ID_LEN) < 0);
        struct gossip_peer p;
        assert_true(gossip_find(g, rn[i].id, &p));
        assert_int_equal(rn[i].short_id, p.short_id);
        assert_int_equal(rn[i].ntokens, p.ntokens);
        assert_memory_equal(rn[i].tokens, p.tokens, p.ntokens * 8);
        if (p.self)
            assert_string_equal(rn[i].rack, "r0");
        else
            assert_null(rn[i].rack);
    }
    assert_true(have[0] && have[3] && have[winner]);
    assert_int_equal(gossip_ring_nodes(g, rn, 1), 3); /* cap: count, one written */
    struct ring *r = NULL;
    assert_int_equal(ring_build(rn, n, &r), ST_OK);
    assert_int_equal(ring_node_count(r), 3);
    ring_free(&r);

    /* A restart with the same ring fields does not move the ring version;
     * a load change never does. */
    uint64_t rv = gossip_ring_version(g);
    struct craft *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    craft_init(c, 3, 4, 2, 0, 1);
    craft_status(c, 1, GOSSIP_STATUS_LEAVING);
    craft_str(c, GOSSIP_APP_ADDR, 2, "p3:7311");
    craft_tokens(c, 3, 3 * 1000 + 1, 3); /* generation 1's tokens */
    uint8_t load[8] = {1};
    craft_app(c, GOSSIP_APP_LOAD, 4, load, 8);
    assert_int_equal(inject(g, c, T0), GOSSIP_OK);
    assert_int_equal(gossip_ring_version(g), rv);
    struct gossip_peer p;
    uint8_t id3[GOSSIP_ID_LEN];
    make_id(3, id3);
    assert_true(gossip_find(g, id3, &p));
    assert_int_equal(p.generation, 2);
    assert_int_equal(p.load, 1);
    free(c);
    gossip_destroy(&g);
}

/* ---- Simulated clusters ------------------------------------------------------- */

#define SIM_MAX 100

struct sim_node {
    struct gossip *g;
    uint8_t id[GOSSIP_ID_LEN];
    uint64_t gen;
    char addr[32];
    const char *cluster;
    bool alive;   /* ticks and answers */
    bool started; /* has a gossip instance */
    uint64_t next_tick;
};

struct sim {
    struct sim_node n[SIM_MAX];
    size_t count;
    char seedbuf[8][32];
    const char *seeds[8];
    size_t nseeds;
    uint64_t now;
    size_t max_body;
    struct phi_options phi;
    struct wire_buf syn, ack, ack2;
    size_t max_syn, max_ack, max_ack2;
    uint64_t exchanges, refused;
};

static struct sim *sim_new(size_t count, size_t nseeds, size_t max_body)
{
    struct sim *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->count = count;
    s->now = T0;
    s->max_body = max_body;
    phi_options_default(&s->phi);
    for (size_t i = 0; i < nseeds; i++) {
        snprintf(s->seedbuf[i], sizeof(s->seedbuf[i]), "n%zu:7311", i);
        s->seeds[i] = s->seedbuf[i];
    }
    s->nseeds = nseeds;
    for (size_t i = 0; i < count; i++) {
        make_id((uint32_t)i, s->n[i].id);
        snprintf(s->n[i].addr, sizeof(s->n[i].addr), "n%zu:7311", i);
        s->n[i].cluster = CLUSTER;
    }
    wire_buf_init(&s->syn);
    wire_buf_init(&s->ack);
    wire_buf_init(&s->ack2);
    return s;
}

static void sim_free(struct sim *s)
{
    for (size_t i = 0; i < s->count; i++)
        gossip_destroy(&s->n[i].g);
    wire_buf_deinit(&s->syn);
    wire_buf_deinit(&s->ack);
    wire_buf_deinit(&s->ack2);
    free(s);
}

static void sim_tokens(uint32_t i, uint64_t gen, uint64_t *toks, size_t n)
{
    uint64_t seed = i * UINT64_C(1000003) + gen;
    for (size_t k = 0; k < n; k++)
        toks[k] = mix(&seed);
}

/* Starts node i (generation gen) with ntokens tokens, NORMAL. */
static void sim_start(struct sim *s, uint32_t i, uint64_t gen, size_t ntokens, bool rack)
{
    struct sim_node *n = &s->n[i];
    struct gossip_config cfg = {0};
    cfg.cluster = n->cluster;
    memcpy(cfg.id, n->id, GOSSIP_ID_LEN);
    cfg.short_id = (uint16_t)(i + 1);
    cfg.generation = gen;
    cfg.addr = n->addr;
    cfg.seeds = s->seeds;
    cfg.nseeds = s->nseeds;
    cfg.phi = &s->phi;
    cfg.max_body = s->max_body;
    cfg.rng_seed = 1 + i * 7919 + gen;
    gossip_destroy(&n->g);
    assert_int_equal(gossip_create(&n->g, &cfg), ST_OK);
    uint64_t toks[RING_MAX_VNODES];
    sim_tokens(i, gen, toks, ntokens);
    assert_int_equal(gossip_set_tokens(n->g, toks, ntokens), ST_OK);
    char buf[32];
    if (rack) {
        snprintf(buf, sizeof(buf), "rack%u", i % 3);
        assert_int_equal(gossip_set_rack(n->g, buf), ST_OK);
    }
    snprintf(buf, sizeof(buf), "n%u:11311", i);
    assert_int_equal(gossip_set_memcached_addr(n->g, buf), ST_OK);
    assert_int_equal(gossip_set_load(n->g, i * UINT64_C(1000)), ST_OK);
    assert_int_equal(gossip_set_schema(n->g, 42), ST_OK);
    assert_int_equal(gossip_set_protocol(n->g, 1), ST_OK);
    assert_int_equal(gossip_set_status(n->g, GOSSIP_STATUS_NORMAL, NULL), ST_OK);
    n->gen = gen;
    n->alive = true;
    n->started = true;
    n->next_tick = s->now + 1 + (i * 137) % 1000; /* spread over the second */
}

static int sim_find(const struct sim *s, const char *addr)
{
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->n[i].addr, addr) == 0)
            return (int)i;
    return -1;
}

static void track(size_t *max, const struct wire_buf *b, size_t limit)
{
    assert_int_equal(b->err, ST_OK);
    if (b->len > limit)
        fail_msg("body of %zu bytes over the budget %zu", b->len, limit);
    if (b->len > *max)
        *max = b->len;
}

/* One SYN / ACK / ACK2 exchange from node a to the node at addr. */
static void sim_exchange(struct sim *s, size_t a, const char *addr, uint64_t t)
{
    int j = sim_find(s, addr);
    assert_true(j >= 0 && (size_t)j != a);
    struct sim_node *from = &s->n[a], *to = &s->n[j];
    size_t limit = s->max_body ? s->max_body : GOSSIP_BODY_DEFAULT;
    wire_buf_clear(&s->syn);
    assert_int_equal(gossip_compose_syn(from->g, &s->syn), ST_OK);
    track(&s->max_syn, &s->syn, GOSSIP_BODY_MIN);
    if (!to->alive)
        return; /* lost */
    s->exchanges++;
    wire_buf_clear(&s->ack);
    enum gossip_result r = gossip_handle_syn(to->g, s->syn.data, s->syn.len, t, &s->ack);
    if (r == GOSSIP_OTHER_CLUSTER) {
        s->refused++;
        return;
    }
    assert_int_equal(r, GOSSIP_OK);
    track(&s->max_ack, &s->ack, limit);
    wire_buf_clear(&s->ack2);
    assert_int_equal(gossip_handle_ack(from->g, s->ack.data, s->ack.len, t, &s->ack2), GOSSIP_OK);
    track(&s->max_ack2, &s->ack2, limit);
    assert_int_equal(gossip_handle_ack2(to->g, s->ack2.data, s->ack2.len, t), GOSSIP_OK);
}

/* Runs every live node's ticks (each every 1000 ms at its own phase) up to
 * and including t_end, in time order. */
static void sim_run_until(struct sim *s, uint64_t t_end)
{
    for (;;) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < s->count; i++)
            if (s->n[i].alive && s->n[i].next_tick <= t_end &&
                (best == SIZE_MAX || s->n[i].next_tick < s->n[best].next_tick))
                best = i;
        if (best == SIZE_MAX)
            break;
        struct sim_node *n = &s->n[best];
        s->now = n->next_tick;
        n->next_tick += GOSSIP_INTERVAL_MS;
        struct gossip_target t[GOSSIP_MAX_TARGETS];
        size_t k = gossip_tick(n->g, s->now, t);
        for (size_t x = 0; x < k; x++)
            sim_exchange(s, best, t[x].addr, s->now);
    }
    s->now = t_end;
}

/* Same endpoints, generations, short ids and application states (the
 * heartbeats always move). */
static bool views_equal(const struct gossip *a, const struct gossip *b)
{
    if (gossip_count(a) != gossip_count(b))
        return false;
    for (size_t i = 0; i < gossip_count(a); i++) {
        struct gossip_peer pa, pb;
        gossip_peer_at(a, i, &pa);
        gossip_peer_at(b, i, &pb);
        if (memcmp(pa.id, pb.id, GOSSIP_ID_LEN) != 0 || pa.generation != pb.generation ||
            pa.short_id != pb.short_id ||
            memcmp(pa.versions, pb.versions, sizeof(pa.versions)) != 0)
            return false;
        for (uint8_t k = 0; k < GOSSIP_APP_SLOTS; k++) {
            const uint8_t *va, *vb;
            size_t la, lb;
            uint64_t xa, xb;
            assert_true(gossip_app_value(a, pa.id, k, &va, &la, &xa));
            assert_true(gossip_app_value(b, pb.id, k, &vb, &lb, &xb));
            if (la != lb || (la > 0 && memcmp(va, vb, la) != 0))
                return false;
        }
    }
    return true;
}

/* Every live node of `cluster` knows `expect` endpoints, and all agree. */
static bool sim_converged(const struct sim *s, size_t expect)
{
    const struct gossip *ref = NULL;
    for (size_t i = 0; i < s->count; i++) {
        const struct sim_node *n = &s->n[i];
        if (!n->alive || strcmp(n->cluster, CLUSTER) != 0)
            continue;
        if (gossip_count(n->g) != expect)
            return false;
        if (ref == NULL)
            ref = n->g;
        else if (!views_equal(ref, n->g))
            return false;
    }
    return true;
}

/* Rounds (seconds) until convergence, failing past max_rounds. */
static unsigned sim_converge(struct sim *s, size_t expect, unsigned max_rounds)
{
    for (unsigned r = 1; r <= max_rounds; r++) {
        sim_run_until(s, s->now + GOSSIP_INTERVAL_MS);
        if (sim_converged(s, expect))
            return r;
    }
    fail_msg("no convergence on %zu endpoints in %u rounds", expect, max_rounds);
    return 0;
}

/* The ring of node i's view. */
static struct ring *sim_ring(struct sim *s, size_t i)
{
    struct ring_node rn[SIM_MAX];
    size_t n = gossip_ring_nodes(s->n[i].g, rn, SIM_MAX);
    assert_true(n <= SIM_MAX);
    struct ring *r = NULL;
    assert_int_equal(ring_build(rn, n, &r), ST_OK);
    return r;
}

static void test_converge_five(void **state)
{
    (void)state;
    struct sim *s = sim_new(5, 2, 0);
    for (uint32_t i = 0; i < 5; i++)
        sim_start(s, i, 1, RING_DEFAULT_VNODES, true);
    unsigned rounds = sim_converge(s, 5, 10);
    print_message("      5 nodes converged in %u rounds\n", rounds);

    /* Every view holds what each node announced, and places keys alike. */
    for (size_t i = 0; i < 5; i++) {
        for (uint32_t j = 0; j < 5; j++) {
            struct gossip_peer p;
            assert_true(gossip_find(s->n[i].g, s->n[j].id, &p));
            assert_int_equal(p.self, i == j);
            assert_int_equal(p.status, GOSSIP_STATUS_NORMAL);
            assert_string_equal(p.addr, s->n[j].addr);
            assert_int_equal(p.load, j * 1000);
            assert_int_equal(p.schema, 42);
            uint64_t toks[RING_DEFAULT_VNODES];
            sim_tokens(j, 1, toks, RING_DEFAULT_VNODES);
            assert_int_equal(p.ntokens, RING_DEFAULT_VNODES);
            assert_memory_equal(p.tokens, toks, sizeof(toks));
            assert_int_equal(gossip_peer_state(s->n[i].g, s->n[j].id, s->now), PHI_UP);
        }
    }
    struct ring *r0 = sim_ring(s, 0);
    assert_int_equal(ring_node_count(r0), 5);
    for (size_t i = 1; i < 5; i++) {
        struct ring *ri = sim_ring(s, i);
        uint64_t seed = 9;
        for (int k = 0; k < 1000; k++) {
            uint64_t tok = mix(&seed);
            uint32_t a[3], b[3];
            assert_int_equal(ring_preference(r0, tok, 3, a), 3);
            assert_int_equal(ring_preference(ri, tok, 3, b), 3);
            for (int x = 0; x < 3; x++)
                assert_memory_equal(ring_node(r0, a[x])->id, ring_node(ri, b[x])->id,
                                    GOSSIP_ID_LEN);
        }
        ring_free(&ri);
    }
    ring_free(&r0);

    /* A state changed later spreads too, and so does a key of a later
     * build, relayed verbatim by nodes that do not interpret it. */
    assert_int_equal(gossip_set_load(s->n[3].g, 777), ST_OK);
    assert_int_equal(gossip_set_app(s->n[4].g, 13, "v2-only", 7), ST_OK);
    sim_converge(s, 5, 10);
    struct gossip_peer p;
    assert_true(gossip_find(s->n[0].g, s->n[3].id, &p));
    assert_int_equal(p.load, 777);
    for (size_t i = 0; i < 4; i++) {
        const uint8_t *v;
        size_t len;
        uint64_t ver;
        assert_true(gossip_app_value(s->n[i].g, s->n[4].id, 13, &v, &len, &ver));
        assert_int_equal(len, 7);
        assert_memory_equal(v, "v2-only", 7);
    }
    sim_free(s);
}

static void test_restart(void **state)
{
    (void)state;
    struct sim *s = sim_new(4, 1, 0);
    for (uint32_t i = 0; i < 4; i++)
        sim_start(s, i, 10, RING_DEFAULT_VNODES, true);
    sim_converge(s, 4, 10);
    uint64_t rv[4];
    for (size_t i = 0; i < 4; i++)
        rv[i] = gossip_ring_version(s->n[i].g);

    /* Node 2 restarts: a new generation, new tokens, no rack any more. */
    sim_start(s, 2, 11, 8, false);
    unsigned rounds = sim_converge(s, 4, 10);
    print_message("      a restart spread in %u rounds\n", rounds);
    uint64_t toks[8];
    sim_tokens(2, 11, toks, 8);
    for (size_t i = 0; i < 4; i++) {
        struct gossip_peer p;
        assert_true(gossip_find(s->n[i].g, s->n[2].id, &p));
        assert_int_equal(p.generation, 11);
        assert_int_equal(p.ntokens, 8);
        assert_memory_equal(p.tokens, toks, sizeof(toks));
        assert_string_equal(p.rack, "");
        assert_int_equal(p.versions[GOSSIP_APP_RACK], 0);
        if (i != 2) {
            assert_true(gossip_ring_version(s->n[i].g) > rv[i]);
            struct gossip_stats st;
            gossip_stats(s->n[i].g, &st);
            assert_int_equal(st.restarts, 1);
            assert_int_equal(gossip_peer_state(s->n[i].g, s->n[2].id, s->now), PHI_UP);
        }
    }
    /* The old generation never comes back. */
    sim_run_until(s, s->now + 20000);
    assert_true(sim_converged(s, 4));
    for (size_t i = 0; i < 4; i++) {
        struct gossip_peer p;
        assert_true(gossip_find(s->n[i].g, s->n[2].id, &p));
        assert_int_equal(p.generation, 11);
        struct gossip_stats st;
        gossip_stats(s->n[i].g, &st);
        assert_int_equal(st.self_conflicts, 0);
        assert_int_equal(st.conflicts, 0);
    }
    sim_free(s);
}

/* Node 3 stops: each other node sees it suspect, then down; it resumes and
 * is up again everywhere. Returns the slowest observer's time to down. */
static uint64_t failure_run(double threshold)
{
    struct sim *s = sim_new(4, 1, 0);
    s->phi.threshold = threshold;
    s->phi.suspect_threshold = threshold / 2;
    for (uint32_t i = 0; i < 4; i++)
        sim_start(s, i, 1, 4, false);
    sim_converge(s, 4, 10);
    sim_run_until(s, s->now + 60000); /* a rhythm to learn */
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(gossip_peer_state(s->n[i].g, s->n[3].id, s->now), PHI_UP);

    s->n[3].alive = false;
    uint64_t stop = s->now;
    uint64_t suspect[3] = {0}, down[3] = {0};
    while (s->now < stop + 60000) {
        sim_run_until(s, s->now + 10);
        for (size_t i = 0; i < 3; i++) {
            enum phi_state st = gossip_peer_state(s->n[i].g, s->n[3].id, s->now);
            if (st == PHI_SUSPECT && !suspect[i])
                suspect[i] = s->now - stop;
            if (st == PHI_DOWN && !down[i])
                down[i] = s->now - stop;
            if (st == PHI_UP)
                assert_int_equal(down[i], 0); /* no heartbeat, no way back */
            /* The others stay up for each other. */
            for (size_t j = 0; j < 3; j++)
                assert_int_equal(gossip_peer_state(s->n[i].g, s->n[j].id, s->now), PHI_UP);
        }
    }
    uint64_t slowest = 0;
    for (size_t i = 0; i < 3; i++) {
        if (!suspect[i] || !down[i] || suspect[i] >= down[i])
            fail_msg("observer %zu: suspect at %llu, down at %llu ms", i,
                     (unsigned long long)suspect[i], (unsigned long long)down[i]);
        assert_true(suspect[i] > 1000);
        if (down[i] > slowest)
            slowest = down[i];
    }

    /* It resumes (same process, same generation). */
    s->n[3].alive = true;
    s->n[3].next_tick = s->now + 1;
    uint64_t resume = s->now;
    bool all_up = false;
    while (!all_up && s->now < resume + 10000) {
        sim_run_until(s, s->now + 100);
        all_up = true;
        for (size_t i = 0; i < 3; i++)
            all_up &= gossip_peer_state(s->n[i].g, s->n[3].id, s->now) == PHI_UP;
    }
    assert_true(all_up);
    print_message("      threshold %.0f: down after %llu ms (slowest), up %llu ms after resuming\n",
                  threshold, (unsigned long long)slowest, (unsigned long long)(s->now - resume));
    sim_free(s);
    return slowest;
}

static void test_failure_detection(void **state)
{
    (void)state;
    uint64_t at8 = failure_run(PHI_DEFAULT_THRESHOLD);
    assert_true(at8 < 10000);
    uint64_t at16 = failure_run(16);
    assert_true(at16 > at8);
}

static void test_other_cluster(void **state)
{
    (void)state;
    struct sim *s = sim_new(4, 2, 0);
    s->n[3].cluster = "other-cluster";
    /* The stranger's address is one of our seeds, and ours are its seeds. */
    snprintf(s->seedbuf[1], sizeof(s->seedbuf[1]), "n3:7311");
    for (uint32_t i = 0; i < 4; i++)
        sim_start(s, i, 1, 4, false);
    sim_converge(s, 3, 10);
    sim_run_until(s, s->now + 20000);
    assert_true(s->refused > 0);
    for (size_t i = 0; i < 3; i++) {
        struct gossip_peer p;
        assert_false(gossip_find(s->n[i].g, s->n[3].id, &p));
        assert_int_equal(gossip_count(s->n[i].g), 3);
    }
    assert_int_equal(gossip_count(s->n[3].g), 1);
    sim_free(s);
}

static void test_hundred_nodes(void **state)
{
    (void)state;
    struct sim *s = sim_new(100, 3, 0);
    for (uint32_t i = 0; i < 100; i++)
        sim_start(s, i, 1, RING_DEFAULT_VNODES, true);
    unsigned rounds = sim_converge(s, 100, 30);
    print_message("      100 nodes x 16 tokens converged in %u rounds; largest SYN %zu, ACK %zu, "
                  "ACK2 %zu bytes\n",
                  rounds, s->max_syn, s->max_ack, s->max_ack2);
    /* SYN: name + count + 100 digests of at most 34 bytes. */
    assert_true(s->max_syn <= 1 + strlen(CLUSTER) + 2 + 100 * 34);
    assert_true(s->max_ack <= 64 * 1024);
    assert_true(s->max_ack2 <= 64 * 1024);
    struct ring *r0 = sim_ring(s, 0);
    assert_int_equal(ring_node_count(r0), 100);
    struct ring *r1 = sim_ring(s, 99);
    for (uint32_t k = 0; k < 100; k++)
        assert_memory_equal(ring_node(r0, k)->tokens, ring_node(r1, k)->tokens,
                            RING_DEFAULT_VNODES * 8);
    ring_free(&r0);
    ring_free(&r1);
    sim_free(s);
}

/* States that do not fit the smallest budget at once still get through. */
static void test_over_budget(void **state)
{
    (void)state;
    struct sim *s = sim_new(40, 1, GOSSIP_BODY_MIN);
    for (uint32_t i = 0; i < 40; i++)
        sim_start(s, i, 1, RING_MAX_VNODES, false);
    unsigned rounds = sim_converge(s, 40, 40);
    uint64_t truncated = 0;
    for (size_t i = 0; i < 40; i++) {
        struct gossip_stats st;
        gossip_stats(s->n[i].g, &st);
        truncated += st.truncated;
    }
    print_message("      40 nodes x 1024 tokens, budget %u: %u rounds, %llu truncated replies, "
                  "largest ACK %zu\n",
                  GOSSIP_BODY_MIN, rounds, (unsigned long long)truncated, s->max_ack);
    assert_true(truncated > 0);
    assert_true(s->max_ack <= GOSSIP_BODY_MIN && s->max_ack2 <= GOSSIP_BODY_MIN);
    sim_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),          cmocka_unit_test(test_local_state),
        cmocka_unit_test(test_codec_roundtrip), cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_merge_rules),     cmocka_unit_test(test_heartbeat_liveness),
        cmocka_unit_test(test_one_exchange),    cmocka_unit_test(test_peer_choice),
        cmocka_unit_test(test_ring_nodes),      cmocka_unit_test(test_converge_five),
        cmocka_unit_test(test_restart),         cmocka_unit_test(test_failure_detection),
        cmocka_unit_test(test_other_cluster),   cmocka_unit_test(test_hundred_nodes),
        cmocka_unit_test(test_over_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
