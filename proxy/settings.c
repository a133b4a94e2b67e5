/*
 * settings.c - command-line parsing for strata-proxy (memcached's flags).
 * Main thread, before any other thread starts.
 */
#include "proxy/settings.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "proxy/version.h"

void settings_init(struct settings *s)
{
    memset(s, 0, sizeof(*s));
    s->port = 11211;
    strcpy(s->listen_addr, "127.0.0.1");
    s->max_bytes = (size_t)64 << 20;
    s->max_conns = 1024;
    s->threads = 4;
    s->item_size_max = (size_t)1 << 20;
    s->evictions = true;
    s->backlog = 1024;
    s->reqs_per_event = 20;
    s->out_max = (size_t)4 << 20;
    s->drain_timeout = 60;
}

void settings_usage(FILE *out)
{
    fprintf(out,
            "strata-proxy %s - memcached-compatible caching proxy\n"
            "\n"
            "usage: strata-proxy [options]\n"
            "  -p, --port=<num>            TCP port to listen on (default: 11211)\n"
            "  -l, --listen=<addr>         interface to listen on (default: 127.0.0.1)\n"
            "  -m, --memory-limit=<num>    item memory in megabytes; k/m/g suffixes\n"
            "                              give other units (default: 64)\n"
            "  -c, --conn-limit=<num>      max simultaneous connections (default: 1024)\n"
            "  -t, --threads=<num>         worker threads (default: 4)\n"
            "  -I, --max-item-size=<num>   largest item, k/m suffixes, 1k..128m (default: 1m)\n"
            "  -M, --disable-evictions     answer out of memory instead of evicting\n"
            "  -U, --udp-port=<num>        UDP port; only 0 (off) is supported\n"
            "  -b, --listen-backlog=<num>  listen backlog (default: 1024)\n"
            "  -R, --max-reqs-per-event=<num>\n"
            "                              commands served per connection per wakeup\n"
            "                              before yielding to others (default: 20)\n"
            "      --max-output=<num>      unsent reply bytes per connection before its\n"
            "                              reading pauses, k/m suffixes (default: 4m)\n"
            "      --drain-timeout=<sec>   close a paused connection whose client reads\n"
            "                              nothing for this long (default: 60)\n"
            "  -P, --pidfile=<file>        write the process id to <file>\n"
            "  -u, --user=<name>           when started as root, run as <name>\n"
            "  -v, --verbose               log connection errors; -vv logs commands\n"
            "  -h, --help                  print this help and exit\n"
            "  -V, --version               print the version and exit\n",
            STRATA_VERSION);
}

/* Parses "<num>[k|m|g]"; a bare number is in `unit` bytes. */
static bool parse_size(const char *arg, size_t unit, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    if (errno != 0 || end == arg || arg[0] == '-')
        return false;
    switch (*end) {
    case '\0': break;
    case 'k': case 'K': unit = (size_t)1 << 10; end++; break;
    case 'm': case 'M': unit = (size_t)1 << 20; end++; break;
    case 'g': case 'G': unit = (size_t)1 << 30; end++; break;
    default: return false;
    }
    if (*end != '\0' || (unit != 0 && v > SIZE_MAX / unit))
        return false;
    *out = (size_t)v * unit;
    return true;
}

static bool parse_uint(const char *arg, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(arg, &end, 10);
    if (errno != 0 || end == arg || *end != '\0' || arg[0] == '-' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "strata-proxy: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'strata-proxy --help' for the options.\n");
    return EX_USAGE;
}

/* Long-only options. */
enum { OPT_MAX_OUTPUT = 256, OPT_DRAIN_TIMEOUT };

int settings_parse(struct settings *s, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'},
        {"listen", required_argument, NULL, 'l'},
        {"memory-limit", required_argument, NULL, 'm'},
        {"conn-limit", required_argument, NULL, 'c'},
        {"threads", required_argument, NULL, 't'},
        {"max-item-size", required_argument, NULL, 'I'},
        {"disable-evictions", no_argument, NULL, 'M'},
        {"udp-port", required_argument, NULL, 'U'},
        {"listen-backlog", required_argument, NULL, 'b'},
        {"max-reqs-per-event", required_argument, NULL, 'R'},
        {"pidfile", required_argument, NULL, 'P'},
        {"user", required_argument, NULL, 'u'},
        {"verbose", no_argument, NULL, 'v'},
        {"max-output", required_argument, NULL, OPT_MAX_OUTPUT},
        {"drain-timeout", required_argument, NULL, OPT_DRAIN_TIMEOUT},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    bool item_size_given = false;
    unsigned long v;
    int opt;

    opterr = 0; /* we print our own messages */
    optind = 1;
    while ((opt = getopt_long(argc, argv, ":p:l:m:c:t:I:MU:b:R:P:u:vhV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'p':
            if (!parse_uint(optarg, 1, 65535, &v))
                return usage_error("invalid port '%s' (1..65535)", optarg);
            s->port = (int)v;
            break;
        case 'l':
            if (strlen(optarg) >= sizeof(s->listen_addr) || optarg[0] == '\0')
                return usage_error("invalid listen address '%s'", optarg);
            strcpy(s->listen_addr, optarg);
            break;
        case 'm':
            if (!parse_size(optarg, (size_t)1 << 20, &s->max_bytes) || s->max_bytes < ((size_t)1 << 20))
                return usage_error("invalid memory limit '%s' (at least 1 megabyte)", optarg);
            break;
        case 'c':
            if (!parse_uint(optarg, 1, 1000000, &v))
                return usage_error("invalid connection limit '%s' (1..1000000)", optarg);
            s->max_conns = (unsigned)v;
            break;
        case 't':
            if (!parse_uint(optarg, 1, 64, &v))
                return usage_error("invalid thread count '%s' (1..64)", optarg);
            s->threads = (unsigned)v;
            break;
        case 'I':
            if (!parse_size(optarg, 1, &s->item_size_max) || s->item_size_max < 1024 ||
                s->item_size_max > ((size_t)128 << 20))
                return usage_error("invalid item size limit '%s' (1k..128m)", optarg);
            item_size_given = true;
            break;
        case 'M':
            s->evictions = false;
            break;
        case 'U':
            if (!parse_uint(optarg, 0, 65535, &v))
                return usage_error("invalid UDP port '%s'", optarg);
            if (v != 0)
                return usage_error("UDP is not supported (got -U %s); memcached's UDP "
                                   "protocol is a traffic amplification risk and Strata only "
                                   "serves TCP. Use -U 0 or leave it out.", optarg);
            break;
        case 'b':
            if (!parse_uint(optarg, 1, INT_MAX, &v))
                return usage_error("invalid listen backlog '%s'", optarg);
            s->backlog = (unsigned)v;
            break;
        case 'R':
            if (!parse_uint(optarg, 1, 1000000, &v))
                return usage_error("invalid requests per event '%s'", optarg);
            s->reqs_per_event = (unsigned)v;
            break;
        case 'P':
            s->pidfile = optarg;
            break;
        case 'u':
            s->user = optarg;
            break;
        case 'v':
            s->verbose++;
            break;
        case OPT_MAX_OUTPUT:
            if (!parse_size(optarg, 1, &s->out_max) || s->out_max < 1024)
                return usage_error("invalid --max-output '%s' (at least 1k)", optarg);
            break;
        case OPT_DRAIN_TIMEOUT:
            if (!parse_uint(optarg, 1, 86400, &v))
                return usage_error("invalid --drain-timeout '%s' (1..86400 seconds)", optarg);
            s->drain_timeout = (unsigned)v;
            break;
        case 'h':
            settings_usage(stdout);
            return 0;
        case 'V':
            printf("strata-proxy %s (memcached protocol %s)\n", STRATA_VERSION, MC_COMPAT_VERSION);
            return 0;
        case ':':
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (item_size_given && s->item_size_max > s->max_bytes / 2)
        return usage_error("item size limit %s is over half the memory limit (-m)",
                           "given");
    if (s->item_size_max > s->max_bytes)
        s->item_size_max = s->max_bytes;
    return -1;
}
