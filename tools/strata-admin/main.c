/*
 * strata-admin - operator commands against a strata-node, through its
 * memcached port's stats (what dashboards read too):
 *
 *   strata-admin [-n HOST:PORT] status     every member: address, state, status, ownership
 *   strata-admin [-n HOST:PORT] stats [GROUP]   a stats group, as memcached-tool prints it
 *
 * Default node 127.0.0.1:11311. Exit 0 on success, 1 when the node cannot
 * be reached or answers an error, 64 on bad usage.
 */
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sysexits.h>
#include <unistd.h>

#define REPLY_MAX (1u << 20)
#define IO_TIMEOUT_S 5

static void usage(FILE *f)
{
    fprintf(f, "usage: strata-admin [-n host:port] status\n"
               "       strata-admin [-n host:port] stats [group]\n"
               "  -n host:port   the node's memcached port (default 127.0.0.1:11311)\n");
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

/* Sends `stats [group]` and reads the reply through END into buf (NUL
 * terminated). 0, or -1 after printing why. */
static int stats(const char *node, const char *group, char *buf, size_t cap)
{
    int fd = dial(node);
    if (fd < 0)
        return -1;
    char cmd[128];
    int n = snprintf(cmd, sizeof(cmd), "stats%s%s\r\n", group[0] ? " " : "", group);
    if (write(fd, cmd, (size_t)n) != n) {
        fprintf(stderr, "strata-admin: %s: write: %s\n", node, strerror(errno));
        close(fd);
        return -1;
    }
    size_t len = 0;
    for (;;) {
        if (len + 1 >= cap) {
            fprintf(stderr, "strata-admin: %s: reply too long\n", node);
            break;
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r <= 0) {
            fprintf(stderr, "strata-admin: %s: %s\n", node, r == 0 ? "closed" : strerror(errno));
            break;
        }
        len += (size_t)r;
        buf[len] = '\0';
        if ((len >= 5 && strcmp(buf + len - 5, "END\r\n") == 0) || strncmp(buf, "ERROR", 5) == 0 ||
            strstr(buf, "_ERROR") != NULL) {
            close(fd);
            if (strncmp(buf, "STAT", 4) != 0 && strncmp(buf, "END", 3) != 0) {
                fprintf(stderr, "strata-admin: %s answered: %s", node, buf);
                return -1;
            }
            return 0;
        }
    }
    close(fd);
    return -1;
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

int main(int argc, char **argv)
{
    const char *node = "127.0.0.1:11311";
    int c;
    while ((c = getopt(argc, argv, "n:h")) != -1) {
        switch (c) {
        case 'n': node = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EX_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EX_USAGE;
    }
    const char *cmd = argv[optind];
    if (strcmp(cmd, "status") == 0 && optind + 1 == argc)
        return cmd_status(node);
    if (strcmp(cmd, "stats") == 0 && optind + 2 >= argc)
        return cmd_stats(node, optind + 1 < argc ? argv[optind + 1] : "");
    usage(stderr);
    return EX_USAGE;
}
