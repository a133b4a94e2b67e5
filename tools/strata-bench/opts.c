/*
 * opts.c - strata-bench's option table, its parser and --help (see opts.h).
 * Defaults go through the same parsing as the command line, so the table
 * is the one source of names, defaults and bounds. Main thread.
 */
#include "tools/strata-bench/opts.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "tools/strata-bench/mcwire.h"

#ifndef STRATA_VERSION
#define STRATA_VERSION "dev"
#endif

enum opts_type {
    T_UINT,   /* unsigned, bounds min..max */
    T_U64,    /* uint64_t, bounds min..max */
    T_DOUBLE, /* double, bounds min..max */
    T_FLAG,   /* bool, no argument */
    T_SERVER, /* host:port */
    T_PROTO,  /* text | meta | binary | resp */
    T_DIST,   /* uniform | zipf | sequential */
    T_PREFIX, /* key prefix */
    T_VSIZE,  /* N or MIN-MAX */
    T_RATIO,  /* GET:SET */
    T_HELP,
    T_VERSION,
};

struct opts_def {
    const char *name;
    char short_name; /* 0: long only */
    enum opts_type type;
    size_t offset;
    double min, max;
    const char *def; /* NULL: none (flags: off) */
    const char *arg; /* argument name in --help */
    const char *help;
};

#define OFF(f) offsetof(struct bench_opts, f)

static const struct opts_def defs[] = {
    {"server", 's', T_SERVER, OFF(server), 0, 0, "127.0.0.1:11211", "HOST:PORT", "server to load"},
    {"protocol", 'P', T_PROTO, OFF(proto), 0, 0, "text", "PROTO",
     "text (get/set), meta (mg/ms, mn ends a multi-get), binary (GETK/SET, GETKQ+NOOP) or "
     "resp (Redis GET/SET; no --multiget, no --exptime)"},
    {"threads", 't', T_UINT, OFF(threads), 1, 256, "1", "N", "client threads, one event loop each"},
    {"conns", 'c', T_UINT, OFF(conns), 1, 10000, "4", "N", "connections per thread"},
    {"depth", 'd', T_UINT, OFF(depth), 1, 4096, "1", "N",
     "pipeline depth: requests in flight per connection"},
    {"keys", 'k', T_U64, OFF(keys), 1, 1e12, "100000", "N",
     "key count: keys are PREFIX0 .. PREFIX<N-1>"},
    {"key-prefix", 'x', T_PREFIX, OFF(key_prefix), 0, 0, "key:", "STR",
     "key prefix (printable, no spaces)"},
    {"key-dist", 'D', T_DIST, OFF(dist), 0, 0, "uniform", "DIST",
     "key distribution: uniform, zipf (key 0 hottest) or sequential"},
    {"zipf-skew", 'z', T_DOUBLE, OFF(skew), 0, 10, "0.99", "S",
     "Zipf exponent for --key-dist zipf (0 is uniform)"},
    {"value-size", 'v', T_VSIZE, OFF(value_min), 0, 64 << 20, "100", "N|MIN-MAX",
     "value bytes of sets, fixed or uniform in a range"},
    {"ratio", 'r', T_RATIO, OFF(ratio_get), 0, 0, "9:1", "GET:SET",
     "mix of gets and sets, e.g. 1:0 for gets only, 0:1 for sets only"},
    {"multiget", 'm', T_UINT, OFF(width), 1, MCWIRE_WIDTH_MAX, "1", "N",
     "keys per get request (a multi-get above 1; keys drawn independently)"},
    {"duration", 'T', T_DOUBLE, OFF(duration), 0.1, 86400, "10", "SEC",
     "length of the measured phase; with --requests, an upper bound (default then 600)"},
    {"requests", 'n', T_U64, OFF(requests), 0, 1e15, "0", "N",
     "stop after N requests in all (0: run for the duration)"},
    {"preload", 'p', T_FLAG, OFF(preload), 0, 0, NULL, NULL,
     "before measuring, set every key once (pipelined, --preload-depth)"},
    {"preload-only", 0, T_FLAG, OFF(preload_only), 0, 0, NULL, NULL,
     "preload, report, and exit without a measured phase"},
    {"preload-depth", 0, T_UINT, OFF(preload_depth), 1, 4096, "64", "N",
     "requests in flight per connection while preloading"},
    {"exptime", 'e', T_UINT, OFF(exptime), 0, 4294967295.0, "0", "SEC",
     "exptime (TTL) of the items set"},
    {"timeout", 'o', T_DOUBLE, OFF(timeout), 0.01, 3600, "5", "SEC",
     "a connection with requests in flight and no reply for this long fails"},
    {"max-error-rate", 'E', T_DOUBLE, OFF(max_error_rate), 0, 1, "0", "F",
     "exit 1 if failed requests exceed this fraction of requests"},
    {"seed", 'S', T_U64, OFF(seed), 0, 1.8e19, "1", "N", "random seed (runs are repeatable)"},
    {"json", 'j', T_FLAG, OFF(json), 0, 0, NULL, NULL, "print the summary as one JSON object"},
    {"quiet", 'q', T_FLAG, OFF(quiet), 0, 0, NULL, NULL, "no progress lines"},
    {"help", 'h', T_HELP, 0, 0, 0, NULL, NULL, "print this help and exit"},
    {"version", 'V', T_VERSION, 0, 0, 0, NULL, NULL, "print the version and exit"},
};

#define NDEFS (sizeof(defs) / sizeof(defs[0]))

static bool parse_u64(const char *s, uint64_t *out)
{
    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double *out)
{
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static bool set_server(struct bench_opts *o, const char *s)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s || strlen(s) >= sizeof(o->server))
        return false;
    uint64_t port;
    if (!parse_u64(colon + 1, &port) || port == 0 || port > 65535)
        return false;
    size_t nhost = (size_t)(colon - s);
    const char *h = s;
    if (h[0] == '[' && nhost >= 2 && h[nhost - 1] == ']') { /* [::1]:11211 */
        h++;
        nhost -= 2;
    }
    memcpy(o->host, h, nhost);
    o->host[nhost] = '\0';
    snprintf(o->port, sizeof(o->port), "%u", (unsigned)port);
    snprintf(o->server, sizeof(o->server), "%s", s);
    return true;
}

static bool set_vsize(struct bench_opts *o, const char *s, const struct opts_def *d)
{
    char buf[64];
    if (strlen(s) >= sizeof(buf))
        return false;
    strcpy(buf, s);
    char *dash = strchr(buf, '-');
    uint64_t lo, hi;
    if (dash != NULL) {
        *dash = '\0';
        if (!parse_u64(buf, &lo) || !parse_u64(dash + 1, &hi) || lo > hi)
            return false;
    } else {
        if (!parse_u64(buf, &lo))
            return false;
        hi = lo;
    }
    if ((double)hi > d->max)
        return false;
    o->value_min = (uint32_t)lo;
    o->value_max = (uint32_t)hi;
    return true;
}

static bool set_ratio(struct bench_opts *o, const char *s)
{
    char buf[64];
    if (strlen(s) >= sizeof(buf))
        return false;
    strcpy(buf, s);
    char *colon = strchr(buf, ':');
    uint64_t g, st;
    if (colon == NULL)
        return false;
    *colon = '\0';
    if (!parse_u64(buf, &g) || !parse_u64(colon + 1, &st) || g > 1000000 || st > 1000000 ||
        g + st == 0)
        return false;
    o->ratio_get = (unsigned)g;
    o->ratio_set = (unsigned)st;
    return true;
}

/* Applies one option value; false with nothing changed if it is invalid. */
static bool apply(struct bench_opts *o, const struct opts_def *d, const char *arg)
{
    char *field = (char *)o + d->offset;
    uint64_t u;
    double x;
    switch (d->type) {
    case T_UINT:
        if (!parse_u64(arg, &u) || (double)u < d->min || (double)u > d->max)
            return false;
        *(unsigned *)(void *)field = (unsigned)u;
        return true;
    case T_U64:
        if (!parse_u64(arg, &u) || (double)u < d->min || (double)u > d->max)
            return false;
        memcpy(field, &u, sizeof(u));
        return true;
    case T_DOUBLE:
        if (!parse_double(arg, &x) || x < d->min || x > d->max)
            return false;
        memcpy(field, &x, sizeof(x));
        return true;
    case T_FLAG: *(bool *)(void *)field = true; return true;
    case T_SERVER: return set_server(o, arg);
    case T_PROTO: return mcwire_proto_parse(arg, &o->proto);
    case T_DIST:
        if (strcmp(arg, "uniform") == 0)
            o->dist = KEYS_UNIFORM;
        else if (strcmp(arg, "zipf") == 0 || strcmp(arg, "zipfian") == 0)
            o->dist = KEYS_ZIPF;
        else if (strcmp(arg, "sequential") == 0 || strcmp(arg, "seq") == 0)
            o->dist = KEYS_SEQUENTIAL;
        else
            return false;
        return true;
    case T_PREFIX: {
        struct keys probe;
        if (keys_init(&probe, arg, 1, KEYS_UNIFORM, 0) != ST_OK)
            return false;
        snprintf(o->key_prefix, sizeof(o->key_prefix), "%s", arg);
        return true;
    }
    case T_VSIZE: return set_vsize(o, arg, d);
    case T_RATIO: return set_ratio(o, arg);
    case T_HELP:
    case T_VERSION: break;
    }
    return false;
}

static void describe_bounds(const struct opts_def *d, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (d->type == T_UINT || d->type == T_U64)
        snprintf(buf, cap, ", %.0f..%.0f", d->min, d->max);
    else if (d->type == T_DOUBLE)
        snprintf(buf, cap, ", %g..%g", d->min, d->max);
    else if (d->type == T_VSIZE)
        snprintf(buf, cap, ", at most %.0f", d->max);
}

void opts_help(FILE *out)
{
    fprintf(out, "usage: strata-bench [options]\n"
                 "Load generator for memcached-protocol servers (strata-proxy, memcached;\n"
                 "redis-server with --protocol resp).\n"
                 "Connects threads x conns connections, optionally preloads every key, then\n"
                 "keeps --depth requests in flight per connection for --duration seconds\n"
                 "(or --requests requests), printing a progress line every second to stderr\n"
                 "and a summary (throughput, hit ratio, latency percentiles, errors, own\n"
                 "CPU per request) to stdout. Exit status: 0 ok, 1 connection failures or\n"
                 "failed requests above --max-error-rate, 64 bad usage.\n\n");
    for (size_t i = 0; i < NDEFS; i++) {
        const struct opts_def *d = &defs[i];
        char left[64], bounds[64], dflt[96];
        snprintf(left, sizeof(left), "%c%c%s --%s%s%s", d->short_name ? '-' : ' ',
                 d->short_name ? d->short_name : ' ', d->short_name ? "," : " ", d->name,
                 d->arg ? " " : "", d->arg ? d->arg : "");
        describe_bounds(d, bounds, sizeof(bounds));
        dflt[0] = '\0';
        if (d->def != NULL)
            snprintf(dflt, sizeof(dflt), " (default %s%s)", d->def, bounds);
        else if (bounds[0] != '\0')
            snprintf(dflt, sizeof(dflt), " (%s)", bounds + 2);
        fprintf(out, "  %-30s %s%s\n", left, d->help, dflt);
    }
}

static const struct opts_def *find_def(int code)
{
    for (size_t i = 0; i < NDEFS; i++)
        if ((defs[i].short_name && defs[i].short_name == code) || (int)(256 + i) == code)
            return &defs[i];
    return NULL;
}

/* Checks that the options make sense together. */
static bool check(struct bench_opts *o)
{
    struct keys ks;
    if (keys_init(&ks, o->key_prefix, o->keys, o->dist, o->skew) != ST_OK)
        return false;
    if (keys_max_len(&ks) > MCWIRE_KEY_MAX) {
        fprintf(stderr, "strata-bench: keys longer than %d bytes\n", MCWIRE_KEY_MAX);
        return false;
    }
    if (o->proto == MCWIRE_RESP && o->width > 1) {
        fprintf(stderr,
                "strata-bench: --multiget %u is not supported with --protocol resp "
                "(a RESP get is a GET of one key)\n",
                o->width);
        return false;
    }
    if (o->proto == MCWIRE_RESP && o->exptime != 0) {
        fprintf(stderr, "strata-bench: --exptime is not supported with --protocol resp "
                        "(sets are plain SET key value)\n");
        return false;
    }
    if (o->width > o->keys) {
        fprintf(stderr, "strata-bench: --multiget %u exceeds --keys %llu\n", o->width,
                (unsigned long long)o->keys);
        return false;
    }
    if (o->preload_only)
        o->preload = true;
    if (o->requests != 0 && !o->duration_given)
        o->duration = OPTS_REQUESTS_DURATION_CAP;
    return true;
}

enum opts_result opts_parse(struct bench_opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof(*o));
    for (size_t i = 0; i < NDEFS; i++) {
        if (defs[i].def != NULL && !apply(o, &defs[i], defs[i].def)) {
            fprintf(stderr, "strata-bench: bad default for --%s\n", defs[i].name);
            return OPTS_USAGE;
        }
    }
    struct option longopts[NDEFS + 1];
    char shortopts[3 * NDEFS + 2];
    size_t ns = 0;
    shortopts[ns++] = ':';
    for (size_t i = 0; i < NDEFS; i++) {
        bool has_arg =
            defs[i].type != T_FLAG && defs[i].type != T_HELP && defs[i].type != T_VERSION;
        longopts[i] = (struct option){defs[i].name, has_arg ? required_argument : no_argument, NULL,
                                      defs[i].short_name ? defs[i].short_name : (int)(256 + i)};
        if (defs[i].short_name) {
            shortopts[ns++] = defs[i].short_name;
            if (has_arg)
                shortopts[ns++] = ':';
        }
    }
    shortopts[ns] = '\0';
    longopts[NDEFS] = (struct option){0, 0, 0, 0};
    optind = 0; /* GNU getopt: full re-initialisation (tests parse many times) */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        if (c == '?' || c == ':') {
            fprintf(stderr, "strata-bench: %s option '%s' (see --help)\n",
                    c == ':' ? "missing argument for" : "unknown", argv[optind - 1]);
            return OPTS_USAGE;
        }
        const struct opts_def *d = find_def(c);
        if (d == NULL)
            return OPTS_USAGE;
        if (d->type == T_HELP) {
            opts_help(stdout);
            return OPTS_EXIT;
        }
        if (d->type == T_VERSION) {
            printf("strata-bench %s\n", STRATA_VERSION);
            return OPTS_EXIT;
        }
        if (!apply(o, d, optarg)) {
            char bounds[64];
            describe_bounds(d, bounds, sizeof(bounds));
            fprintf(stderr, "strata-bench: invalid --%s '%s' (%s%s)\n", d->name, optarg, d->arg,
                    bounds);
            return OPTS_USAGE;
        }
        if (strcmp(d->name, "duration") == 0)
            o->duration_given = true;
    }
    if (optind < argc) {
        fprintf(stderr, "strata-bench: unexpected argument '%s' (see --help)\n", argv[optind]);
        return OPTS_USAGE;
    }
    return check(o) ? OPTS_RUN : OPTS_USAGE;
}
