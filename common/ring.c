/*
 * ring.c - the consistent-hash ring (see ring.h, docs/RING.md). ring_build
 * runs on the membership thread; every other function only reads an
 * immutable ring and may run on any thread at once.
 */
#include "common/ring.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/assert.h"
#include "common/mem.h"

struct ring_member {
    struct ring_node pub; /* tokens and rack point into the ring */
    /* Rack class: equal for the nodes of one named rack, unique for each
     * node without a rack (a rack of its own never collides). */
    uint32_t rack;
};

struct ring {
    uint32_t nnodes;
    uint32_t nracks;             /* distinct rack classes */
    size_t npos;                 /* vnode positions (all tokens, duplicates too) */
    struct ring_member *members; /* nnodes, ascending id */
    uint32_t *by_short;          /* nnodes node numbers, ascending short id */
    uint64_t *tokens;            /* npos, ascending */
    uint32_t *owners;            /* npos: owner of tokens[i]; equal tokens by node number */
    uint64_t *node_tokens;       /* npos: each node's tokens, grouped, ascending */
    char *racks;                 /* rack names, NUL-terminated, back to back */
    size_t racks_len;
};

/* One vnode while the ring is built. */
struct ring_pos {
    uint64_t token;
    uint32_t node;
};

/* One named rack while classes are numbered. */
struct ring_rack_ref {
    const char *name;
    uint32_t node;
};

uint64_t ring_token(const void *key, size_t len)
{
    return XXH3_64bits(key, len);
}

static int cmp_member_id(const void *a, const void *b)
{
    return memcmp(((const struct ring_member *)a)->pub.id, ((const struct ring_member *)b)->pub.id,
                  RING_ID_LEN);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_pos(const void *a, const void *b)
{
    const struct ring_pos *x = a, *y = b;
    if (x->token != y->token)
        return x->token < y->token ? -1 : 1;
    return (x->node > y->node) - (x->node < y->node);
}

static int cmp_rack_ref(const void *a, const void *b)
{
    const struct ring_rack_ref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c != 0)
        return c;
    return (x->node > y->node) - (x->node < y->node);
}

/* by_short is sorted with the members in hand; qsort has no context
 * argument, so it sorts (short id, node) pairs packed in a u64. */
static void sort_by_short(struct ring *r, uint64_t *scratch)
{
    for (uint32_t i = 0; i < r->nnodes; i++)
        scratch[i] = (uint64_t)r->members[i].pub.short_id << 32 | i;
    qsort(scratch, r->nnodes, sizeof(*scratch), cmp_u64);
    for (uint32_t i = 0; i < r->nnodes; i++)
        r->by_short[i] = (uint32_t)scratch[i];
}

static bool node_valid(const struct ring_node *n)
{
    if (n->ntokens == 0 || n->ntokens > RING_MAX_VNODES || n->tokens == NULL)
        return false;
    return n->rack == NULL || strnlen(n->rack, RING_RACK_MAX + 1) <= RING_RACK_MAX;
}

static bool has_rack(const struct ring_node *n)
{
    return n->rack != NULL && n->rack[0] != '\0';
}

/* Copies the rack names into the ring and numbers the rack classes: named
 * racks first, in name order, then one class per rack-less node, in id
 * order. Any numbering would do (classes are only compared); this one does
 * not depend on the input order. */
static enum st_status build_racks(struct ring *r)
{
    size_t named = 0;
    r->racks_len = 0;
    for (uint32_t i = 0; i < r->nnodes; i++) {
        if (has_rack(&r->members[i].pub)) {
            named++;
            r->racks_len += strlen(r->members[i].pub.rack) + 1;
        }
    }
    if (r->racks_len > 0) {
        r->racks = mem_alloc(MEM_OTHER, r->racks_len);
        if (r->racks == NULL)
            return ST_NOMEM;
    }
    struct ring_rack_ref *refs = NULL;
    if (named > 0) {
        refs = mem_alloc(MEM_OTHER, named * sizeof(*refs));
        if (refs == NULL)
            return ST_NOMEM;
    }
    size_t off = 0, k = 0;
    for (uint32_t i = 0; i < r->nnodes; i++) {
        struct ring_node *pub = &r->members[i].pub;
        if (!has_rack(pub)) {
            pub->rack = NULL;
            continue;
        }
        size_t len = strlen(pub->rack) + 1;
        memcpy(r->racks + off, pub->rack, len);
        pub->rack = r->racks + off;
        off += len;
        refs[k++] = (struct ring_rack_ref){pub->rack, i};
    }
    if (named > 0)
        qsort(refs, named, sizeof(*refs), cmp_rack_ref);
    uint32_t cls = 0;
    for (size_t j = 0; j < named; j++) {
        if (j > 0 && strcmp(refs[j].name, refs[j - 1].name) != 0)
            cls++;
        r->members[refs[j].node].rack = cls;
    }
    if (named > 0)
        cls++;
    for (uint32_t i = 0; i < r->nnodes; i++)
        if (r->members[i].pub.rack == NULL)
            r->members[i].rack = cls++;
    r->nracks = cls;
    mem_free(MEM_OTHER, refs, named * sizeof(*refs));
    return ST_OK;
}

/* Copies each node's tokens into the ring (sorted per node) and lays out
 * the sorted vnode positions. */
static enum st_status build_positions(struct ring *r)
{
    size_t npos = r->npos;
    r->node_tokens = mem_alloc(MEM_OTHER, npos * sizeof(*r->node_tokens));
    r->tokens = mem_alloc(MEM_OTHER, npos * sizeof(*r->tokens));
    r->owners = mem_alloc(MEM_OTHER, npos * sizeof(*r->owners));
    struct ring_pos *pos = mem_alloc(MEM_OTHER, npos * sizeof(*pos));
    if (r->node_tokens == NULL || r->tokens == NULL || r->owners == NULL || pos == NULL) {
        mem_free(MEM_OTHER, pos, npos * sizeof(*pos));
        return ST_NOMEM;
    }
    size_t off = 0;
    for (uint32_t i = 0; i < r->nnodes; i++) {
        struct ring_node *pub = &r->members[i].pub;
        uint64_t *mine = r->node_tokens + off;
        memcpy(mine, pub->tokens, pub->ntokens * sizeof(*mine));
        qsort(mine, pub->ntokens, sizeof(*mine), cmp_u64);
        pub->tokens = mine;
        for (uint32_t t = 0; t < pub->ntokens; t++)
            pos[off + t] = (struct ring_pos){mine[t], i};
        off += pub->ntokens;
    }
    ASSERT(off == npos);
    qsort(pos, npos, sizeof(*pos), cmp_pos);
    for (size_t p = 0; p < npos; p++) {
        r->tokens[p] = pos[p].token;
        r->owners[p] = pos[p].node;
    }
    mem_free(MEM_OTHER, pos, npos * sizeof(*pos));
    return ST_OK;
}

enum st_status ring_build(const struct ring_node *nodes, size_t count, struct ring **out)
{
    *out = NULL;
    if (count > RING_MAX_NODES)
        return ST_INVAL;
    for (size_t i = 0; i < count; i++)
        if (!node_valid(&nodes[i]))
            return ST_INVAL;

    enum st_status st = ST_NOMEM;
    uint64_t *scratch = NULL;
    struct ring *r = mem_calloc(MEM_OTHER, 1, sizeof(*r));
    if (r == NULL)
        return ST_NOMEM;
    r->nnodes = (uint32_t)count;
    if (count == 0) {
        *out = r;
        return ST_OK;
    }
    r->members = mem_calloc(MEM_OTHER, count, sizeof(*r->members));
    r->by_short = mem_alloc(MEM_OTHER, count * sizeof(*r->by_short));
    scratch = mem_alloc(MEM_OTHER, count * sizeof(*scratch));
    if (r->members == NULL || r->by_short == NULL || scratch == NULL)
        goto err;

    /* Rank the nodes by id; until build_racks and build_positions run,
     * pub still points at the caller's rack and tokens. */
    for (size_t i = 0; i < count; i++) {
        r->members[i].pub = nodes[i];
        r->npos += nodes[i].ntokens;
    }
    qsort(r->members, count, sizeof(*r->members), cmp_member_id);
    sort_by_short(r, scratch);
    st = ST_INVAL;
    for (uint32_t i = 1; i < r->nnodes; i++) {
        if (memcmp(r->members[i].pub.id, r->members[i - 1].pub.id, RING_ID_LEN) == 0)
            goto err;
        if (r->members[r->by_short[i]].pub.short_id == r->members[r->by_short[i - 1]].pub.short_id)
            goto err;
    }
    if ((st = build_racks(r)) != ST_OK || (st = build_positions(r)) != ST_OK)
        goto err;
    mem_free(MEM_OTHER, scratch, count * sizeof(*scratch));
    *out = r;
    return ST_OK;

err:
    mem_free(MEM_OTHER, scratch, count * sizeof(*scratch));
    ring_free(&r);
    return st;
}

void ring_free(struct ring **rp)
{
    if (rp == NULL || *rp == NULL)
        return;
    struct ring *r = *rp;
    mem_free(MEM_OTHER, r->members, r->nnodes * sizeof(*r->members));
    mem_free(MEM_OTHER, r->by_short, r->nnodes * sizeof(*r->by_short));
    mem_free(MEM_OTHER, r->tokens, r->npos * sizeof(*r->tokens));
    mem_free(MEM_OTHER, r->owners, r->npos * sizeof(*r->owners));
    mem_free(MEM_OTHER, r->node_tokens, r->npos * sizeof(*r->node_tokens));
    mem_free(MEM_OTHER, r->racks, r->racks_len);
    mem_free(MEM_OTHER, r, sizeof(*r));
    *rp = NULL;
}

uint32_t ring_node_count(const struct ring *r)
{
    return r->nnodes;
}

const struct ring_node *ring_node(const struct ring *r, uint32_t node)
{
    ASSERT(node < r->nnodes);
    return &r->members[node].pub;
}

uint32_t ring_find(const struct ring *r, const uint8_t id[RING_ID_LEN])
{
    size_t lo = 0, hi = r->nnodes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(r->members[mid].pub.id, id, RING_ID_LEN);
        if (c == 0)
            return (uint32_t)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return RING_NONE;
}

uint32_t ring_find_short(const struct ring *r, uint16_t short_id)
{
    size_t lo = 0, hi = r->nnodes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint16_t s = r->members[r->by_short[mid]].pub.short_id;
        if (s == short_id)
            return r->by_short[mid];
        if (s < short_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return RING_NONE;
}

size_t ring_vnode_count(const struct ring *r)
{
    return r->npos;
}

/* The first position whose token is >= token, wrapping to 0 past the top.
 * REQUIRES: r->npos > 0. */
static size_t ring_search(const struct ring *r, uint64_t token)
{
    size_t lo = 0, hi = r->npos;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->tokens[mid] < token)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == r->npos ? 0 : lo;
}

/*
 * The rack rule, from vnode position `start`. Pass 1 walks clockwise and
 * takes a node only if no node taken so far has its rack class; it ends at
 * n nodes or once every rack class is in the list (a full turn always gets
 * there: every node has a vnode). Pass 2 walks again from `start` and takes
 * the nodes not yet taken, in clockwise order, up to n. Without racks every
 * node is its own class and pass 1 alone is the plain distinct-node walk.
 * REQUIRES: 0 < n <= r->nnodes.
 */
static size_t ring_walk(const struct ring *r, size_t start, size_t n, uint32_t *out)
{
    const struct ring_member *m = r->members;
    size_t k = 0, pos = start;
    for (size_t step = 0; step < r->npos; step++) {
        uint32_t node = r->owners[pos];
        uint32_t rack = m[node].rack;
        size_t j = 0;
        while (j < k && m[out[j]].rack != rack)
            j++;
        if (j == k) {
            out[k++] = node;
            if (k == n || k == r->nracks)
                break;
        }
        if (++pos == r->npos)
            pos = 0;
    }
    if (k == n)
        return k;
    pos = start;
    for (size_t step = 0; step < r->npos && k < n; step++) {
        uint32_t node = r->owners[pos];
        size_t j = 0;
        while (j < k && out[j] != node)
            j++;
        if (j == k)
            out[k++] = node;
        if (++pos == r->npos)
            pos = 0;
    }
    ASSERT(k == n);
    return k;
}

/* n clamped to the node count, and to the fixed buffers' size. */
static size_t clamp_replicas(const struct ring *r, size_t n, size_t limit)
{
    if (n > r->nnodes)
        n = r->nnodes;
    if (NEVER(n > limit))
        n = limit;
    return n;
}

size_t ring_preference(const struct ring *r, uint64_t token, size_t n, uint32_t *out)
{
    n = clamp_replicas(r, n, SIZE_MAX);
    if (n == 0)
        return 0;
    return ring_walk(r, ring_search(r, token), n, out);
}

uint32_t ring_primary(const struct ring *r, uint64_t token)
{
    if (r->npos == 0)
        return RING_NONE;
    return r->owners[ring_search(r, token)];
}

static bool list_has(const uint32_t *list, size_t k, uint32_t node)
{
    for (size_t j = 0; j < k; j++)
        if (list[j] == node)
            return true;
    return false;
}

bool ring_is_replica(const struct ring *r, uint64_t token, size_t n, uint32_t node)
{
    uint32_t list[RING_MAX_REPLICAS];
    n = clamp_replicas(r, n, RING_MAX_REPLICAS);
    if (n == 0)
        return false;
    size_t k = ring_walk(r, ring_search(r, token), n, list);
    return list_has(list, k, node);
}

/*
 * Calls fn for every non-empty vnode arc: position p owns (previous
 * distinct token, tokens[p]]; of equal tokens only the first position owns
 * anything (ring_search never lands on the others). A ring whose tokens are
 * all equal has one arc, the whole circle (start == end).
 */
typedef void (*ring_arc_fn)(const struct ring *r, size_t pos, struct ring_range arc, void *arg);

static void ring_for_each_arc(const struct ring *r, ring_arc_fn fn, void *arg)
{
    for (size_t p = 0; p < r->npos; p++) {
        if (p > 0 && r->tokens[p] == r->tokens[p - 1])
            continue;
        uint64_t start = r->tokens[p == 0 ? r->npos - 1 : p - 1];
        fn(r, p, (struct ring_range){start, r->tokens[p]}, arg);
    }
}

struct ranges_ctx {
    uint32_t node;
    size_t n, count, cap;
    struct ring_range *out;
};

static void ranges_arc(const struct ring *r, size_t pos, struct ring_range arc, void *arg)
{
    struct ranges_ctx *c = arg;
    uint32_t list[RING_MAX_REPLICAS];
    size_t k = ring_walk(r, pos, c->n, list);
    if (!list_has(list, k, c->node))
        return;
    if (c->count < c->cap)
        c->out[c->count] = arc;
    c->count++;
}

size_t ring_ranges(const struct ring *r, uint32_t node, size_t n, struct ring_range *out,
                   size_t cap)
{
    ASSERT(node < r->nnodes);
    struct ranges_ctx c = {node, clamp_replicas(r, n, RING_MAX_REPLICAS), 0, cap, out};
    if (c.n == 0)
        return 0;
    ring_for_each_arc(r, ranges_arc, &c);
    return c.count;
}

struct ownership_ctx {
    size_t n;
    double *primary, *replicated;
};

static void ownership_arc(const struct ring *r, size_t pos, struct ring_range arc, void *arg)
{
    struct ownership_ctx *c = arg;
    /* The share of the circle, exactly 1 for the whole circle. */
    double share = arc.start == arc.end ? 1.0 : (double)(arc.end - arc.start) * 0x1p-64;
    if (c->primary != NULL)
        c->primary[r->owners[pos]] += share;
    if (c->replicated != NULL) {
        uint32_t list[RING_MAX_REPLICAS];
        size_t k = ring_walk(r, pos, c->n, list);
        for (size_t j = 0; j < k; j++)
            c->replicated[list[j]] += share;
    }
}

void ring_ownership(const struct ring *r, size_t n, double *primary, double *replicated)
{
    for (uint32_t i = 0; i < r->nnodes; i++) {
        if (primary != NULL)
            primary[i] = 0;
        if (replicated != NULL)
            replicated[i] = 0;
    }
    struct ownership_ctx c = {clamp_replicas(r, n, RING_MAX_REPLICAS), primary, replicated};
    if (c.n == 0)
        c.replicated = NULL;
    ring_for_each_arc(r, ownership_arc, &c);
}
