/*
 * coding.h - byte-level encoding helpers shared by every storage format:
 * fixed little/big-endian integers, LEB128 varints with bounds checks, a
 * growable byte buffer, and the checksum (XXH3-64). Pure functions, any
 * thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <xxhash.h>

#include "common/status.h"

static inline void enc_u16le(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void enc_u32le(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void enc_u64le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void enc_u64be(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static inline void enc_u16be(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline uint16_t dec_u16le(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t dec_u32le(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static inline uint64_t dec_u64le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static inline uint64_t dec_u64be(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static inline uint16_t dec_u16be(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

/* Writes v as a LEB128 varint at p (room for 10 bytes); returns its size. */
static inline size_t enc_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static inline size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/*
 * Decodes a varint from [*p, end); advances *p. Returns false (and leaves *p
 * unspecified) when the bytes end first or the value exceeds 64 bits.
 */
static inline bool dec_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift <= 63; shift += 7) {
        if (*p >= end)
            return false;
        uint8_t b = *(*p)++;
        if (shift == 63 && b > 1)
            return false;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (b < 0x80) {
            *out = v;
            return true;
        }
    }
    return false;
}

/* The checksum of every storage format. */
static inline uint64_t checksum(const void *p, size_t n)
{
    return XXH3_64bits(p, n);
}

/* A growable byte buffer (MEM_STORAGE). Zero-initialise, then use. */
struct buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

/* Makes room for `extra` more bytes; ST_NOMEM. */
enum st_status buf_reserve(struct buf *b, size_t extra);
enum st_status buf_append(struct buf *b, const void *p, size_t n);
enum st_status buf_append_varint(struct buf *b, uint64_t v);
/* Frees the storage; leaves an empty buffer. */
void buf_deinit(struct buf *b);
