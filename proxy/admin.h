/*
 * admin.h - memcached's operator commands that strata-proxy answers:
 * cache_memlimit, lru_crawler, slabs, lru and stats cachedump/extstore,
 * with memcached 1.6.18's replies where strata has the mechanism and the
 * reply that is true for strata where it has not (docs/COMPATIBILITY.md).
 * Worker thread of the connection.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"
#include "frontend/proto.h"

struct conn;
struct mc_request;
struct proxy;

/*
 * Runtime state of the operator commands, in struct proxy. The crawler's
 * walk runs on the main thread (admin_crawler_tick); workers start it.
 * `lock` guards every field.
 */
struct admin_state {
    pthread_mutex_t lock;
    bool crawler_enabled; /* lru_crawler enable/disable */
    bool crawl_running;   /* a crawl is under way */
    bool crawl_classes[CACHE_CLASSES_MAX];
    struct cache_walk crawl;
    uint64_t crawler_starts;
    unsigned crawler_tocrawl; /* items a crawl checks; 0: all */
    unsigned crawler_sleep;   /* accepted, reported (see COMPATIBILITY.md) */
    unsigned slab_automove;
    double slab_automove_ratio;
    unsigned hot_lru_pct, warm_lru_pct;
    double hot_max_factor, warm_max_factor;
};

struct settings;

/* Starts from the crawler options of s and memcached's LRU defaults. */
void admin_state_init(struct admin_state *a, const struct settings *s);
void admin_state_deinit(struct admin_state *a);

/* Answers a parsed cache_memlimit / lru_crawler / slabs / lru line. */
enum proto_action admin_text_command(struct conn *c, const struct mc_request *req);

/* `stats cachedump <class> <limit>` (args: the words after "cachedump"). */
enum proto_action admin_cachedump(struct conn *c, const char *args, size_t len);

/* The front end's text_command (frontend/exec.h): the operator commands
 * (cache_memlimit, lru_crawler, slabs, lru, watch, stats detail, stats
 * cachedump) of a parsed line. */
enum proto_action admin_text_line(struct conn *c, const struct mc_request *req, const char *line,
                                  size_t len);

/* Main thread's maintenance tick: runs a requested crawl a bounded step at
 * a time. */
void admin_crawler_tick(struct proxy *p);
