/*
 * report.h - strata-bench's output: the progress line printed every second
 * (to stderr), the preload line, and the final summary as text or as one
 * JSON object (to stdout). Main thread.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tools/strata-bench/opts.h"
#include "tools/strata-bench/tally.h"

/* One phase of the run: what was counted, how long it took, what it cost
 * strata-bench itself (getrusage of the whole process). */
struct report_phase {
    struct tally t;
    double seconds;
    double cpu_user, cpu_sys;
};

struct report {
    const struct bench_opts *o;
    unsigned conns_open; /* connections that connected */
    bool preloaded;
    struct report_phase preload;
    bool measured;
    struct report_phase run;
    uint64_t stalled_seconds; /* progress intervals with requests in flight and none done */
    bool interrupted;         /* stopped by SIGINT/SIGTERM */
    const char *verdict;      /* "ok" or why the exit status is 1 */
};

/* "[  3s] 123456 ops/s hit 100.0% p50 45.1us p99 120.3us fail 0" for one
 * interval of `seconds` ending `at` seconds into the measured phase. */
void report_progress(FILE *out, double at, double seconds, const struct tally *interval);

void report_preload(FILE *out, const struct report_phase *p);

void report_text(FILE *out, const struct report *r);
void report_json(FILE *out, const struct report *r);

/* Request rate, hit ratio (0..1, -1 if no get keys), CPU µs per request. */
double report_rate(const struct report_phase *p);
double report_hit_ratio(const struct tally *t);
double report_cpu_us_per_request(const struct report_phase *p);
