/*
 * phi.h - phi-accrual failure detector (Hayashibara et al., 2004): one
 * detector per monitored peer turns heartbeat arrival times into a level of
 * suspicion phi instead of a yes/no timeout (docs/CLOCKS.md).
 *
 * Pure: the caller passes the time (monotonic milliseconds) and there are
 * no threads inside. Not thread-safe: one thread (the node's gossip loop)
 * owns each detector.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

/* Defaults (docs/CLOCKS.md says why). With 1 s heartbeats they make a
 * silent peer suspect after about 4.4 s and down after about 4.5 s. */
#define PHI_DEFAULT_WINDOW 1000
#define PHI_DEFAULT_THRESHOLD 8.0
#define PHI_DEFAULT_MIN_STD_MS 100
#define PHI_DEFAULT_ACCEPTABLE_PAUSE_MS 3000
#define PHI_DEFAULT_FIRST_INTERVAL_MS 1000
#define PHI_DEFAULT_MAX_INTERVAL_MS 10000

/* Bounds checked by phi_create (they keep the integer sums exact). */
#define PHI_MAX_WINDOW 65536
#define PHI_MAX_INTERVAL_LIMIT_MS (1u << 22) /* about 70 minutes */

struct phi_options {
    uint32_t window;  /* inter-arrival intervals kept, 2..PHI_MAX_WINDOW */
    double threshold; /* phi >= threshold: down; > 0 */
    /* phi >= suspect_threshold (and < threshold): suspect; in
     * (0, threshold]. Default threshold / 2. */
    double suspect_threshold;
    uint32_t min_std_ms; /* floor of the standard deviation, >= 1 */
    /* Added to the mean: a silence this much longer than usual is still
     * normal (a lost heartbeat, a busy peer). */
    uint32_t acceptable_pause_ms;
    /* Expected interval before any was measured: the first heartbeat seeds
     * the window with first_interval_ms -/+ a quarter of it. >= 4. */
    uint32_t first_interval_ms;
    /* Longer intervals are recorded as this (a peer back after an outage
     * must not teach the detector that outages are normal). It must exceed
     * the longest legitimate heartbeat interval; at least
     * first_interval_ms * 5 / 4, at most PHI_MAX_INTERVAL_LIMIT_MS. */
    uint32_t max_interval_ms;
};

enum phi_state {
    PHI_UP = 0,  /* phi < suspect_threshold */
    PHI_SUSPECT, /* suspect_threshold <= phi < threshold */
    PHI_DOWN,    /* phi >= threshold */
};

struct phi_detector;

/* Fills `opt` with the PHI_DEFAULT_* values (suspect_threshold =
 * threshold / 2). */
void phi_options_default(struct phi_options *opt);

/* Creates a detector that has seen no heartbeat. `opt` NULL = defaults.
 * ST_INVAL for options outside the bounds above, ST_NOMEM. */
enum st_status phi_create(struct phi_detector **out, const struct phi_options *opt);

/* Frees the detector and NULLs *d; accepts NULL and *d == NULL. */
void phi_destroy(struct phi_detector **d);

/*
 * Records a heartbeat that arrived at `now_ms`. The first one (after create
 * or reset) only starts the clock and seeds the window; each later one adds
 * the interval since the previous one, clamped to max_interval_ms, dropping
 * the oldest once the window is full. A time before the previous heartbeat
 * is ignored (the caller's clock must be monotonic); the caller drops
 * duplicate deliveries of one heartbeat before calling.
 */
void phi_heartbeat(struct phi_detector *d, uint64_t now_ms);

/* Forgets every heartbeat: the peer restarted (new generation), so its old
 * rhythm says nothing about the new process. */
void phi_reset(struct phi_detector *d);

/*
 * Suspicion at `now_ms`: -log10 of the probability that a heartbeat comes
 * later than now_ms - last arrival, intervals modelled as normal with the
 * window's mean + acceptable_pause_ms and max(std, min_std_ms). 0 before
 * the first heartbeat (no evidence either way) and for now_ms at or before
 * the last one; finite; non-decreasing in now_ms.
 */
double phi_value(const struct phi_detector *d, uint64_t now_ms);

/* phi_value mapped to up / suspect / down with the detector's thresholds. */
enum phi_state phi_check(const struct phi_detector *d, uint64_t now_ms);

/* "up", "suspect", "down" (for logs and stats). Never NULL. */
const char *phi_state_name(enum phi_state s);

/* Window contents, for stats and tests: intervals held (including the two
 * seeds), their mean and standard deviation in ms (0 when empty), and
 * whether any heartbeat was seen since create/reset. */
size_t phi_samples(const struct phi_detector *d);
double phi_mean_ms(const struct phi_detector *d);
double phi_std_ms(const struct phi_detector *d);
bool phi_started(const struct phi_detector *d);
