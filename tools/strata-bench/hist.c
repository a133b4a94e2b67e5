/*
 * hist.c - log-bucketed latency histogram (see hist.h). Pure functions over
 * caller-owned memory; one thread per histogram.
 */
#include "tools/strata-bench/hist.h"

#include <string.h>

void hist_init(struct hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

unsigned hist_bucket_of(uint64_t v)
{
    if (v < HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - HIST_SUB_BITS + 1; /* keeps HIST_SUB_BITS bits below the msb */
    /* v >> (shift - 1) is in [HIST_SUB, 2 * HIST_SUB). */
    unsigned sub = (unsigned)(v >> (shift - 1)) - HIST_SUB;
    return shift * HIST_SUB + sub;
}

uint64_t hist_bucket_low(unsigned i)
{
    if (i < HIST_SUB)
        return i;
    unsigned shift = i / HIST_SUB;
    uint64_t sub = i % HIST_SUB;
    return (HIST_SUB + sub) << (shift - 1);
}

uint64_t hist_bucket_high(unsigned i)
{
    if (i < HIST_SUB)
        return i;
    unsigned shift = i / HIST_SUB;
    if (i + 1 == HIST_BUCKETS)
        return UINT64_MAX;
    return hist_bucket_low(i) + ((uint64_t)1 << (shift - 1)) - 1;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
    if (src->count == 0)
        return;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->max > dst->max)
        dst->max = src->max;
    if (src->min < dst->min)
        dst->min = src->min;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q >= 1.0)
        return h->max;
    if (q < 0.0)
        q = 0.0;
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if ((double)rank < q * (double)h->count)
        rank++; /* ceil */
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = hist_bucket_high(i);
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}

double hist_mean(const struct hist *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}
