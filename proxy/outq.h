/*
 * outq.h - a connection's queue of unsent reply bytes.
 *
 * Replies are gathered for a whole read batch and written with writev:
 * short lines go into an arena of chunks (contiguous lines share one
 * iovec), values go out straight from their cache items, whose references
 * the queue holds until the bytes are written. Owned by one connection,
 * used only by its worker thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#include "common/status.h"

struct cache;
struct item;
struct outq_chunk;

/* Values up to this size are copied into the reply arena: cheaper than an
 * extra iovec plus holding (and later releasing) the item reference.
 * Larger ones are sent from the item with outq_add_item(). */
#define OUTQ_COPY_MAX 1024

struct outq {
    struct cache *cache; /* where held items are released; borrowed */
    struct iovec *iov;
    unsigned niov, iov_cap, iov_sent; /* iov[iov_sent..niov) is unsent */
    struct item **items;
    unsigned nitems, items_cap;
    struct outq_chunk *head, *tail; /* arena */
    size_t pending;                 /* unsent bytes */
};

/* A point to roll back to (a command whose reply must be replaced). */
struct outq_mark {
    unsigned niov;
    size_t last_len;
    unsigned nitems;
    struct outq_chunk *tail;
    size_t tail_used;
    size_t pending;
};

void outq_init(struct outq *q, struct cache *cache);
/* Releases held items and frees the arena. */
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

/* Queues n bytes at p inside item `it` and takes ownership of the
 * caller's reference to it (released once written, or on failure). */
enum st_status outq_add_item(struct outq *q, struct item *it, const void *p, size_t n);

/* Queues the value of `it` followed by nsuffix bytes of suffix (the
 * "\r\n" items do not store): copied when small, sent from the item when
 * large. Takes ownership of the caller's reference, as outq_add_item. */
enum st_status outq_add_value(struct outq *q, struct item *it, const char *suffix, size_t nsuffix);

/* Moves everything queued in src (nothing of it written yet) to the end
 * of dst, without copying bytes; src is left empty (deinitialised). On
 * ST_NOMEM both are unchanged. Both must release items to the same cache. */
enum st_status outq_splice(struct outq *dst, struct outq *src);

void outq_mark(const struct outq *q, struct outq_mark *m);
/* Drops everything queued after the mark (releasing items). */
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
