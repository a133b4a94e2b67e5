/*
 * strata-admin - operator commands against a strata-node, through its
 * memcached port: its stats (what dashboards read too) and its `repair`
 * command. Single-threaded; one short connection per request.
 *
 *   strata-admin [-n HOST:PORT] status     every member: address, state, status, ownership
 *   strata-admin [-n HOST:PORT] ring       the members by ownership, descending, and the total
 *   strata-admin [-n HOST:PORT] stats [GROUP]   a stats group, as memcached-tool prints it
 *   strata-admin [-n HOST:PORT] repair [--no-wait] [--timeout SECONDS]
 *                                          an anti-entropy cycle now; waits for its end
 *                                          (every 200 ms, default at most 600 s) and
 *                                          prints what it did
 *   strata-admin [-n HOST:PORT] hints      hinted-handoff totals and one line per target
 *
 * Ownership ("owns", from `stats cluster`) is the share of the token circle
 * for which a node is the primary replica: the column sums to 100% whatever
 * the replication factor (with N replicas a node holds about N times it).
 *
 * Default node 127.0.0.1:11311. Exit 0 on success; 1 when the node cannot
 * be reached, answers an error (a repair already running) or a repair does
 * not end in time; 2 when a repair session failed; 64 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#define REPLY_MAX (1u << 20)
#define IO_TIMEOUT_S 5
#define REPAIR_POLL_MS 200
#define REPAIR_TIMEOUT_S 600.0
#define HINT_ID_LEN 32 /* a target's node id, hex */

static void usage(FILE *f)
{
    fprintf(f, "usage: strata-admin [-n host:port] status\n"
               "       strata-admin [-n host:port] ring\n"
               "       strata-admin [-n host:port] stats [group]\n"
               "       strata-admin [-n host:port] repair [--no-wait] [--timeout seconds]\n"
               "       strata-admin [-n host:port] hints\n"
               "  -n host:port   the node's memcached port (default 127.0.0.1:11311)\n"
               "  --no-wait      repair: return once the cycle has started\n"
               "  --timeout s    repair: give up waiting after s seconds (default 600)\n");
}

static int dial(const char *hostport)
{
    char host[256];
    snprintf(host, sizeof(host), "%s", hostport);
    char *colon = strrchr(host, ':');
    if (colon == NULL) {
        fprintf(stderr, "strata-admin: %s: expected host:port\n", hostport);
        return -1;
    }
    *colon = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "strata-admin: %s: %s\n", hostport, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM, 0);
    struct timeval tv = {IO_TIMEOUT_S, 0};
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        fprintf(stderr, "strata-admin: cannot connect to %s: %s\n", hostport, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* The last complete line of buf[0, len), which ends in "\r\n": its start. */
static const char *last_line(const char *buf, size_t len)
{
    const char *p = buf + len - 2;
    while (p > buf && p[-1] != '\n')
        p--;
    return p;
}

static bool is_error_line(const char *line)
{
    return strncmp(line, "ERROR", 5) == 0 || strncmp(line, "CLIENT_ERROR", 12) == 0 ||
           strncmp(line, "SERVER_ERROR", 12) == 0;
}

/* A reply ends with a line END (stats), OK (repair) or an error. */
static bool reply_complete(const char *buf, size_t len)
{
    if (len < 2 || buf[len - 2] != '\r' || buf[len - 1] != '\n')
        return false;
    const char *line = last_line(buf, len);
    return strncmp(line, "END\r\n", 5) == 0 || strncmp(line, "OK\r\n", 4) == 0 ||
           is_error_line(line);
}

/* Sends cmd (a whole request, "\r\n" included) and reads the reply through
 * its last line into buf (NUL terminated). 0 with a complete reply, which
 * may be an error answer (reply_failed), or -1 after printing why. */
static int exchange(const char *node, const char *cmd, char *buf, size_t cap)
{
    int fd = dial(node);
    if (fd < 0)
        return -1;
    size_t n = strlen(cmd);
    if (write(fd, cmd, n) != (ssize_t)n) {
        fprintf(stderr, "strata-admin: %s: write: %s\n", node, strerror(errno));
        close(fd);
        return -1;
    }
    size_t len = 0;
    buf[0] = '\0';
    while (!reply_complete(buf, len)) {
        if (len + 1 >= cap) {
            fprintf(stderr, "strata-admin: %s: reply too long\n", node);
            close(fd);
            return -1;
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r <= 0) {
            fprintf(stderr, "strata-admin: %s: %s\n", node, r == 0 ? "closed" : strerror(errno));
            close(fd);
            return -1;
        }
        len += (size_t)r;
        buf[len] = '\0';
    }
    close(fd);
    return 0;
}

/* Whether a complete reply ends in an error line; prints it if so. */
static bool reply_failed(const char *node, const char *buf)
{
    const char *line = last_line(buf, strlen(buf));
    if (!is_error_line(line))
        return false;
    fprintf(stderr, "strata-admin: %s answered: %s", node, line);
    return true;
}

/* Sends `stats [group]` and reads the reply through END into buf (NUL
 * terminated). 0, or -1 after printing why. */
static int stats(const char *node, const char *group, char *buf, size_t cap)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "stats%s%s\r\n", group[0] ? " " : "", group);
    if (exchange(node, cmd, buf, cap) != 0)
        return -1;
    return reply_failed(node, buf) ? -1 : 0;
}

/* The value of the stat `name` in a stats reply, as a number: true, or
 * false when the reply has no such line or its value is not a number. */
static bool stat_u64(const char *buf, const char *name, uint64_t *out)
{
    size_t k = strlen(name);
    for (const char *p = buf; *p != '\0';) {
        if (strncmp(p, "STAT ", 5) == 0 && strncmp(p + 5, name, k) == 0 && p[5 + k] == ' ') {
            const char *v = p + 6 + k;
            char *end;
            errno = 0;
            unsigned long long u = strtoull(v, &end, 10);
            if (errno != 0 || end == v || (*end != '\r' && *end != '\n'))
                return false;
            *out = u;
            return true;
        }
        const char *nl = strchr(p, '\n');
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    return false;
}

/* The value of field `key` ("key=value") in a member line, into out. */
static void field(const char *line, const char *key, char *out, size_t cap)
{
    size_t k = strlen(key);
    out[0] = '\0';
    for (const char *p = line; (p = strstr(p, key)) != NULL; p += k) {
        if ((p == line || p[-1] == ' ') && p[k] == '=') {
            size_t n = strcspn(p + k + 1, " \r\n");
            snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), p + k + 1);
            return;
        }
    }
}

static int cmd_status(const char *node)
{
    static char buf[REPLY_MAX];
    if (stats(node, "cluster", buf, sizeof(buf)) != 0)
        return 1;
    printf("%-8s %-22s %-8s %-8s %8s  %s\n", "id", "address", "state", "status", "owns", "");
    int members = 0;
    for (char *line = strtok(buf, "\r\n"); line != NULL; line = strtok(NULL, "\r\n")) {
        if (strncmp(line, "STAT member_", 12) != 0)
            continue;
        members++;
        char id[16], addr[256], state[16], status[16], owns[16];
        snprintf(id, sizeof(id), "%.*s", (int)strcspn(line + 12, " "), line + 12);
        field(line, "addr", addr, sizeof(addr));
        field(line, "state", state, sizeof(state));
        field(line, "status", status, sizeof(status));
        field(line, "owns", owns, sizeof(owns));
        bool self = strstr(line, " self") != NULL;
        printf("%-8s %-22s %-8s %-8s %8s  %s\n", id, addr, state, status, owns,
               self ? "(answered)" : "");
    }
    if (members == 0) {
        fprintf(stderr, "strata-admin: %s reports no members (not a strata-node?)\n", node);
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ ring */

struct member {
    unsigned long id;
    char addr[256], state[16], status[16];
    double owns; /* percent of the circle, as a primary */
    bool self;
};

/* By ownership, descending; equal shares by short id. */
static int member_cmp(const void *a, const void *b)
{
    const struct member *x = a, *y = b;
    if (x->owns != y->owns)
        return x->owns > y->owns ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int cmd_ring(const char *node)
{
    static char buf[REPLY_MAX];
    if (stats(node, "cluster", buf, sizeof(buf)) != 0)
        return 1;
    struct member *m = NULL;
    size_t n = 0, cap = 0;
    for (char *line = strtok(buf, "\r\n"); line != NULL; line = strtok(NULL, "\r\n")) {
        if (strncmp(line, "STAT member_", 12) != 0)
            continue;
        if (n == cap) {
            cap = cap == 0 ? 16 : 2 * cap;
            struct member *grown = realloc(m, cap * sizeof(*m));
            if (grown == NULL) {
                fprintf(stderr, "strata-admin: out of memory\n");
                free(m);
                return 1;
            }
            m = grown;
        }
        struct member *e = &m[n++];
        char owns[16];
        e->id = strtoul(line + 12, NULL, 10);
        field(line, "addr", e->addr, sizeof(e->addr));
        field(line, "state", e->state, sizeof(e->state));
        field(line, "status", e->status, sizeof(e->status));
        field(line, "owns", owns, sizeof(owns));
        e->owns = strtod(owns, NULL); /* "33.4%" */
        e->self = strstr(line, " self") != NULL;
    }
    if (n == 0) {
        fprintf(stderr, "strata-admin: %s reports no members (not a strata-node?)\n", node);
        return 1;
    }
    qsort(m, n, sizeof(*m), member_cmp);
    double total = 0.0;
    printf("%-8s %-22s %-8s %-8s %8s\n", "id", "address", "state", "status", "owns");
    for (size_t i = 0; i < n; i++) {
        total += m[i].owns;
        printf("%-8lu %-22s %-8s %-8s %7.1f%%%s\n", m[i].id, m[i].addr, m[i].state, m[i].status,
               m[i].owns, m[i].self ? "  (answered)" : "");
    }
    printf("%-8s %-22s %-8s %-8s %7.1f%%  (primary ranges)\n", "total", "", "", "", total);
    free(m);
    return 0;
}

/* ---------------------------------------------------------------- stats */

static int cmd_stats(const char *node, const char *group)
{
    static char buf[REPLY_MAX];
    if (stats(node, group, buf, sizeof(buf)) != 0)
        return 1;
    for (char *line = strtok(buf, "\r\n"); line != NULL; line = strtok(NULL, "\r\n")) {
        if (strncmp(line, "STAT ", 5) != 0)
            continue;
        char *name = line + 5, *value = strchr(name, ' ');
        if (value == NULL)
            continue;
        *value++ = '\0';
        printf("%24s %s\n", name, value);
    }
    return 0;
}

/* --------------------------------------------------------------- repair */

/* What `repair` reports: the cycle's figures, as deltas of stats repair. */
static const char *const repair_figures[] = {
    "sessions", "sessions_failed", "ranges_equal", "ranges_differing", "keys_pulled", "keys_pushed",
};
#define REPAIR_NFIGURES (sizeof(repair_figures) / sizeof(repair_figures[0]))

static double monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Where a cycle stands, from stats repair. */
struct repair_state {
    uint64_t running; /* a cycle requested or under way */
    uint64_t cycles;  /* cycles started */
    uint64_t figures[REPAIR_NFIGURES];
};

/* Reads stats repair into buf and st; 0, or -1 after printing why. */
static int repair_read(const char *node, char *buf, size_t cap, struct repair_state *st)
{
    if (stats(node, "repair", buf, cap) != 0)
        return -1;
    bool ok = stat_u64(buf, "running", &st->running) && stat_u64(buf, "cycles", &st->cycles);
    for (size_t i = 0; ok && i < REPAIR_NFIGURES; i++)
        ok = stat_u64(buf, repair_figures[i], &st->figures[i]);
    if (!ok)
        fprintf(stderr, "strata-admin: %s: stats repair is incomplete (not a strata-node?)\n",
                node);
    return ok ? 0 : -1;
}

static int cmd_repair(const char *node, bool wait, double timeout_s)
{
    static char buf[REPLY_MAX];
    struct repair_state before, now;
    if (repair_read(node, buf, sizeof(buf), &before) != 0)
        return 1;
    double t0 = monotonic_s();
    if (exchange(node, "repair\r\n", buf, sizeof(buf)) != 0 || reply_failed(node, buf))
        return 1;
    if (!wait) {
        printf("repair started on %s\n", node);
        return 0;
    }
    /* Done once nothing is running and our cycle has started: `running`
     * counts a requested cycle too, but the node clears the request an
     * instant before it marks the cycle running, and `cycles` grows after. */
    for (;;) {
        if (repair_read(node, buf, sizeof(buf), &now) != 0)
            return 1;
        if (now.running == 0 && now.cycles != before.cycles)
            break;
        if (monotonic_s() - t0 >= timeout_s) {
            fprintf(stderr, "strata-admin: %s: repair still running after %g s\n", node, timeout_s);
            return 1;
        }
        struct timespec pause = {0, REPAIR_POLL_MS * 1000000L};
        nanosleep(&pause, NULL);
    }
    printf("repair on %s done in %.1f s\n", node, monotonic_s() - t0);
    uint64_t failed = 0;
    for (size_t i = 0; i < REPAIR_NFIGURES; i++) {
        /* counters start from 0 again if the node restarted meanwhile */
        uint64_t a = now.figures[i], b = before.figures[i];
        uint64_t d = a >= b ? a - b : a;
        if (strcmp(repair_figures[i], "sessions_failed") == 0)
            failed = d;
        printf("%24s %" PRIu64 "\n", repair_figures[i], d);
    }
    return failed > 0 ? 2 : 0;
}

/* ---------------------------------------------------------------- hints */

/* A target's columns, memcached-tool style: header, then its stat field. */
static const struct {
    const char *header, *field;
} hint_columns[] = {
    {"Pending", "pending_count"},
    {"Bytes", "pending_bytes"},
    {"Oldest_ms", "oldest_age_ms"},
    {"Written", "written"},
    {"Replayed", "replayed"},
    {"Drop_full", "dropped_full"},
    {"Drop_too_old", "dropped_too_old"},
    {"Drop_old", "dropped_old"},
    {"Drop_corrupt", "dropped_corrupt"},
};
#define HINT_NCOLUMNS (sizeof(hint_columns) / sizeof(hint_columns[0]))

/* A column's width: its header's, at least 10 (twenty-digit counters are rare). */
static int hint_width(size_t c)
{
    size_t w = strlen(hint_columns[c].header);
    return w > 10 ? (int)w : 10;
}

struct hint_target {
    char id[HINT_ID_LEN + 1];
    uint64_t v[HINT_NCOLUMNS];
};

/* The target with this id (HINT_ID_LEN chars), added if new; NULL when
 * out of memory. */
static struct hint_target *hint_target(struct hint_target **t, size_t *n, size_t *cap,
                                       const char *id)
{
    for (size_t i = 0; i < *n; i++)
        if (memcmp((*t)[i].id, id, HINT_ID_LEN) == 0)
            return &(*t)[i];
    if (*n == *cap) {
        size_t grown_cap = *cap == 0 ? 8 : 2 * *cap;
        struct hint_target *grown = realloc(*t, grown_cap * sizeof(**t));
        if (grown == NULL)
            return NULL;
        *t = grown;
        *cap = grown_cap;
    }
    struct hint_target *e = &(*t)[(*n)++];
    memset(e, 0, sizeof(*e));
    memcpy(e->id, id, HINT_ID_LEN);
    return e;
}

static int cmd_hints(const char *node)
{
    static char buf[REPLY_MAX];
    if (stats(node, "hints", buf, sizeof(buf)) != 0)
        return 1;
    struct hint_target *t = NULL;
    size_t n = 0, cap = 0;
    bool any = false;
    for (char *line = strtok(buf, "\r\n"); line != NULL; line = strtok(NULL, "\r\n")) {
        if (strncmp(line, "STAT ", 5) != 0)
            continue;
        char *name = line + 5, *value = strchr(name, ' ');
        if (value == NULL)
            continue;
        *value++ = '\0';
        any = true;
        /* target:<32 hex>:<field> */
        if (strncmp(name, "target:", 7) != 0) {
            printf("%24s %s\n", name, value);
            continue;
        }
        const char *id = name + 7;
        if (strlen(id) <= HINT_ID_LEN || id[HINT_ID_LEN] != ':')
            continue;
        for (size_t c = 0; c < HINT_NCOLUMNS; c++) {
            if (strcmp(id + HINT_ID_LEN + 1, hint_columns[c].field) != 0)
                continue;
            struct hint_target *e = hint_target(&t, &n, &cap, id);
            if (e == NULL) {
                fprintf(stderr, "strata-admin: out of memory\n");
                free(t);
                return 1;
            }
            e->v[c] = strtoull(value, NULL, 10);
        }
    }
    if (!any) {
        fprintf(stderr, "strata-admin: %s reports no hint stats (not a strata-node?)\n", node);
        free(t);
        return 1;
    }
    printf("\n%-*s", HINT_ID_LEN, "Target");
    for (size_t c = 0; c < HINT_NCOLUMNS; c++)
        printf(" %*s", hint_width(c), hint_columns[c].header);
    printf("\n");
    for (size_t i = 0; i < n; i++) {
        printf("%-*s", HINT_ID_LEN, t[i].id);
        for (size_t c = 0; c < HINT_NCOLUMNS; c++)
            printf(" %*" PRIu64, hint_width(c), t[i].v[c]);
        printf("\n");
    }
    free(t);
    return 0;
}

/* ----------------------------------------------------------------- main */

enum { OPT_NO_WAIT = 1000, OPT_TIMEOUT };

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"no-wait", no_argument, NULL, OPT_NO_WAIT},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *node = "127.0.0.1:11311";
    bool no_wait = false, repair_opts = false;
    double timeout_s = REPAIR_TIMEOUT_S;
    int c;
    while ((c = getopt_long(argc, argv, "n:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'n': node = optarg; break;
        case 'h': usage(stdout); return 0;
        case OPT_NO_WAIT: no_wait = repair_opts = true; break;
        case OPT_TIMEOUT: {
            char *end;
            errno = 0;
            timeout_s = strtod(optarg, &end);
            if (errno != 0 || end == optarg || *end != '\0' || !isfinite(timeout_s) ||
                timeout_s <= 0) {
                fprintf(stderr, "strata-admin: --timeout %s: expected seconds > 0\n", optarg);
                return EX_USAGE;
            }
            repair_opts = true;
            break;
        }
        default: usage(stderr); return EX_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EX_USAGE;
    }
    const char *cmd = argv[optind];
    int rest = argc - optind - 1;
    if (strcmp(cmd, "repair") == 0 && rest == 0)
        return cmd_repair(node, !no_wait, timeout_s);
    if (repair_opts) {
        usage(stderr);
        return EX_USAGE;
    }
    if (strcmp(cmd, "status") == 0 && rest == 0)
        return cmd_status(node);
    if (strcmp(cmd, "ring") == 0 && rest == 0)
        return cmd_ring(node);
    if (strcmp(cmd, "hints") == 0 && rest == 0)
        return cmd_hints(node);
    if (strcmp(cmd, "stats") == 0 && rest <= 1)
        return cmd_stats(node, rest == 1 ? argv[optind + 1] : "");
    usage(stderr);
    return EX_USAGE;
}
