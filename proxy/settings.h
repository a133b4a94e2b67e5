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

struct policies;

struct settings {
    unsigned port;             /* -p, TCP port */
    char *listen_addr;         /* -l, interface to bind */
    size_t max_bytes;          /* -m, item memory in bytes */
    unsigned max_conns;        /* -c, client connections */
    unsigned threads;          /* -t, worker threads */
    size_t item_size_max;      /* -I, largest item */
    bool disable_evictions;    /* -M */
    unsigned udp_port;         /* -U, must be 0 */
    unsigned verbose;          /* number of -v */
    char *pidfile;             /* -P */
    char *user;                /* -u: drop privileges to this user when root */
    unsigned backlog;          /* -b, listen backlog */
    unsigned reqs_per_event;   /* -R, commands per connection per wakeup */
    size_t out_max;            /* unsent reply bytes per connection before reading pauses */
    unsigned drain_timeout;    /* seconds a paused connection may make no write progress */
    unsigned shutdown_timeout; /* seconds SIGTERM/SIGINT/shutdown let replies drain */

    /* memcached's flags and -o options with a meaning for strata */
    unsigned idle_timeout;     /* -o idle_timeout: close clients idle longer; 0 off */
    size_t read_buf_mem_limit; /* -o read_buf_mem_limit: input buffer bytes, all workers; 0 off */
    unsigned hashpower;        /* -o hashpower: initial 2^N hash buckets; 0 automatic */
    bool shutdown_command;     /* -A: the text `shutdown` command is enabled */
    bool dump_enabled;         /* not -X: stats cachedump / lru_crawler metadump allowed */
    bool flush_enabled;        /* not -F: flush_all allowed */
    char detail_delimiter;     /* -D: key prefix delimiter of `stats detail` */
    bool detail_enabled;       /* -D given: `stats detail` collection starts on */
    bool lock_memory;          /* -k: mlockall */
    bool enable_coredumps;     /* -r: raise RLIMIT_CORE */
    bool large_pages;          /* -L: accepted, nothing to apply */
    bool test_async_reads;     /* tests only: lookups complete through conn_defer */
    unsigned unix_mask;        /* -a: octal; no unix socket is served */
    unsigned chunk_size;       /* -n: memcached's smallest slab chunk; reported only */
    double growth_factor;      /* -f: memcached's slab growth factor; reported only */

    /* the LRU crawler's start-up state (-o lru_crawler, no_lru_crawler,
     * lru_crawler_sleep, lru_crawler_tocrawl); `lru_crawler` commands
     * change it at run time (proxy/admin.h) */
    bool lru_crawler;
    unsigned lru_crawler_sleep;
    unsigned lru_crawler_tocrawl;
    size_t watcher_logbuf_size; /* -o watcher_logbuf_size (KB there): each `watch` buffer */

    /* the tiers below L1 (docs/TIERS.md) */
    char *backend;  /* none | local | cluster */
    char *data_dir; /* backend = local: the engine's directory */
    char *sync;     /* always | interval | none: when writes reach the disk */
    unsigned sync_interval_ms;
    char *mode;          /* the default policy's mode; NULL: by backend */
    char *cluster_seeds; /* backend = cluster: nodes' cluster ports */
    char *cluster_name;
    unsigned cluster_timeout_ms;
    unsigned cluster_max_inflight;
    unsigned cluster_poll_ms;
    char *journal_sync; /* write-behind: always | interval */
    unsigned journal_max_entries;
    size_t journal_max_bytes;
    unsigned journal_drain_timeout;
    char *test_backend_pause_file;
    char *policy_spec;         /* "PREFIX<TAB>name=value" lines (proxy/policy.h) */
    struct policies *policies; /* built from the above by settings_parse */

    /* the L2 pool (docs/L2.md) */
    char *l2_servers; /* "host:port[:weight],..." */
    char *l2_gutter;  /* the gutter pool: keys of servers that are out go there */
    unsigned l2_gutter_ttl;
    unsigned l2_timeout_ms;
    unsigned l2_max_inflight;
    unsigned l2_eject_after;
    unsigned l2_retry_ms, l2_retry_max_ms;
    bool l2_flush_on_return;
    char *peers;        /* other proxies' peer ports: L1 invalidations go there */
    unsigned peer_port; /* serves L1 alone to other proxies' L2 pools; 0: off */
    char *l1_opt;       /* l1 = on | off */
    bool l1;            /* false: no L1 (routing mode with l2_servers) */

    char *config_path; /* --config */
    char *notes;       /* start-up notes ("-o x: ..." lines), see settings_log_notes */
    bool item_size_given;
    bool peers_flag; /* --peers on the command line: a reload keeps it */
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

/*
 * What a reload (SIGHUP) changes: the `peers` of s's config file, read
 * again. *peers gets the file's list (NULL: none; the caller frees it).
 * False when there is nothing to reload (no --config, or --peers given
 * on the command line, which wins) or the file does not parse: err says
 * which.
 */
bool settings_reread_peers(const struct settings *s, char **peers, char *err, size_t errlen);

/* Logs the start-up notes: one line per accepted memcached option that
 * does not apply to strata. Call once the log is set up. */
void settings_log_notes(const struct settings *s);

/*
 * Applies one -o argument (memcached's comma-separated extended options;
 * settings_ext.c) to *s. Returns false with a message in err for an unknown
 * option or a value memcached would refuse.
 */
bool settings_ext_apply(struct settings *s, const char *list, char *err, size_t errlen);
/* Records a start-up note (deduplicated). False when out of memory. */
bool settings_add_note(struct settings *s, const char *note);
/* Sets the table option `name` from text, as the config file would. */
bool settings_set(struct settings *s, const char *name, const char *value, char *err,
                  size_t errlen);

void settings_usage(FILE *out);
/* Prints every option: config name, flag, type, default, bounds, meaning. */
void settings_describe(FILE *out);
