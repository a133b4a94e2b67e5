/*
 * lathist.h - a latency histogram of power-of-two buckets in µs: any
 * thread records into it without a lock (relaxed atomics), `stats` reads
 * it as percentiles. Bucket i holds latencies of [2^(i-1), 2^i) µs; the
 * last one everything longer.
 */
#pragma once

#include <stdatomic.h>
#include <stdint.h>

#define LATHIST_BUCKETS 32

struct lathist {
    _Atomic uint64_t bucket[LATHIST_BUCKETS];
};

/* Counts one latency of us microseconds. */
void lathist_record(struct lathist *h, uint64_t us);

/* Adds h's counts to sum (for a percentile over several histograms). */
void lathist_add_to(const struct lathist *h, uint64_t sum[LATHIST_BUCKETS]);

/* Percentile p (0..1) of the counts, in µs: the upper bound of the bucket
 * it falls in; 0 when there are none. */
uint64_t lathist_percentile(const uint64_t counts[LATHIST_BUCKETS], double p);
