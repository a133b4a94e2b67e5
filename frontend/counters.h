/*
 * counters.h - memcached's per-worker counters (the `stats` fields that
 * count commands and connection traffic), in a shard per worker thread:
 * written only by the owner thread (a relaxed load and store, no locked
 * instruction on the request path), summed by whoever answers `stats`.
 * The front end counts connection traffic; the executor counts commands.
 */
#pragma once

#include <stdatomic.h>
#include <stdint.h>

/* X-macro: every per-worker counter, in `stats` order. */
/* clang-format off */
#define WORKER_COUNTERS(X)                                                     \
    X(cmd_get) X(cmd_set) X(cmd_flush) X(cmd_touch) X(cmd_meta) X(get_hits)    \
    X(get_misses) X(get_expired) X(get_flushed) X(delete_misses) X(delete_hits) \
    X(incr_misses) X(incr_hits) X(decr_misses) X(decr_hits) X(cas_misses)      \
    X(cas_hits) X(cas_badval) X(touch_hits) X(touch_misses)                    \
    X(store_too_large) X(store_no_memory) X(auth_cmds) X(auth_errors)          \
    X(bytes_read) X(bytes_written) X(conn_yields) X(idle_kicks)                \
    X(read_buf_oom)
/* clang-format on */

struct worker_stats {
#define X(name) _Atomic uint64_t name;
    WORKER_COUNTERS(X)
#undef X
};

/* Plain snapshot of summed counters. */
struct stats_totals {
#define X(name) uint64_t name;
    WORKER_COUNTERS(X)
#undef X
};

/* Owner-thread increment: a plain load and store, no locked instruction. */
#define STAT_ADD(ws, field, n)                                                            \
    atomic_store_explicit(&(ws)->field,                                                   \
                          atomic_load_explicit(&(ws)->field, memory_order_relaxed) + (n), \
                          memory_order_relaxed)
#define STAT_INCR(ws, field) STAT_ADD(ws, field, 1)
