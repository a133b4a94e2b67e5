/*
 * stats.h - strata-proxy's counters and the `stats` replies.
 *
 * Command counters live in per-worker shards (frontend/counters.h) written
 * only by their owner thread and are summed when read. `stats reset`
 * records a baseline instead of writing into other threads' counters. Item
 * and memory counters come from the cache.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frontend/counters.h"

struct proxy;

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

/* Sums the worker shards minus the reset baseline. */
void stats_totals_read(struct proxy *p, struct stats_totals *t);
