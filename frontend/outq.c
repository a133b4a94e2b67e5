/*
 * outq.c - reply queue: arena chunks, iovecs, held value references (see
 * outq.h). Worker thread of the owning connection only.
 */
#include "frontend/outq.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "common/assert.h"
#include "common/mem.h"

#define OUTQ_CHUNK_SIZE 16384
#define OUTQ_SMALL_CHUNK 512
/* A splice copies up to this many bytes rather than moving chunks: a
 * short reply costs a copy, not a chunk allocated and freed. */
#define OUTQ_SPLICE_COPY_MAX 2048
#define OUTQ_IOV_BATCH 1024 /* IOV_MAX on Linux */

struct outq_chunk {
    struct outq_chunk *next;
    size_t size, used;
    char data[];
};

void outq_init(struct outq *q, outq_release_fn release, void *release_ctx)
{
    memset(q, 0, sizeof(*q));
    q->release = release;
    q->release_ctx = release_ctx;
    q->chunk = OUTQ_CHUNK_SIZE;
}

void outq_init_small(struct outq *q, outq_release_fn release, void *release_ctx)
{
    outq_init(q, release, release_ctx);
    q->chunk = OUTQ_SMALL_CHUNK;
}

static void release_refs_from(struct outq *q, unsigned from)
{
    for (unsigned i = from; i < q->nrefs; i++)
        q->release(q->release_ctx, q->refs[i]);
    q->nrefs = from;
}

static void free_chunks_after(struct outq_chunk *c)
{
    struct outq_chunk *n = c->next;
    c->next = NULL;
    while (n != NULL) {
        struct outq_chunk *next = n->next;
        mem_free(MEM_CONN, n, sizeof(*n) + n->size);
        n = next;
    }
}

void outq_deinit(struct outq *q)
{
    release_refs_from(q, 0);
    if (q->head != NULL) {
        free_chunks_after(q->head);
        mem_free(MEM_CONN, q->head, sizeof(*q->head) + q->head->size);
    }
    mem_free(MEM_CONN, q->iov, q->iov_cap * sizeof(*q->iov));
    mem_free(MEM_CONN, q->refs, q->refs_cap * sizeof(*q->refs));
    outq_release_fn release = q->release;
    void *ctx = q->release_ctx;
    size_t chunk = q->chunk;
    memset(q, 0, sizeof(*q));
    q->release = release; /* a deinitialised queue can be used again */
    q->release_ctx = ctx;
    q->chunk = chunk;
}

/* Keeps the arrays, and the first chunk unless a large reply made it
 * bigger than the queue's chunk size. */
void outq_clear(struct outq *q)
{
    release_refs_from(q, 0);
    q->niov = q->iov_sent = 0;
    q->pending = 0;
    if (q->head != NULL) {
        free_chunks_after(q->head);
        if (q->head->size > q->chunk) {
            mem_free(MEM_CONN, q->head, sizeof(*q->head) + q->head->size);
            q->head = NULL;
        } else {
            q->head->used = 0;
        }
        q->tail = q->head;
    }
}

char *outq_reserve(struct outq *q, size_t n)
{
    struct outq_chunk *t = q->tail;
    if (t != NULL && t->size - t->used >= n)
        return t->data + t->used;
    size_t size = n > q->chunk ? n : q->chunk;
    struct outq_chunk *c = mem_alloc(MEM_CONN, sizeof(*c) + size);
    if (c == NULL)
        return NULL;
    c->next = NULL;
    c->size = size;
    c->used = 0;
    if (t == NULL)
        q->head = c;
    else
        t->next = c;
    q->tail = c;
    return c->data;
}

/* Grows q's iovec and reference arrays to hold at least niov and nrefs. */
static enum st_status reserve_arrays(struct outq *q, unsigned niov, unsigned nrefs)
{
    if (niov > q->iov_cap) {
        unsigned cap = q->iov_cap ? q->iov_cap : q->chunk < OUTQ_CHUNK_SIZE ? 4 : 64;
        while (cap < niov)
            cap *= 2;
        struct iovec *iov =
            mem_realloc(MEM_CONN, q->iov, q->iov_cap * sizeof(*iov), cap * sizeof(*iov));
        if (iov == NULL)
            return ST_NOMEM;
        q->iov = iov;
        q->iov_cap = cap;
    }
    if (nrefs > q->refs_cap) {
        unsigned cap = q->refs_cap ? q->refs_cap : q->chunk < OUTQ_CHUNK_SIZE ? 2 : 16;
        while (cap < nrefs)
            cap *= 2;
        void **refs =
            mem_realloc(MEM_CONN, q->refs, q->refs_cap * sizeof(*refs), cap * sizeof(*refs));
        if (refs == NULL)
            return ST_NOMEM;
        q->refs = refs;
        q->refs_cap = cap;
    }
    return ST_OK;
}

static enum st_status push_iov(struct outq *q, const void *p, size_t n)
{
    if (q->niov > q->iov_sent) {
        struct iovec *last = &q->iov[q->niov - 1];
        if ((const char *)last->iov_base + last->iov_len == (const char *)p) {
            last->iov_len += n;
            q->pending += n;
            return ST_OK;
        }
    }
    if (reserve_arrays(q, q->niov + 1, 0) != ST_OK)
        return ST_NOMEM;
    q->iov[q->niov].iov_base = (void *)(uintptr_t)p;
    q->iov[q->niov].iov_len = n;
    q->niov++;
    q->pending += n;
    return ST_OK;
}

enum st_status outq_commit(struct outq *q, size_t n)
{
    struct outq_chunk *t = q->tail;
    ASSERT(t != NULL && t->size - t->used >= n);
    if (n == 0)
        return ST_OK;
    enum st_status s = push_iov(q, t->data + t->used, n);
    if (s == ST_OK)
        t->used += n;
    return s;
}

enum st_status outq_add(struct outq *q, const void *p, size_t n)
{
    char *dst = outq_reserve(q, n);
    if (dst == NULL)
        return ST_NOMEM;
    memcpy(dst, p, n);
    return outq_commit(q, n);
}

enum st_status outq_add_ref(struct outq *q, void *ref, const void *p, size_t n)
{
    if (reserve_arrays(q, 0, q->nrefs + 1) != ST_OK) {
        q->release(q->release_ctx, ref);
        return ST_NOMEM;
    }
    q->refs[q->nrefs++] = ref;
    return push_iov(q, p, n);
}

enum st_status outq_add_value(struct outq *q, void *ref, const void *v, size_t n,
                              const char *suffix, size_t nsuffix)
{
    if (n + nsuffix > OUTQ_COPY_MAX) {
        enum st_status s = outq_add_ref(q, ref, v, n);
        return s != ST_OK || nsuffix == 0 ? s : outq_add(q, suffix, nsuffix);
    }
    char *p = outq_reserve(q, n + nsuffix);
    if (p != NULL) {
        memcpy(p, v, n);
        memcpy(p + n, suffix, nsuffix);
    }
    q->release(q->release_ctx, ref);
    return p == NULL ? ST_NOMEM : outq_commit(q, n + nsuffix);
}

enum st_status outq_splice(struct outq *dst, struct outq *src)
{
    ASSERT(src->iov_sent == 0 && src->release == dst->release &&
           src->release_ctx == dst->release_ctx);
    if (src->nrefs == 0 && src->pending <= OUTQ_SPLICE_COPY_MAX) {
        /* every byte is in src's arena: copy it, in one piece */
        if (src->pending == 0) {
            outq_clear(src);
            return ST_OK;
        }
        char *p = outq_reserve(dst, src->pending);
        if (p == NULL)
            return ST_NOMEM;
        size_t n = 0;
        for (unsigned i = 0; i < src->niov; i++) {
            memcpy(p + n, src->iov[i].iov_base, src->iov[i].iov_len);
            n += src->iov[i].iov_len;
        }
        if (outq_commit(dst, n) != ST_OK)
            return ST_NOMEM;
        outq_clear(src);
        return ST_OK;
    }
    enum st_status s = reserve_arrays(dst, dst->niov + src->niov, dst->nrefs + src->nrefs);
    if (s != ST_OK)
        return s;
    /* The iovecs point into src's chunks and referenced values, which
     * move along: nothing is copied but the arrays. */
    if (src->niov > 0)
        memcpy(dst->iov + dst->niov, src->iov, src->niov * sizeof(*src->iov));
    dst->niov += src->niov;
    if (src->nrefs > 0)
        memcpy(dst->refs + dst->nrefs, src->refs, src->nrefs * sizeof(*src->refs));
    dst->nrefs += src->nrefs;
    if (src->head != NULL) {
        if (dst->tail != NULL)
            dst->tail->next = src->head;
        else
            dst->head = src->head;
        dst->tail = src->tail;
    }
    dst->pending += src->pending;
    src->niov = src->nrefs = 0;
    src->head = src->tail = NULL;
    src->pending = 0;
    outq_deinit(src);
    return ST_OK;
}

void outq_mark(const struct outq *q, struct outq_mark *m)
{
    m->niov = q->niov;
    m->last_len = q->niov > 0 ? q->iov[q->niov - 1].iov_len : 0;
    m->nrefs = q->nrefs;
    m->tail = q->tail;
    m->tail_used = q->tail != NULL ? q->tail->used : 0;
    m->pending = q->pending;
}

void outq_rollback(struct outq *q, const struct outq_mark *m)
{
    /* Nothing after the mark can have been written: writes happen only
     * between commands, and a mark lives within one command. */
    ASSERT(q->iov_sent <= m->niov);
    release_refs_from(q, m->nrefs);
    q->niov = m->niov;
    if (m->niov > 0)
        q->iov[m->niov - 1].iov_len = m->last_len;
    if (m->tail != NULL) {
        free_chunks_after(m->tail);
        m->tail->used = m->tail_used;
        q->tail = m->tail;
    } else if (q->head != NULL) {
        free_chunks_after(q->head);
        q->head->used = 0;
        q->tail = q->head;
    }
    q->pending = m->pending;
}

enum st_status outq_write(struct outq *q, int fd, size_t *written)
{
    *written = 0;
    while (q->iov_sent < q->niov) {
        unsigned n = q->niov - q->iov_sent;
        if (n > OUTQ_IOV_BATCH)
            n = OUTQ_IOV_BATCH;
        ssize_t w = writev(fd, q->iov + q->iov_sent, (int)n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return ST_AGAIN;
            return errno == EPIPE || errno == ECONNRESET ? ST_CLOSED : ST_IO;
        }
        size_t left = (size_t)w;
        *written += left;
        q->pending -= left;
        while (left > 0) {
            struct iovec *v = &q->iov[q->iov_sent];
            if (left >= v->iov_len) {
                left -= v->iov_len;
                q->iov_sent++;
            } else {
                v->iov_base = (char *)v->iov_base + left;
                v->iov_len -= left;
                left = 0;
            }
        }
    }
    outq_clear(q);
    return ST_OK;
}
