/*
 * gossip.c - membership view, gossip exchange and peer liveness of
 * strata-node (see gossip.h for the contracts and the body byte table,
 * docs/GOSSIP.md for the design). Called by the node's gossip loop only.
 *
 *   tick ──► heartbeat = ++version, pick peers ──► node sends SYN(digests)
 *   SYN  ──► merge-join digests with the view ──► ACK(newer states, requests)
 *   ACK  ──► merge states, answer requests    ──► ACK2(requested states)
 *   ACK2 ──► merge states
 *
 * Invariant that makes digests work: for every endpoint the view holds, it
 * holds the newest value of every application state whose version is at
 * most the endpoint's max version (the view is a complete prefix). Deltas
 * carry every state above their `from`, are applied only when from <= our
 * max (or from = 0), and are sent whole or not at all.
 */
#include "server/gossip.h"

#include <string.h>

#include "common/assert.h"
#include "common/mem.h"

#define GMEM MEM_OTHER

/* Worst-case sizes, for the budget arithmetic. */
#define DIGEST_MAX (GOSSIP_ID_LEN + 8 + 10)
/* The largest STATE: every key at its longest value (a status code of a
 * later build may take GOSSIP_VALUE_MAX), every version 10 varint bytes,
 * each value length 2 varint bytes but the rack's, load's, schema's and
 * protocol's 1. */
#define VALUES_MAX                                                                            \
    (GOSSIP_VALUE_MAX + 2 * WIRE_ADDR_MAX + RING_RACK_MAX + 8 * RING_MAX_VNODES + 8 + 8 + 1 + \
     (GOSSIP_APP_SLOTS - GOSSIP_APP_KNOWN) * GOSSIP_VALUE_MAX)
#define STATE_MAX \
    (GOSSIP_ID_LEN + 2 + 8 + 10 + 10 + 1 + GOSSIP_APP_SLOTS * (1 + 10 + 2) - 4 + VALUES_MAX)
#define HEAD_MAX (2 + WIRE_CLUSTER_MAX) /* cluster name with its length */
#define COUNT_MAX 2                     /* varint of a count <= GOSSIP_MAX_NODES */

_Static_assert(GOSSIP_MAX_NODES < (1 << 14), "a list count takes at most 2 varint bytes");
_Static_assert(GOSSIP_VALUE_MAX < (1 << 14), "a value length takes at most 2 varint bytes");
_Static_assert(WIRE_CLUSTER_MAX < (1 << 14), "a cluster name length takes at most 2 bytes");
_Static_assert(HEAD_MAX + COUNT_MAX + STATE_MAX + COUNT_MAX + GOSSIP_MAX_NODES * DIGEST_MAX <=
                   GOSSIP_BODY_MIN,
               "the smallest budget holds every request digest and the largest state");
_Static_assert(STATE_MAX == 83276, "the bound gossip.h states");
_Static_assert(GOSSIP_BODY_MIN <= GOSSIP_BODY_MAX, "body bounds");
_Static_assert(GOSSIP_APP_KNOWN <= GOSSIP_APP_SLOTS, "known keys fit the slots");

/* One application state as the view keeps it. */
struct gossip_value {
    uint64_t version; /* 0: not set in this generation */
    uint8_t *data;    /* len bytes and a NUL; NULL iff version == 0 */
    uint32_t len;
    uint64_t *tokens; /* GOSSIP_APP_TOKENS with len > 0: the decoded tokens */
};

/* One endpoint (a node, ourselves included). */
struct gossip_ep {
    uint8_t id[GOSSIP_ID_LEN];
    uint16_t short_id;
    uint64_t generation;
    uint64_t heartbeat;
    struct gossip_value app[GOSSIP_APP_SLOTS];
    struct phi_detector *phi; /* NULL for ourselves */
    bool self;
};

/* A state chosen for a reply: endpoint index, delta start, encoded size. */
struct gossip_cand {
    uint32_t ep;
    uint64_t from;
    size_t size;
    bool take;
};

struct gossip {
    char cluster[WIRE_CLUSTER_MAX + 1];
    size_t cluster_len;
    struct gossip_ep **eps; /* neps endpoints sorted by id */
    size_t neps, cap;
    struct gossip_ep *self;
    uint64_t version; /* last version of our generation handed out */
    char **seeds;
    size_t nseeds;
    struct phi_options phi;
    size_t max_body;
    uint64_t rng;
    uint64_t ring_version;
    struct gossip_stats st;
    /* Scratch, cap entries each (grown with eps). */
    struct gossip_cand *cand;
    uint32_t *pick;
    /* Scratch for the requests of an ACK. */
    struct gossip_digest *req;
    size_t req_cap;
};

/* ---- Small helpers ------------------------------------------------------ */

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Marks r bad through its public contract: a read past the end. */
static void reader_fail(struct wire_reader *r)
{
    (void)wire_get_raw(r, SIZE_MAX);
}

/* Whether r is still good: a zero-byte read is NULL only on a bad reader
 * (parse_msg never gives a reader a NULL body). */
static bool reader_ok(struct wire_reader *r)
{
    return wire_get_raw(r, 0) != NULL;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static size_t rng_below(struct gossip *g, size_t n)
{
    return (size_t)(splitmix(&g->rng) % n);
}

static double rng_unit(struct gossip *g)
{
    return (double)(splitmix(&g->rng) >> 11) * (1.0 / 9007199254740992.0);
}

static bool str_ok(const char *s, size_t min, size_t max, size_t *len)
{
    if (s == NULL)
        return false;
    *len = strnlen(s, max + 1);
    return *len >= min && *len <= max;
}

/* ---- Values ------------------------------------------------------------- */

static bool no_nul(const uint8_t *v, size_t len)
{
    return len == 0 || memchr(v, 0, len) == NULL;
}

bool gossip_app_valid(uint8_t key, const uint8_t *v, size_t len)
{
    if (key >= GOSSIP_APP_SLOTS || len > GOSSIP_VALUE_MAX || (len > 0 && v == NULL))
        return false;
    switch (key) {
    case GOSSIP_APP_STATUS:
        if (len < 1 || v[0] == GOSSIP_STATUS_NONE)
            return false;
        switch (v[0]) {
        case GOSSIP_STATUS_JOINING:
        case GOSSIP_STATUS_NORMAL:
        case GOSSIP_STATUS_LEAVING:
        case GOSSIP_STATUS_LEFT: return len == 1;
        case GOSSIP_STATUS_REPLACING: return len == 1 + GOSSIP_ID_LEN;
        default: return true; /* a later status: carried, not interpreted */
        }
    case GOSSIP_APP_ADDR: return len >= 1 && len <= WIRE_ADDR_MAX && no_nul(v, len);
    case GOSSIP_APP_MC_ADDR: return len <= WIRE_ADDR_MAX && no_nul(v, len);
    case GOSSIP_APP_RACK: return len <= RING_RACK_MAX && no_nul(v, len);
    case GOSSIP_APP_TOKENS: return len % 8 == 0 && len / 8 <= RING_MAX_VNODES;
    case GOSSIP_APP_LOAD:
    case GOSSIP_APP_SCHEMA: return len == 8;
    case GOSSIP_APP_PROTOCOL: return len == 1 && v[0] >= 1;
    default: return true; /* a later key: carried, not interpreted */
    }
}

static void value_free(struct gossip_value *v)
{
    if (v->data != NULL)
        mem_free(GMEM, v->data, (size_t)v->len + 1);
    if (v->tokens != NULL)
        mem_free(GMEM, v->tokens, v->len);
    memset(v, 0, sizeof(*v));
}

/* A new value (a copy of v[0..len)). REQUIRES: gossip_app_valid. */
static enum st_status value_make(struct gossip_value *out, uint8_t key, uint64_t version,
                                 const uint8_t *v, size_t len)
{
    memset(out, 0, sizeof(*out));
    out->data = mem_alloc(GMEM, len + 1);
    if (out->data == NULL)
        return ST_NOMEM;
    out->version = version;
    out->len = (uint32_t)len;
    if (len > 0)
        memcpy(out->data, v, len);
    out->data[len] = 0;
    if (key == GOSSIP_APP_TOKENS && len > 0) {
        out->tokens = mem_alloc(GMEM, len);
        if (out->tokens == NULL) {
            value_free(out);
            return ST_NOMEM;
        }
        for (size_t i = 0; i < len / 8; i++)
            out->tokens[i] = get_le64(v + 8 * i);
    }
    return ST_OK;
}

static bool value_eq(const struct gossip_value *a, const struct gossip_value *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static const char *value_str(const struct gossip_value *v)
{
    return v->data != NULL ? (const char *)v->data : "";
}

static uint64_t value_u64(const struct gossip_value *v)
{
    return v->len == 8 ? get_le64(v->data) : 0;
}

static uint8_t status_code(const struct gossip_value *app)
{
    return app[GOSSIP_APP_STATUS].len > 0 ? app[GOSSIP_APP_STATUS].data[0] : 0;
}

/* Whether an endpoint with these states places keys (gossip_ring_nodes). */
static bool app_in_ring(const struct gossip_value *app)
{
    uint8_t s = status_code(app);
    return (s == GOSSIP_STATUS_NORMAL || s == GOSSIP_STATUS_LEAVING) &&
           app[GOSSIP_APP_TOKENS].len > 0;
}

/* Whether going from (s0, a) to (s1, b) changes the ring's node list. */
static bool ring_differs(uint16_t s0, const struct gossip_value *a, uint16_t s1,
                         const struct gossip_value *b)
{
    bool in0 = app_in_ring(a), in1 = app_in_ring(b);
    if (in0 != in1)
        return true;
    if (!in0)
        return false;
    return s0 != s1 || !value_eq(&a[GOSSIP_APP_RACK], &b[GOSSIP_APP_RACK]) ||
           !value_eq(&a[GOSSIP_APP_TOKENS], &b[GOSSIP_APP_TOKENS]);
}

/* ---- Endpoints ---------------------------------------------------------- */

static uint64_t ep_max(const struct gossip_ep *e)
{
    uint64_t m = e->heartbeat;
    for (size_t k = 0; k < GOSSIP_APP_SLOTS; k++)
        if (e->app[k].version > m)
            m = e->app[k].version;
    return m;
}

static void ep_destroy(struct gossip_ep *e)
{
    if (e == NULL)
        return;
    for (size_t k = 0; k < GOSSIP_APP_SLOTS; k++)
        value_free(&e->app[k]);
    phi_destroy(&e->phi);
    mem_free(GMEM, e, sizeof(*e));
}

/* Index of the first endpoint with an id >= id; *found if equal. */
static size_t ep_search(const struct gossip *g, const uint8_t *id, bool *found)
{
    size_t lo = 0, hi = g->neps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(g->eps[mid]->id, id, GOSSIP_ID_LEN) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < g->neps && memcmp(g->eps[lo]->id, id, GOSSIP_ID_LEN) == 0;
    return lo;
}

static struct gossip_ep *ep_find(const struct gossip *g, const uint8_t *id)
{
    bool found;
    size_t i = ep_search(g, id, &found);
    return found ? g->eps[i] : NULL;
}

/* Room for `need` endpoints in eps and in the scratch arrays. */
static enum st_status ensure_cap(struct gossip *g, size_t need)
{
    if (need <= g->cap)
        return ST_OK;
    size_t nc = g->cap ? g->cap * 2 : 8;
    while (nc < need)
        nc *= 2;
    if (nc > GOSSIP_MAX_NODES)
        nc = GOSSIP_MAX_NODES;
    ASSERT(need <= nc);
    struct gossip_ep **eps = mem_alloc(GMEM, nc * sizeof(*eps));
    struct gossip_cand *cand = mem_alloc(GMEM, nc * sizeof(*cand));
    uint32_t *pick = mem_alloc(GMEM, nc * sizeof(*pick));
    if (eps == NULL || cand == NULL || pick == NULL) {
        mem_free(GMEM, eps, nc * sizeof(*eps));
        mem_free(GMEM, cand, nc * sizeof(*cand));
        mem_free(GMEM, pick, nc * sizeof(*pick));
        return ST_NOMEM;
    }
    if (g->neps > 0)
        memcpy(eps, g->eps, g->neps * sizeof(*eps));
    mem_free(GMEM, g->eps, g->cap * sizeof(*g->eps));
    mem_free(GMEM, g->cand, g->cap * sizeof(*g->cand));
    mem_free(GMEM, g->pick, g->cap * sizeof(*g->pick));
    g->eps = eps;
    g->cand = cand;
    g->pick = pick;
    g->cap = nc;
    return ST_OK;
}

static enum st_status ensure_req(struct gossip *g, size_t need)
{
    if (need <= g->req_cap)
        return ST_OK;
    size_t nc = g->req_cap ? g->req_cap : 8;
    while (nc < need)
        nc *= 2;
    struct gossip_digest *req = mem_alloc(GMEM, nc * sizeof(*req));
    if (req == NULL)
        return ST_NOMEM;
    mem_free(GMEM, g->req, g->req_cap * sizeof(*g->req));
    g->req = req;
    g->req_cap = nc;
    return ST_OK;
}

/* Inserts e at index i. REQUIRES: ensure_cap(g, neps + 1) succeeded. */
static void ep_insert(struct gossip *g, size_t i, struct gossip_ep *e)
{
    memmove(g->eps + i + 1, g->eps + i, (g->neps - i) * sizeof(*g->eps));
    g->eps[i] = e;
    g->neps++;
}

/* The state of e newer than `from` (from 0: all of it), as views into e. */
static void ep_view(const struct gossip_ep *e, uint64_t from, struct gossip_state *s)
{
    memcpy(s->id, e->id, GOSSIP_ID_LEN);
    s->short_id = e->short_id;
    s->generation = e->generation;
    s->from = from;
    s->heartbeat = e->heartbeat;
    s->napps = 0;
    for (size_t k = 0; k < GOSSIP_APP_SLOTS; k++) {
        if (e->app[k].version > from) {
            struct gossip_app_value *a = &s->apps[s->napps++];
            a->key = (uint8_t)k;
            a->version = e->app[k].version;
            a->value = e->app[k].data;
            a->len = e->app[k].len;
        }
    }
}

/* ---- Codec -------------------------------------------------------------- */

size_t gossip_digest_size(const struct gossip_digest *d)
{
    return GOSSIP_ID_LEN + 8 + varint_len(d->version);
}

void gossip_put_digest(struct wire_buf *b, const struct gossip_digest *d)
{
    wire_put_raw(b, d->id, GOSSIP_ID_LEN);
    wire_put_u64(b, d->generation);
    wire_put_varint(b, d->version);
}

void gossip_get_digest(struct wire_reader *r, struct gossip_digest *out)
{
    const uint8_t *id = wire_get_raw(r, GOSSIP_ID_LEN);
    if (id != NULL)
        memcpy(out->id, id, GOSSIP_ID_LEN);
    else
        memset(out->id, 0, GOSSIP_ID_LEN);
    out->generation = wire_get_u64(r);
    out->version = wire_get_varint(r);
}

size_t gossip_state_size(const struct gossip_state *s)
{
    size_t n = GOSSIP_ID_LEN + 2 + 8 + varint_len(s->from) + varint_len(s->heartbeat) +
               varint_len(s->napps);
    for (size_t i = 0; i < s->napps; i++)
        n += 1 + varint_len(s->apps[i].version) + varint_len(s->apps[i].len) + s->apps[i].len;
    return n;
}

void gossip_put_state(struct wire_buf *b, const struct gossip_state *s)
{
    ASSERT(s->heartbeat >= 1 && s->napps <= GOSSIP_APP_SLOTS);
    wire_put_raw(b, s->id, GOSSIP_ID_LEN);
    wire_put_u16(b, s->short_id);
    wire_put_u64(b, s->generation);
    wire_put_varint(b, s->from);
    wire_put_varint(b, s->heartbeat);
    wire_put_varint(b, s->napps);
    for (size_t i = 0; i < s->napps; i++) {
        const struct gossip_app_value *a = &s->apps[i];
        ASSERT(a->version > s->from && gossip_app_valid(a->key, a->value, a->len));
        ASSERT(i == 0 || a->key > s->apps[i - 1].key);
        wire_put_u8(b, a->key);
        wire_put_varint(b, a->version);
        wire_put_bytes(b, a->value, a->len);
    }
}

void gossip_get_state(struct wire_reader *r, struct gossip_state *s)
{
    const uint8_t *id = wire_get_raw(r, GOSSIP_ID_LEN);
    if (id != NULL)
        memcpy(s->id, id, GOSSIP_ID_LEN);
    else
        memset(s->id, 0, GOSSIP_ID_LEN);
    s->short_id = wire_get_u16(r);
    s->generation = wire_get_u64(r);
    s->from = wire_get_varint(r);
    s->heartbeat = wire_get_varint(r);
    uint64_t n = wire_get_varint(r);
    s->napps = 0;
    if (s->heartbeat == 0 || n > GOSSIP_APP_SLOTS) {
        reader_fail(r);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct gossip_app_value *a = &s->apps[i];
        a->key = wire_get_u8(r);
        a->version = wire_get_varint(r);
        a->value = wire_get_bytes(r, GOSSIP_VALUE_MAX, &a->len);
        if (a->value == NULL)
            return; /* r is bad */
        if (a->key >= GOSSIP_APP_SLOTS || (i > 0 && a->key <= s->apps[i - 1].key) ||
            a->version <= s->from || !gossip_app_valid(a->key, a->value, a->len)) {
            reader_fail(r);
            return;
        }
        s->napps = i + 1;
    }
}

static const char *get_cluster(struct wire_reader *r, size_t *len)
{
    const uint8_t *p = wire_get_bytes(r, WIRE_CLUSTER_MAX, len);
    if (p != NULL && *len == 0) {
        reader_fail(r);
        return NULL;
    }
    return (const char *)p;
}

static size_t get_count(struct wire_reader *r)
{
    uint64_t n = wire_get_varint(r);
    if (n > GOSSIP_MAX_NODES) {
        reader_fail(r);
        return 0;
    }
    return (size_t)n;
}

/* Reads n digests, checking that ids strictly ascend. */
static void scan_digests(struct wire_reader *r, size_t n)
{
    struct gossip_digest d, prev;
    for (size_t i = 0; i < n; i++) {
        gossip_get_digest(r, &d);
        if (i > 0 && memcmp(d.id, prev.id, GOSSIP_ID_LEN) <= 0)
            reader_fail(r);
        if (!reader_ok(r))
            return;
        prev = d;
    }
}

static void scan_states(struct wire_reader *r, size_t n)
{
    struct gossip_state s;
    uint8_t prev[GOSSIP_ID_LEN];
    for (size_t i = 0; i < n; i++) {
        gossip_get_state(r, &s);
        if (i > 0 && memcmp(s.id, prev, GOSSIP_ID_LEN) <= 0)
            reader_fail(r);
        if (!reader_ok(r))
            return;
        memcpy(prev, s.id, GOSSIP_ID_LEN);
    }
}

static enum wire_result parse_msg(const uint8_t *body, size_t len, struct gossip_msg *m,
                                  bool states, bool digests)
{
    static const uint8_t empty[1];
    struct wire_reader r;
    memset(m, 0, sizeof(*m));
    if (body == NULL) {
        body = empty;
        len = 0;
    }
    wire_reader_init(&r, body, len);
    m->cluster = get_cluster(&r, &m->cluster_len);
    if (states) {
        m->nstates = get_count(&r);
        m->states = r;
        scan_states(&r, m->nstates);
    }
    if (digests) {
        m->ndigests = get_count(&r);
        m->digests = r;
        scan_digests(&r, m->ndigests);
    }
    if (!wire_reader_done(&r)) {
        m->nstates = m->ndigests = 0;
        return WIRE_MALFORMED;
    }
    return WIRE_OK;
}

enum wire_result gossip_parse_syn(const uint8_t *body, size_t len, struct gossip_msg *m)
{
    return parse_msg(body, len, m, false, true);
}

enum wire_result gossip_parse_ack(const uint8_t *body, size_t len, struct gossip_msg *m)
{
    return parse_msg(body, len, m, true, true);
}

enum wire_result gossip_parse_ack2(const uint8_t *body, size_t len, struct gossip_msg *m)
{
    return parse_msg(body, len, m, true, false);
}

/* ---- Life cycle --------------------------------------------------------- */

static struct gossip_ep *ep_new(void)
{
    return mem_calloc(GMEM, 1, sizeof(struct gossip_ep));
}

enum st_status gossip_create(struct gossip **out, const struct gossip_config *cfg)
{
    *out = NULL;
    size_t clen, alen, slen;
    if (!str_ok(cfg->cluster, 1, WIRE_CLUSTER_MAX, &clen) ||
        !str_ok(cfg->addr, 1, WIRE_ADDR_MAX, &alen) || cfg->nseeds > GOSSIP_MAX_SEEDS ||
        (cfg->nseeds > 0 && cfg->seeds == NULL))
        return ST_INVAL;
    for (size_t i = 0; i < cfg->nseeds; i++)
        if (!str_ok(cfg->seeds[i], 1, WIRE_ADDR_MAX, &slen))
            return ST_INVAL;
    if (cfg->max_body != 0 && (cfg->max_body < GOSSIP_BODY_MIN || cfg->max_body > GOSSIP_BODY_MAX))
        return ST_INVAL;
    struct phi_options phi;
    if (cfg->phi != NULL)
        phi = *cfg->phi;
    else
        phi_options_default(&phi);
    struct phi_detector *probe = NULL;
    enum st_status s = phi_create(&probe, &phi);
    phi_destroy(&probe);
    if (s != ST_OK)
        return s;

    struct gossip *g = mem_calloc(GMEM, 1, sizeof(*g));
    if (g == NULL)
        return ST_NOMEM;
    memcpy(g->cluster, cfg->cluster, clen);
    g->cluster_len = clen;
    g->phi = phi;
    g->max_body = cfg->max_body ? cfg->max_body : GOSSIP_BODY_DEFAULT;
    if (cfg->nseeds > 0) {
        g->seeds = mem_calloc(GMEM, cfg->nseeds, sizeof(*g->seeds));
        if (g->seeds == NULL)
            goto err;
        for (size_t i = 0; i < cfg->nseeds; i++) {
            slen = strlen(cfg->seeds[i]);
            g->seeds[i] = mem_alloc(GMEM, slen + 1);
            if (g->seeds[i] == NULL)
                goto err;
            memcpy(g->seeds[i], cfg->seeds[i], slen + 1);
            g->nseeds = i + 1;
        }
    }
    if (ensure_cap(g, 1) != ST_OK)
        goto err;
    struct gossip_ep *e = ep_new();
    if (e == NULL)
        goto err;
    memcpy(e->id, cfg->id, GOSSIP_ID_LEN);
    e->short_id = cfg->short_id;
    e->generation = cfg->generation;
    e->self = true;
    e->heartbeat = ++g->version;
    ep_insert(g, 0, e);
    g->self = e;
    if (value_make(&e->app[GOSSIP_APP_ADDR], GOSSIP_APP_ADDR, ++g->version,
                   (const uint8_t *)cfg->addr, alen) != ST_OK)
        goto err;

    g->rng = cfg->rng_seed;
    if (g->rng == 0) {
        g->rng = cfg->generation;
        for (size_t i = 0; i < GOSSIP_ID_LEN; i += 8) {
            g->rng ^= get_le64(cfg->id + i);
            (void)splitmix(&g->rng);
        }
    }
    *out = g;
    return ST_OK;
err:
    gossip_destroy(&g);
    return ST_NOMEM;
}

void gossip_destroy(struct gossip **gp)
{
    if (gp == NULL || *gp == NULL)
        return;
    struct gossip *g = *gp;
    for (size_t i = 0; i < g->neps; i++)
        ep_destroy(g->eps[i]);
    mem_free(GMEM, g->eps, g->cap * sizeof(*g->eps));
    mem_free(GMEM, g->cand, g->cap * sizeof(*g->cand));
    mem_free(GMEM, g->pick, g->cap * sizeof(*g->pick));
    mem_free(GMEM, g->req, g->req_cap * sizeof(*g->req));
    if (g->seeds != NULL) {
        for (size_t i = 0; i < g->nseeds; i++)
            mem_free(GMEM, g->seeds[i], strlen(g->seeds[i]) + 1);
        mem_free(GMEM, g->seeds, g->nseeds * sizeof(*g->seeds));
    }
    mem_free(GMEM, g, sizeof(*g));
    *gp = NULL;
}

/* ---- Our own state ------------------------------------------------------ */

enum st_status gossip_set_app(struct gossip *g, uint8_t key, const void *value, size_t len)
{
    const uint8_t *v = value;
    if (!gossip_app_valid(key, v, len))
        return ST_INVAL;
    struct gossip_ep *e = g->self;
    struct gossip_value *cur = &e->app[key];
    if (cur->version != 0 && cur->len == len && (len == 0 || memcmp(cur->data, v, len) == 0))
        return ST_OK;
    struct gossip_value nv;
    if (value_make(&nv, key, g->version + 1, v, len) != ST_OK)
        return ST_NOMEM;
    g->version++;
    struct gossip_value next[GOSSIP_APP_SLOTS];
    memcpy(next, e->app, sizeof(next));
    next[key] = nv;
    if (ring_differs(e->short_id, e->app, e->short_id, next))
        g->ring_version++;
    value_free(cur);
    *cur = nv;
    return ST_OK;
}

enum st_status gossip_set_status(struct gossip *g, enum gossip_status status,
                                 const uint8_t *replacing)
{
    uint8_t v[1 + GOSSIP_ID_LEN];
    size_t len = 1;
    if (status < GOSSIP_STATUS_JOINING || status > GOSSIP_STATUS_REPLACING)
        return ST_INVAL;
    v[0] = (uint8_t)status;
    if (status == GOSSIP_STATUS_REPLACING) {
        if (replacing == NULL)
            return ST_INVAL;
        memcpy(v + 1, replacing, GOSSIP_ID_LEN);
        len += GOSSIP_ID_LEN;
    }
    return gossip_set_app(g, GOSSIP_APP_STATUS, v, len);
}

static enum st_status set_str(struct gossip *g, uint8_t key, const char *s, size_t max)
{
    size_t len = 0;
    if (s != NULL && !str_ok(s, 0, max, &len))
        return ST_INVAL;
    return gossip_set_app(g, key, s, len);
}

enum st_status gossip_set_memcached_addr(struct gossip *g, const char *addr)
{
    return set_str(g, GOSSIP_APP_MC_ADDR, addr, WIRE_ADDR_MAX);
}

enum st_status gossip_set_rack(struct gossip *g, const char *rack)
{
    return set_str(g, GOSSIP_APP_RACK, rack, RING_RACK_MAX);
}

enum st_status gossip_set_tokens(struct gossip *g, const uint64_t *tokens, size_t n)
{
    if (n > RING_MAX_VNODES || (n > 0 && tokens == NULL))
        return ST_INVAL;
    uint8_t *v = mem_alloc(GMEM, n * 8 + 1);
    if (v == NULL)
        return ST_NOMEM;
    for (size_t i = 0; i < n; i++)
        put_le64(v + 8 * i, tokens[i]);
    enum st_status s = gossip_set_app(g, GOSSIP_APP_TOKENS, v, n * 8);
    mem_free(GMEM, v, n * 8 + 1);
    return s;
}

static enum st_status set_u64(struct gossip *g, uint8_t key, uint64_t x)
{
    uint8_t v[8];
    put_le64(v, x);
    return gossip_set_app(g, key, v, sizeof(v));
}

enum st_status gossip_set_load(struct gossip *g, uint64_t bytes)
{
    return set_u64(g, GOSSIP_APP_LOAD, bytes);
}

enum st_status gossip_set_schema(struct gossip *g, uint64_t schema)
{
    return set_u64(g, GOSSIP_APP_SCHEMA, schema);
}

enum st_status gossip_set_protocol(struct gossip *g, uint8_t version)
{
    return gossip_set_app(g, GOSSIP_APP_PROTOCOL, &version, 1);
}

/* ---- Rounds ------------------------------------------------------------- */

static bool is_seed(const struct gossip *g, const char *addr)
{
    for (size_t i = 0; i < g->nseeds; i++)
        if (strcmp(g->seeds[i], addr) == 0)
            return true;
    return false;
}

static bool targeted(const struct gossip_target *out, size_t n, const char *addr)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(out[i].addr, addr) == 0)
            return true;
    return false;
}

static void add_target(struct gossip_target *out, size_t *n, const struct gossip_ep *e)
{
    struct gossip_target *t = &out[(*n)++];
    t->has_id = true;
    memcpy(t->id, e->id, GOSSIP_ID_LEN);
    t->addr = value_str(&e->app[GOSSIP_APP_ADDR]);
}

/* A random seed that is not us and not already a target, if any. */
static void add_seed(struct gossip *g, struct gossip_target *out, size_t *n)
{
    const char *self_addr = value_str(&g->self->app[GOSSIP_APP_ADDR]);
    size_t eligible = 0;
    for (size_t i = 0; i < g->nseeds; i++)
        if (strcmp(g->seeds[i], self_addr) != 0 && !targeted(out, *n, g->seeds[i]))
            eligible++;
    if (eligible == 0)
        return;
    size_t k = rng_below(g, eligible);
    const char *addr = NULL;
    for (size_t i = 0; i < g->nseeds; i++) {
        if (strcmp(g->seeds[i], self_addr) != 0 && !targeted(out, *n, g->seeds[i]) && k-- == 0) {
            addr = g->seeds[i];
            break;
        }
    }
    ASSERT(addr != NULL);
    for (size_t i = 0; i < g->neps; i++) {
        const struct gossip_ep *e = g->eps[i];
        if (!e->self && strcmp(value_str(&e->app[GOSSIP_APP_ADDR]), addr) == 0) {
            add_target(out, n, e);
            return;
        }
    }
    struct gossip_target *t = &out[(*n)++];
    t->has_id = false;
    memset(t->id, 0, GOSSIP_ID_LEN);
    t->addr = addr;
}

size_t gossip_tick(struct gossip *g, uint64_t now_ms, struct gossip_target *out)
{
    g->st.rounds++;
    g->self->heartbeat = ++g->version;

    /* Live peers fill pick[] from the front, down peers from the back.
     * Peers without an address cannot be reached, LEFT ones are gone. */
    size_t nlive = 0, ndown = 0;
    for (size_t i = 0; i < g->neps; i++) {
        const struct gossip_ep *e = g->eps[i];
        if (e->self || e->app[GOSSIP_APP_ADDR].version == 0 ||
            status_code(e->app) == GOSSIP_STATUS_LEFT)
            continue;
        if (phi_check(e->phi, now_ms) == PHI_DOWN)
            g->pick[g->cap - 1 - ndown++] = (uint32_t)i;
        else
            g->pick[nlive++] = (uint32_t)i;
    }
    size_t n = 0;
    const struct gossip_ep *live = NULL;
    if (nlive > 0) {
        live = g->eps[g->pick[rng_below(g, nlive)]];
        add_target(out, &n, live);
    }
    if (ndown > 0 && rng_unit(g) < (double)ndown / (double)(nlive + 1))
        add_target(out, &n, g->eps[g->pick[g->cap - 1 - rng_below(g, ndown)]]);

    const char *self_addr = value_str(&g->self->app[GOSSIP_APP_ADDR]);
    size_t nseeds = 0;
    for (size_t i = 0; i < g->nseeds; i++)
        if (strcmp(g->seeds[i], self_addr) != 0)
            nseeds++;
    if (nseeds > 0 &&
        (live == NULL || !is_seed(g, value_str(&live->app[GOSSIP_APP_ADDR])) || nlive < nseeds)) {
        if (nlive == 0 || rng_unit(g) < (double)nseeds / (double)(nlive + ndown))
            add_seed(g, out, &n);
    }
    return n;
}

/* ---- Merging ------------------------------------------------------------ */

static uint64_t state_max(const struct gossip_state *s)
{
    uint64_t m = s->heartbeat;
    for (size_t i = 0; i < s->napps; i++)
        if (s->apps[i].version > m)
            m = s->apps[i].version;
    return m;
}

/* A state of an id we did not know, to be inserted at index i. */
static enum gossip_result merge_new(struct gossip *g, size_t i, const struct gossip_state *s,
                                    uint64_t now_ms)
{
    if (s->from != 0) {
        g->st.gaps++;
        return GOSSIP_OK;
    }
    if (g->neps >= GOSSIP_MAX_NODES) {
        g->st.dropped++;
        return GOSSIP_OK;
    }
    if (ensure_cap(g, g->neps + 1) != ST_OK)
        return GOSSIP_NOMEM;
    struct gossip_ep *e = ep_new();
    if (e == NULL)
        return GOSSIP_NOMEM;
    memcpy(e->id, s->id, GOSSIP_ID_LEN);
    e->short_id = s->short_id;
    e->generation = s->generation;
    e->heartbeat = s->heartbeat;
    for (size_t k = 0; k < s->napps; k++) {
        const struct gossip_app_value *a = &s->apps[k];
        if (value_make(&e->app[a->key], a->key, a->version, a->value, a->len) != ST_OK)
            goto err;
    }
    if (phi_create(&e->phi, &g->phi) != ST_OK)
        goto err;
    phi_heartbeat(e->phi, now_ms);
    ep_insert(g, i, e);
    if (app_in_ring(e->app))
        g->ring_version++;
    g->st.states_merged++;
    return GOSSIP_OK;
err:
    ep_destroy(e);
    return GOSSIP_NOMEM;
}

/*
 * The merge rule: a newer generation replaces the whole endpoint (if the
 * state is whole, from = 0); an older one is ignored; within a generation
 * each application state takes the higher version and the heartbeat the
 * higher value (if the delta connects, from <= our max). States about
 * ourselves are never taken. All-or-nothing per endpoint.
 */
static enum gossip_result merge_state(struct gossip *g, const struct gossip_state *s,
                                      uint64_t now_ms)
{
    bool found;
    size_t i = ep_search(g, s->id, &found);
    if (!found)
        return merge_new(g, i, s, now_ms);
    struct gossip_ep *e = g->eps[i];
    if (e->self) {
        if (s->generation > e->generation ||
            (s->generation == e->generation && state_max(s) > ep_max(e)))
            g->st.self_conflicts++;
        return GOSSIP_OK;
    }
    if (s->generation < e->generation) {
        g->st.stale++;
        return GOSSIP_OK;
    }
    bool replace = s->generation > e->generation;
    if (replace ? s->from != 0 : s->from > ep_max(e)) {
        g->st.gaps++;
        return GOSSIP_OK;
    }
    if (!replace && s->short_id != e->short_id) {
        g->st.conflicts++;
        return GOSSIP_OK;
    }

    struct gossip_value next[GOSSIP_APP_SLOTS];
    bool fresh[GOSSIP_APP_SLOTS] = {false};
    if (replace)
        memset(next, 0, sizeof(next));
    else
        memcpy(next, e->app, sizeof(next));
    bool changed = replace || s->heartbeat > e->heartbeat;
    for (size_t k = 0; k < s->napps; k++) {
        const struct gossip_app_value *a = &s->apps[k];
        if (!replace && a->version <= e->app[a->key].version)
            continue;
        if (value_make(&next[a->key], a->key, a->version, a->value, a->len) != ST_OK) {
            for (size_t j = 0; j < GOSSIP_APP_SLOTS; j++)
                if (fresh[j])
                    value_free(&next[j]);
            return GOSSIP_NOMEM;
        }
        fresh[a->key] = true;
        changed = true;
    }
    if (!changed)
        return GOSSIP_OK;

    uint16_t short_id = replace ? s->short_id : e->short_id;
    bool ring = ring_differs(e->short_id, e->app, short_id, next);
    for (size_t k = 0; k < GOSSIP_APP_SLOTS; k++)
        if (replace || fresh[k])
            value_free(&e->app[k]);
    memcpy(e->app, next, sizeof(next));
    if (replace) {
        e->generation = s->generation;
        e->short_id = s->short_id;
        e->heartbeat = s->heartbeat;
        phi_reset(e->phi);
        phi_heartbeat(e->phi, now_ms);
        g->st.restarts++;
    } else if (s->heartbeat > e->heartbeat) {
        e->heartbeat = s->heartbeat;
        phi_heartbeat(e->phi, now_ms);
    }
    if (ring)
        g->ring_version++;
    g->st.states_merged++;
    return GOSSIP_OK;
}

static enum gossip_result merge_states(struct gossip *g, struct wire_reader *r, size_t n,
                                       uint64_t now_ms)
{
    struct gossip_state s;
    for (size_t k = 0; k < n; k++) {
        gossip_get_state(r, &s);
        ASSERT(reader_ok(r)); /* the body was checked by gossip_parse_* */
        if (merge_state(g, &s, now_ms) == GOSSIP_NOMEM)
            return GOSSIP_NOMEM;
    }
    return GOSSIP_OK;
}

/* ---- Replies ------------------------------------------------------------ */

static void add_cand(struct gossip *g, size_t *n, size_t ep, uint64_t from)
{
    ASSERT(*n < g->cap);
    struct gossip_cand *c = &g->cand[(*n)++];
    c->ep = (uint32_t)ep;
    c->from = from;
    c->size = 0;
    c->take = true;
}

/*
 * Appends cluster, the candidate states (all of them if they fit the
 * budget, else as many as fit, chosen from a random starting point so that
 * no endpoint starves) and, for an ACK, the request digests.
 */
static enum gossip_result compose_reply(struct gossip *g, struct wire_buf *b, size_t ncand,
                                        const struct gossip_digest *req, size_t nreq, bool ack)
{
    struct gossip_state s;
    size_t req_size = 0;
    if (ack) {
        req_size = varint_len(nreq);
        for (size_t i = 0; i < nreq; i++)
            req_size += gossip_digest_size(&req[i]);
    }
    size_t fixed = varint_len(g->cluster_len) + g->cluster_len + COUNT_MAX + req_size;
    ASSERT(fixed + STATE_MAX <= g->max_body);
    size_t budget = g->max_body - fixed;
    size_t total = 0;
    for (size_t i = 0; i < ncand; i++) {
        ep_view(g->eps[g->cand[i].ep], g->cand[i].from, &s);
        g->cand[i].size = gossip_state_size(&s);
        total += g->cand[i].size;
    }
    size_t ntake = ncand;
    if (total > budget) {
        g->st.truncated++;
        ntake = 0;
        size_t used = 0, start = rng_below(g, ncand);
        for (size_t k = 0; k < ncand; k++) {
            struct gossip_cand *c = &g->cand[(start + k) % ncand];
            c->take = used + c->size <= budget;
            if (c->take) {
                used += c->size;
                ntake++;
            }
        }
    }
    wire_put_bytes(b, g->cluster, g->cluster_len);
    wire_put_varint(b, ntake);
    for (size_t i = 0; i < ncand; i++) {
        if (!g->cand[i].take)
            continue;
        ep_view(g->eps[g->cand[i].ep], g->cand[i].from, &s);
        gossip_put_state(b, &s);
    }
    if (ack) {
        wire_put_varint(b, nreq);
        for (size_t i = 0; i < nreq; i++)
            gossip_put_digest(b, &req[i]);
    }
    return b->err == ST_OK ? GOSSIP_OK : GOSSIP_NOMEM;
}

static bool same_cluster(const struct gossip *g, const struct gossip_msg *m)
{
    return m->cluster_len == g->cluster_len && memcmp(m->cluster, g->cluster, g->cluster_len) == 0;
}

/* Parses and checks the cluster: GOSSIP_OK or the failure, counted. */
static enum gossip_result accept_msg(struct gossip *g, enum wire_result w,
                                     const struct gossip_msg *m)
{
    if (w != WIRE_OK) {
        g->st.malformed++;
        return GOSSIP_MALFORMED;
    }
    if (!same_cluster(g, m)) {
        g->st.other_cluster++;
        return GOSSIP_OTHER_CLUSTER;
    }
    return GOSSIP_OK;
}

enum st_status gossip_compose_syn(struct gossip *g, struct wire_buf *b)
{
    wire_put_bytes(b, g->cluster, g->cluster_len);
    wire_put_varint(b, g->neps);
    for (size_t i = 0; i < g->neps; i++) {
        struct gossip_digest d;
        memcpy(d.id, g->eps[i]->id, GOSSIP_ID_LEN);
        d.generation = g->eps[i]->generation;
        d.version = ep_max(g->eps[i]);
        gossip_put_digest(b, &d);
    }
    return b->err;
}

/* What a SYN digest and our endpoint i call for. */
static void compare_digest(struct gossip *g, size_t i, const struct gossip_digest *d, size_t *ncand,
                           size_t *nreq)
{
    const struct gossip_ep *e = g->eps[i];
    uint64_t max = ep_max(e);
    if (e->self) {
        if (d->generation > e->generation || (d->generation == e->generation && d->version > max))
            g->st.self_conflicts++; /* never ask for a state of ourselves */
        else if (d->generation < e->generation)
            add_cand(g, ncand, i, 0);
        else if (d->version < max)
            add_cand(g, ncand, i, d->version);
        return;
    }
    struct gossip_digest *r = &g->req[*nreq];
    if (d->generation > e->generation) {
        *r = *d;
        r->version = 0;
        (*nreq)++;
    } else if (d->generation < e->generation) {
        add_cand(g, ncand, i, 0);
    } else if (d->version > max) {
        *r = *d;
        r->version = max;
        (*nreq)++;
    } else if (d->version < max) {
        add_cand(g, ncand, i, d->version);
    }
}

enum gossip_result gossip_handle_syn(struct gossip *g, const uint8_t *body, size_t len,
                                     uint64_t now_ms, struct wire_buf *ack)
{
    (void)now_ms; /* a SYN carries no state */
    struct gossip_msg m;
    enum gossip_result res = accept_msg(g, gossip_parse_syn(body, len, &m), &m);
    if (res != GOSSIP_OK)
        return res;
    if (ensure_req(g, m.ndigests) != ST_OK)
        return GOSSIP_NOMEM;
    /* Merge-join of the sorted digests with our sorted endpoints. */
    size_t ncand = 0, nreq = 0, i = 0, room = GOSSIP_MAX_NODES - g->neps;
    struct gossip_digest d;
    for (size_t k = 0; k < m.ndigests; k++) {
        gossip_get_digest(&m.digests, &d);
        while (i < g->neps && memcmp(g->eps[i]->id, d.id, GOSSIP_ID_LEN) < 0)
            add_cand(g, &ncand, i++, 0); /* the sender does not know it */
        if (i < g->neps && memcmp(g->eps[i]->id, d.id, GOSSIP_ID_LEN) == 0) {
            compare_digest(g, i++, &d, &ncand, &nreq);
        } else if (room > 0) {
            g->req[nreq] = d; /* we do not know it: all of it */
            g->req[nreq++].version = 0;
            room--;
        }
    }
    while (i < g->neps)
        add_cand(g, &ncand, i++, 0);
    res = compose_reply(g, ack, ncand, g->req, nreq, true);
    if (res == GOSSIP_OK)
        g->st.syn++;
    return res;
}

enum gossip_result gossip_handle_ack(struct gossip *g, const uint8_t *body, size_t len,
                                     uint64_t now_ms, struct wire_buf *ack2)
{
    struct gossip_msg m;
    enum gossip_result res = accept_msg(g, gossip_parse_ack(body, len, &m), &m);
    if (res != GOSSIP_OK)
        return res;
    res = merge_states(g, &m.states, m.nstates, now_ms);
    if (res != GOSSIP_OK)
        return res;
    size_t ncand = 0;
    struct gossip_digest d;
    for (size_t k = 0; k < m.ndigests; k++) {
        gossip_get_digest(&m.digests, &d);
        bool found;
        size_t i = ep_search(g, d.id, &found);
        if (!found)
            continue;
        const struct gossip_ep *e = g->eps[i];
        if (e->generation > d.generation)
            add_cand(g, &ncand, i, 0);
        else if (e->generation == d.generation && ep_max(e) > d.version)
            add_cand(g, &ncand, i, d.version);
    }
    res = compose_reply(g, ack2, ncand, NULL, 0, false);
    if (res == GOSSIP_OK)
        g->st.ack++;
    return res;
}

enum gossip_result gossip_handle_ack2(struct gossip *g, const uint8_t *body, size_t len,
                                      uint64_t now_ms)
{
    struct gossip_msg m;
    enum gossip_result res = accept_msg(g, gossip_parse_ack2(body, len, &m), &m);
    if (res != GOSSIP_OK)
        return res;
    res = merge_states(g, &m.states, m.nstates, now_ms);
    if (res == GOSSIP_OK)
        g->st.ack2++;
    return res;
}

/* ---- The view ----------------------------------------------------------- */

enum phi_state gossip_peer_state(const struct gossip *g, const uint8_t id[GOSSIP_ID_LEN],
                                 uint64_t now_ms)
{
    const struct gossip_ep *e = ep_find(g, id);
    if (e == NULL)
        return PHI_DOWN;
    if (e->self)
        return PHI_UP;
    return phi_check(e->phi, now_ms);
}

double gossip_peer_phi(const struct gossip *g, const uint8_t id[GOSSIP_ID_LEN], uint64_t now_ms)
{
    const struct gossip_ep *e = ep_find(g, id);
    if (e == NULL || e->self)
        return 0.0;
    return phi_value(e->phi, now_ms);
}

static void fill_peer(const struct gossip_ep *e, struct gossip_peer *p)
{
    memset(p, 0, sizeof(*p));
    memcpy(p->id, e->id, GOSSIP_ID_LEN);
    p->short_id = e->short_id;
    p->generation = e->generation;
    p->heartbeat = e->heartbeat;
    p->max_version = ep_max(e);
    p->self = e->self;
    p->status_code = status_code(e->app);
    p->status = p->status_code <= GOSSIP_STATUS_REPLACING ? (enum gossip_status)p->status_code
                                                          : GOSSIP_STATUS_OTHER;
    if (p->status == GOSSIP_STATUS_REPLACING)
        memcpy(p->replacing, e->app[GOSSIP_APP_STATUS].data + 1, GOSSIP_ID_LEN);
    p->addr = value_str(&e->app[GOSSIP_APP_ADDR]);
    p->mc_addr = value_str(&e->app[GOSSIP_APP_MC_ADDR]);
    p->rack = value_str(&e->app[GOSSIP_APP_RACK]);
    p->tokens = e->app[GOSSIP_APP_TOKENS].tokens;
    p->ntokens = e->app[GOSSIP_APP_TOKENS].len / 8;
    p->load = value_u64(&e->app[GOSSIP_APP_LOAD]);
    p->schema = value_u64(&e->app[GOSSIP_APP_SCHEMA]);
    p->protocol = e->app[GOSSIP_APP_PROTOCOL].len == 1 ? e->app[GOSSIP_APP_PROTOCOL].data[0] : 0;
    for (size_t k = 0; k < GOSSIP_APP_SLOTS; k++)
        p->versions[k] = e->app[k].version;
}

size_t gossip_count(const struct gossip *g)
{
    return g->neps;
}

void gossip_peer_at(const struct gossip *g, size_t i, struct gossip_peer *out)
{
    ASSERT(i < g->neps);
    fill_peer(g->eps[i], out);
}

bool gossip_find(const struct gossip *g, const uint8_t id[GOSSIP_ID_LEN], struct gossip_peer *out)
{
    const struct gossip_ep *e = ep_find(g, id);
    if (e == NULL)
        return false;
    fill_peer(e, out);
    return true;
}

bool gossip_app_value(const struct gossip *g, const uint8_t id[GOSSIP_ID_LEN], uint8_t key,
                      const uint8_t **value, size_t *len, uint64_t *version)
{
    const struct gossip_ep *e = ep_find(g, id);
    if (e == NULL || key >= GOSSIP_APP_SLOTS)
        return false;
    *value = e->app[key].data;
    *len = e->app[key].len;
    *version = e->app[key].version;
    return true;
}

uint64_t gossip_ring_version(const struct gossip *g)
{
    return g->ring_version;
}

size_t gossip_ring_nodes(const struct gossip *g, struct ring_node *out, size_t cap)
{
    uint64_t seen[(1u << 16) / 64]; /* short ids taken by a smaller id */
    memset(seen, 0, sizeof(seen));
    size_t n = 0;
    for (size_t i = 0; i < g->neps; i++) {
        const struct gossip_ep *e = g->eps[i];
        if (!app_in_ring(e->app))
            continue;
        uint64_t bit = UINT64_C(1) << (e->short_id % 64);
        if (seen[e->short_id / 64] & bit)
            continue;
        seen[e->short_id / 64] |= bit;
        if (n < cap) {
            struct ring_node *r = &out[n];
            memcpy(r->id, e->id, GOSSIP_ID_LEN);
            r->short_id = e->short_id;
            r->rack = e->app[GOSSIP_APP_RACK].len > 0 ? value_str(&e->app[GOSSIP_APP_RACK]) : NULL;
            r->tokens = e->app[GOSSIP_APP_TOKENS].tokens;
            r->ntokens = e->app[GOSSIP_APP_TOKENS].len / 8;
        }
        n++;
    }
    return n;
}

void gossip_stats(const struct gossip *g, struct gossip_stats *out)
{
    *out = g->st;
}

const char *gossip_status_name(enum gossip_status s)
{
    switch (s) {
    case GOSSIP_STATUS_NONE: return "none";
    case GOSSIP_STATUS_JOINING: return "joining";
    case GOSSIP_STATUS_NORMAL: return "normal";
    case GOSSIP_STATUS_LEAVING: return "leaving";
    case GOSSIP_STATUS_LEFT: return "left";
    case GOSSIP_STATUS_REPLACING: return "replacing";
    case GOSSIP_STATUS_OTHER: break;
    }
    return "other";
}

const char *gossip_result_name(enum gossip_result r)
{
    switch (r) {
    case GOSSIP_OK: return "ok";
    case GOSSIP_MALFORMED: return "malformed";
    case GOSSIP_OTHER_CLUSTER: return "other cluster";
    case GOSSIP_NOMEM: return "out of memory";
    }
    return "unknown";
}
