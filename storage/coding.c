/*
 * coding.c - the growable byte buffer of coding.h (encoders of every format
 * build into it). Any thread; a buffer belongs to one thread at a time.
 */
#include "storage/coding.h"
#include "common/mem.h"

enum st_status buf_reserve(struct buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return ST_OK;
    size_t want = b->cap ? b->cap : 256;
    while (want - b->len < extra) {
        if (want > SIZE_MAX / 2)
            return ST_NOMEM;
        want *= 2;
    }
    uint8_t *d = mem_realloc(MEM_STORAGE, b->data, b->cap, want);
    if (d == NULL)
        return ST_NOMEM;
    b->data = d;
    b->cap = want;
    return ST_OK;
}

enum st_status buf_append(struct buf *b, const void *p, size_t n)
{
    if (n == 0)
        return ST_OK;
    enum st_status st = buf_reserve(b, n);
    if (st != ST_OK)
        return st;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return ST_OK;
}

enum st_status buf_append_varint(struct buf *b, uint64_t v)
{
    enum st_status st = buf_reserve(b, 10);
    if (st != ST_OK)
        return st;
    b->len += enc_varint(b->data + b->len, v);
    return ST_OK;
}

void buf_deinit(struct buf *b)
{
    if (b->data != NULL)
        mem_free(MEM_STORAGE, b->data, b->cap);
    b->data = NULL;
    b->len = b->cap = 0;
}
