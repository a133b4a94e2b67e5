/*
 * main.c - strata-node: flags, the node's identity and clock, the engine,
 * and memcached's protocol on the front end with the local executor
 * (server/kv.h). One node serves its own data; the cluster (ring,
 * replication, hints, repair) is being built on top (docs/NODE.md).
 *
 * Setup order: log → clock → identity (refuses a foreign or orphaned data
 * directory) → HLC floor from the stored bound, a new bound stored before
 * any write → engine → listener → workers → accept. Teardown in reverse;
 * the bound is stored once a second while running.
 */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <ini.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/hlc.h"
#include "common/log.h"
#include "common/mc_text.h"
#include "common/mem.h"
#include "common/phi.h"
#include "common/ring.h"
#include "frontend/fe.h"
#include "frontend/listener.h"
#include "frontend/worker.h"
#include "server/cluster.h"
#include "server/coord.h"
#include "server/gossip.h"
#include "server/handoff.h"
#include "server/identity.h"
#include "server/kv.h"
#include "server/members.h"
#include "server/repair.h"
#include "server/version.h"
#include "storage/env.h"
#include "storage/include/lsm.h"

/* The HLC bound is stored every second with this much lease ahead
 * (docs/CLOCKS.md: at least the store interval plus the skew bound). */
#define HLC_STORE_INTERVAL_MS 1000
#define HLC_LEASE_MS 2500

/* The engine's tombstone grace (lsm_options' default): hints and repair
 * trees must use the same. */
#define NODE_GC_GRACE_S (10ull * 86400)

struct node_settings {
    char *data_dir;
    char *cluster_name;
    char *listen_addr;
    unsigned port;
    unsigned cluster_port;
    unsigned threads;
    unsigned max_conns;
    unsigned vnodes;
    unsigned replicas;
    enum wire_cl read_cl, write_cl;
    unsigned timeout_ms;
    unsigned read_repair_pct;
    unsigned long long hint_window_s, hint_max_bytes, hint_rate;
    unsigned repair_interval_s, repair_depth;
    unsigned long long repair_rate;
    char *seeds; /* comma-separated cluster addresses */
    char *rack;  /* NULL: none */
    double phi_threshold;
    size_t max_value_len;
    enum lsm_sync_mode sync;
    unsigned verbose;
    unsigned long long test_fail_writes_after; /* tests only: 0 = never */
    long long test_clock_offset_ms;            /* tests only: the HLC's skew */
    unsigned test_gossip_interval_ms;          /* tests only: 0 = GOSSIP_INTERVAL_MS */
    bool check_config;                         /* --check-config: parse, then exit */
    char **config_argv; /* the config file as options; strings above point into it */
    int config_argc;
};

struct node {
    struct node_settings s;
    struct identity *id;
    struct hlc clock;
    struct lsm_db *db;
    struct lsm_env *fault_env; /* --test-fail-writes-after only */
    struct kv *kv;
    struct coord *coord;
    struct handoff *handoff;
    struct repair *repair;
    struct fe_exec_ops xo; /* kv's operations with the coordinator's */
    struct cluster *cluster;
    struct gossip *gossip;
    struct members *members;
    struct fe fe;
    struct event_base *base;
    struct event *sigterm, *sigint, *tick;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: strata-node [options]\n"
            "  -d, --data-dir <dir>       node identity and data (default /var/lib/strata/node)\n"
            "  -C, --cluster-name <name>  cluster this node belongs to (default strata)\n"
            "  -l, --listen <addr>        interface to bind (default 127.0.0.1)\n"
            "  -p, --port <num>           memcached protocol port (default 11311)\n"
            "  -P, --cluster-port <num>   internal protocol port (default 7311)\n"
            "  -t, --threads <num>        worker threads (default 4)\n"
            "  -c, --conn-limit <num>     client connections (default 1024)\n"
            "  -I, --max-item-size <num>  largest value, k/m suffixes (default 1m, at most 128m)\n"
            "      --vnodes <num>         ring tokens chosen at first start (default 16)\n"
            "  -s, --seeds <list>         seed cluster addresses host:port,... (default none)\n"
            "  -N, --replicas <num>       replication factor (default 3)\n"
            "      --rack <name>          this node's rack: replicas go to distinct racks\n"
            "                             first (default none)\n"
            "      --phi-threshold <x>    failure detector: a peer is down at phi >= x,\n"
            "                             suspect at x/2 (default 8)\n"
            "      --read-consistency <l> one | quorum | all (default quorum)\n"
            "      --write-consistency <l> any | one | quorum | all (default quorum)\n"
            "      --request-timeout <ms> a replica's answer, before SERVER_ERROR (default 2000)\n"
            "      --read-repair-chance <pct> reads that also check the other replicas\n"
            "                             (default 10)\n"
            "      --hint-window <s>      hints older than this are dropped (default 10800)\n"
            "      --hint-max-bytes <n>   hint store per down node, k/m suffixes (default 1024m)\n"
            "      --hint-rate <n>        replay bytes per second per node (default 8m)\n"
            "      --repair-interval <s>  a full anti-entropy cycle this often; 0: only on\n"
            "                             request (default 3600)\n"
            "      --repair-rate <n>      repair bytes per second, k/m suffixes (default 8m)\n"
            "      --repair-depth <d>     Merkle tree depth per token range (default 10)\n"
            "      --sync <mode>          always | interval | none (default interval)\n"
            "  -v, -vv                    log connection events / every command\n"
            "      --config <file>        options as 'name = value' lines (the long names;\n"
            "                             flags given too win); --check-config: exit after\n"
            "      --test-clock-offset-ms <n>  tests only: the hybrid clock reads the wall\n"
            "                             clock plus n ms (negative: behind)\n"
            "      --test-gossip-interval-ms <n>  tests only: gossip rounds this often, the\n"
            "                             failure detector scaled alike (default 1000)\n"
            "      --test-fail-writes-after <n>  tests only: the engine's n-th file write\n"
            "                             from start fails, and every one after it\n"
            "  -V, --version              print the version and exit\n"
            "  -h, --help                 this text\n");
}

static bool parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || v > max)
        return false;
    if (*end == 'k' || *end == 'K')
        v <<= 10, end++;
    else if (*end == 'm' || *end == 'M')
        v <<= 20, end++;
    if (*end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

static const struct option longs[] = {
    {"data-dir", required_argument, NULL, 'd'},
    {"cluster-name", required_argument, NULL, 'C'},
    {"listen", required_argument, NULL, 'l'},
    {"port", required_argument, NULL, 'p'},
    {"cluster-port", required_argument, NULL, 'P'},
    {"threads", required_argument, NULL, 't'},
    {"conn-limit", required_argument, NULL, 'c'},
    {"max-item-size", required_argument, NULL, 'I'},
    {"vnodes", required_argument, NULL, 1000},
    {"seeds", required_argument, NULL, 's'},
    {"replicas", required_argument, NULL, 'N'},
    {"sync", required_argument, NULL, 1001},
    {"test-fail-writes-after", required_argument, NULL, 1002},
    {"config", required_argument, NULL, 1003},
    {"check-config", no_argument, NULL, 1004},
    {"read-consistency", required_argument, NULL, 1005},
    {"write-consistency", required_argument, NULL, 1006},
    {"request-timeout", required_argument, NULL, 1007},
    {"read-repair-chance", required_argument, NULL, 1008},
    {"hint-window", required_argument, NULL, 1009},
    {"hint-max-bytes", required_argument, NULL, 1010},
    {"hint-rate", required_argument, NULL, 1011},
    {"repair-interval", required_argument, NULL, 1012},
    {"repair-rate", required_argument, NULL, 1013},
    {"repair-depth", required_argument, NULL, 1014},
    {"rack", required_argument, NULL, 1017},
    {"phi-threshold", required_argument, NULL, 1018},
    {"test-clock-offset-ms", required_argument, NULL, 1015},
    {"test-gossip-interval-ms", required_argument, NULL, 1016},
    {"verbose", no_argument, NULL, 'v'},
    {"version", no_argument, NULL, 'V'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static const char *option_name(int c);

/* Applies options (argv[0] is skipped) from the command line (origin
 * NULL) or a config file; returns -1 to go on, or an exit code. */
static int parse_args(struct node_settings *s, int argc, char **argv, const char *origin)
{
    int c;
    optind = 0; /* a fresh scan (glibc), also for the second argv */
    unsigned long long v;
    while ((c = getopt_long(argc, argv, "d:C:l:p:P:t:c:I:s:N:vVh", longs, NULL)) != -1) {
        switch (c) {
        case 'd': s->data_dir = optarg; break;
        case 'C': s->cluster_name = optarg; break;
        case 'l': s->listen_addr = optarg; break;
        case 'p':
            if (!parse_uint(optarg, 65535, &v) || v == 0)
                goto bad;
            s->port = (unsigned)v;
            break;
        case 'P':
            if (!parse_uint(optarg, 65535, &v) || v == 0)
                goto bad;
            s->cluster_port = (unsigned)v;
            break;
        case 't':
            if (!parse_uint(optarg, 64, &v) || v == 0)
                goto bad;
            s->threads = (unsigned)v;
            break;
        case 'c':
            if (!parse_uint(optarg, 1000000, &v) || v == 0)
                goto bad;
            s->max_conns = (unsigned)v;
            break;
        case 'I':
            if (!parse_uint(optarg, LSM_MAX_VALUE_LEN_LIMIT, &v) || v < 1024)
                goto bad;
            s->max_value_len = (size_t)v;
            break;
        case 's': s->seeds = optarg; break;
        case 'N':
            if (!parse_uint(optarg, 16, &v) || v == 0)
                goto bad;
            s->replicas = (unsigned)v;
            break;
        case 1000:
            if (!parse_uint(optarg, 1024, &v) || v == 0)
                goto bad;
            s->vnodes = (unsigned)v;
            break;
        case 1001:
            if (strcmp(optarg, "always") == 0)
                s->sync = LSM_SYNC_ALWAYS;
            else if (strcmp(optarg, "interval") == 0)
                s->sync = LSM_SYNC_INTERVAL;
            else if (strcmp(optarg, "none") == 0)
                s->sync = LSM_SYNC_NONE;
            else
                goto bad;
            break;
        case 1002:
            if (!parse_uint(optarg, 1ull << 40, &v) || v == 0)
                goto bad;
            s->test_fail_writes_after = v;
            break;
        case 'v': s->verbose++; break;
        case 'V':
            printf("strata-node %s (memcached %s)\n", STRATA_VERSION, MC_COMPAT_VERSION);
            return 0;
        case 'h': usage(stdout); return 0;
        case 1005:
            if (!wire_cl_parse(optarg, &s->read_cl) || s->read_cl == WIRE_CL_ANY)
                goto bad;
            break;
        case 1006:
            if (!wire_cl_parse(optarg, &s->write_cl))
                goto bad;
            break;
        case 1007:
            if (!parse_uint(optarg, 3600000, &v) || v < 10)
                goto bad;
            s->timeout_ms = (unsigned)v;
            break;
        case 1008:
            if (!parse_uint(optarg, 100, &v))
                goto bad;
            s->read_repair_pct = (unsigned)v;
            break;
        case 1009:
            if (!parse_uint(optarg, 30ull * 86400, &v) || v == 0)
                goto bad;
            s->hint_window_s = v;
            break;
        case 1010:
            if (!parse_uint(optarg, 1ull << 40, &v) || v < (4u << 10))
                goto bad;
            s->hint_max_bytes = v;
            break;
        case 1011:
            if (!parse_uint(optarg, 1ull << 40, &v))
                goto bad;
            s->hint_rate = v;
            break;
        case 1012:
            if (!parse_uint(optarg, 30ull * 86400, &v))
                goto bad;
            s->repair_interval_s = (unsigned)v;
            break;
        case 1013:
            if (!parse_uint(optarg, 1ull << 40, &v))
                goto bad;
            s->repair_rate = v;
            break;
        case 1014:
            if (!parse_uint(optarg, 20, &v) || v == 0)
                goto bad;
            s->repair_depth = (unsigned)v;
            break;
        case 1015: {
            char *end;
            errno = 0;
            long long off = strtoll(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || off < -366LL * 86400000 ||
                off > 366LL * 86400000)
                goto bad;
            s->test_clock_offset_ms = off;
            break;
        }
        case 1016:
            if (!parse_uint(optarg, GOSSIP_INTERVAL_MS, &v) || v < 20)
                goto bad;
            s->test_gossip_interval_ms = (unsigned)v;
            break;
        case 1017:
            if (optarg[0] == '\0' || strlen(optarg) > RING_RACK_MAX)
                goto bad;
            s->rack = optarg;
            break;
        case 1018: {
            char *end;
            errno = 0;
            double x = strtod(optarg, &end);
            if (errno != 0 || end == optarg || *end != '\0' || !(x >= 1.0 && x <= 100.0))
                goto bad;
            s->phi_threshold = x;
            break;
        }
        case 1003: break; /* --config: read before the flags */
        case 1004: s->check_config = true; break;
        default: usage(stderr); return origin != NULL ? EX_CONFIG : EX_USAGE;
        }
        continue;
    bad:
        fprintf(stderr, "strata-node: %s%sinvalid value '%s' for %s\n", origin ? origin : "",
                origin ? ": " : "", optarg, option_name(c));
        return origin != NULL ? EX_CONFIG : EX_USAGE;
    }
    if (optind < argc) {
        fprintf(stderr, "strata-node: unexpected argument '%s'\n", argv[optind]);
        return EX_USAGE;
    }
    return -1;
}

/* The long name of option code c, for messages. */
static const char *option_name(int c)
{
    for (const struct option *o = longs; o->name != NULL; o++)
        if (o->val == c)
            return o->name;
    return "?";
}

/* The config file as an argument vector: `name = value` lines become
 * "--name=value" (underscores read as dashes), so a file and the flags set
 * options through one parser; the flags come after and win. */
struct config_args {
    const char *path;
    char **argv;
    int argc, cap;
    char bad[96]; /* why a line was refused (ini_parse gives its number) */
};

static int on_config(void *arg, const char *section, const char *name, const char *value)
{
    struct config_args *a = arg;
    char opt[64];
    snprintf(opt, sizeof(opt), "%s", name);
    for (char *p = opt; *p != '\0'; p++)
        if (*p == '_')
            *p = '-';
    const struct option *o = longs;
    while (o->name != NULL && strcmp(o->name, opt) != 0)
        o++;
    bool known = o->name != NULL && o->val != 1003 && o->val != 1004 && o->val != 'V' &&
                 o->val != 'h' && (section[0] == '\0' || strcmp(section, "node") == 0);
    if (!known) {
        if (section[0] != '\0' && strcmp(section, "node") != 0)
            snprintf(a->bad, sizeof(a->bad), "unknown section [%.64s]", section);
        else
            snprintf(a->bad, sizeof(a->bad), "unknown option '%.64s'", name);
        return 0;
    }
    unsigned long long times = 1;
    if (o->has_arg == no_argument && !parse_uint(value, 8, &times))
        times = 0; /* verbose = N; anything else fails below */
    for (unsigned long long i = 0; i < times || (o->has_arg != no_argument && i == 0); i++) {
        if (a->argc + 1 >= a->cap) {
            int cap = a->cap ? a->cap * 2 : 32;
            char **v = realloc(a->argv, (size_t)cap * sizeof(*v));
            if (v == NULL)
                return 0;
            a->argv = v;
            a->cap = cap;
        }
        char buf[4096];
        if (o->has_arg == no_argument)
            snprintf(buf, sizeof(buf), "--%s", o->name);
        else
            snprintf(buf, sizeof(buf), "--%s=%s", o->name, value);
        /* settings keep pointers into these strings: they live as long as
         * the process */
        a->argv[a->argc++] = strdup(buf);
        a->argv[a->argc] = NULL;
        if (o->has_arg != no_argument)
            break;
    }
    return 1;
}

/* Frees the config's argument vector (argv[0] is the program's). */
static void config_free(char **argv, int argc)
{
    if (argv == NULL)
        return;
    for (int i = 1; i < argc; i++)
        free(argv[i]);
    free(argv);
}

/* Reads --config FILE (if given) then the flags; -1 to go on, or an exit
 * code (--check-config: 0 once everything parsed). */
static int parse_flags(struct node_settings *s, int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            path = argv[i + 1];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            path = argv[i] + 9;
    }
    if (path != NULL) {
        struct config_args a = {.path = path};
        a.argv = calloc(2, sizeof(char *));
        a.cap = 2;
        a.argv[a.argc++] = argv[0];
        int line = ini_parse(path, on_config, &a);
        if (line < 0) {
            fprintf(stderr, "strata-node: cannot read %s\n", path);
            config_free(a.argv, a.argc);
            return EX_CONFIG;
        }
        if (line > 0) {
            fprintf(stderr, "strata-node: %s:%d: %s\n", path, line,
                    a.bad[0] ? a.bad : "not a 'name = value' line");
            config_free(a.argv, a.argc);
            return EX_CONFIG;
        }
        s->config_argv = a.argv; /* freed at exit: the settings point into it */
        s->config_argc = a.argc;
        int rc = parse_args(s, a.argc, a.argv, path);
        if (rc >= 0)
            return rc;
    }
    int rc = parse_args(s, argc, argv, NULL);
    if (rc >= 0)
        return rc;
    if (s->check_config) {
        printf("strata-node: %s: ok\n", path != NULL ? path : "the flags");
        return 0;
    }
    return -1;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct node *n = arg;
    log_info("signal %d: shutting down", (int)sig);
    event_base_loopbreak(n->base);
}

/* Once a second: the coarse clock, and the HLC bound stored ahead. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct node *n = arg;
    clock_tick();
    if (identity_store_hlc_bound(n->id, hlc_upper_bound(&n->clock, HLC_LEASE_MS)) != ST_OK)
        log_error("node: cannot store the clock bound in %s; writes continue under the "
                  "bound stored last",
                  n->s.data_dir);
}

static void front_end_setup(struct node *n)
{
    n->fe.settings = (struct fe_settings){
        .listen_addr = n->s.listen_addr,
        .port = n->s.port,
        .backlog = 1024,
        .max_conns = n->s.max_conns,
        .threads = n->s.threads,
        .reqs_per_event = 20,
        .out_max = 4u << 20,
        .drain_timeout = 60,
        .shutdown_timeout = 5,
        /* flush_all never empties persistent data (docs/NODE.md) */
        .flush_enabled = false,
    };
    n->fe.xo = &kv_exec_ops;
}

/* Identity, clock and engine; an exit code on failure. */
static int open_data(struct node *n)
{
    struct identity_load_info info;
    enum st_status st =
        identity_load_or_create(n->s.data_dir, n->s.cluster_name, n->s.vnodes, &n->id, &info);
    if (st != ST_OK) {
        fprintf(stderr, "strata-node: cannot use data directory %s: %s\n", n->s.data_dir,
                identity_result_name(info.result));
        return st == ST_INVAL ? EX_CONFIG : st == ST_CORRUPT ? EX_DATAERR : EX_IOERR;
    }
    char idtxt[IDENTITY_ID_STR_LEN];
    identity_format_id(identity_id(n->id), idtxt);
    log_info("node %s (short id %u, generation %llu) in %s, cluster %s", idtxt,
             (unsigned)identity_short_id(n->id), (unsigned long long)identity_generation(n->id),
             n->s.data_dir, n->s.cluster_name);

    struct hlc_options ho;
    hlc_options_default(&ho);
    ho.offset_ms = n->s.test_clock_offset_ms;
    hlc_init(&n->clock, &ho);
    /* A restart within the lease: wait until the wall clock passes the
     * stored bound, so the first versions are not ahead of it (peers would
     * refuse them beyond the skew bound). A clock set back further is not
     * waited for: versions then run ahead until it catches up. */
    uint64_t bound = identity_hlc_bound(n->id);
    uint64_t wall = hlc_wall_ms(&n->clock), floor_ms = hlc_physical(bound);
    if (bound != 0 && wall > floor_ms + NODE_GC_GRACE_S * 1000) {
        /* Tombstones of deletes it missed may be purged everywhere by now:
         * its old values would come back through repair. */
        fprintf(stderr,
                "strata-node: this node was last up %llu days ago, longer than gc_grace (%llu "
                "days): deleted keys could come back from its data; to rebuild it, empty %s "
                "and start it again (it joins with a new id and repair fills it)\n",
                (unsigned long long)((wall - floor_ms) / 86400000),
                (unsigned long long)(NODE_GC_GRACE_S / 86400), n->s.data_dir);
        return EX_DATAERR;
    }
    if (floor_ms > wall && floor_ms - wall <= HLC_LEASE_MS) {
        log_info("node: waiting %llu ms for the clock to pass its stored bound",
                 (unsigned long long)(floor_ms - wall));
        usleep((useconds_t)(floor_ms - wall + 1) * 1000);
    } else if (floor_ms > wall) {
        log_warn("node: the clock is %llu ms behind the bound stored before; versions run "
                 "ahead of it until it catches up",
                 (unsigned long long)(floor_ms - wall));
    }
    hlc_floor(&n->clock, bound);
    if (identity_store_hlc_bound(n->id, hlc_upper_bound(&n->clock, HLC_LEASE_MS)) != ST_OK) {
        fprintf(stderr, "strata-node: cannot store the clock bound in %s\n", n->s.data_dir);
        return EX_IOERR;
    }

    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof(path), "%s/engine", n->s.data_dir) >= sizeof(path))
        return EX_CONFIG;
    struct lsm_options o;
    lsm_options_init(&o);
    o.sync_mode = n->s.sync;
    o.max_value_len = n->s.max_value_len;
    if (n->s.test_fail_writes_after > 0) {
        /* a disk that fails from some write on (the failed-disk test) */
        if (env_fault_create(env_posix(), &n->fault_env) != ST_OK)
            return EX_OSERR;
        o.env = n->fault_env;
    }
    if (lsm_open(path, &o, &n->db) != ST_OK) {
        fprintf(stderr, "strata-node: cannot open the engine in %s (see the log)\n", path);
        return EX_IOERR;
    }
    if (n->fault_env != NULL)
        env_fault_fail(n->fault_env, ENV_FAULT_WRITE, n->s.test_fail_writes_after, EIO, 1);
    if (kv_create(&n->fe, n->db, &n->clock, identity_short_id(n->id), n->s.max_value_len, &n->kv) !=
        ST_OK)
        return EX_OSERR;
    n->fe.exec = n->kv;
    return 0;
}

/* Gossip: this node announces itself (status normal, its tokens and
 * memcached address) and learns the others from the seeds. */
static enum st_status membership_open(struct node *n, const struct peer_self *self)
{
    char mcaddr[WIRE_ADDR_MAX + 1];
    snprintf(mcaddr, sizeof(mcaddr), "%s:%u", n->s.listen_addr, n->s.port);
    /* Seeds: the configured ones, then the members known at the last run
     * (<data>/peers), so that a restarted seed finds the others too. */
    char seedbuf[4096], peersbuf[8192], peers_path[PATH_MAX];
    const char *seeds[GOSSIP_MAX_SEEDS];
    size_t nseeds = 0, others = 0;
    if (n->s.seeds != NULL) {
        snprintf(seedbuf, sizeof(seedbuf), "%s", n->s.seeds);
        for (char *save = NULL, *tok = strtok_r(seedbuf, ",", &save);
             tok != NULL && nseeds < GOSSIP_MAX_SEEDS; tok = strtok_r(NULL, ",", &save))
            seeds[nseeds++] = tok;
    }
    snprintf(peers_path, sizeof(peers_path), "%s/peers", n->s.data_dir);
    FILE *pf = fopen(peers_path, "r");
    size_t plen = pf != NULL ? fread(peersbuf, 1, sizeof(peersbuf) - 1, pf) : 0;
    if (pf != NULL)
        fclose(pf);
    peersbuf[plen] = '\0';
    for (char *save = NULL, *tok = strtok_r(peersbuf, "\n", &save);
         tok != NULL && nseeds < GOSSIP_MAX_SEEDS; tok = strtok_r(NULL, "\n", &save))
        seeds[nseeds++] = tok;
    for (size_t i = 0; i < nseeds; i++)
        others += strcmp(seeds[i], self->addr) != 0;
    /* A shorter test interval scales the failure detector's times alike,
     * so "down" takes as many missed rounds as in production. */
    unsigned interval =
        n->s.test_gossip_interval_ms ? n->s.test_gossip_interval_ms : GOSSIP_INTERVAL_MS;
    struct phi_options phi;
    phi_options_default(&phi);
    phi.threshold = n->s.phi_threshold;
    phi.suspect_threshold = n->s.phi_threshold / 2;
    phi.min_std_ms = phi.min_std_ms * interval / GOSSIP_INTERVAL_MS + 1;
    phi.acceptable_pause_ms = phi.acceptable_pause_ms * interval / GOSSIP_INTERVAL_MS;
    phi.first_interval_ms = phi.first_interval_ms * interval / GOSSIP_INTERVAL_MS;
    phi.max_interval_ms = phi.max_interval_ms * interval / GOSSIP_INTERVAL_MS;
    struct gossip_config gc = {
        .cluster = n->s.cluster_name,
        .short_id = self->short_id,
        .generation = self->generation,
        .addr = self->addr,
        .seeds = seeds,
        .nseeds = nseeds,
        .phi = &phi,
    };
    memcpy(gc.id, self->node_id, GOSSIP_ID_LEN);
    enum st_status st = gossip_create(&n->gossip, &gc);
    if (st == ST_OK)
        st = gossip_set_tokens(n->gossip, identity_tokens(n->id), identity_vnode_count(n->id));
    if (st == ST_OK)
        st = gossip_set_memcached_addr(n->gossip, mcaddr);
    if (st == ST_OK && n->s.rack != NULL)
        st = gossip_set_rack(n->gossip, n->s.rack);
    if (st == ST_OK)
        st = gossip_set_status(n->gossip, GOSSIP_STATUS_NORMAL, NULL);
    if (st != ST_OK) {
        log_error("node: cannot start gossip: %s", st_status_name(st));
        return st;
    }
    struct members_config mc = {
        .self = *self,
        .replicas = n->s.replicas,
        .interval_ms = interval,
        .peers_path = peers_path,
        /* a node with peers to ask does not serve from a one-node ring
         * until one has answered (or 30 rounds have passed) */
        .ready_wait_ms = others > 0 ? 30 * interval : 0,
    };
    return members_start(&mc, n->base, n->gossip, &n->clock, &n->members);
}

/* The coordinator: the executor of client commands on every worker, and
 * of the RMWs peers forward to the cluster port (the main loop). */
static enum st_status coord_open(struct node *n, const struct peer_self *self)
{
    struct coord_config cfg = {
        .replicas = n->s.replicas,
        .read_cl = n->s.read_cl,
        .write_cl = n->s.write_cl,
        .timeout_ms = n->s.timeout_ms,
        .max_inflight = 4096,
        .read_repair_pct = n->s.read_repair_pct,
        .self = *self,
    };
    enum st_status st =
        coord_create(&cfg, n->kv, n->db, &n->clock, n->members, n->s.threads + 1, &n->coord);
    if (st == ST_OK)
        st = coord_loop_start(n->coord, n->s.threads, n->base);
    if (st != ST_OK)
        return st;
    kv_attach_coord(n->kv, n->coord);
    cluster_attach_coord(n->cluster, n->coord);
    n->fe.xo = coord_exec(&kv_exec_ops, &n->xo);
    return ST_OK;
}

/* Hinted handoff (<data>/hints) and anti-entropy repair. */
static enum st_status repair_open(struct node *n, const struct peer_self *self)
{
    char dir[PATH_MAX];
    if ((size_t)snprintf(dir, sizeof(dir), "%s/hints", n->s.data_dir) >= sizeof(dir))
        return ST_INVAL;
    struct handoff_config hc = {
        .dir = dir,
        .max_bytes = n->s.hint_max_bytes,
        .window_ms = n->s.hint_window_s * 1000,
        .gc_grace_ms = NODE_GC_GRACE_S * 1000,
        .rate_bytes = n->s.hint_rate,
        .sync_interval_ms = 100,
        .self = *self,
        .timeout_ms = n->s.timeout_ms * 5,
    };
    enum st_status st = handoff_start(&hc, n->base, n->members, &n->handoff);
    if (st != ST_OK)
        return st;
    coord_attach_handoff(n->coord, n->handoff);
    kv_attach_handoff(n->kv, n->handoff);
    struct repair_config rc = {
        .replicas = n->s.replicas,
        .depth = n->s.repair_depth,
        .interval_s = n->s.repair_interval_s,
        .rate_bytes = n->s.repair_rate,
        .gc_grace_s = NODE_GC_GRACE_S,
        .lead_ms = 5000, /* above the clock-skew bound, a round trip and a
                            peer's tree build */
        .timeout_ms = n->s.timeout_ms * 5,
        .self = *self,
    };
    if ((st = repair_start(&rc, n->db, n->members, &n->repair)) != ST_OK)
        return st;
    cluster_attach_repair(n->cluster, n->repair);
    kv_attach_repair(n->kv, n->repair);
    return ST_OK;
}

/* The cluster port on the main loop. */
static enum st_status cluster_open(struct node *n)
{
    struct cluster_config cc = {
        .listen_addr = n->s.listen_addr,
        .port = n->s.cluster_port,
        .cluster_name = n->s.cluster_name,
        .short_id = identity_short_id(n->id),
        .generation = identity_generation(n->id),
        .frame_max = n->s.max_value_len + 64 * 1024 > WIRE_FRAME_MAX_DEFAULT
                         ? n->s.max_value_len + 64 * 1024
                         : WIRE_FRAME_MAX_DEFAULT,
        .max_conns = 1024,
    };
    memcpy(cc.node_id, identity_id(n->id), WIRE_NODE_ID_LEN);
    enum st_status st = cluster_start(&cc, n->base, n->db, &n->clock, &n->cluster);
    if (st != ST_OK)
        return st;
    log_info("cluster port on %s", cluster_addr(n->cluster));
    char addr[WIRE_ADDR_MAX + 1];
    snprintf(addr, sizeof(addr), "%s:%u", n->s.listen_addr, n->s.cluster_port);
    struct peer_self self = {
        .cluster_name = n->s.cluster_name,
        .short_id = cc.short_id,
        .generation = cc.generation,
        .addr = addr,
        .frame_max = cc.frame_max,
    };
    memcpy(self.node_id, cc.node_id, WIRE_NODE_ID_LEN);
    if ((st = membership_open(n, &self)) != ST_OK)
        return st;
    cluster_attach_members(n->cluster, n->members);
    kv_attach_cluster(n->kv, n->cluster, n->members);
    if ((st = coord_open(n, &self)) != ST_OK)
        return st;
    return repair_open(n, &self);
}

int main(int argc, char **argv)
{
    static struct node node; /* main's own; threads get pointers */
    struct node *n = &node;
    n->s = (struct node_settings){
        .data_dir = "/var/lib/strata/node",
        .cluster_name = "strata",
        .listen_addr = "127.0.0.1",
        .port = 11311,
        .cluster_port = 7311,
        .threads = 4,
        .max_conns = 1024,
        .vnodes = 16,
        .replicas = 3,
        .phi_threshold = 8.0,
        .read_cl = WIRE_CL_QUORUM,
        .write_cl = WIRE_CL_QUORUM,
        .timeout_ms = 2000,
        .read_repair_pct = 10,
        .hint_window_s = 3 * 3600,
        .hint_max_bytes = 1ull << 30,
        .hint_rate = 8u << 20,
        .repair_interval_s = 3600,
        .repair_rate = 8u << 20,
        .repair_depth = 10,
        .max_value_len = LSM_DEFAULT_MAX_VALUE_LEN,
        .sync = LSM_SYNC_INTERVAL,
    };
    int rc = parse_flags(&n->s, argc, argv);
    if (rc >= 0) {
        config_free(n->s.config_argv, n->s.config_argc);
        return rc;
    }
    log_setup(n->s.verbose == 0 ? LOG_LVL_WARN : n->s.verbose == 1 ? LOG_LVL_INFO : LOG_LVL_DEBUG);
    clock_setup();
    signal(SIGPIPE, SIG_IGN);
    front_end_setup(n);
    if ((rc = open_data(n)) != 0)
        goto out;

    n->base = event_base_new();
    if (n->base == NULL) {
        rc = EX_OSERR;
        goto out;
    }
    if (cluster_open(n) != ST_OK || listener_create(&n->fe.listener, &n->fe, n->base) != ST_OK) {
        rc = EX_UNAVAILABLE;
        goto out;
    }
    n->fe.workers = mem_calloc(MEM_OTHER, n->s.threads, sizeof(*n->fe.workers));
    if (n->fe.workers == NULL) {
        rc = EX_OSERR;
        goto out;
    }
    for (unsigned i = 0; i < n->s.threads; i++) {
        if (worker_init(&n->fe.workers[i], i, &n->fe) != ST_OK ||
            coord_loop_start(n->coord, i, n->fe.workers[i].base) != ST_OK ||
            worker_start(&n->fe.workers[i]) != ST_OK) {
            fprintf(stderr, "strata-node: cannot start worker %u\n", i);
            n->fe.nworkers = i;
            rc = EX_OSERR;
            goto out_workers;
        }
        n->fe.nworkers = i + 1;
    }
    struct timeval second = {HLC_STORE_INTERVAL_MS / 1000, 0};
    n->sigterm = evsignal_new(n->base, SIGTERM, on_signal, n);
    n->sigint = evsignal_new(n->base, SIGINT, on_signal, n);
    n->tick = event_new(n->base, -1, EV_PERSIST, on_tick, n);
    if (n->sigterm == NULL || n->sigint == NULL || n->tick == NULL ||
        event_add(n->sigterm, NULL) != 0 || event_add(n->sigint, NULL) != 0 ||
        event_add(n->tick, &second) != 0 || listener_start(n->fe.listener) != ST_OK) {
        rc = EX_OSERR;
        goto out_workers;
    }
    log_info("strata-node %s (memcached %s) listening on %s, %u threads", STRATA_VERSION,
             MC_COMPAT_VERSION, listener_addr(n->fe.listener), n->s.threads);
    event_base_dispatch(n->base);
    rc = 0;

out_workers:
    listener_stop(n->fe.listener);
    for (unsigned i = 0; i < n->fe.nworkers; i++)
        worker_stop(&n->fe.workers[i]);
    for (unsigned i = 0; i < n->fe.nworkers; i++)
        worker_join(&n->fe.workers[i]);
    for (unsigned i = 0; i < n->fe.nworkers; i++) {
        coord_loop_stop(n->coord, i);
        worker_deinit(&n->fe.workers[i]);
    }
    mem_free(MEM_OTHER, n->fe.workers, n->s.threads * sizeof(*n->fe.workers));
    n->fe.workers = NULL;
out:
    listener_destroy(&n->fe.listener);
    coord_destroy(&n->coord);  /* the main loop's part answers the cluster port */
    handoff_stop(&n->handoff); /* after the coordinator: it stores hints to the end */
    repair_stop(&n->repair);
    members_stop(&n->members);
    cluster_stop(&n->cluster);
    gossip_destroy(&n->gossip);
    if (n->sigterm != NULL)
        event_free(n->sigterm);
    if (n->sigint != NULL)
        event_free(n->sigint);
    if (n->tick != NULL)
        event_free(n->tick);
    if (n->base != NULL)
        event_base_free(n->base);
    kv_destroy(&n->kv);
    lsm_close(&n->db);
    env_fault_destroy(&n->fault_env);
    if (n->id != NULL && rc == 0)
        identity_store_hlc_bound(n->id, hlc_upper_bound(&n->clock, HLC_LEASE_MS));
    identity_destroy(&n->id);
    clock_teardown();
    config_free(n->s.config_argv, n->s.config_argc);
    return rc;
}
