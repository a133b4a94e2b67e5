/*
 * settings.h - strata-proxy's options, declared once in a table (name,
 * type, default, bounds, description) and read from the command line
 * (memcached-compatible flags) and an optional INI file (--config, section
 * [proxy]); flags override the file. Validated once in main before anything
 * starts; read-only afterwards (the log level is the one runtime-changeable
 * setting, owned by common/log).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct settings {
    unsigned port;           /* -p, TCP port */
    char *listen_addr;       /* -l, interface to bind */
    size_t max_bytes;        /* -m, item memory in bytes */
    unsigned max_conns;      /* -c, client connections */
    unsigned threads;        /* -t, worker threads */
    size_t item_size_max;    /* -I, largest item */
    bool disable_evictions;  /* -M */
    unsigned udp_port;       /* -U, must be 0 */
    unsigned verbose;        /* number of -v */
    char *pidfile;           /* -P */
    char *user;              /* -u: drop privileges to this user when root */
    unsigned backlog;        /* -b, listen backlog */
    unsigned reqs_per_event; /* -R, commands per connection per wakeup */
    size_t out_max;          /* unsent reply bytes per connection before reading pauses */
    unsigned drain_timeout;  /* seconds a paused connection may make no write progress */

    /* memcached's switches that operator commands read (set by -X, -D,
     * -o no_lru_crawler; defaults as memcached's) */
    bool dump_enabled;     /* -X clears: stats cachedump, lru_crawler metadump */
    char detail_delimiter; /* -D: stats detail prefix delimiter */
    bool lru_crawler;      /* -o no_lru_crawler clears */

    char *config_path; /* --config */
    bool item_size_given;
};

/* Fills *s with the defaults of the option table. */
void settings_init(struct settings *s);
/* Frees the strings; accepts a zeroed struct. */
void settings_deinit(struct settings *s);

/*
 * Reads --config (if given) then the flags into *s and validates them.
 * Returns -1 to go on, or an exit code after printing: 0 for --help,
 * --version, --describe-config and a passing --check-config; EX_USAGE for
 * a bad flag; EX_CONFIG for a bad config file or an invalid combination.
 */
int settings_parse(struct settings *s, int argc, char **argv);

void settings_usage(FILE *out);
/* Prints every option: config name, flag, type, default, bounds, meaning. */
void settings_describe(FILE *out);
