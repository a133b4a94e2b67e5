/*
 * opts.h - strata-bench's command line: one table declares every option
 * (name, type, default, bounds, help); opts_parse() fills struct bench_opts
 * from the defaults and argv and checks the combination, and opts_help()
 * prints the table. Main thread, at startup.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tools/strata-bench/keys.h"
#include "tools/strata-bench/mcwire.h"

struct bench_opts {
    char server[256]; /* "host:port" as given */
    char host[256];
    char port[16];
    enum mcwire_proto proto;
    unsigned threads;
    unsigned conns; /* per thread */
    unsigned depth; /* requests in flight per connection */
    uint64_t keys;
    char key_prefix[KEYS_PREFIX_MAX + 1];
    enum keys_dist dist;
    double skew;
    uint32_t value_min, value_max;
    unsigned ratio_get, ratio_set;
    unsigned width;  /* keys per get */
    double duration; /* seconds; the run's bound */
    bool duration_given;
    uint64_t requests; /* total, 0 = until the duration ends */
    bool preload, preload_only;
    unsigned preload_depth;
    unsigned exptime; /* seconds, as sent */
    double timeout;   /* seconds without a reply that fail a connection */
    double max_error_rate;
    uint64_t seed;
    bool json, quiet;
};

enum opts_result {
    OPTS_RUN,   /* *o is complete and consistent */
    OPTS_EXIT,  /* --help or --version was printed */
    OPTS_USAGE, /* a message was printed to stderr */
};

/* When --requests is given without --duration, the run is still bounded. */
#define OPTS_REQUESTS_DURATION_CAP 600.0

/* Fills *o from the defaults and argv. */
enum opts_result opts_parse(struct bench_opts *o, int argc, char **argv);

/* Prints the usage text: every option with its default and bounds. */
void opts_help(FILE *out);
