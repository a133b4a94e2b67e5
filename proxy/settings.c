/*
 * settings.c - the option table of strata-proxy and its two readers: the
 * command line (getopt_long built from the table) and the INI config file
 * (inih). memcached's -o list is parsed in settings_ext.c. Main thread,
 * before any other thread starts.
 */
#include "proxy/settings.h"

#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "common/log.h"
#include "proxy/policy.h"
#include "proxy/version.h"
#include "proxy/watch.h"

enum opt_type {
    T_UINT,
    T_POWER, /* an integer within the bounds, or 0 (automatic) */
    T_SIZE,
    T_BOOL,
    T_NBOOL, /* a boolean stored inverted: the option disables what the field enables */
    T_STR,
    T_COUNT,
    T_CHAR,   /* one character; memcached takes the first of the argument */
    T_FACTOR, /* a decimal number above 1 */
    T_OCTAL,  /* an octal mask, 0..0777 */
    T_EXT,    /* memcached's -o list, applied by settings_ext_apply */
    T_POLICY, /* one prefix policy (--policy), appended to policy_spec */
};

struct opt_def {
    const char *name; /* config key; the long flag is the same with '-' */
    int flag;         /* short flag, or 0 */
    enum opt_type type;
    const char *def;   /* default, as text (NULL: unset) */
    uint64_t min, max; /* bounds for T_UINT / T_SIZE */
    size_t unit;       /* T_SIZE: what a bare number counts */
    size_t offset;
    const char *arg;
    const char *desc;
};

#define KB ((size_t)1 << 10)
#define MB ((size_t)1 << 20)
#define OFF(f) offsetof(struct settings, f)

/* Every option, once. The order is the order of --help and of the config. */
static const struct opt_def opts[] = {
    {"port", 'p', T_UINT, "11211", 1, 65535, 0, OFF(port), "<num>", "TCP port to listen on"},
    {"listen", 'l', T_STR, "127.0.0.1", 0, 0, 0, OFF(listen_addr), "<addr>",
     "interface to listen on"},
    {"memory_limit", 'm', T_SIZE, "64", MB, (uint64_t)1 << 40, MB, OFF(max_bytes), "<num>",
     "item memory; a bare number is megabytes, k/m/g suffixes accepted"},
    {"conn_limit", 'c', T_UINT, "1024", 1, 1000000, 0, OFF(max_conns), "<num>",
     "max simultaneous client connections"},
    {"threads", 't', T_UINT, "4", 1, 64, 0, OFF(threads), "<num>", "worker threads"},
    {"max_item_size", 'I', T_SIZE, "1m", KB, 128 * MB, 1, OFF(item_size_max), "<num>",
     "largest item (key + value + overhead), k/m suffixes"},
    {"disable_evictions", 'M', T_BOOL, "no", 0, 0, 0, OFF(disable_evictions), NULL,
     "answer out of memory instead of evicting"},
    {"udp_port", 'U', T_UINT, "0", 0, 0, 0, OFF(udp_port), "<num>",
     "UDP port; only 0 (off): UDP is an amplification risk and not served"},
    {"listen_backlog", 'b', T_UINT, "1024", 1, 65535, 0, OFF(backlog), "<num>", "listen backlog"},
    {"max_reqs_per_event", 'R', T_UINT, "20", 1, 1000000, 0, OFF(reqs_per_event), "<num>",
     "commands served per connection per wakeup before yielding"},
    {"max_output", 0, T_SIZE, "4m", KB, 1 << 30, 1, OFF(out_max), "<num>",
     "unsent reply bytes per connection before its reading pauses"},
    {"drain_timeout", 0, T_UINT, "60", 1, 86400, 0, OFF(drain_timeout), "<sec>",
     "close a paused connection whose client reads nothing for this long"},
    {"pidfile", 'P', T_STR, NULL, 0, 0, 0, OFF(pidfile), "<file>", "write the process id here"},
    {"user", 'u', T_STR, NULL, 0, 0, 0, OFF(user), "<name>",
     "when started as root, run as this user"},
    {"verbose", 'v', T_COUNT, "0", 0, 2, 0, OFF(verbose), NULL,
     "log connection events (1) or every command (2); -v, -vv"},
    {"shutdown_timeout", 0, T_UINT, "5", 0, 86400, 0, OFF(shutdown_timeout), "<sec>",
     "on SIGTERM, SIGINT or shutdown, let queued replies drain this long, then close"},
    {"idle_timeout", 0, T_UINT, "0", 0, INT32_MAX, 0, OFF(idle_timeout), "<sec>",
     "close client connections idle for more than this; 0: never (memcached -o idle_timeout)"},
    {"read_buf_mem_limit", 0, T_SIZE, "0", 0, (uint64_t)1 << 40, MB, OFF(read_buf_mem_limit),
     "<num>",
     "memory for connection input buffers, all workers; a bare number is megabytes; 0: no limit"},
    {"hashpower", 0, T_POWER, "0", 12, 32, 0, OFF(hashpower), "<num>",
     "initial hash table size as a power of two, 12..32; 0: automatic (memcached -o hashpower)"},
    {"enable_shutdown", 'A', T_BOOL, "no", 0, 0, 0, OFF(shutdown_command), NULL,
     "enable the text protocol's shutdown command"},
    {"disable_flush_all", 'F', T_NBOOL, "no", 0, 0, 0, OFF(flush_enabled), NULL,
     "answer flush_all with an error instead of flushing"},
    {"disable_dumping", 'X', T_NBOOL, "no", 0, 0, 0, OFF(dump_enabled), NULL,
     "disable stats cachedump and lru_crawler metadump"},
    {"detail_delimiter", 'D', T_CHAR, ":", 0, 0, 0, OFF(detail_delimiter), "<char>",
     "key prefix delimiter of stats detail; setting it turns detail collection on"},
    {"lock_memory", 'k', T_BOOL, "no", 0, 0, 0, OFF(lock_memory), NULL,
     "lock all paged memory (mlockall); a warning if the system refuses"},
    {"enable_coredumps", 'r', T_BOOL, "no", 0, 0, 0, OFF(enable_coredumps), NULL,
     "raise the core file size limit to its maximum"},
    {"enable_largepages", 'L', T_BOOL, "no", 0, 0, 0, OFF(large_pages), NULL,
     "accepted for memcached compatibility; does not apply (no preallocated slab memory)"},
    {"unix_mask", 'a', T_OCTAL, "700", 0, 0777, 0, OFF(unix_mask), "<mask>",
     "unix socket access mask, octal; strata serves TCP only, stats settings shows it"},
    {"slab_growth_factor", 'f', T_FACTOR, "1.25", 0, 0, 0, OFF(growth_factor), "<num>",
     "memcached's slab growth factor, above 1; reported in stats settings, does not apply"},
    {"slab_min_size", 'n', T_UINT, "48", 1, MB, 0, OFF(chunk_size), "<bytes>",
     "memcached's smallest chunk for key+value+flags; reported in stats settings, does not "
     "apply"},
    {"test_async_reads", 0, T_BOOL, "no", 0, 0, 0, OFF(test_async_reads), NULL,
     "for tests of the front end only: every command that can completes on the next "
     "event-loop turn through the asynchronous reply path"},
    {"backend", 0, T_STR, "none", 0, 0, 0, OFF(backend), "<kind>",
     "what lies below L1: none (a cache), local (an engine in this process, under data_dir) "
     "or cluster (strata-nodes)"},
    {"data_dir", 0, T_STR, NULL, 0, 0, 0, OFF(data_dir), "<dir>",
     "backend = local: where the data is kept"},
    {"sync", 0, T_STR, "interval", 0, 0, 0, OFF(sync), "<when>",
     "backend = local: always (a write is on disk before its answer), interval (every "
     "sync_interval_ms) or none (the OS decides)"},
    {"sync_interval_ms", 0, T_UINT, "100", 1, 60000, 0, OFF(sync_interval_ms), "<ms>",
     "sync = interval: the longest a write waits for the disk"},
    {"cluster_seeds", 0, T_STR, NULL, 0, 0, 0, OFF(cluster_seeds), "<host:port,...>",
     "backend = cluster: strata-nodes' cluster ports to learn the ring from (any of them)"},
    {"cluster_name", 0, T_STR, "strata", 0, 0, 0, OFF(cluster_name), "<name>",
     "backend = cluster: the nodes' cluster name (their --cluster-name)"},
    {"cluster_timeout_ms", 0, T_UINT, "1000", 10, 600000, 0, OFF(cluster_timeout_ms), "<ms>",
     "backend = cluster: a request to a node without an answer for this long fails"},
    {"cluster_max_inflight", 0, T_UINT, "1024", 1, 1000000, 0, OFF(cluster_max_inflight), "<num>",
     "backend = cluster: requests in flight per node per worker; more are answered "
     "SERVER_ERROR backend busy at once"},
    {"cluster_poll_ms", 0, T_UINT, "1000", 10, 600000, 0, OFF(cluster_poll_ms), "<ms>",
     "backend = cluster: how often the ring is asked for"},
    {"journal_sync", 0, T_STR, "always", 0, 0, 0, OFF(journal_sync), "<when>",
     "write-behind: a write is in the journal on disk before its answer (always, with group "
     "commit) or within sync_interval_ms (interval)"},
    {"journal_max_entries", 0, T_UINT, "1000000", 1, 1000000000, 0, OFF(journal_max_entries),
     "<num>",
     "write-behind: keys with a pending write, at most; the policy's overflow decides "
     "beyond"},
    {"journal_max_bytes", 0, T_SIZE, "256m", MB, (uint64_t)1 << 40, MB, OFF(journal_max_bytes),
     "<num>", "write-behind: bytes of pending writes, at most; a bare number is megabytes"},
    {"journal_drain_timeout", 0, T_UINT, "5", 0, 86400, 0, OFF(journal_drain_timeout), "<sec>",
     "write-behind: on SIGTERM, apply pending writes for at most this long; the rest waits in "
     "the journal for the next start"},
    {"test_backend_pause_file", 0, T_STR, NULL, 0, 0, 0, OFF(test_backend_pause_file), "<file>",
     "for tests only: while this file exists, write-behind's drainer finds the backend down"},
    {"peer_port", 0, T_UINT, "0", 0, 65535, 0, OFF(peer_port), "<num>",
     "serve this proxy's L1 (alone: never L2 nor a backend) to other proxies' L2 pools on "
     "this port (11212 by convention); 0: off"},
    {"peers", 0, T_STR, NULL, 0, 0, 0, OFF(peers), "<host:port,...>",
     "other proxies' peer ports: each write through this proxy drops their L1 copy of the key "
     "(L1 coherence, docs/L2.md); read again from the config file on SIGHUP"},
    {"l1", 0, T_STR, "on", 0, 0, 0, OFF(l1_opt), "<on|off>",
     "keep items in this process (L1); off with l2_servers: every command goes to its L2 "
     "server (routing mode, as twemproxy)"},
    {"l2_servers", 0, T_STR, NULL, 0, 0, 0, OFF(l2_servers), "<host:port[:weight],...>",
     "the L2 pool: memcached servers or strata-proxies' peer ports, keys placed by "
     "libmemcached's weighted ketama (docs/L2.md)"},
    {"l2_gutter", 0, T_STR, NULL, 0, 0, 0, OFF(l2_gutter), "<host:port[:weight],...>",
     "a gutter pool: the keys of an ejected L2 server go there (set with l2_gutter_ttl) instead "
     "of to the next server"},
    {"l2_gutter_ttl", 0, T_UINT, "10", 1, 86400, 0, OFF(l2_gutter_ttl), "<sec>",
     "the longest an item set into the gutter pool lives"},
    {"l2_timeout_ms", 0, T_UINT, "500", 1, 600000, 0, OFF(l2_timeout_ms), "<ms>",
     "an L2 request without an answer for this long fails (a get is then a miss)"},
    {"l2_max_inflight", 0, T_UINT, "1024", 1, 1000000, 0, OFF(l2_max_inflight), "<num>",
     "requests in flight per L2 server per worker; more fail at once"},
    {"l2_eject_after", 0, T_UINT, "3", 1, 1000, 0, OFF(l2_eject_after), "<num>",
     "failures in a row (timeouts, resets, refused dials) that eject an L2 server"},
    {"l2_retry_ms", 0, T_UINT, "1000", 10, 3600000, 0, OFF(l2_retry_ms), "<ms>",
     "how long an ejected L2 server stays out; doubled while it keeps failing"},
    {"l2_retry_max_ms", 0, T_UINT, "30000", 10, 3600000, 0, OFF(l2_retry_max_ms), "<ms>",
     "the longest an L2 server stays ejected"},
    {"l2_flush_on_return", 0, T_BOOL, "yes", 0, 0, 0, OFF(l2_flush_on_return), NULL,
     "send flush_all to an ejected L2 server before it serves again (its entries may be "
     "stale)"},
    {"mode", 0, T_STR, NULL, 0, 0, 0, OFF(mode), "<mode>",
     "the default policy's mode: cache-only, read-through, write-through, write-behind or "
     "write-around (default: cache-only without a backend, write-through with one)"},
    {"policy", 0, T_POLICY, NULL, 0, 0, 0, 0, "<prefix>=<mode>[,name=value...]",
     "a policy for keys starting with prefix (docs/TIERS.md); may be repeated"},
    {"extended", 'o', T_EXT, NULL, 0, 0, 0, 0, "<list>",
     "memcached's comma-separated extended options (strata-proxy(8)); may be repeated"},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

/*
 * memcached flags strata refuses: each would change what a client may do
 * (authentication, encryption) or promise persistence, so accepting and
 * ignoring one would be a silent security or durability hole.
 */
struct refused_flag {
    int flag;
    const char *name;
    bool has_arg;
    const char *why;
};

static const struct refused_flag refused[] = {
    {'S', "enable-sasl", false,
     "SASL authentication (-S) is not supported yet: strata-proxy serves the memcached protocol "
     "without authentication. Bind a private address (-l) and firewall the port."},
    {'Y', "auth-file", true,
     "ASCII protocol authentication (-Y) is not supported yet: strata-proxy serves the memcached "
     "protocol without authentication. Bind a private address (-l) and firewall the port."},
    {'Z', "enable-ssl", false,
     "TLS (-Z) is not supported yet: terminate TLS in front of strata-proxy or keep it on a "
     "private network."},
    {'e', "memory-file", true,
     "a memory file (-e, restartable cache) is not supported yet: strata-proxy keeps items in "
     "memory only."},
};
#define NREFUSED (sizeof(refused) / sizeof(refused[0]))

/* Long-only command-line actions. */
enum {
    ACT_CONFIG = 256,
    ACT_CHECK,
    ACT_DESCRIBE,
    ACT_HELP = 'h',
    ACT_VERSION = 'V',
    REFUSED_BASE = 384,
    OPT_BASE = 512
};

static const char *type_name(enum opt_type t)
{
    switch (t) {
    case T_UINT:
    case T_POWER: return "integer";
    case T_SIZE: return "size";
    case T_BOOL:
    case T_NBOOL: return "boolean";
    case T_STR: return "string";
    case T_COUNT: return "level";
    case T_CHAR: return "char";
    case T_FACTOR: return "number";
    case T_OCTAL: return "octal";
    case T_EXT: return "list";
    case T_POLICY: return "policy";
    }
    return "?";
}

static bool parse_size(const char *arg, size_t unit, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    if (errno != 0 || end == arg || arg[0] == '-')
        return false;
    switch (*end) {
    case '\0': break;
    case 'k':
    case 'K':
        unit = KB;
        end++;
        break;
    case 'm':
    case 'M':
        unit = MB;
        end++;
        break;
    case 'g':
    case 'G':
        unit = (size_t)1 << 30;
        end++;
        break;
    default: return false;
    }
    if (*end != '\0' || v > UINT64_MAX / unit)
        return false;
    *out = (uint64_t)v * unit;
    return true;
}

static bool parse_bool(const char *arg, bool *out)
{
    static const char *const yes[] = {"1", "yes", "true", "on"};
    static const char *const no[] = {"0", "no", "false", "off"};
    for (unsigned i = 0; i < 4; i++) {
        if (strcasecmp(arg, yes[i]) == 0)
            return (*out = true, true);
        if (strcasecmp(arg, no[i]) == 0)
            return (*out = false, true);
    }
    return false;
}

/* Sets option d from text; on failure writes a message into err. */
static bool opt_set(struct settings *s, const struct opt_def *d, const char *val, char *err,
                    size_t errlen)
{
    char *field = (char *)s + d->offset;
    uint64_t v;
    switch (d->type) {
    case T_UINT:
    case T_POWER:
    case T_COUNT: {
        char *end;
        errno = 0;
        unsigned long long u = strtoull(val, &end, 10);
        bool zero_ok = d->type == T_POWER && u == 0;
        if (errno != 0 || end == val || *end != '\0' || val[0] == '-' || (u < d->min && !zero_ok) ||
            u > d->max) {
            snprintf(err, errlen, "invalid %s '%s' (%s%llu..%llu)", d->name, val,
                     d->type == T_POWER ? "0 or " : "", (unsigned long long)d->min,
                     (unsigned long long)d->max);
            return false;
        }
        *(unsigned *)field = (unsigned)u;
        return true;
    }
    case T_SIZE:
        if (!parse_size(val, d->unit, &v) || v < d->min || v > d->max) {
            snprintf(err, errlen, "invalid %s '%s' (%llu..%llu bytes; k/m/g suffixes)", d->name,
                     val, (unsigned long long)d->min, (unsigned long long)d->max);
            return false;
        }
        *(size_t *)field = (size_t)v;
        return true;
    case T_BOOL:
    case T_NBOOL:
        if (!parse_bool(val, (bool *)field)) {
            snprintf(err, errlen, "invalid %s '%s' (yes or no)", d->name, val);
            return false;
        }
        if (d->type == T_NBOOL)
            *(bool *)field = !*(bool *)field;
        return true;
    case T_CHAR:
        if (val[0] == '\0') {
            snprintf(err, errlen, "invalid %s: no delimiter specified", d->name);
            return false;
        }
        *field = val[0];
        return true;
    case T_FACTOR: {
        char *end;
        errno = 0;
        double f = strtod(val, &end);
        if (errno != 0 || end == val || *end != '\0' || !(f > 1.0) || f > 1000.0) {
            snprintf(err, errlen, "invalid %s '%s' (a number above 1)", d->name, val);
            return false;
        }
        *(double *)field = f;
        return true;
    }
    case T_OCTAL: {
        char *end;
        errno = 0;
        unsigned long m = strtoul(val, &end, 8);
        if (errno != 0 || end == val || *end != '\0' || val[0] == '-' || m > d->max) {
            snprintf(err, errlen, "invalid %s '%s' (octal, 0..%llo)", d->name, val,
                     (unsigned long long)d->max);
            return false;
        }
        *(unsigned *)field = (unsigned)m;
        return true;
    }
    case T_EXT: return settings_ext_apply(s, val, err, errlen);
    case T_POLICY: return policy_spec_add_flag(&s->policy_spec, val, err, errlen);
    case T_STR: {
        if (val[0] == '\0' || strlen(val) > 4096) {
            snprintf(err, errlen, "invalid %s '%s'", d->name, val);
            return false;
        }
        char *copy = strdup(val);
        if (copy == NULL) {
            snprintf(err, errlen, "out of memory");
            return false;
        }
        free(*(char **)field);
        *(char **)field = copy;
        return true;
    }
    }
    return false;
}

void settings_init(struct settings *s)
{
    char err[256];
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].def != NULL && !opt_set(s, &opts[i], opts[i].def, err, sizeof(err)))
            abort(); /* a default outside its own bounds is a programming error */
    s->lru_crawler = true;
    s->lru_crawler_sleep = 100; /* memcached's default, microseconds */
    s->watcher_logbuf_size = WATCH_LOGBUF_DEFAULT;
}

void settings_deinit(struct settings *s)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].type == T_STR) {
            char **p = (char **)((char *)s + opts[i].offset);
            free(*p);
            *p = NULL;
        }
    free(s->config_path);
    s->config_path = NULL;
    free(s->policy_spec);
    s->policy_spec = NULL;
    policies_free(&s->policies);
    free(s->notes);
    s->notes = NULL;
}

bool settings_add_note(struct settings *s, const char *note)
{
    size_t have = s->notes != NULL ? strlen(s->notes) : 0, n = strlen(note);
    for (const char *p = s->notes; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        if ((size_t)(nl - p) == n && memcmp(p, note, n) == 0)
            return true; /* given twice: one line is enough */
        p = nl + 1;
    }
    char *grown = realloc(s->notes, have + n + 2);
    if (grown == NULL)
        return false;
    memcpy(grown + have, note, n);
    grown[have + n] = '\n';
    grown[have + n + 1] = '\0';
    s->notes = grown;
    return true;
}

void settings_log_notes(const struct settings *s)
{
    for (const char *p = s->notes; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        log_warn("%.*s", (int)(nl - p), p);
        p = nl + 1;
    }
}

static void long_name(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s", name);
    for (char *p = buf; *p; p++)
        if (*p == '_')
            *p = '-';
}

void settings_usage(FILE *out)
{
    fprintf(out,
            "strata-proxy %s - memcached-compatible caching proxy\n\n"
            "usage: strata-proxy [options]\n",
            STRATA_VERSION);
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt_def *d = &opts[i];
        char lname[64], left[96];
        long_name(lname, sizeof(lname), d->name);
        if (d->flag)
            snprintf(left, sizeof(left), "-%c, --%s%s%s", d->flag, lname, d->arg ? "=" : "",
                     d->arg ? d->arg : "");
        else
            snprintf(left, sizeof(left), "    --%s%s%s", lname, d->arg ? "=" : "",
                     d->arg ? d->arg : "");
        fprintf(out, "  %-32s %s", left, d->desc);
        if (d->def != NULL && d->type != T_BOOL && d->type != T_NBOOL && d->type != T_COUNT &&
            d->type != T_EXT && d->type != T_POLICY)
            fprintf(out, " (default: %s)", d->def);
        fputc('\n', out);
    }
    for (size_t i = 0; i < NREFUSED; i++) {
        char left[64];
        snprintf(left, sizeof(left), "-%c, --%s%s", refused[i].flag, refused[i].name,
                 refused[i].has_arg ? "=<file>" : "");
        fprintf(out, "  %-32s %s\n", left, "refused: not supported yet (exit 64)");
    }
    fprintf(out, "  %-32s %s\n", "    --config=<file>",
            "read options from an INI file, section [proxy]; flags override it");
    fprintf(out, "  %-32s %s\n", "    --check-config", "validate the options and exit");
    fprintf(out, "  %-32s %s\n", "    --describe-config", "list every option and exit");
    fprintf(out, "  %-32s %s\n", "-h, --help", "print this help and exit");
    fprintf(out, "  %-32s %s\n", "-V, --version", "print the version and exit");
}

void settings_describe(FILE *out)
{
    fprintf(out, "# name\tflag\ttype\tdefault\tmin\tmax\tdescription\n");
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt_def *d = &opts[i];
        char flag[4] = "-";
        if (d->flag)
            snprintf(flag, sizeof(flag), "-%c", d->flag);
        if (d->type == T_UINT || d->type == T_POWER || d->type == T_SIZE || d->type == T_COUNT)
            fprintf(out, "%s\t%s\t%s\t%s\t%llu\t%llu\t%s\n", d->name, flag, type_name(d->type),
                    d->def ? d->def : "-", (unsigned long long)d->min, (unsigned long long)d->max,
                    d->desc);
        else
            fprintf(out, "%s\t%s\t%s\t%s\t-\t-\t%s\n", d->name, flag, type_name(d->type),
                    d->def ? d->def : "-", d->desc);
    }
}

static const struct opt_def *find_opt(const char *name)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strcmp(opts[i].name, name) == 0)
            return &opts[i];
    return NULL;
}

/* Bookkeeping after an option was given (file or flag, not a default). */
static void mark_given(struct settings *s, const struct opt_def *d)
{
    if (d->offset == OFF(item_size_max) && d->type == T_SIZE)
        s->item_size_given = true;
    if (d->type == T_CHAR && d->offset == OFF(detail_delimiter))
        s->detail_enabled = true; /* memcached: -D turns detail collection on */
}

bool settings_set(struct settings *s, const char *name, const char *value, char *err, size_t errlen)
{
    const struct opt_def *d = find_opt(name);
    if (d == NULL) {
        snprintf(err, errlen, "unknown option '%s'", name);
        return false;
    }
    if (!opt_set(s, d, value, err, errlen))
        return false;
    mark_given(s, d);
    return true;
}

struct ini_ctx {
    struct settings *s;
    const char *path;
    char err[300];
};

/* [policy] (the default) or [policy "PREFIX"]: the prefix in *prefix. */
static bool policy_section(const char *section, char *prefix, size_t cap)
{
    if (strcmp(section, "policy") == 0) {
        prefix[0] = '\0';
        return true;
    }
    size_t n = strlen(section);
    if (strncmp(section, "policy \"", 8) != 0 || n < 10 || section[n - 1] != '"' || n - 9 >= cap)
        return false;
    snprintf(prefix, cap, "%.*s", (int)(n - 9), section + 8);
    return strchr(prefix, '"') == NULL;
}

static int on_ini(void *arg, const char *section, const char *name, const char *value)
{
    struct ini_ctx *ctx = arg;
    char err[256];
    char prefix[256];
    if (policy_section(section, prefix, sizeof(prefix))) {
        if (!policy_spec_add(&ctx->s->policy_spec, prefix, name, value)) {
            snprintf(ctx->err, sizeof(ctx->err), "out of memory");
            return 0;
        }
        return 1;
    }
    if (strcmp(section, "proxy") != 0) {
        snprintf(ctx->err, sizeof(ctx->err), "unknown section [%s]", section);
        return 0;
    }
    const struct opt_def *d = find_opt(name);
    if (d == NULL) {
        snprintf(ctx->err, sizeof(ctx->err), "unknown option '%s'", name);
        return 0;
    }
    if (!opt_set(ctx->s, d, value, err, sizeof(err))) {
        snprintf(ctx->err, sizeof(ctx->err), "%s", err);
        return 0;
    }
    mark_given(ctx->s, d);
    return 1;
}

static int load_config(struct settings *s, const char *path)
{
    struct ini_ctx ctx = {s, path, ""};
    int line = ini_parse(path, on_ini, &ctx);
    if (line == 0)
        return 0;
    if (line < 0)
        fprintf(stderr, "strata-proxy: cannot read config %s: %s\n", path, strerror(errno));
    else if (ctx.err[0] != '\0')
        fprintf(stderr, "strata-proxy: %s:%d: %s\n", path, line, ctx.err);
    else
        fprintf(stderr, "strata-proxy: %s:%d: syntax error\n", path, line);
    return EX_CONFIG;
}

bool settings_reread_peers(const struct settings *s, char **peers, char *err, size_t errlen)
{
    *peers = NULL;
    if (s->config_path == NULL) {
        snprintf(err, errlen, "no --config file to read");
        return false;
    }
    if (s->peers_flag) {
        snprintf(err, errlen,
                 "--peers was given on the command line, which the file cannot change");
        return false;
    }
    struct settings fresh;
    settings_init(&fresh);
    struct ini_ctx ctx = {&fresh, s->config_path, ""};
    int line = ini_parse(s->config_path, on_ini, &ctx);
    bool ok = line == 0;
    if (line < 0)
        snprintf(err, errlen, "cannot read %s: %s", s->config_path, strerror(errno));
    else if (line > 0)
        snprintf(err, errlen, "%s:%d: %s", s->config_path, line,
                 ctx.err[0] != '\0' ? ctx.err : "syntax error");
    if (ok && fresh.peers != NULL && fresh.peers[0] != '\0') {
        *peers = strdup(fresh.peers);
        if (*peers == NULL) {
            snprintf(err, errlen, "out of memory");
            ok = false;
        }
    }
    settings_deinit(&fresh);
    return ok;
}

static int usage_error(const char *msg)
{
    fprintf(stderr, "strata-proxy: %s\nTry 'strata-proxy --help' for the options.\n", msg);
    return EX_USAGE;
}

static bool one_of(const char *v, const char *a, const char *b, const char *c)
{
    return strcmp(v, a) == 0 || strcmp(v, b) == 0 || strcmp(v, c) == 0;
}

/* A seed list holds at least one host:port, and nothing else. */
static bool seeds_valid(const char *list)
{
    if (list == NULL || *list == '\0')
        return false;
    for (const char *p = list; p != NULL;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        if (colon == NULL || colon == p || colon == p + len - 1 || len > 512)
            return false;
        for (const char *d = colon + 1; d < p + len; d++)
            if (*d < '0' || *d > '9')
                return false;
        p = comma != NULL ? comma + 1 : NULL;
    }
    return true;
}

/* The tiers' options: backend, data_dir, sync, the policies. */
static int validate_tiers(struct settings *s)
{
    if (!one_of(s->backend, "none", "local", "cluster")) {
        fprintf(stderr, "strata-proxy: backend '%s': none, local or cluster\n", s->backend);
        return EX_CONFIG;
    }
    if (strcmp(s->backend, "cluster") == 0 && !seeds_valid(s->cluster_seeds)) {
        fprintf(stderr, "strata-proxy: backend = cluster needs cluster_seeds (--cluster-seeds "
                        "host:port,...: the nodes' cluster ports)\n");
        return EX_CONFIG;
    }
    if (strcmp(s->backend, "local") == 0 && s->data_dir == NULL) {
        fprintf(stderr, "strata-proxy: backend = local needs data_dir (--data-dir)\n");
        return EX_CONFIG;
    }
    bool l2 = s->l2_servers != NULL && s->l2_servers[0] != '\0';
    if (s->peers != NULL && s->peers[0] != '\0' && !l2) {
        fprintf(stderr, "strata-proxy: peers needs l2_servers (docs/L2.md)\n");
        return EX_CONFIG;
    }
    if (!one_of(s->l1_opt, "on", "off", "on")) {
        fprintf(stderr, "strata-proxy: l1 '%s': on or off\n", s->l1_opt);
        return EX_CONFIG;
    }
    s->l1 = strcmp(s->l1_opt, "on") == 0;
    if (l2 && strcmp(s->backend, "local") == 0) {
        /* docs/L2.md: an engine on the same box answers faster than a
         * network round trip to the pool */
        fprintf(stderr, "strata-proxy: l2_servers works with backend = none or cluster "
                        "(docs/L2.md)\n");
        return EX_CONFIG;
    }
    if (l2 && strcmp(s->backend, "cluster") == 0 && !s->l1) {
        fprintf(stderr, "strata-proxy: l1 = off is routing mode: backend = none\n");
        return EX_CONFIG;
    }
    if (s->peer_port != 0 &&
        (strcmp(s->backend, "local") == 0 || !s->l1 || s->peer_port == s->port)) {
        fprintf(stderr, "strata-proxy: peer_port needs l1 = on, backend = none or cluster "
                        "(docs/L2.md) and a port of its own\n");
        return EX_CONFIG;
    }
    if (!s->l1 && !l2) {
        fprintf(stderr, "strata-proxy: l1 = off needs l2_servers (routing mode)\n");
        return EX_CONFIG;
    }
    if (strcmp(s->journal_sync, "always") != 0 && strcmp(s->journal_sync, "interval") != 0) {
        fprintf(stderr, "strata-proxy: journal_sync '%s': always or interval\n", s->journal_sync);
        return EX_CONFIG;
    }
    if (!one_of(s->sync, "always", "interval", "none")) {
        fprintf(stderr, "strata-proxy: sync '%s': always, interval or none\n", s->sync);
        return EX_CONFIG;
    }
    bool backend = strcmp(s->backend, "none") != 0;
    enum tier_mode mode = backend ? MODE_WRITE_THROUGH : MODE_CACHE_ONLY;
    if (s->mode != NULL && !policy_mode_parse(s->mode, &mode)) {
        fprintf(stderr,
                "strata-proxy: mode '%s': cache-only, read-through, write-through, "
                "write-behind or write-around\n",
                s->mode);
        return EX_CONFIG;
    }
    char err[300];
    policies_free(&s->policies);
    if (!policies_build(s->policy_spec, mode, &s->policies, err, sizeof(err))) {
        fprintf(stderr, "strata-proxy: %s\n", err);
        return EX_CONFIG;
    }
    if (!backend && !policies_cache_only(s->policies)) {
        fprintf(stderr, "strata-proxy: a policy other than cache-only needs a backend "
                        "(backend = local or cluster)\n");
        return EX_CONFIG;
    }
    return -1;
}

/* Cross-option rules, after file and flags. */
static int validate(struct settings *s)
{
    int rc = validate_tiers(s);
    if (rc >= 0)
        return rc;
    if (s->udp_port != 0) {
        fprintf(stderr,
                "strata-proxy: UDP is not supported (got -U %u); memcached's UDP "
                "protocol is a traffic amplification risk and Strata only serves TCP. "
                "Use -U 0 or leave it out.\n",
                s->udp_port);
        return EX_USAGE;
    }
    if (s->item_size_given && s->item_size_max > s->max_bytes / 2) {
        fprintf(stderr, "strata-proxy: max_item_size %zu is over half of memory_limit %zu\n",
                s->item_size_max, s->max_bytes);
        return EX_CONFIG;
    }
    if (s->item_size_max > s->max_bytes)
        s->item_size_max = s->max_bytes;
    bool ok = true;
    if (s->large_pages)
        ok &= settings_add_note(s, "-L (large pages): does not apply to strata, whose item "
                                   "memory is not one preallocated region");
    if (s->chunk_size != 48)
        ok &= settings_add_note(s, "-n (slab min size): does not apply to strata's fixed size "
                                   "classes; stats settings reports it");
    if (s->growth_factor != 1.25)
        ok &= settings_add_note(s, "-f (slab growth factor): does not apply to strata's fixed "
                                   "size classes; stats settings reports it");
    if (!ok) {
        fprintf(stderr, "strata-proxy: out of memory\n");
        return EX_OSERR;
    }
    return -1;
}

int settings_parse(struct settings *s, int argc, char **argv)
{
    struct option longopts[NOPTS + NREFUSED + 6];
    char names[NOPTS][48];
    char shortopts[3 * (NOPTS + NREFUSED) + 8] = ":hV";
    size_t sp = strlen(shortopts);
    for (size_t i = 0; i < NOPTS; i++) {
        long_name(names[i], sizeof(names[i]), opts[i].name);
        bool has_arg = opts[i].type != T_BOOL && opts[i].type != T_NBOOL && opts[i].type != T_COUNT;
        longopts[i] = (struct option){names[i], has_arg ? required_argument : no_argument, NULL,
                                      (int)(OPT_BASE + i)};
        if (opts[i].flag) {
            shortopts[sp++] = (char)opts[i].flag;
            if (has_arg)
                shortopts[sp++] = ':';
        }
    }
    size_t n = NOPTS;
    for (size_t i = 0; i < NREFUSED; i++) {
        shortopts[sp++] = (char)refused[i].flag;
        if (refused[i].has_arg)
            shortopts[sp++] = ':';
        longopts[n++] =
            (struct option){refused[i].name, refused[i].has_arg ? required_argument : no_argument,
                            NULL, (int)(REFUSED_BASE + i)};
    }
    shortopts[sp] = '\0';
    longopts[n++] = (struct option){"config", required_argument, NULL, ACT_CONFIG};
    longopts[n++] = (struct option){"check-config", no_argument, NULL, ACT_CHECK};
    longopts[n++] = (struct option){"describe-config", no_argument, NULL, ACT_DESCRIBE};
    longopts[n++] = (struct option){"help", no_argument, NULL, ACT_HELP};
    longopts[n++] = (struct option){"version", no_argument, NULL, ACT_VERSION};
    longopts[n] = (struct option){NULL, 0, NULL, 0};

    /* Pass 1: actions and --config, so the file is applied before flags. */
    bool check = false;
    int opt;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        char msg[300];
        switch (opt) {
        case ACT_HELP: settings_usage(stdout); return 0;
        case ACT_VERSION:
            printf("strata-proxy %s (memcached protocol %s)\n", STRATA_VERSION, MC_COMPAT_VERSION);
            return 0;
        case ACT_DESCRIBE: settings_describe(stdout); return 0;
        case ACT_CHECK: check = true; break;
        case ACT_CONFIG:
            free(s->config_path);
            s->config_path = strdup(optarg);
            break;
        case ':':
            snprintf(msg, sizeof(msg), "option '%s' needs a value", argv[optind - 1]);
            return usage_error(msg);
        case 'S':
        case 'Y':
        case 'Z':
        case 'e':
            for (size_t i = 0; i < NREFUSED; i++)
                if (refused[i].flag == opt)
                    return usage_error(refused[i].why);
            break;
        case '?':
            if (optopt != 0 && optopt < 256)
                snprintf(msg, sizeof(msg), "unknown option '-%c'", optopt);
            else
                snprintf(msg, sizeof(msg), "unknown option '%s'", argv[optind - 1]);
            return usage_error(msg);
        default:
            if (opt >= REFUSED_BASE && opt < REFUSED_BASE + (int)NREFUSED)
                return usage_error(refused[opt - REFUSED_BASE].why);
            break;
        }
    }
    if (optind < argc) {
        char msg[300];
        snprintf(msg, sizeof(msg), "unexpected argument '%s'", argv[optind]);
        return usage_error(msg);
    }
    if (s->config_path != NULL) {
        int rc = load_config(s, s->config_path);
        if (rc != 0)
            return rc;
    }

    /* Pass 2: flags override the file. */
    optind = 1;
    while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        const struct opt_def *d = NULL;
        if (opt >= OPT_BASE && opt < OPT_BASE + (int)NOPTS)
            d = &opts[opt - OPT_BASE];
        for (size_t i = 0; d == NULL && i < NOPTS; i++)
            if (opts[i].flag == opt)
                d = &opts[i];
        if (d == NULL)
            continue;
        char err[256];
        if (d->type == T_COUNT) {
            unsigned *c = (unsigned *)((char *)s + d->offset);
            if (*c < d->max)
                (*c)++;
        } else if (d->type == T_BOOL || d->type == T_NBOOL) {
            *(bool *)((char *)s + d->offset) = d->type == T_BOOL;
        } else if (!opt_set(s, d, optarg, err, sizeof(err))) {
            return usage_error(err);
        }
        mark_given(s, d);
        if (d->offset == OFF(peers))
            s->peers_flag = true;
    }
    int rc = validate(s);
    if (rc >= 0)
        return rc;
    if (check) {
        if (s->notes != NULL)
            fputs(s->notes, stdout); /* what start-up would log */
        printf("configuration ok\n");
        return 0;
    }
    return -1;
}
