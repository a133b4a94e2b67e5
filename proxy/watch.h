/*
 * watch.h - memcached's `watch` command: connections that receive log
 * lines (fetches, stores, evictions, connection events) instead of
 * replies. The registry lives in struct proxy; event sites on any worker
 * (and the cache's eviction callback, under a shard lock) format lines
 * into each interested watcher's bounded buffer, and every watcher's own
 * worker streams its buffer out. Formats: memcached 1.6.18's logger.c.
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"
#include "frontend/proto.h"

struct conn;
struct watch_watcher;

/* memcached's WATCHER_LIMIT: watchers at once. */
#define WATCH_LIMIT 20
/* memcached's default watcher_logbuf_size (-o watcher_logbuf_size). */
#define WATCH_LOGBUF_DEFAULT (256u << 10)

/* Bytes of each watcher's buffer for -o watcher_logbuf_size=KB (memcached
 * counts in KB too), at least 4 KB so that a buffer holds a few lines
 * (memcached accepts 0 and then skips every line). */
static inline size_t watch_logbuf_bytes(unsigned long long kb)
{
    if (kb < 4)
        kb = 4;
    if (kb > (1ull << 20))
        kb = 1ull << 20; /* 1 GB, memcached's largest -I: no line is longer */
    return (size_t)(kb << 10);
}

/* Event types a watcher asks for (memcached's LOG_* flags). Only
 * fetchers, mutations, evictions and connevents produce lines in strata;
 * the others are accepted, as memcached accepts them. */
enum watch_event {
    WATCH_RAWCMDS = 1u << 0,
    WATCH_EVICTIONS = 1u << 1,
    WATCH_FETCHERS = 1u << 2,
    WATCH_MUTATIONS = 1u << 3,
    WATCH_SYSEVENTS = 1u << 4,
    WATCH_CONNEVENTS = 1u << 5,
    WATCH_PROXYREQS = 1u << 6,
    WATCH_PROXYEVENTS = 1u << 7,
    WATCH_PROXYUSER = 1u << 8,
};

/* The status of an item_get line. */
enum watch_fetch {
    WATCH_FETCH_NOT_FOUND,
    WATCH_FETCH_FOUND,
    WATCH_FETCH_FLUSHED,
    WATCH_FETCH_EXPIRED,
};

/* Why a connection closed (conn_close lines; memcached's close_reasons). */
enum watch_close_reason {
    WATCH_CLOSE_ERROR,        /* read/write error, protocol error */
    WATCH_CLOSE_NORMAL,       /* the client closed, or quit */
    WATCH_CLOSE_IDLE_TIMEOUT, /* -o idle_timeout */
    WATCH_CLOSE_SHUTDOWN,     /* the server is shutting down */
};

/* Counters for `stats` (memcached's log_watcher_sent/skipped). */
struct watch_stats {
    unsigned watchers;
    uint64_t sent;    /* lines queued to watchers */
    uint64_t skipped; /* lines dropped because a watcher's buffer was full */
};

/*
 * The registry, in struct proxy. `mask` is the union of the watchers'
 * event types: every event site reads it (relaxed) and does nothing more
 * when its bit is clear. `lock` guards everything else, including every
 * watcher's buffer. Lock order: a cache shard lock, then `lock`; nothing
 * that takes another lock is called while holding it.
 */
struct watch_state {
    _Atomic unsigned mask;
    pthread_mutex_t lock;
    struct watch_watcher *watchers;
    unsigned nwatchers;
    size_t logbuf_size; /* bytes of each watcher's buffer */
    uint64_t gid;       /* last event id handed out */
    uint64_t sent, skipped;
};

/* logbuf_size: each watcher's buffer (WATCH_LOGBUF_DEFAULT). */
void watch_state_init(struct watch_state *ws, size_t logbuf_size);
/* REQUIRES: no watcher left (every connection closed). */
void watch_state_deinit(struct watch_state *ws);

/* True if some watcher wants one of `events`. Any thread; one relaxed
 * load, so event sites can call it on every request. */
static inline bool watch_wants(struct watch_state *ws, unsigned events)
{
    return (atomic_load_explicit(&ws->mask, memory_order_relaxed) & events) != 0;
}

void watch_stats_read(struct watch_state *ws, struct watch_stats *st);
/* `stats reset`: zeroes sent and skipped (memcached keeps log_watchers). */
void watch_stats_reset(struct watch_state *ws);

/*
 * `watch [types...]` (args: the words after "watch"). Replies as memcached
 * 1.6.18: OK and from then on only log lines (input is discarded), ERROR
 * for an unknown type, "ERROR cannot pipeline other commands before
 * watch" when replies are already queued, WATCHER_TOO_MANY past
 * WATCH_LIMIT; a trailing "noreply" silences the error replies. Worker
 * thread of c.
 */
enum proto_action watch_command(struct conn *c, const char *args, size_t len);

/*
 * The client fd that lines logged by this thread name (cfd=): the
 * connection the calling worker is serving. Set by conn.c before it runs
 * a connection's commands. Thread-local, as memcached passes c->sfd.
 */
void watch_set_client_fd(int fd);

/* ---- event sites: call only when watch_wants() says so. Any thread. ---- */

/* An item_get line. clsid and nvalue describe the item found (0 on a
 * miss). */
void watch_log_fetch(struct watch_state *ws, const char *key, size_t nkey, enum watch_fetch status,
                     unsigned clsid, size_t nvalue);

/* An item_store line: the outcome of a storage command in `mode` for an
 * item of class clsid with nvalue value bytes and the given exptime. */
void watch_log_store(struct watch_state *ws, const char *key, size_t nkey, enum cache_result res,
                     enum cache_store_mode mode, rel_time_t exptime, unsigned clsid, size_t nvalue);

/* conn_new (is_close false) and conn_close lines for a connection whose
 * peer is formatted as conn.h's peer ("tcp:1.2.3.4:5" or
 * "tcp6:[::1]:5"). `why` is ignored for conn_new. */
void watch_log_conn(struct watch_state *ws, bool is_close, const char *peer, int fd,
                    enum watch_close_reason why);

/* The cache's on_evict callback (arg: the struct watch_state): an
 * eviction line when someone watches evictions. Runs under a shard lock. */
void watch_on_evict(void *arg, const struct cache_item_view *v);
