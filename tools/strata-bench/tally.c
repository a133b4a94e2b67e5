/* tally.c - strata-bench's counters (see tally.h). Caller locks. */
#include "tools/strata-bench/tally.h"

#include <string.h>

void tally_init(struct tally *t)
{
    memset(t, 0, sizeof(*t));
    hist_init(&t->latency);
}

void tally_merge(struct tally *dst, const struct tally *src)
{
    dst->requests += src->requests;
    dst->gets += src->gets;
    dst->sets += src->sets;
    dst->get_keys += src->get_keys;
    dst->hits += src->hits;
    dst->misses += src->misses;
    dst->errors += src->errors;
    dst->unexpected += src->unexpected;
    dst->unanswered += src->unanswered;
    dst->conn_failures += src->conn_failures;
    dst->bytes_out += src->bytes_out;
    dst->bytes_in += src->bytes_in;
    hist_merge(&dst->latency, &src->latency);
}

uint64_t tally_failures(const struct tally *t)
{
    return t->errors + t->unexpected + t->unanswered;
}
