/*
 * lathist.c - power-of-two latency histograms (see lathist.h).
 */
#include "common/lathist.h"

void lathist_record(struct lathist *h, uint64_t us)
{
    unsigned b = 0;
    while (us > 0 && b < LATHIST_BUCKETS - 1) {
        us >>= 1;
        b++;
    }
    atomic_fetch_add_explicit(&h->bucket[b], 1, memory_order_relaxed);
}

void lathist_add_to(const struct lathist *h, uint64_t sum[LATHIST_BUCKETS])
{
    for (unsigned i = 0; i < LATHIST_BUCKETS; i++)
        sum[i] += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
}

uint64_t lathist_percentile(const uint64_t counts[LATHIST_BUCKETS], double p)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < LATHIST_BUCKETS; i++)
        n += counts[i];
    if (n == 0)
        return 0;
    uint64_t want = (uint64_t)(p * (double)n), seen = 0;
    for (unsigned i = 0; i < LATHIST_BUCKETS; i++) {
        seen += counts[i];
        if (seen > want)
            return (uint64_t)1 << i;
    }
    return (uint64_t)1 << (LATHIST_BUCKETS - 1);
}
