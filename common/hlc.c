/*
 * hlc.c - hybrid logical clock (see hlc.h and docs/CLOCKS.md). Called from
 * every worker thread that versions a write and from the cluster threads
 * that receive timestamps.
 *
 * Why the CAS loops are correct: `last` only ever changes by a successful
 * compare-and-swap from the value a thread read to a strictly greater one
 * (hlc_now writes at least last + 1; hlc_observe and hlc_floor write only
 * when their value is greater). All modifications of one atomic object
 * form a single total order (C11 5.1.2.4), so the values `last` takes are
 * strictly increasing in that order, and each is written by exactly one
 * CAS. hlc_now returns the value its own CAS wrote, hence no two calls,
 * in any threads, return the same value, and a call that starts after
 * another returned (or after an observe/floor completed) reads that value
 * or a later one (coherence) and so returns something greater. Only the
 * one variable carries the guarantee, so relaxed ordering is enough: the
 * timestamp is data, it publishes nothing else.
 */
#include "common/hlc.h"

#include <time.h>

uint64_t hlc_realtime_ms(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec < 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void hlc_options_default(struct hlc_options *opt)
{
    opt->physical = hlc_realtime_ms;
    opt->physical_arg = NULL;
    opt->offset_ms = 0;
    opt->max_skew_ms = HLC_DEFAULT_MAX_SKEW_MS;
}

void hlc_init(struct hlc *clock, const struct hlc_options *opt)
{
    struct hlc_options def;
    if (opt == NULL) {
        hlc_options_default(&def);
        opt = &def;
    }
    atomic_init(&clock->last, 0);
    atomic_init(&clock->offset_ms, opt->offset_ms);
    clock->physical = opt->physical ? opt->physical : hlc_realtime_ms;
    clock->physical_arg = opt->physical_arg;
    clock->max_skew_ms = opt->max_skew_ms;
}

uint64_t hlc_wall_ms(struct hlc *clock)
{
    uint64_t ms = clock->physical(clock->physical_arg);
    int64_t off = atomic_load_explicit(&clock->offset_ms, memory_order_relaxed);
    if (off < 0) {
        uint64_t back = (uint64_t)0 - (uint64_t)off; /* |off|, also for INT64_MIN */
        ms = ms > back ? ms - back : 0;
    } else {
        ms = ms + (uint64_t)off < ms ? UINT64_MAX : ms + (uint64_t)off;
    }
    return ms > HLC_PHYSICAL_MAX ? HLC_PHYSICAL_MAX : ms;
}

void hlc_set_offset_ms(struct hlc *clock, int64_t offset_ms)
{
    atomic_store_explicit(&clock->offset_ms, offset_ms, memory_order_relaxed);
}

uint64_t hlc_now(struct hlc *clock)
{
    /* Read once: a retry after a lost CAS needs only a greater `last`, and
     * the physical reading stays a valid lower bound. */
    uint64_t pt = hlc_pack(hlc_wall_ms(clock), 0);
    uint64_t last = atomic_load_explicit(&clock->last, memory_order_relaxed);
    uint64_t next;
    do {
        /* last + 1 carries a full logical part into the physical part. The
         * physical part cannot reach 2^48 before the year 10889, so the
         * increment never wraps. */
        next = last + 1 > pt ? last + 1 : pt;
    } while (!atomic_compare_exchange_weak_explicit(&clock->last, &last, next, memory_order_relaxed,
                                                    memory_order_relaxed));
    return next;
}

/* Raises `last` to `value` if it is greater. */
static void hlc_raise(struct hlc *clock, uint64_t value)
{
    uint64_t last = atomic_load_explicit(&clock->last, memory_order_relaxed);
    while (value > last) {
        if (atomic_compare_exchange_weak_explicit(&clock->last, &last, value, memory_order_relaxed,
                                                  memory_order_relaxed))
            break;
    }
}

enum st_status hlc_observe(struct hlc *clock, uint64_t remote)
{
    uint64_t wall = hlc_wall_ms(clock);
    uint64_t rpt = hlc_physical(remote);
    if (rpt > wall && rpt - wall > clock->max_skew_ms)
        return ST_INVAL;
    hlc_raise(clock, remote);
    return ST_OK;
}

void hlc_floor(struct hlc *clock, uint64_t floor)
{
    hlc_raise(clock, floor);
}

uint64_t hlc_last(struct hlc *clock)
{
    return atomic_load_explicit(&clock->last, memory_order_relaxed);
}

uint64_t hlc_upper_bound(struct hlc *clock, uint64_t lease_ms)
{
    uint64_t wall = hlc_wall_ms(clock);
    uint64_t lpt = hlc_physical(hlc_last(clock));
    uint64_t base = lpt > wall ? lpt : wall;
    uint64_t ms = base + lease_ms < base ? HLC_PHYSICAL_MAX : base + lease_ms;
    uint64_t bound = hlc_pack(ms, 0);
    uint64_t last = hlc_last(clock);
    return bound > last ? bound : last; /* lease_ms = 0 still bounds last */
}
