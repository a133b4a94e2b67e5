/*
 * settings.h - strata-proxy's options: memcached-compatible command-line
 * flags with their defaults and bounds. Parsed and validated once in main
 * before anything starts; read-only afterwards (the log level is the one
 * runtime-changeable setting, owned by common/log).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct settings {
    int port;                /* -p, TCP port */
    char listen_addr[256];   /* -l, interface to bind */
    size_t max_bytes;        /* -m, item memory in bytes */
    unsigned max_conns;      /* -c, client connections */
    unsigned threads;        /* -t, worker threads */
    size_t item_size_max;    /* -I, largest item */
    bool evictions;          /* false with -M */
    int verbose;             /* number of -v */
    const char *pidfile;     /* -P */
    const char *user;        /* -u: drop privileges to this user when root */
    unsigned backlog;        /* -b, listen backlog */
    unsigned reqs_per_event; /* -R, commands per connection per wakeup */
    size_t out_max;          /* unsent reply bytes per connection before reading pauses */
    unsigned drain_timeout;  /* seconds a paused connection may make no write progress */
};

/* Fills *s with the defaults. */
void settings_init(struct settings *s);

/*
 * Parses argv into *s. Returns -1 to go on, or an exit code: 0 after
 * printing --help or --version, EX_USAGE after printing an error.
 */
int settings_parse(struct settings *s, int argc, char **argv);

void settings_usage(FILE *out);
