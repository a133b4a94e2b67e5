/*
 * bloom.c - bloom filter over key tokens (format in bloom.h). Pure
 * functions, any thread.
 */
#include "storage/bloom.h"

static inline uint64_t probe_step(uint64_t t)
{
    return ((t >> 32) | (t << 32)) | 1;
}

enum st_status bloom_build(const uint64_t *tokens, size_t n, uint32_t bits_per_key, struct buf *out)
{
    uint64_t bits = (uint64_t)n * bits_per_key;
    if (bits < 64)
        bits = 64;
    size_t bytes = (size_t)((bits + 7) / 8);
    bits = (uint64_t)bytes * 8;
    uint32_t k = (uint32_t)(bits_per_key * 69 / 100); /* ~ ln 2 */
    if (k < 1)
        k = 1;
    if (k > 30)
        k = 30;
    enum st_status st = buf_reserve(out, bytes + 1);
    if (st != ST_OK)
        return st;
    uint8_t *f = out->data + out->len;
    memset(f, 0, bytes);
    for (size_t i = 0; i < n; i++) {
        uint64_t a = tokens[i], b = probe_step(tokens[i]);
        for (uint32_t j = 0; j < k; j++) {
            uint64_t bit = (a + j * b) % bits;
            f[bit / 8] |= (uint8_t)(1u << (bit % 8));
        }
    }
    f[bytes] = (uint8_t)k;
    out->len += bytes + 1;
    return ST_OK;
}

bool bloom_may_contain(const uint8_t *filter, size_t len, uint64_t token)
{
    if (len < 2)
        return true;
    uint32_t k = filter[len - 1];
    if (k < 1 || k > 30)
        return true;
    uint64_t bits = (uint64_t)(len - 1) * 8;
    uint64_t a = token, b = probe_step(token);
    for (uint32_t j = 0; j < k; j++) {
        uint64_t bit = (a + j * b) % bits;
        if ((filter[bit / 8] & (1u << (bit % 8))) == 0)
            return false;
    }
    return true;
}
