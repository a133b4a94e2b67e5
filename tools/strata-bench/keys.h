/*
 * keys.h - strata-bench's key space: key i is "<prefix><i>" for i in
 * [0, count), chosen uniformly, sequentially or Zipf-distributed (rank r is
 * key r - 1, so key 0 is the hottest). Set up once by main, read by every
 * worker; the random state and sequential cursor belong to the caller.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "tools/strata-bench/rng.h"

#define KEYS_PREFIX_MAX 200
/* Longest key: prefix and up to 20 digits. */
#define KEYS_LEN_MAX (KEYS_PREFIX_MAX + 20)

enum keys_dist {
    KEYS_UNIFORM,
    KEYS_ZIPF,
    KEYS_SEQUENTIAL,
};

struct keys {
    char prefix[KEYS_PREFIX_MAX + 1];
    size_t nprefix;
    uint64_t count;
    enum keys_dist dist;
    double skew;
    /* Zipf by rejection-inversion (Hoermann and Derflinger, 1996): the
     * integral of x^-skew at 1.5 minus 1 and at count + 0.5, and the
     * squeeze constant. */
    double h_x1, h_n, squeeze;
};

/*
 * Sets up k. prefix must be printable without spaces (a text-protocol key),
 * at most KEYS_PREFIX_MAX bytes; count >= 1; skew in [0, 10] (0 is uniform).
 * Returns ST_OK or ST_INVAL.
 */
enum st_status keys_init(struct keys *k, const char *prefix, uint64_t count, enum keys_dist dist,
                         double skew);

/* Writes key `id` into buf (KEYS_LEN_MAX bytes); returns its length. */
size_t keys_format(const struct keys *k, uint64_t id, char *buf);

/* Length of the longest key of the space. */
size_t keys_max_len(const struct keys *k);

/* Parses a key of the space back into its id; false if key is not one. */
int keys_parse(const struct keys *k, const char *key, size_t nkey, uint64_t *id);

/* Next key id by the space's distribution. *cursor is the caller's
 * sequential position (used by KEYS_SEQUENTIAL only). */
uint64_t keys_pick(const struct keys *k, struct rng *r, uint64_t *cursor);

/* A Zipf rank in [1, count] with exponent k->skew (> 0). */
uint64_t keys_zipf_rank(const struct keys *k, struct rng *r);
