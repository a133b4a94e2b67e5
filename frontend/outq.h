/*
 * outq.h - a connection's queue of unsent reply bytes.
 *
 * Replies are gathered for a whole read batch and written with writev:
 * short lines go into an arena of chunks (contiguous lines share one
 * iovec), values go out straight from where the executor keeps them (an
 * L1 cache item, a buffer read from the engine): the queue holds a
 * reference to each until its bytes are written, and gives it back through
 * the release callback the queue was made with. Owned by one connection,
 * used only by its worker thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#include "common/status.h"

struct outq_chunk;

/* Gives back a reference the queue held (a value written or dropped). */
typedef void (*outq_release_fn)(void *ctx, void *ref);

/* Values up to this size are copied into the reply arena: cheaper than an
 * extra iovec plus holding (and later releasing) the reference. Larger
 * ones are sent from where they are, with outq_add_ref(). */
#define OUTQ_COPY_MAX 1024

struct outq {
    outq_release_fn release; /* gives held references back */
    void *release_ctx;       /* its first argument; borrowed */
    struct iovec *iov;
    unsigned niov, iov_cap, iov_sent; /* iov[iov_sent..niov) is unsent */
    void **refs;                      /* held until written */
    unsigned nrefs, refs_cap;
    struct outq_chunk *head, *tail; /* arena */
    size_t pending;                 /* unsent bytes */
    size_t chunk;                   /* arena chunk size (outq_init_small) */
};

/* A point to roll back to (a command whose reply must be replaced). */
struct outq_mark {
    unsigned niov;
    size_t last_len;
    unsigned nrefs;
    struct outq_chunk *tail;
    size_t tail_used;
    size_t pending;
};

void outq_init(struct outq *q, outq_release_fn release, void *release_ctx);
/* The same, for a queue that holds a reply or two (a command's place in
 * a connection's replies): its arena grows in small chunks. */
void outq_init_small(struct outq *q, outq_release_fn release, void *release_ctx);
/* Drops what is queued and unsent (releasing references), keeping the
 * memory for reuse. */
void outq_clear(struct outq *q);
/* Releases held references and frees the arena. */
void outq_deinit(struct outq *q);

/*
 * Returns room for at least n bytes in the arena, valid until the next
 * outq call; outq_commit(q, m) then queues the first m of them. NULL when
 * out of memory.
 */
char *outq_reserve(struct outq *q, size_t n);
enum st_status outq_commit(struct outq *q, size_t n);

/* Copies n bytes into the queue. */
enum st_status outq_add(struct outq *q, const void *p, size_t n);

/* Queues n bytes at p, which live as long as reference `ref`, and takes
 * ownership of the caller's reference (released once written, or at once
 * on failure). */
enum st_status outq_add_ref(struct outq *q, void *ref, const void *p, size_t n);

/* Queues the n bytes of a value at p (alive while `ref` is held) followed
 * by nsuffix bytes of suffix (the "\r\n" values are stored without):
 * copied when small, sent from p when large. Takes ownership of the
 * caller's reference, as outq_add_ref. */
enum st_status outq_add_value(struct outq *q, void *ref, const void *p, size_t n,
                              const char *suffix, size_t nsuffix);

/* Moves everything queued in src (nothing of it written yet) to the end
 * of dst: a few bytes are copied, more move with their chunks; src is
 * left empty (its memory kept when copied). On ST_NOMEM both are
 * unchanged. Both must release through the same callback. */
enum st_status outq_splice(struct outq *dst, struct outq *src);

void outq_mark(const struct outq *q, struct outq_mark *m);
/* Drops everything queued after the mark (releasing references). */
void outq_rollback(struct outq *q, const struct outq_mark *m);

/*
 * Writes as much as the socket takes. Returns ST_OK when the queue is empty
 * (its memory reset for reuse), ST_AGAIN when the socket is full, ST_IO or
 * ST_CLOSED when the connection is dead. *written gets the bytes sent.
 */
enum st_status outq_write(struct outq *q, int fd, size_t *written);

static inline size_t outq_pending(const struct outq *q)
{
    return q->pending;
}
