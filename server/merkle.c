/*
 * merkle.c - Merkle trees over a token range for anti-entropy repair (see
 * merkle.h for the shape and the hash format, docs/REPAIR.md for how the
 * repair service uses them). Built on the repair thread from an engine
 * snapshot; a finished tree is read-only.
 *
 * Layout: one array of 2^(depth+1) hashes, heap order. Node (level l, index
 * i) lives at h[2^l + i]: the root at h[1], the leaves at h[2^depth ..
 * 2^(depth+1)), the children of h[k] at h[2k] and h[2k+1]; h[0] is unused.
 */
#include "server/merkle.h"

#include <stdint.h>
#include <string.h>

/* The whole of xxHash in this file: the streaming state's layout is then
 * the one this code was compiled with, so it can live in memory from
 * mem_alloc (XXH3_createState would use malloc behind the counters). */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/assert.h"
#include "common/log.h"
#include "common/mem.h"

struct merkle_tree {
    struct ring_range range;
    unsigned depth;
    uint64_t nleaves;        /* 2^depth */
    unsigned __int128 width; /* tokens in the range: 1..2^64 (128-bit arithmetic) */
    uint64_t *h;             /* 2 * nleaves hashes, heap order */
    void *xs_mem;            /* mem_alloc'd block holding the aligned state */
    XXH3_state_t *xs;        /* hashing state of the open leaf */
    uint64_t empty;          /* hash of a leaf with no record */
    uint64_t records;
    bool finished;
    bool leaf_open; /* xs holds records of leaf cur_leaf */
    uint64_t cur_leaf;
    bool have_last; /* the previous record, for the order check */
    uint64_t last_off;
    size_t last_len;
    uint8_t last_key[LSM_MAX_KEY_LEN];
};

/* XXH3_state_t wants 64-byte alignment; mem_alloc promises less. */
#define MERKLE_XS_ALLOC (sizeof(XXH3_state_t) + 63)

static void put_u16le(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u64le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

bool merkle_record_counts(bool tombstone, uint64_t expiry, uint64_t as_of, uint64_t gc_grace)
{
    if (tombstone) /* purgeable: deleted at or before as_of - gc_grace */
        return !(as_of >= gc_grace && expiry <= as_of - gc_grace);
    return expiry == 0 || expiry > as_of;
}

size_t merkle_record_encode(uint8_t *out, const void *key, size_t key_len,
                            struct lsm_version version, bool tombstone, uint64_t expiry)
{
    ASSERT(key_len >= 1 && key_len <= LSM_MAX_KEY_LEN);
    put_u64le(out, version.hlc);
    put_u16le(out + 8, version.node);
    out[10] = tombstone ? 1 : 0;
    put_u64le(out + 11, expiry);
    put_u16le(out + 19, (uint16_t)key_len);
    memcpy(out + MERKLE_RECORD_HEADER, key, key_len);
    return MERKLE_RECORD_HEADER + key_len;
}

/* ---------------------------------------------------------- geometry */

/* Offset of a token from the range's start: 0 for start + 1. */
static uint64_t offset_of(const struct merkle_tree *t, uint64_t token)
{
    return token - t->range.start - 1;
}

/* First offset of leaf i (i == nleaves: the width). */
static unsigned __int128 leaf_lo(const struct merkle_tree *t, uint64_t i)
{
    return ((unsigned __int128)i * t->width) >> t->depth;
}

/* The leaf of an offset: the largest i with leaf_lo(i) <= off, that is
 * ceil((off + 1) * 2^depth / width) - 1. */
static uint64_t leaf_of_offset(const struct merkle_tree *t, uint64_t off)
{
    unsigned __int128 num = ((unsigned __int128)off + 1) << t->depth;
    return (uint64_t)((num + t->width - 1) / t->width) - 1;
}

uint64_t merkle_leaf_of(const struct merkle_tree *t, uint64_t token)
{
    ASSERT((unsigned __int128)offset_of(t, token) < t->width);
    return leaf_of_offset(t, offset_of(t, token));
}

/* Offsets [lo, hi) as a ring range (start + lo, start + hi]. */
static struct ring_range offsets_range(const struct merkle_tree *t, unsigned __int128 lo,
                                       unsigned __int128 hi)
{
    return (struct ring_range){t->range.start + (uint64_t)lo, t->range.start + (uint64_t)hi};
}

struct ring_range merkle_leaf_range(const struct merkle_tree *t, uint64_t leaf, bool *empty)
{
    ASSERT(leaf < t->nleaves);
    unsigned __int128 lo = leaf_lo(t, leaf), hi = leaf_lo(t, leaf + 1);
    *empty = lo == hi;
    return offsets_range(t, lo, hi);
}

/* Collects leaves (ascending) into merged ranges. */
struct merkle_collect {
    const struct merkle_tree *t;
    struct ring_range *out;
    size_t cap;
    size_t count;
    bool have; /* a pending range [lo, hi) of offsets */
    unsigned __int128 lo, hi;
};

static void collect_flush(struct merkle_collect *c)
{
    if (!c->have)
        return;
    if (c->count < c->cap)
        c->out[c->count] = offsets_range(c->t, c->lo, c->hi);
    c->count++;
    c->have = false;
}

static void collect_leaf(struct merkle_collect *c, uint64_t leaf)
{
    unsigned __int128 lo = leaf_lo(c->t, leaf), hi = leaf_lo(c->t, leaf + 1);
    if (lo == hi)
        return; /* covers no token */
    if (c->have && c->hi == lo) {
        c->hi = hi;
        return;
    }
    collect_flush(c);
    c->have = true;
    c->lo = lo;
    c->hi = hi;
}

enum st_status merkle_leaf_ranges(const struct merkle_tree *t, const uint64_t *leaves, size_t n,
                                  struct ring_range *out, size_t cap, size_t *count)
{
    for (size_t i = 0; i < n; i++)
        if (leaves[i] >= t->nleaves || (i > 0 && leaves[i] <= leaves[i - 1]))
            return ST_INVAL;
    struct merkle_collect c = {.t = t, .out = out, .cap = cap};
    for (size_t i = 0; i < n; i++)
        collect_leaf(&c, leaves[i]);
    collect_flush(&c);
    *count = c.count;
    return ST_OK;
}

/* ---------------------------------------------------------- building */

size_t merkle_memory(unsigned depth)
{
    return ((size_t)2 << depth) * sizeof(uint64_t) + MERKLE_XS_ALLOC + sizeof(struct merkle_tree);
}

enum st_status merkle_create(struct ring_range range, unsigned depth, struct merkle_tree **out)
{
    *out = NULL;
    if (depth > MERKLE_MAX_DEPTH)
        return ST_INVAL;
    struct merkle_tree *t = mem_calloc(MEM_OTHER, 1, sizeof(*t));
    if (t == NULL)
        return ST_NOMEM;
    t->range = range;
    t->depth = depth;
    t->nleaves = (uint64_t)1 << depth;
    /* end - start wraps to the clockwise width; 0 is the whole circle. */
    uint64_t w = range.end - range.start;
    t->width = w == 0 ? (unsigned __int128)1 << 64 : w;
    t->h = mem_alloc(MEM_OTHER, 2 * t->nleaves * sizeof(uint64_t));
    /* Zeroed: a state whose seed field is 0 derives its secret on the
     * first seeded reset (xxhash.h, XXH3_INITSTATE). */
    t->xs_mem = mem_calloc(MEM_OTHER, 1, MERKLE_XS_ALLOC);
    if (t->h == NULL || t->xs_mem == NULL) {
        merkle_destroy(&t);
        return ST_NOMEM;
    }
    t->xs = (XXH3_state_t *)(void *)(((uintptr_t)t->xs_mem + 63) & ~(uintptr_t)63);
    t->empty = XXH3_64bits_withSeed("", 0, MERKLE_LEAF_SEED);
    t->h[0] = 0;
    for (uint64_t i = 0; i < t->nleaves; i++)
        t->h[t->nleaves + i] = t->empty;
    *out = t;
    return ST_OK;
}

void merkle_destroy(struct merkle_tree **t)
{
    if (t == NULL || *t == NULL)
        return;
    struct merkle_tree *m = *t;
    if (m->h != NULL)
        mem_free(MEM_OTHER, m->h, 2 * m->nleaves * sizeof(uint64_t));
    if (m->xs_mem != NULL)
        mem_free(MEM_OTHER, m->xs_mem, MERKLE_XS_ALLOC);
    mem_free(MEM_OTHER, m, sizeof(*m));
    *t = NULL;
}

/* The engine's key order within one token: memcmp, shorter first. */
static int key_compare(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static void close_leaf(struct merkle_tree *t)
{
    if (t->leaf_open) {
        t->h[t->nleaves + t->cur_leaf] = XXH3_64bits_digest(t->xs);
        t->leaf_open = false;
    }
}

enum st_status merkle_add(struct merkle_tree *t, uint64_t token, const void *key, size_t key_len,
                          struct lsm_version version, bool tombstone, uint64_t expiry)
{
    if (t->finished || key == NULL || key_len == 0 || key_len > LSM_MAX_KEY_LEN)
        return ST_INVAL;
    uint64_t off = offset_of(t, token);
    if ((unsigned __int128)off >= t->width)
        return ST_INVAL; /* outside (start, end] */
    if (t->have_last &&
        (off < t->last_off ||
         (off == t->last_off && key_compare(key, key_len, t->last_key, t->last_len) <= 0)))
        return ST_INVAL;
    uint64_t leaf = leaf_of_offset(t, off);
    ASSERT(!t->leaf_open || leaf >= t->cur_leaf);
    if (!t->leaf_open || leaf != t->cur_leaf) {
        close_leaf(t);
        XXH3_64bits_reset_withSeed(t->xs, MERKLE_LEAF_SEED);
        t->cur_leaf = leaf;
        t->leaf_open = true;
    }
    uint8_t enc[MERKLE_RECORD_HEADER + LSM_MAX_KEY_LEN];
    size_t n = merkle_record_encode(enc, key, key_len, version, tombstone, expiry);
    XXH3_64bits_update(t->xs, enc, n);
    t->have_last = true;
    t->last_off = off;
    memcpy(t->last_key, key, key_len);
    t->last_len = key_len;
    t->records++;
    return ST_OK;
}

static uint64_t inner_hash(uint64_t left, uint64_t right)
{
    uint8_t b[16];
    put_u64le(b, left);
    put_u64le(b + 8, right);
    return XXH3_64bits_withSeed(b, sizeof(b), MERKLE_INNER_SEED);
}

enum st_status merkle_finish(struct merkle_tree *t)
{
    if (t->finished)
        return ST_INVAL;
    close_leaf(t);
    for (uint64_t k = t->nleaves - 1; k >= 1; k--)
        t->h[k] = inner_hash(t->h[2 * k], t->h[2 * k + 1]);
    t->finished = true;
    return ST_OK;
}

/* Adds the admitted records of tokens [first, last] from the engine. */
static enum st_status scan_into(struct merkle_tree *t, struct lsm_db *db,
                                const struct lsm_snapshot *snap, uint64_t first, uint64_t last,
                                uint64_t as_of, uint64_t gc_grace)
{
    struct lsm_iter *it = NULL;
    enum st_status st =
        lsm_iter_create(db, snap, first, last, LSM_READ_TOMBSTONES | LSM_READ_EXPIRED, &it);
    if (st != ST_OK)
        return st;
    struct lsm_record rec;
    while (lsm_iter_next(it, &rec)) {
        if (!merkle_record_counts(rec.tombstone, rec.expiry, as_of, gc_grace))
            continue;
        uint64_t token = lsm_token(rec.key, rec.key_len);
        st = merkle_add(t, token, rec.key, rec.key_len, rec.version, rec.tombstone, rec.expiry);
        if (st != ST_OK) {
            /* The engine yielded a record out of (token, key) order or
             * outside the scan: bytes from disk, not a caller's bug. */
            log_error("merkle: engine scan out of order at token %016llx",
                      (unsigned long long)token);
            st = ST_CORRUPT;
            break;
        }
    }
    if (st == ST_OK)
        st = lsm_iter_status(it);
    lsm_iter_destroy(&it);
    return st;
}

enum st_status merkle_build_from_db(struct lsm_db *db, const struct lsm_snapshot *snap,
                                    struct ring_range range, unsigned depth, uint64_t as_of,
                                    uint64_t gc_grace, struct merkle_tree **out)
{
    *out = NULL;
    struct merkle_tree *t = NULL;
    enum st_status st = merkle_create(range, depth, &t);
    if (st != ST_OK)
        return st;
    if (range.start < range.end) {
        st = scan_into(t, db, snap, range.start + 1, range.end, as_of, gc_grace);
    } else {
        /* Wraps (or is the whole circle): (start, max] then [0, end]. */
        if (range.start != UINT64_MAX)
            st = scan_into(t, db, snap, range.start + 1, UINT64_MAX, as_of, gc_grace);
        if (st == ST_OK)
            st = scan_into(t, db, snap, 0, range.end, as_of, gc_grace);
    }
    if (st == ST_OK)
        st = merkle_finish(t);
    if (st != ST_OK) {
        merkle_destroy(&t);
        return st;
    }
    *out = t;
    return ST_OK;
}

/* ---------------------------------------------------------- reading */

struct ring_range merkle_range(const struct merkle_tree *t)
{
    return t->range;
}

unsigned merkle_depth(const struct merkle_tree *t)
{
    return t->depth;
}

uint64_t merkle_records(const struct merkle_tree *t)
{
    return t->records;
}

uint64_t merkle_root(const struct merkle_tree *t)
{
    ASSERT(t->finished);
    return t->h[1];
}

uint64_t merkle_node_hash(const struct merkle_tree *t, unsigned level, uint64_t index)
{
    ASSERT(t->finished && level <= t->depth && index < ((uint64_t)1 << level));
    return t->h[((uint64_t)1 << level) + index];
}

enum st_status merkle_level_hashes(const struct merkle_tree *t, unsigned level, uint64_t *out,
                                   size_t cap)
{
    ASSERT(t->finished);
    if (level > t->depth || cap < ((size_t)1 << level))
        return ST_INVAL;
    memcpy(out, t->h + ((size_t)1 << level), ((size_t)1 << level) * sizeof(uint64_t));
    return ST_OK;
}

/* Checks a request for the descendants at level + step of nodes[]. */
static bool subtree_args_ok(const struct merkle_tree *t, unsigned level, const uint64_t *nodes,
                            size_t n, unsigned step, size_t cap)
{
    if (level > t->depth || step > t->depth - level)
        return false;
    if (n > (SIZE_MAX >> step) || cap < (n << step))
        return false;
    for (size_t k = 0; k < n; k++)
        if (nodes[k] >= ((uint64_t)1 << level))
            return false;
    return true;
}

enum st_status merkle_subtree_hashes(const struct merkle_tree *t, unsigned level,
                                     const uint64_t *nodes, size_t n, unsigned step, uint64_t *out,
                                     size_t cap)
{
    ASSERT(t->finished);
    if (!subtree_args_ok(t, level, nodes, n, step, cap))
        return ST_INVAL;
    const uint64_t *below = t->h + ((size_t)1 << (level + step));
    size_t per = (size_t)1 << step;
    for (size_t k = 0; k < n; k++)
        memcpy(out + k * per, below + (nodes[k] << step), per * sizeof(uint64_t));
    return ST_OK;
}

enum st_status merkle_descend(const struct merkle_tree *t, unsigned level, const uint64_t *nodes,
                              size_t n, unsigned step, const uint64_t *peer, uint64_t *out,
                              size_t cap, size_t *count)
{
    ASSERT(t->finished);
    if (!subtree_args_ok(t, level, nodes, n, step, cap))
        return ST_INVAL;
    const uint64_t *below = t->h + ((size_t)1 << (level + step));
    size_t per = (size_t)1 << step, m = 0;
    for (size_t k = 0; k < n; k++) {
        uint64_t first = nodes[k] << step;
        for (size_t j = 0; j < per; j++)
            if (below[first + j] != peer[k * per + j])
                out[m++] = first + j;
    }
    *count = m;
    return ST_OK;
}

/* Walks the subtrees whose hashes differ, leaves left to right. */
static void diff_walk(const struct merkle_tree *a, const struct merkle_tree *b, uint64_t node,
                      unsigned level, struct merkle_collect *c)
{
    if (a->h[node] == b->h[node])
        return;
    if (level == a->depth) {
        collect_leaf(c, node - a->nleaves);
        return;
    }
    diff_walk(a, b, 2 * node, level + 1, c);
    diff_walk(a, b, 2 * node + 1, level + 1, c);
}

enum st_status merkle_diff(const struct merkle_tree *a, const struct merkle_tree *b,
                           struct ring_range *out, size_t cap, size_t *count)
{
    ASSERT(a->finished && b->finished);
    if (a->depth != b->depth || a->range.start != b->range.start || a->range.end != b->range.end)
        return ST_INVAL;
    struct merkle_collect c = {.t = a, .out = out, .cap = cap};
    diff_walk(a, b, 1, 0, &c);
    collect_flush(&c);
    *count = c.count;
    return ST_OK;
}
