/*
 * ikey.c - internal key and record value codecs (layout in ikey.h). Pure
 * functions used by every layer of the engine, any thread.
 */
#include <string.h>

#include "storage/coding.h"
#include "storage/ikey.h"

uint64_t lsm_token(const void *key, size_t key_len)
{
    return XXH3_64bits(key, key_len);
}

void ikey_encode(uint8_t *out, uint64_t token, const void *key, size_t key_len,
                 struct lsm_version v)
{
    enc_u64be(out, token);
    memcpy(out + 8, key, key_len);
    enc_u64be(out + 8 + key_len, v.hlc);
    enc_u16be(out + 16 + key_len, v.node);
}

bool ikey_decode(const uint8_t *p, size_t len, struct ikey *out)
{
    if (len < IKEY_OVERHEAD + 1)
        return false;
    out->token = dec_u64be(p);
    out->key = p + 8;
    out->key_len = len - IKEY_OVERHEAD;
    out->version.hlc = dec_u64be(p + len - 10);
    out->version.node = dec_u16be(p + len - 2);
    return true;
}

int version_compare(struct lsm_version a, struct lsm_version b)
{
    if (a.hlc != b.hlc)
        return a.hlc < b.hlc ? -1 : 1;
    if (a.node != b.node)
        return a.node < b.node ? -1 : 1;
    return 0;
}

bool ikey_same_user_key(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && ikey_user_compare(a, alen, b, blen) == 0;
}

void rval_encode_header(uint8_t *out, enum rval_kind kind, uint32_t flags, uint64_t expiry)
{
    out[0] = (uint8_t)kind;
    enc_u32le(out + 1, flags);
    enc_u64le(out + 5, expiry);
}

bool rval_decode(const uint8_t *p, size_t len, enum rval_kind *kind, uint32_t *flags,
                 uint64_t *expiry, const uint8_t **value, size_t *value_len)
{
    if (len < RVAL_HEADER || p[0] > RVAL_TOMBSTONE)
        return false;
    *kind = (enum rval_kind)p[0];
    *flags = dec_u32le(p + 1);
    *expiry = dec_u64le(p + 5);
    *value = p + RVAL_HEADER;
    *value_len = len - RVAL_HEADER;
    return true;
}
