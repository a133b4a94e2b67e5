/*
 * tally.h - what strata-bench counts: requests by kind, key hits and
 * misses, failures by kind, and the latency histogram. A worker adds to
 * its own tally under its shard lock; the main thread merges and resets it
 * every second (progress) and at the end (summary).
 */
#pragma once

#include <stdint.h>

#include "tools/strata-bench/hist.h"

struct tally {
    uint64_t requests;   /* completed requests (a multi-get is one) */
    uint64_t gets, sets; /* completed requests by kind */
    uint64_t get_keys;   /* keys asked for by completed gets */
    uint64_t hits, misses;
    uint64_t errors;        /* error replies: ERROR, SERVER_ERROR, NOT_STORED, ... */
    uint64_t unexpected;    /* replies that broke the protocol (connection closed) */
    uint64_t unanswered;    /* requests sent but never answered: timeout, lost stream */
    uint64_t conn_failures; /* connections that failed or were closed under us */
    uint64_t bytes_out, bytes_in;
    struct hist latency; /* per request, nanoseconds */
};

void tally_init(struct tally *t);
/* Adds src to dst. */
void tally_merge(struct tally *dst, const struct tally *src);
/* Failed requests: errors + unexpected + unanswered. */
uint64_t tally_failures(const struct tally *t);
