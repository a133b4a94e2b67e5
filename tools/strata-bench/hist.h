/*
 * hist.h - strata-bench's latency histogram in nanoseconds: log-bucketed
 * (each power of two split into 32 linear sub-buckets, so a bucket is at
 * most 3.1 % wide), fixed size, no allocation; recording is a few
 * instructions, merge and percentiles walk ~2,000 buckets. One thread per
 * histogram; callers lock around sharing.
 */
#pragma once

#include <stdint.h>

#define HIST_SUB_BITS 5
#define HIST_SUB (1u << HIST_SUB_BITS)
/* Values below HIST_SUB get a bucket each; above, 32 per power of two. */
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
    uint64_t count;
    uint64_t sum; /* for the mean; wraps only after 584 years of latency */
    uint64_t min, max;
    uint64_t buckets[HIST_BUCKETS];
};

/* Empties h (caller's memory). */
void hist_init(struct hist *h);

/* Index of the bucket that counts v. */
unsigned hist_bucket_of(uint64_t v);
/* Smallest and largest value counted by bucket i. */
uint64_t hist_bucket_low(unsigned i);
uint64_t hist_bucket_high(unsigned i);

static inline void hist_record(struct hist *h, uint64_t v)
{
    h->buckets[hist_bucket_of(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
    if (v < h->min)
        h->min = v;
}

/* Adds every count of src to dst. */
void hist_merge(struct hist *dst, const struct hist *src);

/*
 * The value at quantile q (0..1): the upper bound of the bucket holding the
 * ceil(q * count)-th smallest value, clipped to the exact max; q = 1 returns
 * the exact max. Returns 0 for an empty histogram.
 */
uint64_t hist_quantile(const struct hist *h, double q);

/* Mean value, 0 when empty. */
double hist_mean(const struct hist *h);
