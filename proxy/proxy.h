/*
 * proxy.h - the state strata-proxy shares between its threads: settings,
 * the L1 cache, the workers and process-wide connection counters. One
 * instance, created in main and passed by pointer (never a global).
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "frontend/fe.h"
#include "proxy/admin.h"
#include "proxy/settings.h"
#include "proxy/stats.h"
#include "proxy/watch.h"

struct cache;
struct detail;
struct tiers;
struct l2;

struct proxy {
    struct settings settings;
    struct fe fe; /* the memcached front end: workers, listener, conn counters */
    struct cache *cache;
    struct tiers *tiers;      /* below L1; NULL: backend = none */
    struct l2 *l2;            /* the L2 pool; NULL: no l2_servers */
    struct admin_state admin; /* operator commands' runtime state */
    struct detail *detail;    /* stats detail */
    struct watch_state watch; /* `watch` log watchers */

    pthread_mutex_t reset_lock;     /* guards stats_base */
    struct stats_totals stats_base; /* counters at the last `stats reset` */
    _Atomic uint64_t total_conns_base;
    _Atomic uint64_t rejected_conns_base;
};
