/*
 * ikey.h - internal keys and record values, as stored in the memtable, in
 * SSTable blocks and (inside batches) in the WAL. Pure functions.
 *
 * Internal key (byte table; all integers big-endian so a token prefix
 * compresses and compares bytewise):
 *
 *   offset  size   field
 *   0       8      token   XXH3_64bits(user key), big-endian
 *   8       n      user key (1..250 bytes)
 *   8+n     8      version.hlc, big-endian
 *   16+n    2      version.node, big-endian
 *                  total n + 18 bytes
 *
 * Order: token ascending, then user key (memcmp, shorter first on a common
 * prefix), then version DESCENDING, so the newest version of a key comes
 * first. Record value:
 *
 *   offset  size   field
 *   0       1      kind: 0 = put, 1 = tombstone (on disk: never renumber)
 *   1       4      client flags, little-endian
 *   5       8      expiry (put) / deletion time (tombstone), unix s, LE
 *   13      m      value bytes (empty for a tombstone)
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "storage/coding.h"
#include "storage/include/lsm.h"

#define IKEY_OVERHEAD 18u
#define IKEY_MAX_LEN (LSM_MAX_KEY_LEN + IKEY_OVERHEAD)
#define RVAL_HEADER 13u

enum rval_kind { RVAL_PUT = 0, RVAL_TOMBSTONE = 1 };

/* A decoded view of an internal key (pointers into the encoded bytes). */
struct ikey {
    uint64_t token;
    const uint8_t *key;
    size_t key_len;
    struct lsm_version version;
};

/* Writes the internal key (key_len + 18 bytes) into `out`. */
void ikey_encode(uint8_t *out, uint64_t token, const void *key, size_t key_len,
                 struct lsm_version v);
/* Decodes; false when `len` < 19 (every caller then reports ST_CORRUPT). */
bool ikey_decode(const uint8_t *p, size_t len, struct ikey *out);
/* Compares only (token, user key) of two internal keys. Inline: every
 * seek, merge step and memtable search runs it, and tokens almost always
 * differ, so the common case is one 8-byte load per key. */
static inline int ikey_user_compare(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    uint64_t ta = dec_u64be(a), tb = dec_u64be(b);
    if (ta != tb)
        return ta < tb ? -1 : 1;
    size_t ak = alen - IKEY_OVERHEAD, bk = blen - IKEY_OVERHEAD;
    int c = memcmp(a + 8, b + 8, ak < bk ? ak : bk);
    if (c != 0)
        return c;
    return ak < bk ? -1 : ak > bk ? 1 : 0;
}

/* Total order described above; both must be well formed (>= 19 bytes). */
static inline int ikey_compare(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = ikey_user_compare(a, alen, b, blen);
    if (c != 0)
        return c;
    /* Newest first: a larger version sorts before a smaller one. */
    uint64_t ha = dec_u64be(a + alen - 10), hb = dec_u64be(b + blen - 10);
    if (ha != hb)
        return ha > hb ? -1 : 1;
    uint16_t na = dec_u16be(a + alen - 2), nb = dec_u16be(b + blen - 2);
    return na > nb ? -1 : na < nb ? 1 : 0;
}
/* Whether both internal keys name the same user key (token and key). */
bool ikey_same_user_key(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);
/* Compares versions: <0, 0, >0 as a is older, equal, newer than b. */
int version_compare(struct lsm_version a, struct lsm_version b);

/* Writes the 13-byte record value header. */
void rval_encode_header(uint8_t *out, enum rval_kind kind, uint32_t flags, uint64_t expiry);
/* Decodes a record value; false when shorter than the header or of an
 * unknown kind. value/value_len point into p. */
bool rval_decode(const uint8_t *p, size_t len, enum rval_kind *kind, uint32_t *flags,
                 uint64_t *expiry, const uint8_t **value, size_t *value_len);
