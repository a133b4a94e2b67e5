/* test_ring.c - placement on the ring (common/ring.c): hand-built rings with
 * the expected preference lists written out, a brute-force reference (linear
 * scans, the rack rule in Cassandra's skipped-queue form) checked against the
 * fast lookup on random rings, range coverage and an ownership table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "common/mem.h"
#include "common/ring.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_NODES 32
#define MAX_TOKENS 64

/* splitmix64: a fixed-seed generator, so every run tests the same rings. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t *s, uint64_t n)
{
    return rng_next(s) % n;
}

/* A node list the tests own: ring_node views point into it. */
struct fixture {
    size_t count;
    struct ring_node nodes[MAX_NODES];
    uint64_t tokens[MAX_NODES][MAX_TOKENS];
};

/* Node i gets id {tag, 0, ..., 0}: tags order the ids. */
static void fx_add(struct fixture *fx, uint8_t tag, uint16_t short_id, const char *rack,
                   const uint64_t *tokens, uint32_t ntokens)
{
    assert_true(fx->count < MAX_NODES && ntokens <= MAX_TOKENS);
    struct ring_node *n = &fx->nodes[fx->count];
    memset(n, 0, sizeof(*n));
    n->id[0] = tag;
    n->short_id = short_id;
    n->rack = rack;
    memcpy(fx->tokens[fx->count], tokens, ntokens * sizeof(*tokens));
    n->tokens = fx->tokens[fx->count];
    n->ntokens = ntokens;
    fx->count++;
}

static struct ring *fx_build(const struct fixture *fx)
{
    struct ring *r = NULL;
    assert_int_equal(ring_build(fx->nodes, fx->count, &r), ST_OK);
    assert_non_null(r);
    return r;
}

/* The preference list of a token as id tags, for literal expectations. */
static void expect_tags(const struct ring *r, uint64_t token, size_t n, const char *want)
{
    uint32_t out[MAX_NODES];
    char got[MAX_NODES + 1];
    size_t k = ring_preference(r, token, n, out);
    for (size_t i = 0; i < k; i++)
        got[i] = (char)ring_node(r, out[i])->id[0];
    got[k] = '\0';
    if (strcmp(got, want) != 0)
        fail_msg("token %llu n %zu: got \"%s\", want \"%s\"", (unsigned long long)token, n, got,
                 want);
    if (k > 0)
        assert_int_equal(ring_primary(r, token), out[0]);
}

static void test_token_is_xxh3(void **state)
{
    (void)state;
    /* Golden values: a change of hash would move every stored key. */
    assert_true(ring_token("", 0) == 0x2d06800538d394c2ull);
    assert_true(ring_token("foo", 3) == 0xab6e5f64077e7d8aull);
    uint64_t seed = 1;
    char key[250];
    for (size_t len = 1; len <= sizeof(key); len++) {
        for (size_t i = 0; i < len; i++)
            key[i] = (char)rng_next(&seed);
        assert_true(ring_token(key, len) == XXH3_64bits(key, len));
    }
}

static void test_empty_ring(void **state)
{
    (void)state;
    struct ring *r = NULL;
    assert_int_equal(ring_build(NULL, 0, &r), ST_OK);
    uint32_t out[1];
    assert_int_equal(ring_node_count(r), 0);
    assert_int_equal(ring_vnode_count(r), 0);
    assert_int_equal(ring_preference(r, 42, 3, out), 0);
    assert_int_equal(ring_primary(r, 42), RING_NONE);
    assert_false(ring_is_replica(r, 42, 3, 0));
    uint8_t id[RING_ID_LEN] = {0};
    assert_int_equal(ring_find(r, id), RING_NONE);
    assert_int_equal(ring_find_short(r, 0), RING_NONE);
    ring_free(&r);
    assert_null(r);
    ring_free(&r);
    ring_free(NULL);
}

static void test_build_rejects(void **state)
{
    (void)state;
    const uint64_t t[] = {1, 2};
    char long_rack[RING_RACK_MAX + 2];
    memset(long_rack, 'r', sizeof(long_rack));
    long_rack[RING_RACK_MAX + 1] = '\0';
    size_t before = mem_bytes(MEM_OTHER);
    struct ring *r = (struct ring *)&r; /* must come back NULL */

    struct fixture fx = {0};
    fx_add(&fx, 'A', 1, NULL, t, 1);
    fx_add(&fx, 'A', 2, NULL, t + 1, 1); /* same id */
    assert_int_equal(ring_build(fx.nodes, fx.count, &r), ST_INVAL);
    assert_null(r);

    fx.nodes[1].id[0] = 'B';
    fx.nodes[1].short_id = 1; /* same short id */
    assert_int_equal(ring_build(fx.nodes, fx.count, &r), ST_INVAL);

    fx.nodes[1].short_id = 2;
    fx.nodes[1].ntokens = 0;
    assert_int_equal(ring_build(fx.nodes, fx.count, &r), ST_INVAL);
    fx.nodes[1].ntokens = RING_MAX_VNODES + 1;
    assert_int_equal(ring_build(fx.nodes, fx.count, &r), ST_INVAL);
    fx.nodes[1].ntokens = 1;
    fx.nodes[1].tokens = NULL;
    assert_int_equal(ring_build(fx.nodes, fx.count, &r), ST_INVAL);
    fx.nodes[1].tokens = t + 1;

    fx.nodes[1].rack = long_rack;
    assert_int_equal(ring_build(fx.nodes, fx.count, &r), ST_INVAL);
    long_rack[RING_RACK_MAX] = '\0'; /* exactly the limit */
    assert_int_equal(ring_build(fx.nodes, fx.count, &r), ST_OK);
    assert_string_equal(ring_node(r, 1)->rack, long_rack);
    ring_free(&r);
    /* Failures after allocating (the duplicate checks) leak nothing. */
    assert_int_equal(mem_bytes(MEM_OTHER), before);
}

static void test_node_views(void **state)
{
    (void)state;
    char rack[] = "rack-1";
    const uint64_t ta[] = {900, 100, 500}, tb[] = {300};
    struct fixture fx = {0};
    fx_add(&fx, 'B', 7, "", tb, 1);
    fx_add(&fx, 'A', 9, rack, ta, 3);
    struct ring *r = fx_build(&fx);
    rack[0] = 'X'; /* the ring kept its own copy */

    assert_int_equal(ring_node_count(r), 2);
    assert_int_equal(ring_vnode_count(r), 4);
    const struct ring_node *a = ring_node(r, 0), *b = ring_node(r, 1);
    assert_int_equal(a->id[0], 'A'); /* numbered in id order */
    assert_int_equal(a->short_id, 9);
    assert_string_equal(a->rack, "rack-1");
    assert_int_equal(a->ntokens, 3);
    assert_true(a->tokens[0] == 100 && a->tokens[1] == 500 && a->tokens[2] == 900);
    assert_null(b->rack); /* "" is no rack */
    assert_int_equal(ring_find(r, a->id), 0);
    assert_int_equal(ring_find(r, b->id), 1);
    assert_int_equal(ring_find_short(r, 9), 0);
    assert_int_equal(ring_find_short(r, 7), 1);
    assert_int_equal(ring_find_short(r, 8), RING_NONE);
    uint8_t unknown[RING_ID_LEN] = {'C'};
    assert_int_equal(ring_find(r, unknown), RING_NONE);
    ring_free(&r);
}

/* A vnode owns (previous token, its token]; past the top it wraps to the
 * lowest token. */
static void test_wraparound(void **state)
{
    (void)state;
    const uint64_t ta[] = {10}, tb[] = {20}, tc[] = {UINT64_MAX - 10};
    struct fixture fx = {0};
    fx_add(&fx, 'A', 1, NULL, ta, 1);
    fx_add(&fx, 'B', 2, NULL, tb, 1);
    fx_add(&fx, 'C', 3, NULL, tc, 1);
    struct ring *r = fx_build(&fx);
    expect_tags(r, 0, 3, "ABC");
    expect_tags(r, 10, 3, "ABC");
    expect_tags(r, 11, 3, "BCA");
    expect_tags(r, 20, 3, "BCA");
    expect_tags(r, 21, 3, "CAB");
    expect_tags(r, UINT64_MAX - 10, 3, "CAB");
    expect_tags(r, UINT64_MAX - 9, 3, "ABC");
    expect_tags(r, UINT64_MAX, 3, "ABC");
    expect_tags(r, UINT64_MAX, 1, "A");

    /* A's one range is the wrapping one, and holds both ends of the space. */
    struct ring_range rg[4];
    assert_int_equal(ring_ranges(r, 0, 1, rg, ARRAY_LEN(rg)), 1);
    assert_true(rg[0].start == UINT64_MAX - 10 && rg[0].end == 10);
    assert_true(ring_range_contains(rg[0], 0) && ring_range_contains(rg[0], UINT64_MAX));
    assert_true(ring_range_contains(rg[0], 10) && !ring_range_contains(rg[0], 11));
    assert_false(ring_range_contains(rg[0], UINT64_MAX - 10));
    ring_free(&r);

    /* A vnode at the very top owns the top token; 0 wraps past it. */
    const uint64_t td[] = {UINT64_MAX};
    fx_add(&fx, 'D', 4, NULL, td, 1);
    r = fx_build(&fx);
    expect_tags(r, UINT64_MAX, 2, "DA");
    expect_tags(r, UINT64_MAX - 9, 2, "DA");
    expect_tags(r, 0, 2, "AB");
    ring_free(&r);
}

static void test_n_exceeds_nodes(void **state)
{
    (void)state;
    const uint64_t ta[] = {10, 60}, tb[] = {20, 50}, tc[] = {30, 40};
    struct fixture fx = {0};
    fx_add(&fx, 'A', 1, NULL, ta, 2);
    fx_add(&fx, 'B', 2, NULL, tb, 2);
    fx_add(&fx, 'C', 3, NULL, tc, 2);
    struct ring *r = fx_build(&fx);
    expect_tags(r, 5, 10, "ABC");
    expect_tags(r, 35, 10, "CBA");
    expect_tags(r, 55, 2, "AB");
    expect_tags(r, 55, 0, "");
    assert_true(ring_is_replica(r, 55, 10, 2));
    assert_false(ring_is_replica(r, 55, 2, 2));
    ring_free(&r);
}

/* 3 racks, 6 nodes, N = 3: one node per rack, clockwise. */
static void test_rack_three_racks(void **state)
{
    (void)state;
    const uint64_t t[] = {100, 200, 300, 400, 500, 600};
    struct fixture fx = {0};
    fx_add(&fx, 'A', 1, "r1", t + 0, 1);
    fx_add(&fx, 'B', 2, "r1", t + 1, 1);
    fx_add(&fx, 'C', 3, "r2", t + 2, 1);
    fx_add(&fx, 'D', 4, "r2", t + 3, 1);
    fx_add(&fx, 'E', 5, "r3", t + 4, 1);
    fx_add(&fx, 'F', 6, "r3", t + 5, 1);
    struct ring *r = fx_build(&fx);
    expect_tags(r, 50, 3, "ACE");  /* B, D skipped: their racks are in */
    expect_tags(r, 150, 3, "BCE"); /* D skipped */
    expect_tags(r, 550, 3, "FAC"); /* wraps; B skipped */
    expect_tags(r, 550, 6, "FACBDE");
    expect_tags(r, 50, 4, "ACEB"); /* racks exhausted: next clockwise */

    uint64_t seed = 3;
    for (int i = 0; i < 2000; i++) {
        uint32_t out[3];
        assert_int_equal(ring_preference(r, rng_next(&seed), 3, out), 3);
        const char *r0 = ring_node(r, out[0])->rack, *r1 = ring_node(r, out[1])->rack,
                   *r2 = ring_node(r, out[2])->rack;
        assert_true(strcmp(r0, r1) != 0 && strcmp(r0, r2) != 0 && strcmp(r1, r2) != 0);
    }
    ring_free(&r);

    /* Ungrouped by token order too: racks interleaved differently. */
    struct fixture fy = {0};
    fx_add(&fy, 'A', 1, "r1", t + 0, 1);
    fx_add(&fy, 'B', 2, "r1", t + 1, 1);
    fx_add(&fy, 'C', 3, "r1", t + 2, 1);
    fx_add(&fy, 'D', 4, "r2", t + 3, 1);
    fx_add(&fy, 'E', 5, "r3", t + 4, 1);
    fx_add(&fy, 'F', 6, "r3", t + 5, 1);
    r = fx_build(&fy);
    expect_tags(r, 50, 3, "ADE");  /* B, C skipped */
    expect_tags(r, 450, 3, "EAD"); /* F skipped, wraps to A, then D */
    ring_free(&r);
}

/* 2 racks, N = 3: both racks, then the first node clockwise from the start
 * that is not yet in the list. */
static void test_rack_two_racks(void **state)
{
    (void)state;
    const uint64_t t[] = {100, 200, 300, 400};
    struct fixture fx = {0};
    fx_add(&fx, 'A', 1, "r1", t + 0, 1);
    fx_add(&fx, 'B', 2, "r1", t + 1, 1);
    fx_add(&fx, 'C', 3, "r2", t + 2, 1);
    fx_add(&fx, 'D', 4, "r2", t + 3, 1);
    struct ring *r = fx_build(&fx);
    expect_tags(r, 50, 3, "ACB");
    expect_tags(r, 150, 3, "BCD");
    expect_tags(r, 250, 3, "CAD");
    expect_tags(r, 350, 3, "DAB");
    uint64_t seed = 4;
    for (int i = 0; i < 2000; i++) {
        uint32_t out[3];
        assert_int_equal(ring_preference(r, rng_next(&seed), 3, out), 3);
        assert_string_not_equal(ring_node(r, out[0])->rack, ring_node(r, out[1])->rack);
    }
    ring_free(&r);

    /* A rack-less node is a rack of its own. */
    struct fixture fy = {0};
    fx_add(&fy, 'A', 1, "r1", t + 0, 1);
    fx_add(&fy, 'B', 2, "r1", t + 1, 1);
    fx_add(&fy, 'C', 3, NULL, t + 2, 1);
    fx_add(&fy, 'D', 4, NULL, t + 3, 1);
    r = fx_build(&fy);
    expect_tags(r, 50, 3, "ACD");
    expect_tags(r, 150, 2, "BC");
    expect_tags(r, 50, 4, "ACDB");
    ring_free(&r);
}

/* Equal tokens of different nodes: the lower id comes first; the other
 * vnode owns an empty range. */
static void test_equal_tokens(void **state)
{
    (void)state;
    const uint64_t same[] = {1000}, tz[] = {2000};
    struct fixture fx = {0};
    fx_add(&fx, 'Y', 1, NULL, same, 1);
    fx_add(&fx, 'X', 2, NULL, same, 1);
    fx_add(&fx, 'Z', 3, NULL, tz, 1);
    struct ring *r = fx_build(&fx);
    expect_tags(r, 500, 3, "XYZ");
    expect_tags(r, 1000, 2, "XY");
    expect_tags(r, 1001, 2, "ZX");
    uint32_t y = ring_find(r, fx.nodes[0].id);
    struct ring_range rg[4];
    assert_int_equal(ring_ranges(r, y, 1, rg, ARRAY_LEN(rg)), 0);
    assert_int_equal(ring_ranges(r, y, 2, rg, ARRAY_LEN(rg)), 1);
    assert_true(rg[0].start == 2000 && rg[0].end == 1000);
    double primary[3];
    ring_ownership(r, 1, primary, NULL);
    assert_true(primary[y] == 0);
    ring_free(&r);

    /* All tokens equal: one arc, the whole circle (start == end). */
    struct fixture fy = {0};
    fx_add(&fy, 'Y', 1, NULL, same, 1);
    fx_add(&fy, 'X', 2, NULL, same, 1);
    r = fx_build(&fy);
    uint32_t x = ring_find(r, fy.nodes[1].id);
    assert_int_equal(ring_ranges(r, x, 1, rg, ARRAY_LEN(rg)), 1);
    assert_true(rg[0].start == 1000 && rg[0].end == 1000);
    assert_true(ring_range_contains(rg[0], 0) && ring_range_contains(rg[0], 1000) &&
                ring_range_contains(rg[0], UINT64_MAX));
    double rep[2];
    ring_ownership(r, 2, primary, rep);
    assert_true(primary[x] == 1.0 && primary[1 - x] == 0 && rep[0] == 1.0 && rep[1] == 1.0);
    ring_free(&r);
}

/* ---- random rings and the brute-force reference ---- */

static const char *const rack_names[] = {"r1", "r2", "r3", "r4"};

/* nodes nodes with vnodes tokens each; racks: 0 none, k = k racks, with an
 * occasional rack-less node. Small token spaces force equal tokens. */
static void random_fixture(struct fixture *fx, uint64_t *seed, size_t nodes, uint32_t vnodes,
                           unsigned racks, uint64_t space)
{
    memset(fx, 0, sizeof(*fx));
    for (size_t i = 0; i < nodes; i++) {
        struct ring_node *n = &fx->nodes[i];
        for (size_t b = 0; b < RING_ID_LEN; b++)
            n->id[b] = (uint8_t)rng_next(seed);
        n->short_id = (uint16_t)(1000 + i);
        n->rack = racks == 0 || rng_below(seed, 8) == 0 ? NULL : rack_names[rng_below(seed, racks)];
        for (uint32_t t = 0; t < vnodes; t++)
            fx->tokens[i][t] = space == 0 ? rng_next(seed) : rng_below(seed, space);
        n->tokens = fx->tokens[i];
        n->ntokens = vnodes;
    }
    fx->count = nodes;
}

struct ref_vnode {
    uint64_t token;
    size_t node; /* index in the fixture */
};

static int ref_less(const struct fixture *fx, struct ref_vnode a, struct ref_vnode b)
{
    if (a.token != b.token)
        return a.token < b.token;
    return memcmp(fx->nodes[a.node].id, fx->nodes[b.node].id, RING_ID_LEN) < 0;
}

static size_t ref_vnodes(const struct fixture *fx, struct ref_vnode *v)
{
    size_t nv = 0;
    for (size_t i = 0; i < fx->count; i++)
        for (uint32_t t = 0; t < fx->nodes[i].ntokens; t++)
            v[nv++] = (struct ref_vnode){fx->nodes[i].tokens[t], i};
    return nv;
}

/* The least vnode in (token, id) order among those accepted by `after`
 * (or among all, when none is), by linear scan. */
static size_t ref_least(const struct fixture *fx, const struct ref_vnode *v, size_t nv,
                        const struct ref_vnode *after, uint64_t token)
{
    size_t best = SIZE_MAX, least = 0;
    for (size_t i = 0; i < nv; i++) {
        if (ref_less(fx, v[i], v[least]))
            least = i;
        int ok = after != NULL ? ref_less(fx, *after, v[i]) : v[i].token >= token;
        if (ok && (best == SIZE_MAX || ref_less(fx, v[i], v[best])))
            best = i;
    }
    return best == SIZE_MAX ? least : best;
}

static int ref_same_rack(const struct fixture *fx, size_t a, size_t b)
{
    const char *ra = fx->nodes[a].rack, *rb = fx->nodes[b].rack;
    if (a == b)
        return 1;
    return ra != NULL && rb != NULL && strcmp(ra, rb) == 0;
}

/* The preference list by the rack rule in its Cassandra form: walk once;
 * a node of a new rack is taken, one of a seen rack waits in a queue; when
 * every rack is seen the queue is taken, then every new node. */
static size_t ref_preference(const struct fixture *fx, uint64_t token, size_t n, size_t *out)
{
    struct ref_vnode v[MAX_NODES * MAX_TOKENS] = {{0, 0}};
    size_t nv = ref_vnodes(fx, v);
    size_t racks = 0;
    for (size_t i = 0; i < fx->count; i++) {
        size_t j = 0;
        while (j < i && !ref_same_rack(fx, i, j))
            j++;
        racks += j == i;
    }
    if (n > fx->count)
        n = fx->count;
    size_t k = 0, skipped[MAX_NODES], nskipped = 0, seen = 0;
    size_t cur = ref_least(fx, v, nv, NULL, token);
    for (size_t step = 0; step < nv && k < n; step++) {
        size_t node = v[cur].node;
        int dup = 0, rack_seen = 0;
        for (size_t j = 0; j < k; j++) {
            dup |= out[j] == node;
            rack_seen |= ref_same_rack(fx, out[j], node);
        }
        for (size_t j = 0; j < nskipped; j++)
            dup |= skipped[j] == node;
        if (!dup) {
            if (seen < racks && rack_seen) {
                skipped[nskipped++] = node;
            } else {
                out[k++] = node;
                if (seen < racks && ++seen == racks)
                    for (size_t j = 0; j < nskipped && k < n; j++)
                        out[k++] = skipped[j];
            }
        }
        cur = ref_least(fx, v, nv, &v[cur], 0);
    }
    return k;
}

static void check_against_reference(const struct fixture *fx, const struct ring *r, uint64_t token,
                                    size_t n)
{
    uint32_t got[MAX_NODES];
    size_t want[MAX_NODES];
    size_t k = ring_preference(r, token, n, got);
    size_t kw = ref_preference(fx, token, n, want);
    assert_int_equal(k, kw);
    for (size_t i = 0; i < k; i++) {
        if (memcmp(ring_node(r, got[i])->id, fx->nodes[want[i]].id, RING_ID_LEN) != 0)
            fail_msg("token %llu n %zu: position %zu differs", (unsigned long long)token, n, i);
        assert_true(ring_is_replica(r, token, n, got[i]));
    }
    assert_int_equal(ring_primary(r, token), got[0]);
}

static void test_matches_reference(void **state)
{
    (void)state;
    static const struct {
        size_t nodes;
        uint32_t vnodes;
        unsigned racks;
        uint64_t space;
    } shapes[] = {
        {1, 1, 0, 0},   {2, 3, 0, 0}, {5, 16, 0, 0},   {7, 8, 2, 0},   {9, 8, 3, 0},
        {12, 4, 4, 0},  {6, 8, 1, 0}, {8, 8, 3, 64},   {10, 6, 2, 16}, {4, 16, 0, 8},
        {16, 16, 3, 0}, {3, 2, 2, 4}, {20, 3, 4, 200}, {11, 5, 3, 0},  {5, 1, 2, 0},
    };
    uint64_t seed = 12345;
    size_t checks = 0;
    for (size_t s = 0; s < ARRAY_LEN(shapes); s++) {
        struct fixture fx;
        random_fixture(&fx, &seed, shapes[s].nodes, shapes[s].vnodes, shapes[s].racks,
                       shapes[s].space);
        struct ring *r = fx_build(&fx);
        for (int i = 0; i < 1000; i++) {
            uint64_t token;
            switch (i % 4) {
            case 0: token = rng_next(&seed); break;
            case 1:
                token = shapes[s].space ? rng_below(&seed, shapes[s].space + 2) : rng_next(&seed);
                break;
            default: {
                /* On a vnode token, or one either side of it. */
                const struct ring_node *n = &fx.nodes[rng_below(&seed, fx.count)];
                token = n->tokens[rng_below(&seed, n->ntokens)] + rng_below(&seed, 3) - 1;
            }
            }
            size_t n = 1 + (size_t)rng_below(&seed, 5);
            check_against_reference(&fx, r, token, n);
            checks++;
        }
        check_against_reference(&fx, r, 0, 3);
        check_against_reference(&fx, r, UINT64_MAX, 3);
        check_against_reference(&fx, r, 0, fx.count + 1);
        ring_free(&r);
    }
    print_message("    %zu random lookups agree with the reference\n", checks);
}

/* Any permutation of the node list builds the same ring. */
static void test_insertion_order(void **state)
{
    (void)state;
    uint64_t seed = 777;
    struct fixture fx;
    random_fixture(&fx, &seed, 9, 8, 3, 0);
    /* Shared tokens between nodes, so the tie rule is exercised. */
    fx.tokens[3][0] = fx.tokens[5][0] = fx.tokens[7][0];
    struct ring *base = fx_build(&fx);
    for (int perm = 0; perm < 20; perm++) {
        struct fixture shuffled = fx;
        for (size_t i = shuffled.count - 1; i > 0; i--) {
            size_t j = (size_t)rng_below(&seed, i + 1);
            struct ring_node tmp = shuffled.nodes[i];
            shuffled.nodes[i] = shuffled.nodes[j];
            shuffled.nodes[j] = tmp;
        }
        struct ring *r = fx_build(&shuffled);
        for (uint32_t i = 0; i < ring_node_count(r); i++)
            assert_memory_equal(ring_node(r, i)->id, ring_node(base, i)->id, RING_ID_LEN);
        uint64_t tseed = 99;
        for (int i = 0; i < 2000; i++) {
            uint64_t token = i < 3 ? fx.tokens[7][0] - 1 + (uint64_t)i : rng_next(&tseed);
            uint32_t a[MAX_NODES], b[MAX_NODES];
            size_t n = 1 + (size_t)(i % 9);
            size_t ka = ring_preference(base, token, n, a), kb = ring_preference(r, token, n, b);
            assert_int_equal(ka, kb);
            for (size_t k = 0; k < ka; k++)
                assert_memory_equal(ring_node(base, a[k])->id, ring_node(r, b[k])->id, RING_ID_LEN);
        }
        ring_free(&r);
    }
    ring_free(&base);
}

static void test_distinct_nodes(void **state)
{
    (void)state;
    uint64_t seed = 31;
    for (unsigned racks = 0; racks <= 3; racks++) {
        struct fixture fx;
        random_fixture(&fx, &seed, 7, 16, racks, 0);
        struct ring *r = fx_build(&fx);
        for (int i = 0; i < 3000; i++) {
            uint32_t out[MAX_NODES];
            size_t n = 1 + (size_t)(i % 9);
            size_t k = ring_preference(r, rng_next(&seed), n, out);
            assert_int_equal(k, n < fx.count ? n : fx.count);
            for (size_t a = 0; a < k; a++)
                for (size_t b = a + 1; b < k; b++)
                    assert_int_not_equal(out[a], out[b]);
        }
        ring_free(&r);
    }
}

/* 128-bit sum of range widths: hi counts whole circles. */
struct wide {
    uint64_t hi, lo;
};

static void wide_add_range(struct wide *w, struct ring_range rg)
{
    if (rg.start == rg.end) {
        w->hi++;
        return;
    }
    uint64_t width = rg.end - rg.start;
    w->lo += width;
    w->hi += w->lo < width;
}

/* The ranges of all nodes cover the circle exactly min(N, nodes) times,
 * and a token is in a node's ranges exactly when the node is a replica. */
static void test_ranges_cover(void **state)
{
    (void)state;
    static const struct {
        size_t nodes;
        uint32_t vnodes;
        unsigned racks;
        uint64_t space;
    } shapes[] = {{1, 1, 0, 0},   {2, 16, 0, 0}, {3, 16, 0, 0}, {5, 16, 2, 0},
                  {10, 16, 3, 0}, {8, 4, 3, 32}, {6, 1, 0, 0},  {4, 8, 4, 3}};
    uint64_t seed = 2024;
    struct ring_range rg[MAX_NODES * MAX_TOKENS];
    for (size_t s = 0; s < ARRAY_LEN(shapes); s++) {
        struct fixture fx;
        random_fixture(&fx, &seed, shapes[s].nodes, shapes[s].vnodes, shapes[s].racks,
                       shapes[s].space);
        struct ring *r = fx_build(&fx);
        for (size_t n = 1; n <= 5; n++) {
            struct wide total = {0, 0};
            double prim[MAX_NODES], rep[MAX_NODES], psum = 0, rsum = 0;
            ring_ownership(r, n, prim, rep);
            for (uint32_t node = 0; node < ring_node_count(r); node++) {
                size_t cnt = ring_ranges(r, node, n, rg, ARRAY_LEN(rg));
                assert_true(cnt <= ring_vnode_count(r));
                /* A short buffer gets a prefix and the full count. */
                if (cnt > 1) {
                    struct ring_range few[1];
                    assert_int_equal(ring_ranges(r, node, n, few, 1), cnt);
                    assert_true(few[0].start == rg[0].start && few[0].end == rg[0].end);
                }
                for (size_t i = 0; i < cnt; i++) {
                    wide_add_range(&total, rg[i]);
                    assert_true(ring_is_replica(r, rg[i].end, n, node));
                    assert_true(ring_is_replica(r, rg[i].start + 1, n, node));
                }
                for (int i = 0; i < 200; i++) {
                    uint64_t token = rng_next(&seed);
                    int in = 0;
                    for (size_t j = 0; j < cnt; j++)
                        in |= ring_range_contains(rg[j], token);
                    assert_int_equal(in, ring_is_replica(r, token, n, node));
                }
                psum += prim[node];
                rsum += rep[node];
            }
            size_t copies = n < fx.count ? n : fx.count;
            if (total.hi != copies || total.lo != 0)
                fail_msg("shape %zu n %zu: ranges cover %llu circles + %llu, want %zu", s, n,
                         (unsigned long long)total.hi, (unsigned long long)total.lo, copies);
            assert_true(psum > 1 - 1e-9 && psum < 1 + 1e-9);
            assert_true(rsum > (double)copies - 1e-9 && rsum < (double)copies + 1e-9);
        }
        ring_free(&r);
    }
}

static void test_ownership_balance(void **state)
{
    (void)state;
    static const size_t sizes[] = {3, 5, 10};
    uint64_t seed = 16;
    print_message("    nodes  vnodes  primary min%%  max%%   max/min  "
                  "replicated(N=3) min%%  max%%   max/min\n");
    for (size_t s = 0; s < ARRAY_LEN(sizes); s++) {
        struct fixture fx;
        random_fixture(&fx, &seed, sizes[s], RING_DEFAULT_VNODES, 0, 0);
        struct ring *r = fx_build(&fx);
        double prim[MAX_NODES], rep[MAX_NODES];
        ring_ownership(r, 3, prim, rep);
        double pmin = 1, pmax = 0, rmin = 3, rmax = 0;
        for (size_t i = 0; i < fx.count; i++) {
            assert_true(prim[i] > 0 && prim[i] < 1);
            assert_true(rep[i] > 0 && rep[i] <= 1);
            assert_true(rep[i] >= prim[i]);
            pmin = prim[i] < pmin ? prim[i] : pmin;
            pmax = prim[i] > pmax ? prim[i] : pmax;
            rmin = rep[i] < rmin ? rep[i] : rmin;
            rmax = rep[i] > rmax ? rep[i] : rmax;
        }
        print_message("    %5zu  %6d  %12.2f  %5.2f  %7.2f  %20.2f  %5.2f  %7.2f\n", fx.count,
                      RING_DEFAULT_VNODES, 100 * pmin, 100 * pmax, pmax / pmin, 100 * rmin,
                      100 * rmax, rmax / rmin);
        ring_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_is_xxh3),    cmocka_unit_test(test_empty_ring),
        cmocka_unit_test(test_build_rejects),    cmocka_unit_test(test_node_views),
        cmocka_unit_test(test_wraparound),       cmocka_unit_test(test_n_exceeds_nodes),
        cmocka_unit_test(test_rack_three_racks), cmocka_unit_test(test_rack_two_racks),
        cmocka_unit_test(test_equal_tokens),     cmocka_unit_test(test_matches_reference),
        cmocka_unit_test(test_insertion_order),  cmocka_unit_test(test_distinct_nodes),
        cmocka_unit_test(test_ranges_cover),     cmocka_unit_test(test_ownership_balance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
