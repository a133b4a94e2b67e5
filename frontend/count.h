/*
 * count.h - memcached's counters of a command's outcome (cmd_set,
 * cas_hits, delete_misses, ...), for executors that learn the outcome
 * after the fact: one place for memcached's counting rules. Worker thread
 * of the counters' shard.
 */
#pragma once

#include <stdbool.h>

#include "frontend/counters.h"
#include "frontend/exec.h"

/* A lookup (get/gets: cmd_get; gat/gats: cmd_touch) that hit or missed. */
static inline void fe_count_lookup(struct worker_stats *s, bool touch, bool hit)
{
    if (touch) {
        STAT_INCR(s, cmd_touch);
        if (hit)
            STAT_INCR(s, touch_hits);
        else
            STAT_INCR(s, touch_misses);
    } else {
        STAT_INCR(s, cmd_get);
        if (hit)
            STAT_INCR(s, get_hits);
        else
            STAT_INCR(s, get_misses);
    }
}

/* An mg that hit or missed: a hit of a request that then fails (its
 * opaque is too long) counts nowhere, a miss always does, as a get; a hit
 * with T counts as a touch. */
static inline void fe_count_meta_lookup(struct worker_stats *s, const struct fe_meta_ttl *t,
                                        bool hit)
{
    if (!(hit && t->fail_pos >= 0))
        fe_count_lookup(s, hit && t->touch_pos >= 0, hit);
}

/* A storage command's outcome. */
static inline void fe_count_store(struct worker_stats *s, enum fe_store_mode mode, enum fe_result r)
{
    STAT_INCR(s, cmd_set);
    if (mode == FE_CAS && r == FE_STORED)
        STAT_INCR(s, cas_hits);
    else if (mode == FE_CAS && r == FE_EXISTS)
        STAT_INCR(s, cas_badval);
    else if (mode == FE_CAS && r == FE_NOT_FOUND)
        STAT_INCR(s, cas_misses);
    if (r == FE_NO_MEMORY)
        STAT_INCR(s, store_no_memory);
    else if (r == FE_TOO_LARGE)
        STAT_INCR(s, store_too_large);
}

/* delete / md: r is FE_OK (deleted), FE_NOT_FOUND or FE_EXISTS. */
static inline void fe_count_delete(struct worker_stats *s, enum fe_result r)
{
    if (r == FE_OK)
        STAT_INCR(s, delete_hits);
    else if (r == FE_NOT_FOUND || r == FE_EXISTS)
        STAT_INCR(s, delete_misses);
}

static inline void fe_count_touch(struct worker_stats *s, enum fe_result r)
{
    STAT_INCR(s, cmd_touch);
    if (r == FE_OK)
        STAT_INCR(s, touch_hits);
    else
        STAT_INCR(s, touch_misses);
}

/* incr/decr (and ma): a created counter is neither hit nor miss. */
static inline void fe_count_delta(struct worker_stats *s, bool incr, enum fe_result r, bool created)
{
    if (r == FE_NOT_FOUND) {
        if (incr)
            STAT_INCR(s, incr_misses);
        else
            STAT_INCR(s, decr_misses);
    } else if (r == FE_OK && !created) {
        if (incr)
            STAT_INCR(s, incr_hits);
        else
            STAT_INCR(s, decr_hits);
    }
}
