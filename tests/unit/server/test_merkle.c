/* test_merkle.c - Merkle trees for anti-entropy repair (server/merkle.c):
 * the canonical record encoding and hash layout pinned by golden values, the
 * leaf geometry of plain, narrow, wrapping and whole-circle ranges, trees
 * built from real engines with different flush and compaction histories
 * (equal), one missing record or one stale version (the diff names exactly
 * the leaf range holding its token), the as-of rule for expired records and
 * tombstones (including one purged by compaction on one side only), the
 * order checks of merkle_add, and a top-down exchange driven level by
 * level that finds what merkle_diff finds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ftw.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/ring.h"
#include "server/merkle.h"
#include "storage/include/lsm.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define NOW 1700000000ull
#define GRACE 3600ull
#define WHOLE(s) ((struct ring_range){(s), (s)})

/* ------------------------------------------------------------ engines */

struct eng {
    char dir[64];
    uint64_t now;
    struct lsm_db *db;
};

/* Engines still open, so a failed test's teardown removes its directories. */
static struct eng *open_engs[4];

static uint64_t fake_now(void *arg)
{
    return __atomic_load_n((uint64_t *)arg, __ATOMIC_RELAXED);
}

/* small: 64 KiB memtables and tables, L0 compacted at 2 files, so a few
 * hundred records make many tables; otherwise everything stays in memory. */
static struct eng *eng_open(bool small)
{
    struct eng *e = calloc(1, sizeof(*e));
    assert_non_null(e);
    snprintf(e->dir, sizeof(e->dir), "/tmp/strata-merkle-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    e->now = NOW;
    struct lsm_options o;
    lsm_options_init(&o);
    o.sync_mode = LSM_SYNC_NONE;
    o.now_fn = fake_now;
    o.now_arg = &e->now;
    o.gc_grace_seconds = GRACE;
    o.block_size = 4096;
    o.block_cache_size = 1u << 20;
    if (small) {
        o.memtable_size = 64u << 10;
        o.target_file_size = 64u << 10;
        o.l1_target_size = 64u << 10;
        o.l0_compaction_trigger = 2;
    }
    assert_int_equal(lsm_open(e->dir, &o, &e->db), ST_OK);
    for (size_t i = 0; i < ARRAY_LEN(open_engs); i++) {
        if (open_engs[i] == NULL) {
            open_engs[i] = e;
            return e;
        }
    }
    fail_msg("more than %zu engines open", ARRAY_LEN(open_engs));
    return NULL;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void eng_close(struct eng **ep)
{
    struct eng *e = *ep;
    for (size_t i = 0; i < ARRAY_LEN(open_engs); i++)
        if (open_engs[i] == e)
            open_engs[i] = NULL;
    lsm_close(&e->db);
    nftw(e->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(e);
    *ep = NULL;
}

/* ------------------------------------------------------------ data set */

/* One write: a put or a tombstone of a key at a version. */
struct op {
    char key[24];
    size_t klen;
    struct lsm_version v;
    bool del;
    uint64_t expiry; /* put: expiry; tombstone: deletion time */
};

#define NKEYS 600
#define MAX_OPS (NKEYS * 8)

struct dataset {
    struct op ops[MAX_OPS];
    size_t n;
};

static void ds_add(struct dataset *d, unsigned i, uint64_t hlc, uint16_t node, bool del,
                   uint64_t expiry)
{
    struct op *o = &d->ops[d->n++];
    snprintf(o->key, sizeof(o->key), "key:%05u", i);
    o->klen = strlen(o->key);
    o->v = (struct lsm_version){hlc, node};
    o->del = del;
    o->expiry = expiry;
}

/* Versions of every key, written in "rounds": round r holds the r-th write
 * of every key that has one, so a key's versions land in different tables.
 * Ends with: plain puts, newer puts (and an older one with the same hlc and
 * a lower node arriving after), live tombstones, puts expired as of NOW,
 * puts expiring later, and tombstones already past gc_grace. */
static struct dataset *ds_make(void)
{
    struct dataset *d = calloc(1, sizeof(*d));
    assert_non_null(d);
    for (int round = 0; round < 7; round++) {
        for (unsigned i = 0; i < NKEYS; i++) {
            switch (round) {
            case 0: ds_add(d, i, 1000 + i, 1, false, 0); break;
            case 1:
                if (i % 3 == 0)
                    ds_add(d, i, 3000 + i, 2, false, 0);
                break;
            case 2:
                if (i % 5 == 0)
                    ds_add(d, i, 3000 + i, 1, false, 0);
                break;
            case 3:
                if (i % 7 == 0)
                    ds_add(d, i, 6000 + i, 1, true, NOW - 100);
                break;
            case 4:
                if (i % 11 == 0)
                    ds_add(d, i, 7000 + i, 1, false, NOW - 50);
                break;
            case 5:
                if (i % 13 == 0)
                    ds_add(d, i, 7000 + i, 3, false, NOW + 5000);
                break;
            case 6:
                if (i % 17 == 0)
                    ds_add(d, i, 8000 + i, 1, true, NOW - 2 * GRACE);
                break;
            }
        }
    }
    assert_true(d->n <= MAX_OPS);
    return d;
}

static void write_op(struct lsm_db *db, const struct op *o)
{
    if (o->del) {
        assert_int_equal(lsm_delete(db, o->key, o->klen, o->v, o->expiry), ST_OK);
        return;
    }
    char val[128];
    int n = snprintf(val, sizeof(val), "value of %s at %llu.%u, padded to make tables grow....",
                     o->key, (unsigned long long)o->v.hlc, (unsigned)o->v.node);
    struct lsm_record r = {
        .key = (const uint8_t *)o->key,
        .key_len = o->klen,
        .value = (const uint8_t *)val,
        .value_len = (size_t)n,
        .flags = 5,
        .expiry = o->expiry,
        .version = o->v,
    };
    assert_int_equal(lsm_put(db, &r), ST_OK);
}

/* Writes the data set, leaving out key `skip` (NULL: none); reverse = newest
 * rounds first (versions arrive out of order); flush_every > 0 flushes
 * after that many writes and compacts everything every 10 flushes. */
static void load(struct eng *e, const struct dataset *d, const char *skip, bool reverse,
                 unsigned flush_every)
{
    for (size_t k = 0; k < d->n; k++) {
        const struct op *o = &d->ops[reverse ? d->n - 1 - k : k];
        if (skip != NULL && strcmp(o->key, skip) == 0)
            continue;
        write_op(e->db, o);
        if (flush_every > 0 && (k + 1) % flush_every == 0) {
            assert_int_equal(lsm_flush(e->db), ST_OK);
            if ((k + 1) % (flush_every * 10) == 0)
                assert_int_equal(lsm_compact_all(e->db), ST_OK);
        }
    }
    if (flush_every > 0)
        assert_int_equal(lsm_compact_all(e->db), ST_OK);
}

static struct merkle_tree *build(struct eng *e, struct ring_range r, unsigned depth, uint64_t as_of)
{
    struct merkle_tree *t = NULL;
    assert_int_equal(merkle_build_from_db(e->db, NULL, r, depth, as_of, GRACE, &t), ST_OK);
    assert_non_null(t);
    return t;
}

/* The model: the newest version of every key of the data set, admitted by
 * the as-of rule, in the range, added in clockwise order. */
struct mrec {
    const struct op *o;
    uint64_t off;
};

static int cmp_mrec(const void *pa, const void *pb)
{
    const struct mrec *a = pa, *b = pb;
    if (a->off != b->off)
        return a->off < b->off ? -1 : 1;
    return strcmp(a->o->key, b->o->key);
}

static bool newer(struct lsm_version a, struct lsm_version b)
{
    return a.hlc != b.hlc ? a.hlc > b.hlc : a.node > b.node;
}

static struct merkle_tree *model_tree(const struct dataset *d, struct ring_range r, unsigned depth,
                                      uint64_t as_of)
{
    const struct op *best[NKEYS] = {0};
    for (size_t k = 0; k < d->n; k++) {
        unsigned i = (unsigned)atoi(d->ops[k].key + 4);
        if (best[i] == NULL || newer(d->ops[k].v, best[i]->v))
            best[i] = &d->ops[k];
    }
    struct mrec *m = calloc(NKEYS, sizeof(*m));
    size_t n = 0;
    for (unsigned i = 0; i < NKEYS; i++) {
        const struct op *o = best[i];
        uint64_t tok = ring_token(o->key, o->klen);
        if (!ring_range_contains(r, tok) || !merkle_record_counts(o->del, o->expiry, as_of, GRACE))
            continue;
        m[n++] = (struct mrec){o, tok - r.start - 1};
    }
    qsort(m, n, sizeof(*m), cmp_mrec);
    struct merkle_tree *t = NULL;
    assert_int_equal(merkle_create(r, depth, &t), ST_OK);
    for (size_t k = 0; k < n; k++) {
        const struct op *o = m[k].o;
        assert_int_equal(
            merkle_add(t, ring_token(o->key, o->klen), o->key, o->klen, o->v, o->del, o->expiry),
            ST_OK);
    }
    assert_int_equal(merkle_finish(t), ST_OK);
    free(m);
    return t;
}

/* Ranges the engine tests use: whole circle from 0, a plain range, one that
 * wraps through 0 (width 2^63), a whole circle from an odd start. */
static const struct ring_range ranges[] = {
    {0, 0},
    {0x1000000000000000ull, 0x9000000000000000ull},
    {0xC000000000000000ull, 0x4000000000000000ull},
    {0x123456789abcdef0ull, 0x123456789abcdef0ull},
};

static size_t diff_count(const struct merkle_tree *a, const struct merkle_tree *b)
{
    size_t n = 99;
    assert_int_equal(merkle_diff(a, b, NULL, 0, &n), ST_OK);
    return n;
}

/* Builds the trees of both engines and of the model over `r` and expects
 * all three equal. Returns the record count. */
static uint64_t expect_equal_trees(struct eng *a, struct eng *b, const struct dataset *d,
                                   struct ring_range r, unsigned depth)
{
    struct merkle_tree *ta = build(a, r, depth, NOW);
    struct merkle_tree *tb = build(b, r, depth, NOW);
    struct merkle_tree *tm = model_tree(d, r, depth, NOW);
    assert_int_equal(merkle_records(ta), merkle_records(tm));
    assert_int_equal(merkle_records(tb), merkle_records(tm));
    assert_true(merkle_root(ta) == merkle_root(tm));
    assert_true(merkle_root(tb) == merkle_root(tm));
    assert_int_equal(diff_count(ta, tb), 0);
    uint64_t n = merkle_records(ta);
    merkle_destroy(&ta);
    merkle_destroy(&tb);
    merkle_destroy(&tm);
    assert_null(ta);
    return n;
}

/* ------------------------------------------------------------ tests */

/* The byte layout and the hash construction, pinned: a change here breaks
 * repair between nodes of different versions. */
static void test_encoding_golden(void **state)
{
    (void)state;
    uint8_t enc[MERKLE_RECORD_HEADER + LSM_MAX_KEY_LEN];
    struct lsm_version v = {0x0102030405060708ull, 0x090a};
    size_t n = merkle_record_encode(enc, "abc", 3, v, true, 0x1112131415161718ull);
    static const uint8_t want[] = {
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* hlc LE */
        0x0a, 0x09,                                     /* node LE */
        0x01,                                           /* tombstone */
        0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11, /* expiry LE */
        0x03, 0x00,                                     /* key length LE */
        'a',  'b',  'c',
    };
    assert_int_equal(n, sizeof(want));
    assert_memory_equal(enc, want, sizeof(want));
    assert_int_equal(merkle_record_encode(enc, "k", 1, v, false, 0), MERKLE_RECORD_HEADER + 1);
    assert_int_equal(enc[10], 0);

    /* Depth 0: the root is the one leaf, the seeded XXH3 of the records. */
    uint64_t tok = ring_token("abc", 3);
    struct merkle_tree *t = NULL;
    assert_int_equal(merkle_create(WHOLE(0), 0, &t), ST_OK);
    assert_int_equal(merkle_add(t, tok, "abc", 3, v, true, 0x1112131415161718ull), ST_OK);
    assert_int_equal(merkle_finish(t), ST_OK);
    assert_true(merkle_root(t) == XXH3_64bits_withSeed(want, sizeof(want), MERKLE_LEAF_SEED));
    /* Literal values too, so a changed seed cannot go unnoticed. */
    assert_true(merkle_root(t) == 0xa948d71986b3c181ull);
    assert_true(XXH3_64bits_withSeed("", 0, MERKLE_LEAF_SEED) == 0xa9dca9dc6ef62a31ull);
    merkle_destroy(&t);

    /* Two records in one leaf: one stream over both encodings. */
    uint8_t two[2 * sizeof(enc)];
    const char *k1 = "abc", *k2 = "xyz";
    uint64_t t1 = ring_token(k1, 3), t2 = ring_token(k2, 3);
    if (t2 < t1) {
        const char *k = k1;
        k1 = k2;
        k2 = k;
        uint64_t x = t1;
        t1 = t2;
        t2 = x;
    }
    size_t l1 = merkle_record_encode(two, k1, 3, v, false, 7);
    size_t l2 = merkle_record_encode(two + l1, k2, 3, v, false, 0);
    assert_int_equal(merkle_create(WHOLE(0), 0, &t), ST_OK);
    assert_int_equal(merkle_add(t, t1, k1, 3, v, false, 7), ST_OK);
    assert_int_equal(merkle_add(t, t2, k2, 3, v, false, 0), ST_OK);
    assert_int_equal(merkle_finish(t), ST_OK);
    assert_true(merkle_root(t) == XXH3_64bits_withSeed(two, l1 + l2, MERKLE_LEAF_SEED));
    merkle_destroy(&t);

    /* Depth 1 over the whole circle from 0: left leaf (0, 2^63], right
     * (2^63, 0]. Inner = XXH3(left LE || right LE, inner seed); an empty
     * leaf is the seeded hash of nothing. */
    uint64_t empty = XXH3_64bits_withSeed("", 0, MERKLE_LEAF_SEED);
    uint64_t leaf = XXH3_64bits_withSeed(want, sizeof(want), MERKLE_LEAF_SEED);
    bool right = tok - 1 >= 0x8000000000000000ull;
    uint8_t pair[16];
    for (int i = 0; i < 8; i++) {
        pair[i] = (uint8_t)((right ? empty : leaf) >> (8 * i));
        pair[8 + i] = (uint8_t)((right ? leaf : empty) >> (8 * i));
    }
    assert_int_equal(merkle_create(WHOLE(0), 1, &t), ST_OK);
    assert_int_equal(merkle_add(t, tok, "abc", 3, v, true, 0x1112131415161718ull), ST_OK);
    assert_int_equal(merkle_finish(t), ST_OK);
    assert_true(merkle_root(t) == XXH3_64bits_withSeed(pair, 16, MERKLE_INNER_SEED));
    assert_true(merkle_node_hash(t, 1, right ? 1 : 0) == leaf);
    assert_true(merkle_node_hash(t, 1, right ? 0 : 1) == empty);
    merkle_destroy(&t);

    /* Ordered, not XOR-like: the swapped pair hashes differently. */
    uint8_t swapped[16];
    memcpy(swapped, pair + 8, 8);
    memcpy(swapped + 8, pair, 8);
    assert_true(XXH3_64bits_withSeed(pair, 16, MERKLE_INNER_SEED) !=
                XXH3_64bits_withSeed(swapped, 16, MERKLE_INNER_SEED));
}

/* Leaves partition the range exactly, in order, for plain, narrow (fewer
 * tokens than leaves), wrapping and whole-circle ranges. */
static void test_leaf_geometry(void **state)
{
    (void)state;
    static const struct {
        struct ring_range r;
        unsigned depth;
    } cases[] = {
        {{100, 200}, 4},
        {{5, 8}, 3}, /* 3 tokens, 8 leaves: 5 leaves cover nothing */
        {{UINT64_MAX - 10, 20}, 5},
        {{UINT64_MAX, 0}, 2}, /* the token 0 only */
        {{7, 7}, 6},
        {{0, UINT64_MAX}, 10},
        {{0, 0}, 0},
        {{0xC000000000000000ull, 0x4000000000000000ull}, 12},
    };
    for (size_t c = 0; c < ARRAY_LEN(cases); c++) {
        struct ring_range r = cases[c].r;
        struct merkle_tree *t = NULL;
        assert_int_equal(merkle_create(r, cases[c].depth, &t), ST_OK);
        assert_int_equal(merkle_depth(t), cases[c].depth);
        assert_int_equal(merkle_range(t).start, r.start);
        uint64_t nleaves = (uint64_t)1 << cases[c].depth;
        uint64_t at = r.start, nonempty = 0;
        for (uint64_t i = 0; i < nleaves; i++) {
            bool empty;
            struct ring_range lr = merkle_leaf_range(t, i, &empty);
            assert_int_equal(lr.start, at);
            at = lr.end;
            if (empty) {
                assert_int_equal(lr.start, lr.end);
                continue;
            }
            nonempty++;
            /* First and last token of the leaf map back to it. */
            assert_int_equal(merkle_leaf_of(t, lr.start + 1), i);
            assert_int_equal(merkle_leaf_of(t, lr.end), i);
            assert_true(ring_range_contains(r, lr.start + 1));
            assert_true(ring_range_contains(r, lr.end));
        }
        assert_int_equal(at, r.end);
        uint64_t width = r.end - r.start; /* 0: the whole circle */
        if (width != 0 && width < nleaves)
            assert_int_equal(nonempty, width);
        else
            assert_int_equal(nonempty, nleaves);
        merkle_destroy(&t);
    }
    /* Whole circle: leaf = (token - start - 1) >> (64 - depth). */
    struct merkle_tree *t = NULL;
    assert_int_equal(merkle_create(WHOLE(0x123456789abcdef0ull), 10, &t), ST_OK);
    uint64_t s = 1;
    for (int i = 0; i < 1000; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        assert_int_equal(merkle_leaf_of(t, s), (s - 0x123456789abcdef0ull - 1) >> 54);
    }
    assert_int_equal(merkle_leaf_of(t, 0x123456789abcdef0ull), 1023); /* the range's end */
    assert_int_equal(merkle_leaf_of(t, 0x123456789abcdef1ull), 0);
    merkle_destroy(&t);
}

/* The same data in two engines: one flushed every 20 writes and fully
 * compacted every 200 (tables, levels, purges of expired records and old
 * tombstones), the other never flushed and written newest-first. Equal
 * roots for every range and depth, equal to a tree built from the model. */
static void test_flush_history_equal_roots(void **state)
{
    (void)state;
    struct dataset *d = ds_make();
    struct eng *a = eng_open(true), *b = eng_open(false);
    load(a, d, NULL, false, 20);
    load(b, d, NULL, true, 0);
    struct lsm_stats sa, sb;
    lsm_stats(a->db, &sa);
    lsm_stats(b->db, &sb);
    assert_true(sa.flushes >= 40);
    assert_true(sa.compactions >= 4);
    assert_int_equal(sb.flushes, 0);
    /* Compaction on a really did purge what the as-of rule leaves out. */
    struct lsm_record *ra = NULL, *rb = NULL;
    const unsigned flags = LSM_READ_TOMBSTONES | LSM_READ_EXPIRED;
    assert_int_equal(lsm_get(a->db, "key:00017", 9, flags, &ra), ST_OK);
    assert_int_equal(lsm_get(b->db, "key:00017", 9, flags, &rb), ST_OK);
    assert_null(ra);
    assert_non_null(rb);
    assert_true(rb->tombstone);
    lsm_record_free(&rb);

    uint64_t total = 0;
    for (size_t i = 0; i < ARRAY_LEN(ranges); i++)
        total += expect_equal_trees(a, b, d, ranges[i], 10);
    assert_true(total > NKEYS); /* two whole circles plus parts */
    assert_true(expect_equal_trees(a, b, d, ranges[0], 0) > 400);
    assert_true(expect_equal_trees(a, b, d, ranges[0], 15) > 400);

    /* A snapshot pins the view: writes after it change neither tree. */
    struct lsm_snapshot *snap = NULL;
    assert_int_equal(lsm_snapshot_create(a->db, &snap), ST_OK);
    struct merkle_tree *t1 = NULL, *t2 = NULL;
    assert_int_equal(merkle_build_from_db(a->db, snap, ranges[0], 10, NOW, GRACE, &t1), ST_OK);
    struct op extra = {.key = "late", .klen = 4, .v = {99999, 1}};
    write_op(a->db, &extra);
    assert_int_equal(merkle_build_from_db(a->db, snap, ranges[0], 10, NOW, GRACE, &t2), ST_OK);
    assert_true(merkle_root(t1) == merkle_root(t2));
    lsm_snapshot_destroy(a->db, &snap);
    merkle_destroy(&t2);
    assert_int_equal(merkle_build_from_db(a->db, NULL, ranges[0], 10, NOW, GRACE, &t2), ST_OK);
    assert_true(merkle_root(t1) != merkle_root(t2));
    merkle_destroy(&t1);
    merkle_destroy(&t2);

    eng_close(&a);
    eng_close(&b);
    free(d);
}

/* Expects the diff of a and b to be exactly the leaf holding `token`:
 * computed by the whole-circle formula when r is whole from start. */
static void expect_single_leaf_diff(const struct merkle_tree *ta, const struct merkle_tree *tb,
                                    uint64_t token)
{
    struct ring_range out[4];
    size_t n = 0;
    assert_int_equal(merkle_diff(ta, tb, out, ARRAY_LEN(out), &n), ST_OK);
    assert_int_equal(n, 1);
    bool empty;
    struct ring_range leaf = merkle_leaf_range(ta, merkle_leaf_of(ta, token), &empty);
    assert_false(empty);
    assert_int_equal(out[0].start, leaf.start);
    assert_int_equal(out[0].end, leaf.end);
    assert_true(ring_range_contains(out[0], token));
    struct ring_range r = merkle_range(ta);
    if (r.start == r.end) {
        unsigned d = merkle_depth(ta);
        uint64_t li = (token - r.start - 1) >> (64 - d);
        assert_int_equal(out[0].start, r.start + (li << (64 - d)));
        assert_int_equal(out[0].end, r.start + ((li + 1) << (64 - d)));
    }
}

/* One record missing on one side: roots differ, and the diff is the one
 * leaf range holding its token, in every range that holds it. */
static void test_missing_record(void **state)
{
    (void)state;
    struct dataset *d = ds_make();
    struct eng *a = eng_open(true), *b = eng_open(false);
    const char *gone = "key:00101"; /* a plain live put */
    load(a, d, NULL, false, 50);
    load(b, d, gone, false, 0);
    uint64_t tok = ring_token(gone, strlen(gone));
    int holding = 0;
    for (size_t i = 0; i < ARRAY_LEN(ranges); i++) {
        struct merkle_tree *ta = build(a, ranges[i], 12, NOW);
        struct merkle_tree *tb = build(b, ranges[i], 12, NOW);
        if (ring_range_contains(ranges[i], tok)) {
            holding++;
            assert_true(merkle_root(ta) != merkle_root(tb));
            assert_int_equal(merkle_records(ta), merkle_records(tb) + 1);
            expect_single_leaf_diff(ta, tb, tok);
            expect_single_leaf_diff(tb, ta, tok);
        } else {
            assert_true(merkle_root(ta) == merkle_root(tb));
        }
        merkle_destroy(&ta);
        merkle_destroy(&tb);
    }
    assert_true(holding >= 2);
    eng_close(&a);
    eng_close(&b);
    free(d);
}

/* One replica holds an older version of a key: a mismatch on its leaf. */
static void test_older_version(void **state)
{
    (void)state;
    struct dataset *d = ds_make();
    struct eng *a = eng_open(false), *b = eng_open(false);
    load(a, d, NULL, false, 0);
    load(b, d, NULL, false, 0);
    const char *k = "key:00001"; /* one plain put at hlc 1001 on both */
    struct op newer_op = {.key = "key:00001", .klen = 9, .v = {20000, 1}};
    write_op(a->db, &newer_op);
    /* Same hlc, other node: still another version. */
    struct op tie = {.key = "key:00002", .klen = 9, .v = {1002, 2}};
    struct merkle_tree *ta = build(a, ranges[0], 14, NOW), *tb = build(b, ranges[0], 14, NOW);
    assert_true(merkle_root(ta) != merkle_root(tb));
    assert_int_equal(merkle_records(ta), merkle_records(tb));
    expect_single_leaf_diff(ta, tb, ring_token(k, 9));
    merkle_destroy(&ta);
    merkle_destroy(&tb);
    write_op(b->db, &newer_op);
    write_op(b->db, &tie);
    ta = build(a, ranges[0], 14, NOW);
    tb = build(b, ranges[0], 14, NOW);
    expect_single_leaf_diff(ta, tb, ring_token("key:00002", 9));
    merkle_destroy(&ta);
    merkle_destroy(&tb);
    eng_close(&a);
    eng_close(&b);
    free(d);
}

/* Records expired as of the as-of time are left out on both sides; one
 * that expires a second later is not. */
static void test_expired_one_side(void **state)
{
    (void)state;
    struct eng *a = eng_open(false), *b = eng_open(false);
    struct dataset *d = ds_make();
    load(a, d, NULL, false, 0);
    load(b, d, NULL, false, 0);
    free(d);
    struct op gone1 = {.key = "exp-long-ago", .klen = 12, .v = {50000, 1}, .expiry = NOW - 1000};
    struct op gone2 = {.key = "exp-at-asof", .klen = 11, .v = {50001, 1}, .expiry = NOW};
    write_op(a->db, &gone1);
    write_op(a->db, &gone2);
    struct merkle_tree *ta = build(a, ranges[0], 10, NOW), *tb = build(b, ranges[0], 10, NOW);
    assert_true(merkle_root(ta) == merkle_root(tb));
    assert_int_equal(diff_count(ta, tb), 0);
    merkle_destroy(&ta);
    merkle_destroy(&tb);
    /* Built one second earlier, the one expiring at NOW is still in. */
    ta = build(a, ranges[0], 10, NOW - 1);
    tb = build(b, ranges[0], 10, NOW - 1);
    expect_single_leaf_diff(ta, tb, ring_token("exp-at-asof", 11));
    merkle_destroy(&ta);
    merkle_destroy(&tb);
    /* A newest version expired on one side shadows a live older one on the
     * other: that is a real difference (the key reads differently). */
    struct op live = {.key = "exp-long-ago", .klen = 12, .v = {40000, 1}};
    write_op(b->db, &live);
    ta = build(a, ranges[0], 10, NOW);
    tb = build(b, ranges[0], 10, NOW);
    expect_single_leaf_diff(ta, tb, ring_token("exp-long-ago", 12));
    merkle_destroy(&ta);
    merkle_destroy(&tb);
    eng_close(&a);
    eng_close(&b);
}

/* Tombstones: equal on both sides is equal; a live one on one side only
 * differs; one past gc_grace is left out, so a replica that purged it
 * compares equal to one that did not. */
static void test_tombstones(void **state)
{
    (void)state;
    assert_true(merkle_record_counts(true, NOW - GRACE + 1, NOW, GRACE));
    assert_false(merkle_record_counts(true, NOW - GRACE, NOW, GRACE));
    assert_true(merkle_record_counts(true, 5, GRACE - 1, GRACE)); /* as_of < gc_grace */
    assert_true(merkle_record_counts(false, 0, NOW, GRACE));
    assert_true(merkle_record_counts(false, NOW + 1, NOW, GRACE));
    assert_false(merkle_record_counts(false, NOW, NOW, GRACE));

    struct eng *a = eng_open(true), *b = eng_open(false);
    struct op put = {.key = "victim", .klen = 6, .v = {100, 1}};
    struct op del = {.key = "victim", .klen = 6, .v = {200, 1}, .del = true, .expiry = NOW - 10};
    struct op keep = {.key = "bystander", .klen = 9, .v = {100, 1}};
    for (int s = 0; s < 2; s++) {
        struct eng *e = s ? b : a;
        write_op(e->db, &put);
        write_op(e->db, &del);
        write_op(e->db, &keep);
    }
    struct merkle_tree *ta = build(a, ranges[0], 10, NOW), *tb = build(b, ranges[0], 10, NOW);
    assert_true(merkle_root(ta) == merkle_root(tb));
    assert_int_equal(merkle_records(ta), 2); /* the tombstone is in */
    merkle_destroy(&ta);
    merkle_destroy(&tb);

    /* A young tombstone on one side only (over the live value the other
     * holds): a difference, so it spreads. */
    struct op del2 = {.key = "bystander", .klen = 9, .v = {300, 1}, .del = true, .expiry = NOW};
    write_op(a->db, &del2);
    ta = build(a, ranges[0], 10, NOW);
    tb = build(b, ranges[0], 10, NOW);
    expect_single_leaf_diff(ta, tb, ring_token("bystander", 9));
    merkle_destroy(&ta);
    merkle_destroy(&tb);
    write_op(b->db, &del2);

    /* An old tombstone (deleted 2 * gc_grace ago) on both; a purges it in a
     * full compaction, b keeps it. */
    struct op old = {
        .key = "ancient", .klen = 7, .v = {400, 1}, .del = true, .expiry = NOW - 2 * GRACE};
    write_op(a->db, &old);
    write_op(b->db, &old);
    assert_int_equal(lsm_compact_all(a->db), ST_OK);
    struct lsm_record *r = NULL;
    assert_int_equal(lsm_get(a->db, "ancient", 7, LSM_READ_TOMBSTONES, &r), ST_OK);
    assert_null(r);
    assert_int_equal(lsm_get(b->db, "ancient", 7, LSM_READ_TOMBSTONES, &r), ST_OK);
    assert_non_null(r);
    lsm_record_free(&r);
    ta = build(a, ranges[0], 10, NOW);
    tb = build(b, ranges[0], 10, NOW);
    assert_true(merkle_root(ta) == merkle_root(tb));
    merkle_destroy(&ta);
    merkle_destroy(&tb);
    /* An old tombstone on one side only is left out too... */
    struct op old2 = {
        .key = "ancient2", .klen = 8, .v = {401, 1}, .del = true, .expiry = NOW - GRACE};
    write_op(b->db, &old2);
    ta = build(a, ranges[0], 10, NOW);
    tb = build(b, ranges[0], 10, NOW);
    assert_true(merkle_root(ta) == merkle_root(tb));
    merkle_destroy(&ta);
    merkle_destroy(&tb);
    /* ...but the live older value it shadows elsewhere shows up. */
    struct op stale = {.key = "ancient2", .klen = 8, .v = {10, 1}};
    write_op(a->db, &stale);
    ta = build(a, ranges[0], 10, NOW);
    tb = build(b, ranges[0], 10, NOW);
    expect_single_leaf_diff(ta, tb, ring_token("ancient2", 8));
    merkle_destroy(&ta);
    merkle_destroy(&tb);
    eng_close(&a);
    eng_close(&b);
}

/* A range wrapping through 0 (width 2^63: leaf = offset >> (63 - depth)):
 * both halves are scanned, and a record missing in either half is found. */
static void test_wrapping_range(void **state)
{
    (void)state;
    struct dataset *d = ds_make();
    struct ring_range r = ranges[2]; /* (0xC0.., 0x40..] */
    /* One plain key in each half of the wrapping range. */
    const char *hi = NULL, *lo = NULL;
    static char keys[NKEYS][16];
    for (unsigned i = 1; i < NKEYS && (hi == NULL || lo == NULL); i++) {
        if (i % 3 == 0 || i % 5 == 0 || i % 7 == 0 || i % 11 == 0 || i % 13 == 0 || i % 17 == 0)
            continue;
        snprintf(keys[i], sizeof(keys[i]), "key:%05u", i);
        uint64_t t = ring_token(keys[i], 9);
        if (t > r.start && hi == NULL)
            hi = keys[i];
        else if (t <= r.end && lo == NULL)
            lo = keys[i];
    }
    assert_non_null(hi);
    assert_non_null(lo);
    struct eng *a = eng_open(true), *b = eng_open(false), *c = eng_open(false);
    load(a, d, NULL, false, 30);
    load(b, d, hi, false, 0);
    load(c, d, lo, true, 0);
    uint64_t n = expect_equal_trees(a, a, d, r, 9);
    /* The two halves as plain ranges: (start, MAX] and (MAX, end]. */
    struct merkle_tree *whole = model_tree(d, ranges[0], 0, NOW);
    struct merkle_tree *th = model_tree(d, (struct ring_range){r.start, UINT64_MAX}, 0, NOW);
    struct merkle_tree *tl = model_tree(d, (struct ring_range){UINT64_MAX, r.end}, 0, NOW);
    assert_true(merkle_records(th) > 0 && merkle_records(tl) > 0);
    assert_int_equal(n, merkle_records(th) + merkle_records(tl));
    assert_true(n > 0 && n < merkle_records(whole));
    merkle_destroy(&whole);
    merkle_destroy(&th);
    merkle_destroy(&tl);

    const unsigned depth = 9;
    struct merkle_tree *ta = build(a, r, depth, NOW);
    const char *missing[2] = {hi, lo};
    struct eng *other[2] = {b, c};
    for (int s = 0; s < 2; s++) {
        struct merkle_tree *to = build(other[s], r, depth, NOW);
        uint64_t tok = ring_token(missing[s], 9);
        expect_single_leaf_diff(ta, to, tok);
        struct ring_range out[2];
        size_t cnt = 0;
        assert_int_equal(merkle_diff(ta, to, out, 2, &cnt), ST_OK);
        uint64_t li = (tok - r.start - 1) >> (63 - depth);
        assert_int_equal(out[0].start, r.start + (li << (63 - depth)));
        assert_int_equal(out[0].end, r.start + ((li + 1) << (63 - depth)));
        merkle_destroy(&to);
    }
    merkle_destroy(&ta);
    eng_close(&a);
    eng_close(&b);
    eng_close(&c);
    free(d);
}

/* The edges of a range, at a real key's token t: (t - 1, t] holds it,
 * (t, t + 5] does not, and so on; each side of a wrapping range's scan
 * starts right after start and ends at end. */
static void test_range_edges(void **state)
{
    (void)state;
    struct eng *e = eng_open(false);
    static const char *keys[] = {"edge-a", "edge-b", "edge-c", "edge-d", "edge-e"};
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        struct op o = {.klen = strlen(keys[i]), .v = {10 + i, 1}};
        memcpy(o.key, keys[i], o.klen);
        write_op(e->db, &o);
    }
    uint64_t t = ring_token("edge-c", 6);
    static const struct {
        int64_t start, end; /* relative to t */
        uint64_t want;      /* records of edge-c seen */
    } cases[] = {
        {-1, 0, 1}, {0, 5, 0},  {-10, -1, 0}, {-10, 0, 1}, {-1, -1, 1},
        {0, 0, 1},  {0, -1, 0}, {-1, -2, 1},  {1, 0, 1},   {1, -1, 0},
    };
    for (size_t c = 0; c < ARRAY_LEN(cases); c++) {
        struct ring_range r = {t + (uint64_t)cases[c].start, t + (uint64_t)cases[c].end};
        uint64_t others = 0;
        for (size_t i = 0; i < ARRAY_LEN(keys); i++)
            if (strcmp(keys[i], "edge-c") != 0 &&
                ring_range_contains(r, ring_token(keys[i], strlen(keys[i]))))
                others++;
        struct merkle_tree *tr = build(e, r, 3, NOW);
        assert_int_equal(merkle_records(tr), cases[c].want + others);
        merkle_destroy(&tr);
    }
    eng_close(&e);
}

/* merkle_add refuses what the engine would never produce. */
static void test_out_of_order_refused(void **state)
{
    (void)state;
    struct lsm_version v = {1, 1};
    struct merkle_tree *t = NULL;
    assert_int_equal(merkle_create((struct ring_range){100, 1000}, 4, &t), ST_OK);
    assert_int_equal(merkle_add(t, 500, "m", 1, v, false, 0), ST_OK);
    assert_int_equal(merkle_add(t, 499, "z", 1, v, false, 0), ST_INVAL);  /* token back */
    assert_int_equal(merkle_add(t, 500, "a", 1, v, false, 0), ST_INVAL);  /* key back */
    assert_int_equal(merkle_add(t, 500, "m", 1, v, false, 0), ST_INVAL);  /* repeated */
    assert_int_equal(merkle_add(t, 500, "ma", 2, v, false, 0), ST_OK);    /* longer after */
    assert_int_equal(merkle_add(t, 100, "q", 1, v, false, 0), ST_INVAL);  /* start excluded */
    assert_int_equal(merkle_add(t, 1001, "q", 1, v, false, 0), ST_INVAL); /* past end */
    assert_int_equal(merkle_add(t, 600, "q", 0, v, false, 0), ST_INVAL);  /* empty key */
    char big[LSM_MAX_KEY_LEN + 1];
    memset(big, 'x', sizeof(big));
    assert_int_equal(merkle_add(t, 600, big, sizeof(big), v, false, 0), ST_INVAL);
    assert_int_equal(merkle_add(t, 1000, big, LSM_MAX_KEY_LEN, v, false, 0), ST_OK);
    assert_int_equal(merkle_records(t), 3);
    assert_int_equal(merkle_finish(t), ST_OK);
    assert_int_equal(merkle_finish(t), ST_INVAL);
    assert_int_equal(merkle_add(t, 1000, "zz", 2, v, false, 0), ST_INVAL);
    merkle_destroy(&t);

    /* Wrapping (MAX - 10, 20]: tokens above start come first. */
    assert_int_equal(merkle_create((struct ring_range){UINT64_MAX - 10, 20}, 3, &t), ST_OK);
    assert_int_equal(merkle_add(t, 5, "a", 1, v, false, 0), ST_OK);
    assert_int_equal(merkle_add(t, UINT64_MAX - 1, "a", 1, v, false, 0), ST_INVAL);
    assert_int_equal(merkle_add(t, 21, "a", 1, v, false, 0), ST_INVAL);
    assert_int_equal(merkle_add(t, 20, "a", 1, v, false, 0), ST_OK);
    merkle_destroy(&t);
    assert_int_equal(merkle_create((struct ring_range){UINT64_MAX - 10, 20}, 3, &t), ST_OK);
    assert_int_equal(merkle_add(t, UINT64_MAX - 1, "a", 1, v, false, 0), ST_OK);
    assert_int_equal(merkle_add(t, UINT64_MAX, "a", 1, v, false, 0), ST_OK);
    assert_int_equal(merkle_add(t, 0, "a", 1, v, false, 0), ST_OK);
    assert_int_equal(merkle_add(t, 20, "a", 1, v, false, 0), ST_OK);
    assert_int_equal(merkle_finish(t), ST_OK);
    merkle_destroy(&t);
    merkle_destroy(&t); /* NULL is fine */
    merkle_destroy(NULL);

    /* Depth bound; trees of different shapes do not compare. */
    assert_int_equal(merkle_create(WHOLE(0), MERKLE_MAX_DEPTH + 1, &t), ST_INVAL);
    assert_null(t);
    struct merkle_tree *u = NULL;
    assert_int_equal(merkle_create(WHOLE(0), 4, &t), ST_OK);
    assert_int_equal(merkle_create(WHOLE(0), 5, &u), ST_OK);
    assert_int_equal(merkle_finish(t), ST_OK);
    assert_int_equal(merkle_finish(u), ST_OK);
    size_t n;
    assert_int_equal(merkle_diff(t, u, NULL, 0, &n), ST_INVAL);
    merkle_destroy(&u);
    assert_int_equal(merkle_create(WHOLE(1), 4, &u), ST_OK);
    assert_int_equal(merkle_finish(u), ST_OK);
    assert_int_equal(merkle_diff(t, u, NULL, 0, &n), ST_INVAL);
    merkle_destroy(&u);
    merkle_destroy(&t);
}

/* Empty engines, and ranges holding no record, give the empty tree. */
static void test_empty_ranges_equal(void **state)
{
    (void)state;
    struct eng *a = eng_open(true), *b = eng_open(false);
    for (size_t i = 0; i < ARRAY_LEN(ranges); i++) {
        struct merkle_tree *ta = build(a, ranges[i], 8, NOW), *tb = build(b, ranges[i], 8, NOW);
        struct merkle_tree *te = NULL;
        assert_int_equal(merkle_create(ranges[i], 8, &te), ST_OK);
        assert_int_equal(merkle_finish(te), ST_OK);
        assert_true(merkle_root(ta) == merkle_root(tb));
        assert_true(merkle_root(ta) == merkle_root(te));
        assert_int_equal(merkle_records(ta), 0);
        assert_int_equal(diff_count(ta, tb), 0);
        merkle_destroy(&ta);
        merkle_destroy(&tb);
        merkle_destroy(&te);
    }
    /* One record in a, far from a narrow range: that range is still empty;
     * a tombstone past grace and an expired record alone are empty too. */
    struct op one = {.key = "only", .klen = 4, .v = {1, 1}};
    write_op(a->db, &one);
    uint64_t tok = ring_token("only", 4);
    struct ring_range narrow = {tok + 10, tok + 1000};
    struct merkle_tree *ta = build(a, narrow, 6, NOW), *tb = build(b, narrow, 6, NOW);
    assert_true(merkle_root(ta) == merkle_root(tb));
    merkle_destroy(&ta);
    merkle_destroy(&tb);
    struct op exp = {.key = "only", .klen = 4, .v = {2, 1}, .expiry = NOW - 1};
    struct op old = {.key = "old", .klen = 3, .v = {2, 1}, .del = true, .expiry = 1};
    write_op(a->db, &exp);
    write_op(a->db, &old);
    ta = build(a, ranges[0], 6, NOW);
    tb = build(b, ranges[0], 6, NOW);
    assert_true(merkle_root(ta) == merkle_root(tb));
    assert_int_equal(merkle_records(ta), 0);
    merkle_destroy(&ta);
    merkle_destroy(&tb);
    eng_close(&a);
    eng_close(&b);
}

/* Finds n keys whose tokens fall in the given leaves of `t` (whole circle). */
static void keys_in_leaves(const struct merkle_tree *t, const uint64_t *leaves, size_t n,
                           char (*out)[16])
{
    for (size_t j = 0; j < n; j++) {
        for (unsigned i = 0;; i++) {
            snprintf(out[j], 16, "probe%u", i);
            if (merkle_leaf_of(t, ring_token(out[j], strlen(out[j]))) == leaves[j])
                break;
        }
    }
}

static int cmp_tok(const void *a, const void *b)
{
    uint64_t x = ring_token(a, strlen(a)), y = ring_token(b, strlen(b));
    return x < y ? -1 : x > y;
}

/* Differing leaves that touch are reported as one range; cap is honoured. */
static void test_diff_merges_adjacent(void **state)
{
    (void)state;
    struct merkle_tree *a = NULL, *b = NULL;
    assert_int_equal(merkle_create(WHOLE(0), 4, &a), ST_OK);
    assert_int_equal(merkle_create(WHOLE(0), 4, &b), ST_OK);
    static const uint64_t leaves[] = {3, 4, 9, 15};
    char keys[4][16];
    keys_in_leaves(a, leaves, 4, keys);
    qsort(keys, 4, sizeof(keys[0]), cmp_tok);
    struct lsm_version v = {7, 1};
    for (int i = 0; i < 4; i++)
        assert_int_equal(merkle_add(a, ring_token(keys[i], strlen(keys[i])), keys[i],
                                    strlen(keys[i]), v, false, 0),
                         ST_OK);
    assert_int_equal(merkle_finish(a), ST_OK);
    assert_int_equal(merkle_finish(b), ST_OK);
    struct ring_range out[3];
    size_t n = 0;
    assert_int_equal(merkle_diff(a, b, out, 3, &n), ST_OK);
    assert_int_equal(n, 3);
    const uint64_t sixteenth = 1ull << 60;
    assert_int_equal(out[0].start, 3 * sixteenth);
    assert_int_equal(out[0].end, 5 * sixteenth);
    assert_int_equal(out[1].start, 9 * sixteenth);
    assert_int_equal(out[1].end, 10 * sixteenth);
    assert_int_equal(out[2].start, 15 * sixteenth);
    assert_int_equal(out[2].end, 0); /* (15/16, 0]: the last leaf ends at start */
    /* cap 1: the count is still 3, only the first range is written. */
    struct ring_range one[2] = {{1, 1}, {42, 42}};
    assert_int_equal(merkle_diff(a, b, one, 1, &n), ST_OK);
    assert_int_equal(n, 3);
    assert_int_equal(one[0].start, 3 * sixteenth);
    assert_int_equal(one[1].start, 42);
    /* merkle_leaf_ranges: the same merging; zero-width leaves bridge. */
    static const uint64_t ls[] = {0, 1, 2, 7, 8, 15};
    assert_int_equal(merkle_leaf_ranges(a, ls, 6, out, 3, &n), ST_OK);
    assert_int_equal(n, 3);
    assert_int_equal(out[0].start, 0);
    assert_int_equal(out[0].end, 3 * sixteenth);
    static const uint64_t bad[] = {3, 3};
    assert_int_equal(merkle_leaf_ranges(a, bad, 2, out, 3, &n), ST_INVAL);
    static const uint64_t big[] = {16};
    assert_int_equal(merkle_leaf_ranges(a, big, 1, out, 3, &n), ST_INVAL);
    merkle_destroy(&a);
    merkle_destroy(&b);

    /* (5, 8] at depth 3: leaves 2, 5 and 7 hold tokens 6, 7, 8; the
     * zero-width leaves 3, 4 and 6 between them do not split a range. */
    assert_int_equal(merkle_create((struct ring_range){5, 8}, 3, &a), ST_OK);
    bool empty;
    uint64_t nonempty[3], k = 0;
    for (uint64_t i = 0; i < 8; i++) {
        merkle_leaf_range(a, i, &empty);
        if (!empty)
            nonempty[k++] = i;
    }
    assert_int_equal(k, 3);
    assert_int_equal(merkle_leaf_ranges(a, nonempty, 3, out, 3, &n), ST_OK);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].start, 5);
    assert_int_equal(out[0].end, 8);
    static const uint64_t all_empty[] = {0, 1};
    assert_int_equal(merkle_leaf_ranges(a, all_empty, 2, out, 3, &n), ST_OK);
    assert_int_equal(n, 0);
    merkle_destroy(&a);
}

/* A top-down exchange as two nodes would run it: the requester sends the
 * differing nodes of one level, the responder answers with the hashes
 * `step` levels down, the requester keeps the differing ones. It reaches
 * exactly the leaves merkle_diff reports. */
static void exchange(const struct merkle_tree *req, const struct merkle_tree *resp, unsigned step,
                     struct ring_range *out, size_t cap, size_t *count, size_t *hashes_sent)
{
    unsigned depth = merkle_depth(req);
    size_t max = (size_t)1 << depth;
    uint64_t *nodes = calloc(max, sizeof(uint64_t)), *next = calloc(max, sizeof(uint64_t));
    uint64_t *peer = calloc(max, sizeof(uint64_t));
    size_t n = 0;
    *hashes_sent = 1;
    if (merkle_root(req) != merkle_root(resp))
        nodes[n++] = 0;
    unsigned level = 0;
    while (n > 0 && level < depth) {
        unsigned s = step < depth - level ? step : depth - level;
        size_t need = n << s;
        assert_int_equal(merkle_subtree_hashes(resp, level, nodes, n, s, peer, need), ST_OK);
        *hashes_sent += need;
        size_t m = 0;
        assert_int_equal(merkle_descend(req, level, nodes, n, s, peer, next, need, &m), ST_OK);
        assert_true(m > 0); /* a differing node has a differing descendant */
        memcpy(nodes, next, m * sizeof(uint64_t));
        n = m;
        level += s;
    }
    if (n == 0) {
        *count = 0;
    } else {
        assert_int_equal(merkle_leaf_ranges(req, nodes, n, out, cap, count), ST_OK);
    }
    free(nodes);
    free(next);
    free(peer);
}

static void test_top_down_exchange(void **state)
{
    (void)state;
    struct dataset *d = ds_make();
    const unsigned depth = 12;
    struct merkle_tree *a = model_tree(d, ranges[3], depth, NOW);
    /* b: the same data but a few keys newer, one removed. */
    for (size_t k = 0; k < d->n; k++) {
        unsigned i = (unsigned)atoi(d->ops[k].key + 4);
        if (i == 2 || i == 3 || i == 250 || i == 251 || i == 599)
            d->ops[k].v.hlc += 100000;
        if (i == 400) {
            d->ops[k].del = true;
            d->ops[k].expiry = NOW;
        }
    }
    struct merkle_tree *b = model_tree(d, ranges[3], depth, NOW);
    struct ring_range want[16], got[16];
    size_t nwant = 0, ngot = 0, sent = 0;
    assert_int_equal(merkle_diff(a, b, want, 16, &nwant), ST_OK);
    assert_true(nwant >= 5 && nwant <= 6);
    static const unsigned steps[] = {1, 3, 5, 12};
    for (size_t s = 0; s < ARRAY_LEN(steps); s++) {
        exchange(a, b, steps[s], got, 16, &ngot, &sent);
        assert_int_equal(ngot, nwant);
        assert_memory_equal(got, want, nwant * sizeof(want[0]));
        if (steps[s] == 3) /* few differences: far fewer hashes than 4096 leaves */
            assert_true(sent < 500);
        exchange(b, a, steps[s], got, 16, &ngot, &sent); /* either side may lead */
        assert_int_equal(ngot, nwant);
    }
    /* Equal trees: one hash, nothing to repair. */
    exchange(a, a, 4, got, 16, &ngot, &sent);
    assert_int_equal(ngot, 0);
    assert_int_equal(sent, 1);

    /* Level hashes are the nodes of that level; bad requests are refused. */
    uint64_t lv[8];
    assert_int_equal(merkle_level_hashes(a, 3, lv, 8), ST_OK);
    for (uint64_t i = 0; i < 8; i++)
        assert_true(lv[i] == merkle_node_hash(a, 3, i));
    assert_int_equal(merkle_level_hashes(a, 3, lv, 7), ST_INVAL);
    assert_int_equal(merkle_level_hashes(a, depth + 1, lv, 8), ST_INVAL);
    assert_int_equal(merkle_level_hashes(a, 0, lv, 1), ST_OK);
    assert_true(lv[0] == merkle_root(a));
    uint64_t bad_node = 8, out[64];
    size_t m;
    assert_int_equal(merkle_subtree_hashes(a, 3, &bad_node, 1, 2, out, 64), ST_INVAL);
    uint64_t node = 7;
    assert_int_equal(merkle_subtree_hashes(a, 3, &node, 1, 2, out, 3), ST_INVAL);
    assert_int_equal(merkle_subtree_hashes(a, 11, &node, 1, 2, out, 64), ST_INVAL);
    assert_int_equal(merkle_descend(a, 3, &bad_node, 1, 2, out, out + 8, 56, &m), ST_INVAL);
    assert_int_equal(merkle_subtree_hashes(a, 3, &node, 1, 2, out, 4), ST_OK);
    for (uint64_t j = 0; j < 4; j++)
        assert_true(out[j] == merkle_node_hash(a, 5, 28 + j));
    merkle_destroy(&a);
    merkle_destroy(&b);
    free(d);
}

/* The value and client flags are not hashed (a version names one write);
 * the expiry is. Memory is what merkle_memory says. */
static void test_value_not_hashed(void **state)
{
    (void)state;
    struct eng *a = eng_open(false), *b = eng_open(false);
    struct lsm_record r = {.key = (const uint8_t *)"k",
                           .key_len = 1,
                           .value = (const uint8_t *)"x",
                           .value_len = 1,
                           .flags = 1,
                           .version = {5, 1}};
    assert_int_equal(lsm_put(a->db, &r), ST_OK);
    r.value = (const uint8_t *)"yy";
    r.value_len = 2;
    r.flags = 2;
    assert_int_equal(lsm_put(b->db, &r), ST_OK);
    struct merkle_tree *ta = build(a, ranges[0], 4, NOW), *tb = build(b, ranges[0], 4, NOW);
    assert_true(merkle_root(ta) == merkle_root(tb));
    merkle_destroy(&ta);
    merkle_destroy(&tb);
    eng_close(&a);
    eng_close(&b);

    struct merkle_tree *t = NULL, *u = NULL;
    struct lsm_version v = {5, 1};
    uint64_t tok = ring_token("k", 1);
    assert_int_equal(merkle_create(WHOLE(0), 4, &t), ST_OK);
    assert_int_equal(merkle_create(WHOLE(0), 4, &u), ST_OK);
    assert_int_equal(merkle_add(t, tok, "k", 1, v, false, NOW + 10), ST_OK);
    assert_int_equal(merkle_add(u, tok, "k", 1, v, false, NOW + 11), ST_OK);
    assert_int_equal(merkle_finish(t), ST_OK);
    assert_int_equal(merkle_finish(u), ST_OK);
    assert_true(merkle_root(t) != merkle_root(u));
    merkle_destroy(&t);
    merkle_destroy(&u);

    assert_true(merkle_memory(15) >= (2u << 15) * 8);
    assert_true(merkle_memory(15) < (2u << 15) * 8 + 2048);
    assert_true(merkle_memory(0) < 2048);
}

/* After each test: closes and removes what a failed assertion left open. */
static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(open_engs); i++)
        if (open_engs[i] != NULL)
            eng_close(&open_engs[i]);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_encoding_golden, teardown),
        cmocka_unit_test_teardown(test_leaf_geometry, teardown),
        cmocka_unit_test_teardown(test_flush_history_equal_roots, teardown),
        cmocka_unit_test_teardown(test_missing_record, teardown),
        cmocka_unit_test_teardown(test_older_version, teardown),
        cmocka_unit_test_teardown(test_expired_one_side, teardown),
        cmocka_unit_test_teardown(test_tombstones, teardown),
        cmocka_unit_test_teardown(test_wrapping_range, teardown),
        cmocka_unit_test_teardown(test_range_edges, teardown),
        cmocka_unit_test_teardown(test_out_of_order_refused, teardown),
        cmocka_unit_test_teardown(test_empty_ranges_equal, teardown),
        cmocka_unit_test_teardown(test_diff_merges_adjacent, teardown),
        cmocka_unit_test_teardown(test_top_down_exchange, teardown),
        cmocka_unit_test_teardown(test_value_not_hashed, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
