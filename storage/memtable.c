/*
 * memtable.c - skip list over an arena (memtable.h). One writer (the commit
 * leader or recovery) and lock-free readers: a node is fully written before
 * a release store links it, readers follow links with acquire loads.
 *
 * Beside the list, a hash index of each user key's first node (its newest
 * version): a point read starts there instead of searching the list, and
 * a newer version of a key already present is linked right before that
 * node at height 1 (its level-0 predecessor is kept in the node, for the
 * writer only), so rewriting a key costs no search either. Versions that
 * arrive older than the newest (replays, repair) take the list's search.
 */
#include <stdatomic.h>
#include <string.h>

#include "common/mem.h"
#include "storage/coding.h"
#include "storage/ikey.h"
#include "storage/memtable.h"

#define MT_MAX_HEIGHT 12
#define MT_BRANCH 4
#define ARENA_BLOCK (256u << 10)

struct mt_node {
    uint64_t token; /* copy of the ikey's token: most compares stop here */
    uint64_t seq;
    _Atomic(struct mt_node *) hash_next; /* the index's chain: first nodes of keys */
    struct mt_node *prev0;               /* level-0 predecessor (the writer's only) */
    uint32_t ikey_len;
    uint32_t rval_len;
    uint32_t height;
    uint32_t pad;
    _Atomic(struct mt_node *) next[]; /* height links, then ikey, rval */
};

struct arena_block {
    struct arena_block *next;
    size_t size;
    size_t used;
    /* data follows, 16-byte aligned */
    _Alignas(16) uint8_t data[];
};

struct memtable {
    atomic_int refs;
    /* Bloom filter over the tokens inserted (one writer sets bits before
     * publishing the node; readers test them): most lookups of keys that
     * are not in the memtable skip the skip-list search. */
    _Atomic uint64_t *bloom;
    uint64_t bloom_bits;
    atomic_size_t bytes;
    atomic_uint_fast64_t count;
    /* HLC bounds of the versions inserted (memtable_hlc_bounds). */
    _Atomic uint64_t min_hlc, max_hlc;
    atomic_int max_height;
    /* The first node of each user key, chained by bucket (token & mask). */
    _Atomic(struct mt_node *) *index;
    uint64_t index_mask;
    uint64_t rng;
    struct arena_block *blocks;
    struct mt_node *head;
};

static void *arena_alloc(struct memtable *m, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct arena_block *b = m->blocks;
    if (b == NULL || b->size - b->used < n) {
        size_t size = n > ARENA_BLOCK / 4 ? n : ARENA_BLOCK;
        struct arena_block *nb = mem_alloc(MEM_STORAGE, sizeof(*nb) + size);
        if (nb == NULL)
            return NULL;
        nb->size = size;
        nb->used = 0;
        if (size == n && b != NULL) {
            /* A big entry gets its own block behind the current one. */
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = b;
            m->blocks = nb;
        }
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += n;
    atomic_fetch_add_explicit(&m->bytes, n, memory_order_relaxed);
    return p;
}

static uint8_t *node_ikey(const struct mt_node *n)
{
    return (uint8_t *)&n->next[n->height];
}

static uint8_t *node_rval(const struct mt_node *n)
{
    return node_ikey(n) + n->ikey_len;
}

static struct mt_node *node_new(struct memtable *m, uint32_t height, size_t ikey_len,
                                size_t rval_len)
{
    size_t sz =
        sizeof(struct mt_node) + height * sizeof(_Atomic(struct mt_node *)) + ikey_len + rval_len;
    struct mt_node *n = arena_alloc(m, sz);
    if (n == NULL)
        return NULL;
    n->seq = 0;
    n->token = 0;
    atomic_init(&n->hash_next, NULL);
    n->prev0 = NULL;
    n->ikey_len = (uint32_t)ikey_len;
    n->rval_len = (uint32_t)rval_len;
    n->height = height;
    n->pad = 0;
    for (uint32_t i = 0; i < height; i++)
        atomic_init(&n->next[i], NULL);
    return n;
}

#define MT_BLOOM_PROBES 3

static inline uint64_t mt_bloom_step(uint64_t t)
{
    return ((t >> 32) | (t << 32)) | 1;
}

static void bloom_add(struct memtable *m, uint64_t token)
{
    uint64_t a = token, b = mt_bloom_step(token);
    for (int j = 0; j < MT_BLOOM_PROBES; j++) {
        uint64_t bit = (a + (uint64_t)j * b) % m->bloom_bits;
        atomic_fetch_or_explicit(&m->bloom[bit / 64], 1ull << (bit % 64), memory_order_relaxed);
    }
}

static bool bloom_may(const struct memtable *m, uint64_t token)
{
    uint64_t a = token, b = mt_bloom_step(token);
    for (int j = 0; j < MT_BLOOM_PROBES; j++) {
        uint64_t bit = (a + (uint64_t)j * b) % m->bloom_bits;
        if ((atomic_load_explicit(&m->bloom[bit / 64], memory_order_relaxed) &
             (1ull << (bit % 64))) == 0)
            return false;
    }
    return true;
}

enum st_status memtable_create(size_t expected_bytes, struct memtable **out)
{
    struct memtable *m = mem_calloc(MEM_STORAGE, 1, sizeof(*m));
    if (m == NULL)
        return ST_NOMEM;
    /* One bit per 4 bytes of entries: >= 16 bits per key for any entry. */
    uint64_t words = (expected_bytes / 4 + 63) / 64;
    if (words < 64)
        words = 64;
    if (words > (1u << 21)) /* 16 MiB of filter at most */
        words = 1u << 21;
    m->bloom_bits = words * 64;
    m->bloom = mem_calloc(MEM_STORAGE, (size_t)words, sizeof(uint64_t));
    /* One bucket per 128 bytes of entries: chains of about one key. */
    uint64_t buckets = 1024;
    while (buckets < expected_bytes / 128 && buckets < (1u << 21))
        buckets <<= 1;
    m->index_mask = buckets - 1;
    m->index = mem_calloc(MEM_STORAGE, (size_t)buckets, sizeof(*m->index));
    if (m->bloom == NULL || m->index == NULL) {
        mem_free(MEM_STORAGE, m->bloom, (size_t)words * sizeof(uint64_t));
        mem_free(MEM_STORAGE, m->index, (size_t)buckets * sizeof(*m->index));
        mem_free(MEM_STORAGE, m, sizeof(*m));
        return ST_NOMEM;
    }
    atomic_init(&m->refs, 1);
    atomic_init(&m->bytes, 0);
    atomic_init(&m->count, 0);
    atomic_init(&m->min_hlc, UINT64_MAX);
    atomic_init(&m->max_hlc, 0);
    atomic_init(&m->max_height, 1);
    m->rng = 0x9e3779b97f4a7c15ull;
    m->head = node_new(m, MT_MAX_HEIGHT, 0, 0);
    if (m->head == NULL) {
        memtable_unref(&m);
        return ST_NOMEM;
    }
    *out = m;
    return ST_OK;
}

void memtable_ref(struct memtable *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

void memtable_unref(struct memtable **mp)
{
    if (mp == NULL || *mp == NULL)
        return;
    struct memtable *m = *mp;
    *mp = NULL;
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
        return;
    while (m->blocks != NULL) {
        struct arena_block *b = m->blocks;
        m->blocks = b->next;
        mem_free(MEM_STORAGE, b, sizeof(*b) + b->size);
    }
    mem_free(MEM_STORAGE, m->bloom, (size_t)(m->bloom_bits / 64) * sizeof(uint64_t));
    mem_free(MEM_STORAGE, m->index, (size_t)(m->index_mask + 1) * sizeof(*m->index));
    mem_free(MEM_STORAGE, m, sizeof(*m));
}

static uint32_t random_height(struct memtable *m)
{
    uint32_t h = 1;
    while (h < MT_MAX_HEIGHT) {
        /* xorshift64 */
        m->rng ^= m->rng << 13;
        m->rng ^= m->rng >> 7;
        m->rng ^= m->rng << 17;
        if ((m->rng & (MT_BRANCH - 1)) != 0)
            break;
        h++;
    }
    return h;
}

static int node_cmp(const struct mt_node *n, const uint8_t *ikey, size_t ikey_len)
{
    return ikey_compare(node_ikey(n), n->ikey_len, ikey, ikey_len);
}

/* node_cmp with the target's token decoded once. */
static inline int node_cmp_tok(const struct mt_node *n, uint64_t token, const uint8_t *ikey,
                               size_t ikey_len)
{
    if (n->token != token)
        return n->token < token ? -1 : 1;
    return node_cmp(n, ikey, ikey_len);
}

/* First node >= ikey; fills prev[] when asked (writer). */
static struct mt_node *find_ge(struct memtable *m, const uint8_t *ikey, size_t ikey_len,
                               struct mt_node **prev)
{
    struct mt_node *x = m->head;
    uint64_t token = dec_u64be(ikey);
    int level = atomic_load_explicit(&m->max_height, memory_order_relaxed) - 1;
    for (;;) {
        struct mt_node *next = atomic_load_explicit(&x->next[level], memory_order_acquire);
        if (next != NULL && node_cmp_tok(next, token, ikey, ikey_len) < 0) {
            x = next;
            continue;
        }
        if (prev != NULL)
            prev[level] = x;
        if (level == 0)
            return next;
        level--;
    }
}

/* The first node of ikey's user key (its newest version), or NULL. */
static struct mt_node *index_find(struct memtable *m, uint64_t token, const uint8_t *ikey,
                                  size_t ikey_len)
{
    struct mt_node *n =
        atomic_load_explicit(&m->index[token & m->index_mask], memory_order_acquire);
    for (; n != NULL; n = atomic_load_explicit(&n->hash_next, memory_order_acquire))
        if (n->token == token && ikey_same_user_key(node_ikey(n), n->ikey_len, ikey, ikey_len))
            return n;
    return NULL;
}

/* n (published in the list) becomes its key's first node: it replaces
 * old in the index, or is added when old is NULL. Writer only. */
static void index_set(struct memtable *m, struct mt_node *n, struct mt_node *old)
{
    _Atomic(struct mt_node *) *link = &m->index[n->token & m->index_mask];
    if (old == NULL) {
        atomic_store_explicit(&n->hash_next, atomic_load_explicit(link, memory_order_relaxed),
                              memory_order_relaxed);
        atomic_store_explicit(link, n, memory_order_release);
        return;
    }
    while (atomic_load_explicit(link, memory_order_relaxed) != old)
        link = &atomic_load_explicit(link, memory_order_relaxed)->hash_next;
    /* a reader on old still finds the rest of the chain behind it */
    atomic_store_explicit(&n->hash_next,
                          atomic_load_explicit(&old->hash_next, memory_order_relaxed),
                          memory_order_relaxed);
    atomic_store_explicit(link, n, memory_order_release);
}

/* A new node of h levels for the entry, its fields filled (not linked). */
static struct mt_node *entry_node(struct memtable *m, uint32_t h, uint64_t seq, const uint8_t *ikey,
                                  size_t ikey_len, const uint8_t *rval, size_t rval_len)
{
    struct mt_node *n = node_new(m, h, ikey_len, rval_len);
    if (n == NULL)
        return NULL;
    n->seq = seq;
    n->token = dec_u64be(ikey);
    bloom_add(m, n->token); /* before the node is published */
    /* Bounds too: a reader that sees the node also sees them widened. */
    uint64_t hlc = dec_u64be(ikey + ikey_len - 10);
    if (hlc < atomic_load_explicit(&m->min_hlc, memory_order_relaxed))
        atomic_store_explicit(&m->min_hlc, hlc, memory_order_relaxed);
    if (hlc > atomic_load_explicit(&m->max_hlc, memory_order_relaxed))
        atomic_store_explicit(&m->max_hlc, hlc, memory_order_relaxed);
    memcpy(node_ikey(n), ikey, ikey_len);
    if (rval_len > 0)
        memcpy(node_rval(n), rval, rval_len);
    return n;
}

enum st_status memtable_add(struct memtable *m, uint64_t seq, const uint8_t *ikey, size_t ikey_len,
                            const uint8_t *rval, size_t rval_len)
{
    uint64_t token = dec_u64be(ikey);
    struct mt_node *first = index_find(m, token, ikey, ikey_len);
    if (first != NULL && ikey_compare(ikey, ikey_len, node_ikey(first), first->ikey_len) < 0) {
        /* a newer version of a key present: right before its first node */
        struct mt_node *n = entry_node(m, 1, seq, ikey, ikey_len, rval, rval_len);
        if (n == NULL)
            return ST_NOMEM;
        struct mt_node *p = first->prev0;
        atomic_store_explicit(&n->next[0], first, memory_order_relaxed);
        n->prev0 = p;
        first->prev0 = n;
        atomic_store_explicit(&p->next[0], n, memory_order_release);
        index_set(m, n, first);
        atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
        return ST_OK;
    }
    struct mt_node *prev[MT_MAX_HEIGHT];
    /* Equal keys go after existing ones: search for the first node > ikey
     * by comparing <= (done by find_ge on a strictly-less walk, then
     * skipping equals below). */
    find_ge(m, ikey, ikey_len, prev);
    uint32_t h = random_height(m);
    int maxh = atomic_load_explicit(&m->max_height, memory_order_relaxed);
    if ((int)h > maxh) {
        for (int i = maxh; i < (int)h; i++)
            prev[i] = m->head;
        atomic_store_explicit(&m->max_height, (int)h, memory_order_relaxed);
    }
    for (uint32_t i = 0; i < h; i++) {
        struct mt_node *nx;
        while ((nx = atomic_load_explicit(&prev[i]->next[i], memory_order_relaxed)) != NULL &&
               node_cmp(nx, ikey, ikey_len) == 0)
            prev[i] = nx;
    }
    struct mt_node *n = entry_node(m, h, seq, ikey, ikey_len, rval, rval_len);
    if (n == NULL)
        return ST_NOMEM;
    struct mt_node *after = atomic_load_explicit(&prev[0]->next[0], memory_order_relaxed);
    for (uint32_t i = 0; i < h; i++) {
        atomic_store_explicit(&n->next[i],
                              atomic_load_explicit(&prev[i]->next[i], memory_order_relaxed),
                              memory_order_relaxed);
        atomic_store_explicit(&prev[i]->next[i], n, memory_order_release);
    }
    n->prev0 = prev[0];
    if (after != NULL)
        after->prev0 = n;
    /* the key's first node when it had none; else an older version (or
     * the same one replayed) that goes after the first */
    if (first == NULL)
        index_set(m, n, NULL);
    atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
    return ST_OK;
}

static const struct mt_node *skip_newer(const struct mt_node *n, uint64_t max_seq)
{
    while (n != NULL && n->seq > max_seq)
        n = atomic_load_explicit(&((struct mt_node *)n)->next[0], memory_order_acquire);
    return n;
}

bool memtable_get(struct memtable *m, const uint8_t *ikey, size_t ikey_len, uint64_t max_seq,
                  const uint8_t **found_ikey, size_t *found_ikey_len, const uint8_t **rval,
                  size_t *rval_len)
{
    uint64_t token = dec_u64be(ikey);
    if (!bloom_may(m, token))
        return false;
    /* the key's versions follow its first node, newest first */
    const struct mt_node *n = index_find(m, token, ikey, ikey_len);
    for (; n != NULL;
         n = atomic_load_explicit(&((struct mt_node *)n)->next[0], memory_order_acquire)) {
        if (!ikey_same_user_key(node_ikey(n), n->ikey_len, ikey, ikey_len))
            return false;
        if (n->seq <= max_seq) {
            *found_ikey = node_ikey(n);
            *found_ikey_len = n->ikey_len;
            *rval = node_rval(n);
            *rval_len = n->rval_len;
            return true;
        }
    }
    return false;
}

bool memtable_hlc_bounds(const struct memtable *m, uint64_t *min_hlc, uint64_t *max_hlc)
{
    struct memtable *mm = (struct memtable *)m;
    *min_hlc = atomic_load_explicit(&mm->min_hlc, memory_order_relaxed);
    *max_hlc = atomic_load_explicit(&mm->max_hlc, memory_order_relaxed);
    return *min_hlc <= *max_hlc;
}

size_t memtable_bytes(const struct memtable *m)
{
    return atomic_load_explicit(&((struct memtable *)m)->bytes, memory_order_relaxed);
}

uint64_t memtable_count(const struct memtable *m)
{
    return atomic_load_explicit(&((struct memtable *)m)->count, memory_order_relaxed);
}

void memtable_iter_init(struct memtable_iter *it, struct memtable *m, uint64_t max_seq)
{
    it->m = m;
    it->node = NULL;
    it->max_seq = max_seq;
}

void memtable_iter_seek(struct memtable_iter *it, const uint8_t *ikey, size_t ikey_len)
{
    it->node = skip_newer(find_ge(it->m, ikey, ikey_len, NULL), it->max_seq);
}

void memtable_iter_seek_first(struct memtable_iter *it)
{
    it->node =
        skip_newer(atomic_load_explicit(&it->m->head->next[0], memory_order_acquire), it->max_seq);
}

bool memtable_iter_valid(const struct memtable_iter *it)
{
    return it->node != NULL;
}

void memtable_iter_next(struct memtable_iter *it)
{
    const struct mt_node *n = it->node;
    it->node = skip_newer(
        atomic_load_explicit(&((struct mt_node *)n)->next[0], memory_order_acquire), it->max_seq);
}

void memtable_iter_entry(const struct memtable_iter *it, const uint8_t **ikey, size_t *ikey_len,
                         const uint8_t **rval, size_t *rval_len)
{
    const struct mt_node *n = it->node;
    *ikey = node_ikey(n);
    *ikey_len = n->ikey_len;
    *rval = node_rval(n);
    *rval_len = n->rval_len;
}
