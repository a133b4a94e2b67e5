/*
 * iter.c - the merging iterator (iter.h): a linear scan for the smallest
 * child on each step. Children are few (memtables, L0 files, one per
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

struct merge_iter {
    struct iter base;
    struct iter **children;
    size_t n;
    struct iter *cur;
    enum st_status status;
};

static void merge_pick(struct merge_iter *m)
{
    m->cur = NULL;
    const uint8_t *bk = NULL, *v;
    size_t bkl = 0, vl;
    for (size_t i = 0; i < m->n; i++) {
        struct iter *c = m->children[i];
        if (!c->ops->valid(c)) {
            enum st_status st = c->ops->status(c);
            if (st != ST_OK && m->status == ST_OK)
                m->status = st;
            continue;
        }
        const uint8_t *k;
        size_t kl;
        c->ops->entry(c, &k, &kl, &v, &vl);
        if (m->cur == NULL || ikey_compare(k, kl, bk, bkl) < 0) {
            m->cur = c;
            bk = k;
            bkl = kl;
        }
    }
    if (m->status != ST_OK)
        m->cur = NULL; /* never hide an error behind a partial merge */
}

static void merge_seek_first(struct iter *it)
{
    struct merge_iter *m = (struct merge_iter *)it;
    for (size_t i = 0; i < m->n; i++)
        m->children[i]->ops->seek_first(m->children[i]);
    merge_pick(m);
}

static void merge_seek(struct iter *it, const uint8_t *k, size_t kl)
{
    struct merge_iter *m = (struct merge_iter *)it;
    for (size_t i = 0; i < m->n; i++)
        m->children[i]->ops->seek(m->children[i], k, kl);
    merge_pick(m);
}

static void merge_next(struct iter *it)
{
    struct merge_iter *m = (struct merge_iter *)it;
    if (m->cur == NULL)
        return;
    m->cur->ops->next(m->cur);
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
    m->cur->ops->entry(m->cur, k, kl, v, vl);
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
    if (m == NULL) {
        for (size_t i = 0; i < n; i++)
            iter_destroy(&children[i]);
        mem_free(MEM_STORAGE, children, n * sizeof(struct iter *));
        return ST_NOMEM;
    }
    m->base.ops = &merge_ops;
    m->children = children;
    m->n = n;
    m->status = ST_OK;
    *out = &m->base;
    return ST_OK;
}
