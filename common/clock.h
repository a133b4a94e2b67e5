/*
 * clock.h - the coarse process clock, memcached style.
 *
 * Time on the request path is "relative seconds since the process started",
 * read from an atomic that a timer refreshes (clock_tick), so no request
 * makes a syscall for the time. Relative time starts at CLOCK_START_REL, not
 * 0, so that rel time 0 can mean "never expires" and `uptime` is never 0.
 */
#pragma once

#include <stdint.h>
#include <time.h>

typedef uint32_t rel_time_t;

/*
 * Seconds already on the clock when the process starts. memcached 1.6.18
 * starts its clock at 62 (2, plus its 60-second ITEM_UPDATE_INTERVAL), and
 * clients see it: the TTL of an item created already expired (exptime 1)
 * is reported as 1 - now, modulo 2^32. `uptime` starts at 2 on both
 * (CLOCK_UPTIME_OFFSET is taken off).
 */
#define CLOCK_START_REL 62
#define CLOCK_UPTIME_OFFSET 60
/* clock_exptime() of a negative exptime and of a unix time at or before
 * the start: a relative time before anything was stored. */
#define CLOCK_LONG_AGO 1
/* Exptimes up to this many seconds are relative, larger ones unix times. */
#define CLOCK_MAX_RELATIVE_EXPTIME (60 * 60 * 24 * 30)

/* Records the start time and sets the clock. Call once, first, from main. */
void clock_setup(void);
void clock_teardown(void);

/* Refreshes the coarse clock from the wall clock. Any thread; cheap. */
void clock_tick(void);

/* Current relative time in seconds (>= CLOCK_START_REL). Any thread. */
rel_time_t clock_now(void);

/* Seconds since the process started, plus 2 (memcached's `uptime`). */
rel_time_t clock_uptime(void);

/* Unix time at which relative time was 0. */
time_t clock_process_started(void);

/* Current unix time as the coarse clock sees it. */
time_t clock_unix_now(void);

/* CLOCK_MONOTONIC in milliseconds, read now (timeouts, failure detection). */
uint64_t clock_monotonic_ms(void);
/* The same in microseconds (latency figures). */
uint64_t clock_monotonic_us(void);
/* CLOCK_REALTIME plus ms, for pthread_cond_timedwait's deadline. */
struct timespec clock_deadline_after_ms(unsigned ms);

/*
 * Converts a client exptime to relative time, exactly as memcached 1.6:
 * 0 -> 0 (never); negative -> CLOCK_LONG_AGO (already expired); up to 30
 * days -> now + exptime; larger -> absolute unix time, CLOCK_LONG_AGO if
 * not after the start.
 */
rel_time_t clock_exptime(int64_t exptime);
