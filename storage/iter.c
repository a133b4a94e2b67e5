/*
 * iter.c - the merging iterator (iter.h): a linear scan over the
 * children's cached current keys for the smallest on each step. Children are few (memtables, L0 files, one per
 * deeper level), so a heap would not pay for itself. One thread.
 */
#include "storage/iter.h"
#include "common/mem.h"
#include "storage/ikey.h"

void iter_destroy(struct iter **it)
{
    if (it == NULL || *it == NULL)
        return;
    (*it)->ops->destroy(*it);
    *it = NULL;
}

/* A child and its current key, cached so that a step compares keys in
 * place instead of asking every child again through its ops. */
struct merge_child {
    struct iter *it;
    const uint8_t *key; /* NULL: exhausted (or failed) */
    size_t key_len;
};

struct merge_iter {
    struct iter base;
    struct iter **children; /* owned; the array iter_merge_create took */
    struct merge_child *kids;
    size_t n;
    struct merge_child *cur;
    enum st_status status;
};

/* Re-reads child k's position after it moved. */
static void merge_refresh(struct merge_iter *m, struct merge_child *k)
{
    struct iter *c = k->it;
    if (!c->ops->valid(c)) {
        k->key = NULL;
        enum st_status st = c->ops->status(c);
        if (st != ST_OK && m->status == ST_OK)
            m->status = st;
        return;
    }
    const uint8_t *v;
    size_t vl;
    c->ops->entry(c, &k->key, &k->key_len, &v, &vl);
}

static void merge_pick(struct merge_iter *m)
{
    m->cur = NULL;
    if (m->status != ST_OK)
        return; /* never hide an error behind a partial merge */
    for (size_t i = 0; i < m->n; i++) {
        struct merge_child *k = &m->kids[i];
        if (k->key != NULL &&
            (m->cur == NULL || ikey_compare(k->key, k->key_len, m->cur->key, m->cur->key_len) < 0))
            m->cur = k;
    }
}

static void merge_seek_first(struct iter *it)
{
    struct merge_iter *m = (struct merge_iter *)it;
    for (size_t i = 0; i < m->n; i++) {
        m->kids[i].it->ops->seek_first(m->kids[i].it);
        merge_refresh(m, &m->kids[i]);
    }
    merge_pick(m);
}

static void merge_seek(struct iter *it, const uint8_t *k, size_t kl)
{
    struct merge_iter *m = (struct merge_iter *)it;
    for (size_t i = 0; i < m->n; i++) {
        m->kids[i].it->ops->seek(m->kids[i].it, k, kl);
        merge_refresh(m, &m->kids[i]);
    }
    merge_pick(m);
}

static void merge_next(struct iter *it)
{
    struct merge_iter *m = (struct merge_iter *)it;
    if (m->cur == NULL)
        return;
    m->cur->it->ops->next(m->cur->it);
    merge_refresh(m, m->cur);
    merge_pick(m);
}

static bool merge_valid(const struct iter *it)
{
    return ((const struct merge_iter *)it)->cur != NULL;
}

static void merge_entry(const struct iter *it, const uint8_t **k, size_t *kl, const uint8_t **v,
                        size_t *vl)
{
    const struct merge_iter *m = (const struct merge_iter *)it;
    m->cur->it->ops->entry(m->cur->it, k, kl, v, vl);
}

static enum st_status merge_status(const struct iter *it)
{
    return ((const struct merge_iter *)it)->status;
}

static void merge_destroy(struct iter *it)
{
    struct merge_iter *m = (struct merge_iter *)it;
    for (size_t i = 0; i < m->n; i++)
        iter_destroy(&m->children[i]);
    mem_free(MEM_STORAGE, m->children, m->n * sizeof(struct iter *));
    mem_free(MEM_STORAGE, m->kids, (m->n ? m->n : 1) * sizeof(*m->kids));
    mem_free(MEM_STORAGE, m, sizeof(*m));
}

static const struct iter_ops merge_ops = {
    .seek_first = merge_seek_first,
    .seek = merge_seek,
    .next = merge_next,
    .valid = merge_valid,
    .entry = merge_entry,
    .status = merge_status,
    .destroy = merge_destroy,
};

enum st_status iter_merge_create(struct iter **children, size_t n, struct iter **out)
{
    struct merge_iter *m = mem_calloc(MEM_STORAGE, 1, sizeof(*m));
    struct merge_child *kids = mem_calloc(MEM_STORAGE, n ? n : 1, sizeof(*kids));
    if (m == NULL || kids == NULL) {
        if (m != NULL)
            mem_free(MEM_STORAGE, m, sizeof(*m));
        if (kids != NULL)
            mem_free(MEM_STORAGE, kids, (n ? n : 1) * sizeof(*kids));
        for (size_t i = 0; i < n; i++)
            iter_destroy(&children[i]);
        mem_free(MEM_STORAGE, children, n * sizeof(struct iter *));
        return ST_NOMEM;
    }
    m->base.ops = &merge_ops;
    m->children = children;
    m->kids = kids;
    for (size_t i = 0; i < n; i++)
        kids[i].it = children[i];
    m->n = n;
    m->status = ST_OK;
    *out = &m->base;
    return ST_OK;
}
