/*
 * hlc.h - hybrid logical clock: the 64-bit timestamps that version every
 * record (struct lsm_version.hlc) and that a client sees as its CAS unique.
 *
 * Layout (docs/CLOCKS.md): bits 63..16 physical milliseconds since the Unix
 * epoch, bits 15..0 a logical counter. Compared as plain uint64_t. Any
 * thread: every operation is a lock-free CAS loop on one atomic.
 */
#pragma once

#include <stdatomic.h>
#include <stdint.h>

#include "common/status.h"

#define HLC_LOGICAL_BITS 16
#define HLC_LOGICAL_MASK ((UINT64_C(1) << HLC_LOGICAL_BITS) - 1)
/* Largest physical part: 2^48 - 1 ms after the epoch, in the year 10889. */
#define HLC_PHYSICAL_MAX (UINT64_MAX >> HLC_LOGICAL_BITS)

/* A remote timestamp whose physical part is further than this ahead of our
 * physical clock is refused by hlc_observe (CockroachDB's --max-offset
 * default; NTP keeps a LAN within a few milliseconds). */
#define HLC_DEFAULT_MAX_SKEW_MS 500

/* Packs / splits a timestamp. ms is clamped to HLC_PHYSICAL_MAX. */
static inline uint64_t hlc_pack(uint64_t ms, uint16_t logical)
{
    if (ms > HLC_PHYSICAL_MAX)
        ms = HLC_PHYSICAL_MAX;
    return ms << HLC_LOGICAL_BITS | logical;
}
static inline uint64_t hlc_physical(uint64_t ts)
{
    return ts >> HLC_LOGICAL_BITS;
}
static inline uint16_t hlc_logical(uint64_t ts)
{
    return (uint16_t)(ts & HLC_LOGICAL_MASK);
}

/* A physical clock: milliseconds since the Unix epoch. Called from any
 * thread that takes a timestamp, so it must be thread-safe. */
typedef uint64_t (*hlc_physical_fn)(void *arg);

/* The default source: CLOCK_REALTIME in milliseconds. `arg` is unused. */
uint64_t hlc_realtime_ms(void *arg);

struct hlc_options {
    hlc_physical_fn physical; /* NULL = hlc_realtime_ms */
    void *physical_arg;       /* passed to `physical`, borrowed for the clock's life */
    /* Test only: added to every physical reading, so that a fault test can
     * skew one node's clock (negative = behind). Default 0. */
    int64_t offset_ms;
    uint64_t max_skew_ms; /* default HLC_DEFAULT_MAX_SKEW_MS */
};

/* Fills `opt` with the defaults above. */
void hlc_options_default(struct hlc_options *opt);

/* A clock, in the caller's memory (embed it in the node's handle). The
 * fields are private: use the functions below. */
struct hlc {
    _Atomic uint64_t last;     /* highest timestamp issued, observed or floored */
    _Atomic int64_t offset_ms; /* test-only offset of the physical reading */
    hlc_physical_fn physical;  /* immutable after hlc_init */
    void *physical_arg;        /* immutable after hlc_init */
    uint64_t max_skew_ms;      /* immutable after hlc_init */
};

/* Initialises `clock` with `opt` (NULL = defaults); its last value is 0.
 * Not thread-safe: call before the clock is shared. No deinit is needed. */
void hlc_init(struct hlc *clock, const struct hlc_options *opt);

/*
 * Timestamp for a local event or an outgoing message:
 * max(last + 1, physical_ms << 16). Strictly greater than every value
 * hlc_now returned and every value hlc_observe or hlc_floor accepted before
 * it (in any thread), even if the physical clock stepped back; unique across
 * threads. When the logical part is full it carries into the physical part,
 * which then runs ahead of the wall clock until the wall clock catches up.
 * Any thread, lock-free.
 */
uint64_t hlc_now(struct hlc *clock);

/*
 * Takes in a timestamp received from a peer. ST_OK: the clock now is at
 * least `remote` (adopted if ahead, ignored if not), so every later hlc_now
 * is greater than it. ST_INVAL: the physical part of `remote` is more than
 * max_skew_ms ahead of our physical clock; the clock is unchanged and the
 * caller logs it (hlc_physical(remote) - hlc_wall_ms(clock) is the gap).
 * Any thread, lock-free.
 */
enum st_status hlc_observe(struct hlc *clock, uint64_t remote);

/*
 * Raises the clock to at least `floor` so that every later hlc_now is
 * greater than it; no skew check. At startup, the node passes the upper
 * bound it persisted (hlc_upper_bound) before it stopped or crashed, so a
 * restarted node never reissues a timestamp even if the wall clock went
 * back. Any thread, lock-free.
 */
void hlc_floor(struct hlc *clock, uint64_t floor);

/* Highest timestamp issued, observed or floored so far (0 at first). Any
 * thread. */
uint64_t hlc_last(struct hlc *clock);

/*
 * The value to persist as the clock's lease: hlc_pack(max(physical part of
 * hlc_last, physical clock) + lease_ms, 0). The node writes it (synced) to
 * its data directory before startup completes and then every interval
 * well below lease_ms, and loads it into hlc_floor at the next start. It
 * bounds every timestamp issued before the next write as long as the clock
 * does not move more than lease_ms meanwhile: choose lease_ms >= write
 * interval + max_skew_ms (docs/CLOCKS.md). Any thread.
 */
uint64_t hlc_upper_bound(struct hlc *clock, uint64_t lease_ms);

/* The physical clock as the HLC reads it: source + offset, clamped to
 * [0, HLC_PHYSICAL_MAX]. Any thread. */
uint64_t hlc_wall_ms(struct hlc *clock);

/* Test only: changes the offset added to the physical clock. Timestamps
 * stay monotonic when it goes back. Any thread. */
void hlc_set_offset_ms(struct hlc *clock, int64_t offset_ms);
