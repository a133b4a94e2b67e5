/* clock.c - coarse relative clock (see clock.h). Any thread. */
#include "common/clock.h"

#include <stdatomic.h>
#include <time.h>

static time_t clock_started;
static _Atomic rel_time_t clock_current;

void clock_setup(void)
{
    clock_started = time(NULL) - CLOCK_START_REL;
    clock_tick();
}

void clock_teardown(void)
{
}

void clock_tick(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    time_t rel = ts.tv_sec - clock_started;
    /* The wall clock may step backwards; relative time never does. */
    rel_time_t cur = atomic_load_explicit(&clock_current, memory_order_relaxed);
    if (rel > (time_t)cur)
        atomic_store_explicit(&clock_current, (rel_time_t)rel, memory_order_relaxed);
}

rel_time_t clock_now(void)
{
    return atomic_load_explicit(&clock_current, memory_order_relaxed);
}

rel_time_t clock_uptime(void)
{
    return clock_now() - CLOCK_UPTIME_OFFSET;
}

time_t clock_process_started(void)
{
    return clock_started;
}

time_t clock_unix_now(void)
{
    return clock_started + (time_t)clock_now();
}

rel_time_t clock_exptime(int64_t exptime)
{
    if (exptime == 0)
        return 0;
    if (exptime < 0)
        return CLOCK_LONG_AGO;
    if (exptime > CLOCK_MAX_RELATIVE_EXPTIME) {
        if (exptime <= (int64_t)clock_started)
            return CLOCK_LONG_AGO;
        int64_t rel = exptime - (int64_t)clock_started;
        return rel > UINT32_MAX ? UINT32_MAX : (rel_time_t)rel;
    }
    return (rel_time_t)(exptime + clock_now());
}

uint64_t clock_monotonic_ms(void)
{
    return clock_monotonic_us() / 1000u;
}

struct timespec clock_deadline_after_ms(unsigned ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

uint64_t clock_monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
