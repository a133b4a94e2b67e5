/*
 * stats.c - the `stats` family of replies, in memcached 1.6's names and
 * formats (monitoring tools parse them): general, settings, items, slabs,
 * sizes, conns, reset. Worker threads; reads other threads' counters with
 * relaxed atomics and the cache's under its shard locks.
 *
 * Plain `stats` stays under 3.5 KB: collectd reads it into 4096 bytes.
 * Strata's own counters (tiers, backends) get their own subcommands.
 */
#include "proxy/stats.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cache/cache.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "frontend/conn.h"
#include "frontend/listener.h"
#include "frontend/worker.h"
#include "proxy/detail.h"
#include "proxy/proxy.h"
#include "proxy/version.h"

/* `stats slabs` shows memory in memcached's 1 MiB pages; ours are an
 * accounting unit only (jemalloc owns the real pages). */
#define STATS_PAGE_SIZE (1u << 20)

struct out {
    stats_emit_fn emit;
    void *ctx;
};

static void put_str(struct out *o, const char *name, const char *value)
{
    o->emit(o->ctx, name, value);
}

static void put_u64(struct out *o, const char *name, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRIu64, v);
    o->emit(o->ctx, name, buf);
}

/* memcached prints its ratios and factors with two decimals */
static void put_double(struct out *o, const char *name, double v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%.2f", v);
    o->emit(o->ctx, name, buf);
}

/* "items:3:number" / "3:chunk_size" */
static void put_class_u64(struct out *o, const char *prefix, unsigned cls, const char *name,
                          uint64_t v)
{
    char key[64];
    snprintf(key, sizeof(key), "%s%u:%s", prefix, cls, name);
    put_u64(o, key, v);
}

void stats_totals_read(struct proxy *p, struct stats_totals *t)
{
    memset(t, 0, sizeof(*t));
    for (unsigned i = 0; i < p->fe.nworkers; i++) {
        struct worker_stats *ws = &p->fe.workers[i].stats;
#define X(name) t->name += atomic_load_explicit(&ws->name, memory_order_relaxed);
        WORKER_COUNTERS(X)
#undef X
    }
    pthread_mutex_lock(&p->reset_lock);
#define X(name) t->name -= p->stats_base.name;
    WORKER_COUNTERS(X)
#undef X
    pthread_mutex_unlock(&p->reset_lock);
}

static void stats_reset(struct proxy *p)
{
    struct stats_totals now;
    memset(&now, 0, sizeof(now));
    for (unsigned i = 0; i < p->fe.nworkers; i++) {
        struct worker_stats *ws = &p->fe.workers[i].stats;
#define X(name) now.name += atomic_load_explicit(&ws->name, memory_order_relaxed);
        WORKER_COUNTERS(X)
#undef X
    }
    pthread_mutex_lock(&p->reset_lock);
    p->stats_base = now;
    pthread_mutex_unlock(&p->reset_lock);
    atomic_store(&p->total_conns_base, atomic_load(&p->fe.total_conns));
    atomic_store(&p->rejected_conns_base, atomic_load(&p->fe.rejected_conns));
    cache_stats_reset(p->cache);
    detail_clear(p->detail);
    watch_stats_reset(&p->watch);
}

static void put_rusage(struct out *o, const char *name, struct timeval tv)
{
    char buf[48];
    snprintf(buf, sizeof(buf), "%ld.%06ld", (long)tv.tv_sec, (long)tv.tv_usec);
    put_str(o, name, buf);
}

static void stats_general(struct proxy *p, struct out *o)
{
    struct stats_totals t;
    struct cache_stats cs;
    struct rusage ru;
    stats_totals_read(p, &t);
    cache_stats_read(p->cache, &cs);
    getrusage(RUSAGE_SELF, &ru);
    unsigned curr = atomic_load(&p->fe.curr_conns);

    put_u64(o, "pid", (uint64_t)getpid());
    put_u64(o, "uptime", clock_uptime());
    put_u64(o, "time", (uint64_t)clock_unix_now());
    put_str(o, "version", MC_COMPAT_VERSION);
    put_str(o, "strata_version", STRATA_VERSION);
    put_str(o, "libevent", event_get_version());
    put_u64(o, "pointer_size", sizeof(void *) * 8);
    put_rusage(o, "rusage_user", ru.ru_utime);
    put_rusage(o, "rusage_system", ru.ru_stime);
    put_u64(o, "max_connections", p->settings.max_conns);
    put_u64(o, "curr_connections", curr);
    put_u64(o, "total_connections",
            atomic_load(&p->fe.total_conns) - atomic_load(&p->total_conns_base));
    put_u64(o, "rejected_connections",
            atomic_load(&p->fe.rejected_conns) - atomic_load(&p->rejected_conns_base));
    put_u64(o, "connection_structures", curr + 1);
    uint64_t rb_count = 0, rb_bytes = 0, rb_free = 0;
    for (unsigned i = 0; i < p->fe.nworkers; i++) {
        rb_count += atomic_load_explicit(&p->fe.workers[i].rbuf_count, memory_order_relaxed);
        rb_bytes += atomic_load_explicit(&p->fe.workers[i].rbuf_bytes, memory_order_relaxed);
        rb_free += atomic_load_explicit(&p->fe.workers[i].rbuf_bytes_free, memory_order_relaxed);
    }
    put_u64(o, "read_buf_count", rb_count);
    put_u64(o, "read_buf_bytes", rb_bytes);
    put_u64(o, "read_buf_bytes_free", rb_free);
    put_u64(o, "read_buf_oom", t.read_buf_oom);
    put_u64(o, "cmd_get", t.cmd_get);
    put_u64(o, "cmd_set", t.cmd_set);
    put_u64(o, "cmd_flush", t.cmd_flush);
    put_u64(o, "cmd_touch", t.cmd_touch);
    put_u64(o, "cmd_meta", t.cmd_meta);
    put_u64(o, "get_hits", t.get_hits);
    put_u64(o, "get_misses", t.get_misses);
    put_u64(o, "get_expired", t.get_expired);
    put_u64(o, "get_flushed", t.get_flushed);
    put_u64(o, "delete_misses", t.delete_misses);
    put_u64(o, "delete_hits", t.delete_hits);
    put_u64(o, "incr_misses", t.incr_misses);
    put_u64(o, "incr_hits", t.incr_hits);
    put_u64(o, "decr_misses", t.decr_misses);
    put_u64(o, "decr_hits", t.decr_hits);
    put_u64(o, "cas_misses", t.cas_misses);
    put_u64(o, "cas_hits", t.cas_hits);
    put_u64(o, "cas_badval", t.cas_badval);
    put_u64(o, "touch_hits", t.touch_hits);
    put_u64(o, "touch_misses", t.touch_misses);
    put_u64(o, "store_too_large", t.store_too_large);
    put_u64(o, "store_no_memory", t.store_no_memory);
    put_u64(o, "auth_cmds", t.auth_cmds);
    put_u64(o, "auth_errors", t.auth_errors);
    if (p->settings.idle_timeout > 0) /* memcached lists it only then */
        put_u64(o, "idle_kicks", t.idle_kicks);
    put_u64(o, "bytes_read", t.bytes_read);
    put_u64(o, "bytes_written", t.bytes_written);
    put_u64(o, "limit_maxbytes", cs.limit_maxbytes);
    put_u64(o, "accepting_conns", atomic_load(&p->fe.accepting) ? 1 : 0);
    put_u64(o, "listen_disabled_num", atomic_load(&p->fe.listen_disabled_num));
    put_u64(o, "threads", p->fe.nworkers);
    put_u64(o, "conn_yields", t.conn_yields);
    put_u64(o, "hash_power_level", cs.hash_power_level);
    put_u64(o, "hash_bytes", cs.hash_bytes);
    put_u64(o, "hash_is_expanding", cs.hash_is_expanding ? 1 : 0);
    put_u64(o, "bytes", cs.bytes);
    put_u64(o, "curr_items", cs.curr_items);
    put_u64(o, "total_items", cs.total_items);
    put_u64(o, "expired_unfetched", cs.expired_unfetched);
    put_u64(o, "evicted_unfetched", cs.evicted_unfetched);
    put_u64(o, "evicted_active", cs.evicted_active);
    put_u64(o, "evictions", cs.evictions);
    put_u64(o, "reclaimed", cs.reclaimed);
    put_u64(o, "total_malloced", cs.malloced);
    pthread_mutex_lock(&p->admin.lock);
    put_u64(o, "lru_crawler_running", p->admin.crawl_running ? 1 : 0);
    put_u64(o, "lru_crawler_starts", p->admin.crawler_starts);
    pthread_mutex_unlock(&p->admin.lock);
    struct watch_stats w;
    watch_stats_read(&p->watch, &w);
    put_u64(o, "log_watcher_skipped", w.skipped);
    put_u64(o, "log_watcher_sent", w.sent);
    put_u64(o, "log_watchers", w.watchers);
}

static void stats_settings(struct proxy *p, struct out *o)
{
    const struct settings *s = &p->settings;
    put_u64(o, "maxbytes", s->max_bytes);
    put_u64(o, "maxconns", s->max_conns);
    put_u64(o, "tcpport", (uint64_t)s->port);
    put_u64(o, "udpport", 0);
    put_str(o, "inter", s->listen_addr);
    enum log_level lvl = log_level();
    put_u64(o, "verbosity", lvl <= LOG_LVL_WARN ? 0 : lvl == LOG_LVL_INFO ? 1 : 2);
    put_u64(o, "oldest", 0);
    put_str(o, "evictions", s->disable_evictions ? "off" : "on");
    put_str(o, "domain_socket", "NULL");
    char buf[32];
    snprintf(buf, sizeof(buf), "%o", s->unix_mask);
    put_str(o, "umask", buf);
    put_str(o, "shutdown_command", s->shutdown_command ? "yes" : "no");
    /* -f and -n are memcached's slab geometry: shown as given, not applied */
    snprintf(buf, sizeof(buf), "%.2f", s->growth_factor);
    put_str(o, "growth_factor", buf);
    put_u64(o, "chunk_size", s->chunk_size);
    put_u64(o, "num_threads", s->threads);
    put_u64(o, "num_threads_per_udp", s->threads);
    char delim[2] = {s->detail_delimiter, '\0'};
    put_str(o, "stat_key_prefix", delim);
    put_str(o, "detail_enabled", detail_enabled(p->detail) ? "yes" : "no");
    put_u64(o, "reqs_per_event", s->reqs_per_event);
    put_str(o, "cas_enabled", "yes");
    put_u64(o, "tcp_backlog", s->backlog);
    /* text and binary on one port, chosen by a client's first byte */
    put_str(o, "binding_protocol", "auto-negotiate");
    put_str(o, "auth_enabled_sasl", "no");
    put_str(o, "auth_enabled_ascii", "no");
    put_u64(o, "item_size_max", s->item_size_max);
    /* strata always turns a client over -c away at once (no_maxconns_fast
     * is accepted and does not apply) */
    put_str(o, "maxconns_fast", "yes");
    put_u64(o, "hashpower_init", s->hashpower);
    put_str(o, "slab_reassign", "no");
    pthread_mutex_lock(&p->admin.lock);
    put_u64(o, "slab_automove", p->admin.slab_automove);
    put_str(o, "lru_crawler", p->admin.crawler_enabled ? "yes" : "no");
    put_u64(o, "lru_crawler_sleep", p->admin.crawler_sleep);
    put_u64(o, "lru_crawler_tocrawl", p->admin.crawler_tocrawl);
    put_double(o, "slab_automove_ratio", p->admin.slab_automove_ratio);
    put_u64(o, "hot_lru_pct", p->admin.hot_lru_pct);
    put_u64(o, "warm_lru_pct", p->admin.warm_lru_pct);
    put_double(o, "hot_max_factor", p->admin.hot_max_factor);
    put_double(o, "warm_max_factor", p->admin.warm_max_factor);
    pthread_mutex_unlock(&p->admin.lock);
    put_str(o, "flush_enabled", s->flush_enabled ? "yes" : "no");
    put_str(o, "dump_enabled", s->dump_enabled ? "yes" : "no");
    put_str(o, "hash_algorithm", "xxh3");
    put_str(o, "lru_maintainer_thread", "no");
    put_str(o, "lru_segmented", "no");
    put_str(o, "temp_lru", "no");
    put_u64(o, "idle_timeout", s->idle_timeout);
    put_u64(o, "watcher_logbuf_size", s->watcher_logbuf_size);
    put_u64(o, "read_buf_mem_limit", s->read_buf_mem_limit);
    put_str(o, "track_sizes", "no");
    put_str(o, "ssl_enabled", "no");
    put_str(o, "allocator", mem_allocator_name());
}

static struct cache_class_stats *read_classes(struct proxy *p, unsigned *n)
{
    size_t size = CACHE_CLASSES_MAX * sizeof(struct cache_class_stats);
    struct cache_class_stats *cls = mem_calloc(MEM_OTHER, 1, size);
    if (cls != NULL)
        *n = cache_class_stats_read(p->cache, cls);
    return cls;
}

static void free_classes(struct cache_class_stats *cls)
{
    mem_free(MEM_OTHER, cls, CACHE_CLASSES_MAX * sizeof(*cls));
}

static bool class_in_use(const struct cache_class_stats *c)
{
    return c->number > 0 || c->cmd_set > 0 || c->evicted > 0 || c->reclaimed > 0;
}

static void stats_items(struct proxy *p, struct out *o)
{
    unsigned n = 0;
    struct cache_class_stats *cls = read_classes(p, &n);
    if (cls == NULL)
        return;
    for (unsigned i = 1; i < n; i++) {
        const struct cache_class_stats *c = &cls[i];
        if (c->number == 0)
            continue; /* memcached lists classes holding items only */
        const char *pre = "items:";
        put_class_u64(o, pre, i, "number", c->number);
        put_class_u64(o, pre, i, "number_hot", 0);
        put_class_u64(o, pre, i, "number_warm", 0);
        put_class_u64(o, pre, i, "number_cold", c->number);
        put_class_u64(o, pre, i, "age_hot", 0);
        put_class_u64(o, pre, i, "age_warm", 0);
        put_class_u64(o, pre, i, "age", c->age);
        put_class_u64(o, pre, i, "mem_requested", c->bytes_requested);
        put_class_u64(o, pre, i, "evicted", c->evicted);
        put_class_u64(o, pre, i, "evicted_nonzero", c->evicted_nonzero);
        put_class_u64(o, pre, i, "evicted_time", c->evicted_time);
        put_class_u64(o, pre, i, "outofmemory", c->outofmemory);
        put_class_u64(o, pre, i, "tailrepairs", 0);
        put_class_u64(o, pre, i, "reclaimed", c->reclaimed);
        put_class_u64(o, pre, i, "expired_unfetched", c->expired_unfetched);
        put_class_u64(o, pre, i, "evicted_unfetched", c->evicted_unfetched);
        put_class_u64(o, pre, i, "evicted_active", c->evicted_active);
        put_class_u64(o, pre, i, "crawler_reclaimed", c->crawler_reclaimed);
        put_class_u64(o, pre, i, "crawler_items_checked", c->crawler_items_checked);
        put_class_u64(o, pre, i, "lrutail_reflocked", 0);
        put_class_u64(o, pre, i, "moves_to_cold", 0);
        put_class_u64(o, pre, i, "moves_to_warm", 0);
        put_class_u64(o, pre, i, "moves_within_lru", 0);
        put_class_u64(o, pre, i, "direct_reclaims", 0);
        put_class_u64(o, pre, i, "hits_to_hot", 0);
        put_class_u64(o, pre, i, "hits_to_warm", 0);
        put_class_u64(o, pre, i, "hits_to_cold", c->get_hits);
        put_class_u64(o, pre, i, "hits_to_temp", 0);
    }
    free_classes(cls);
}

static void stats_slabs(struct proxy *p, struct out *o)
{
    unsigned n = 0, active = 0;
    struct cache_class_stats *cls = read_classes(p, &n);
    if (cls == NULL)
        return;
    struct cache_stats cs;
    cache_stats_read(p->cache, &cs);
    for (unsigned i = 1; i < n; i++) {
        const struct cache_class_stats *c = &cls[i];
        if (!class_in_use(c))
            continue;
        active++;
        uint64_t per_page = c->chunk_size >= STATS_PAGE_SIZE ? 1 : STATS_PAGE_SIZE / c->chunk_size;
        uint64_t pages = (c->number + per_page - 1) / per_page;
        put_class_u64(o, "", i, "chunk_size", c->chunk_size);
        put_class_u64(o, "", i, "chunks_per_page", per_page);
        put_class_u64(o, "", i, "total_pages", pages);
        put_class_u64(o, "", i, "total_chunks", pages * per_page);
        put_class_u64(o, "", i, "used_chunks", c->number);
        put_class_u64(o, "", i, "free_chunks", pages * per_page - c->number);
        put_class_u64(o, "", i, "free_chunks_end", 0);
        put_class_u64(o, "", i, "get_hits", c->get_hits);
        put_class_u64(o, "", i, "cmd_set", c->cmd_set);
        put_class_u64(o, "", i, "delete_hits", c->delete_hits);
        put_class_u64(o, "", i, "incr_hits", c->incr_hits);
        put_class_u64(o, "", i, "decr_hits", c->decr_hits);
        put_class_u64(o, "", i, "cas_hits", c->cas_hits);
        put_class_u64(o, "", i, "cas_badval", c->cas_badval);
        put_class_u64(o, "", i, "touch_hits", c->touch_hits);
    }
    put_u64(o, "active_slabs", active);
    put_u64(o, "total_malloced", cs.malloced);
    free_classes(cls);
}

static void put_conn_row(struct out *o, int fd, const char *field, const char *value)
{
    char key[48];
    snprintf(key, sizeof(key), "%d:%s", fd, field);
    put_str(o, key, value);
}

static void put_conn_secs(struct out *o, int fd, rel_time_t last)
{
    char buf[24];
    rel_time_t now = clock_now();
    snprintf(buf, sizeof(buf), "%u", now > last ? now - last : 0);
    put_conn_row(o, fd, "secs_since_last_cmd", buf);
}

static void stats_conns(struct proxy *p, struct out *o)
{
    int lfd = p->fe.listener != NULL ? listener_fd(p->fe.listener) : -1;
    if (lfd >= 0) {
        put_conn_row(o, lfd, "addr", listener_addr(p->fe.listener));
        put_conn_row(o, lfd, "state", "conn_listening");
        put_conn_secs(o, lfd, clock_now());
    }
    for (unsigned i = 0; i < p->fe.nworkers; i++) {
        struct worker *w = &p->fe.workers[i];
        pthread_mutex_lock(&w->conns_lock);
        for (struct conn *c = w->conns; c != NULL; c = c->next) {
            put_conn_row(o, c->fd, "addr", c->peer);
            if (p->fe.listener != NULL)
                put_conn_row(o, c->fd, "listen_addr", listener_addr(p->fe.listener));
            put_conn_row(o, c->fd, "state", conn_state_name(c));
            put_conn_secs(o, c->fd, atomic_load_explicit(&c->last_cmd, memory_order_relaxed));
        }
        pthread_mutex_unlock(&w->conns_lock);
    }
}

bool stats_reply(struct proxy *p, const char *args, size_t len, stats_emit_fn emit, void *ctx,
                 const char **special)
{
    struct out o = {emit, ctx};
    *special = NULL;
    if (len == 0)
        stats_general(p, &o);
    else if (mc_text_args_are(args, len, "settings"))
        stats_settings(p, &o);
    else if (mc_text_args_are(args, len, "items"))
        stats_items(p, &o);
    else if (mc_text_args_are(args, len, "slabs"))
        stats_slabs(p, &o);
    else if (mc_text_args_are(args, len, "sizes"))
        put_str(&o, "sizes_status", "disabled");
    else if (mc_text_args_are(args, len, "conns"))
        stats_conns(p, &o);
    else if (mc_text_args_are(args, len, "extstore"))
        ; /* no external storage: memcached's empty answer when none is configured */
    else if (mc_text_args_are(args, len, "reset")) {
        stats_reset(p);
        *special = "RESET";
    } else if (mc_text_args_are(args, len, "detail"))
        *special = "CLIENT_ERROR usage: stats detail on|off|dump";
    else
        return false;
    return true;
}
