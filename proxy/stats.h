/*
 * stats.h - strata-proxy's counters and the `stats` replies.
 *
 * Command counters live in per-worker shards written only by their owner
 * thread (relaxed atomics, no locks on the request path) and are summed
 * when read. `stats reset` records a baseline instead of writing into other
 * threads' counters. Item and memory counters come from the cache.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct proxy;

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

/* Receives one "name value" pair of a stats reply. */
typedef void (*stats_emit_fn)(void *ctx, const char *name, const char *value);

/*
 * Answers `stats <args>` (args may be empty) through emit. Returns false if
 * the subcommand is unknown (the text protocol then answers ERROR).
 * `reset` emits nothing and returns true; the caller answers RESET.
 * *special gets a non-NULL reply line for subcommands memcached answers
 * with a single line instead of STAT rows (e.g. "stats detail").
 * Called on a worker thread.
 */
bool stats_reply(struct proxy *p, const char *args, size_t args_len, stats_emit_fn emit, void *ctx,
                 const char **special);

/* True if a stats argument line starts with the word w. */
bool stats_args_are(const char *args, size_t len, const char *w);

/* Sums the worker shards minus the reset baseline. */
void stats_totals_read(struct proxy *p, struct stats_totals *t);
