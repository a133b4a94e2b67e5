/*
 * bloom.h - the SSTable bloom filter over key tokens. Built once by the
 * table builder (flush or compaction thread), probed by any reader thread.
 *
 * Filter block contents (before the block trailer, see sstable.h):
 *
 *   offset  size  field
 *   0       m     bit array, bit i at byte i/8, mask 1 << (i % 8)
 *   m       1     k, the number of probes (1..30)
 *
 * Probe j (0 <= j < k) of token t sets bit (a + j * b) mod (8m) with a = t
 * and b = rotate(t, 32) | 1 (double hashing; the token is already an XXH3
 * hash of the key, so no second hash is computed).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "storage/coding.h"

/* Appends a filter for `n` tokens at `bits_per_key` to `out`. ST_NOMEM. */
enum st_status bloom_build(const uint64_t *tokens, size_t n, uint32_t bits_per_key,
                           struct buf *out);
/* Whether the token may be in the set. A malformed filter (too short, k out
 * of range) answers true: a filter can only ever save reads. */
bool bloom_may_contain(const uint8_t *filter, size_t len, uint64_t token);
