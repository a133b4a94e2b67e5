/*
 * admin.c - memcached's operator commands (see admin.h): cache_memlimit,
 * lru_crawler (crawl, metadump, mgdump, tocrawl, sleep, enable, disable),
 * slabs (reassign, automove), lru (tune, mode, temp_ttl) and stats
 * cachedump. Replies are memcached 1.6.18's, probed on the real server.
 * Worker threads answer; a crawl then runs on the main thread's timer and
 * a dump streams from the worker as the client reads it.
 */
#include "proxy/admin.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mc_text.h"
#include "common/mem.h"
#include "common/numparse.h"
#include "common/uri.h"
#include "frontend/conn.h"
#include "proxy/proxy.h"
#include "proxy/stats.h"
#include "proxy/watch.h"

/* The proxy a connection's commands run for: its executor context. */
static struct proxy *proxy_of(const struct conn *c)
{
    return c->exec;
}

#define LIT(s) s, sizeof(s) - 1
#define ADMIN_MAX_WORDS 8
/* memcached's slab class ids are 1..63 (MAX_NUMBER_OF_SLAB_CLASSES 64);
 * strata's size classes stay below that for every -I it accepts. */
#define ADMIN_CLASS_LIMIT 64
/* memcached caps a cachedump reply at 2 MB. */
#define CACHEDUMP_MAX_BYTES (2u << 20)
/* Hash positions a dump or crawl step walks before it yields. */
#define WALK_STEP_POSITIONS 64
/* Crawl steps per maintenance tick (the main thread's 100 ms timer). */
#define CRAWL_STEP_POSITIONS 4096
/* memcached's smallest cache_memlimit, in MB. */
#define MEMLIMIT_MIN_MB 8
#define MEMLIMIT_MAX_MB 1000000000u

struct words {
    const char *p[ADMIN_MAX_WORDS];
    size_t len[ADMIN_MAX_WORDS];
    size_t n; /* all words, even past ADMIN_MAX_WORDS */
};

static void split_words(const char *s, size_t len, struct words *w)
{
    w->n = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && s[i] == ' ')
            i++;
        if (i == len)
            break;
        size_t start = i;
        while (i < len && s[i] != ' ')
            i++;
        if (w->n < ADMIN_MAX_WORDS) {
            w->p[w->n] = s + start;
            w->len[w->n] = i - start;
        }
        w->n++;
    }
}

static bool word_is(const struct words *w, size_t i, const char *s)
{
    return i < w->n && i < ADMIN_MAX_WORDS && w->len[i] == strlen(s) &&
           memcmp(w->p[i], s, w->len[i]) == 0;
}

/* memcached's safe_strtoul: a decimal that fits, no sign. */
static bool word_u32(const struct words *w, size_t i, uint32_t *out)
{
    uint64_t v;
    if (i >= w->n || !numparse_u64(w->p[i], w->len[i], &v) || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* memcached's safe_strtod: a whole word that strtod reads. */
static bool word_double(const struct words *w, size_t i, double *out)
{
    char buf[64];
    if (i >= w->n || w->len[i] == 0 || w->len[i] >= sizeof(buf))
        return false;
    memcpy(buf, w->p[i], w->len[i]);
    buf[w->len[i]] = '\0';
    char *end;
    *out = strtod(buf, &end);
    return end != buf && *end == '\0';
}

static enum proto_action reply(struct conn *c, const char *s, size_t n)
{
    return outq_add(conn_out(c), s, n) == ST_OK ? PROTO_NEXT : PROTO_CLOSE;
}

static enum proto_action reply_maybe(struct conn *c, bool noreply, const char *s, size_t n)
{
    return noreply ? PROTO_NEXT : reply(c, s, n);
}

void admin_state_init(struct admin_state *a, const struct settings *s)
{
    memset(a, 0, sizeof(*a));
    pthread_mutex_init(&a->lock, NULL);
    a->crawler_enabled = s->lru_crawler;
    a->crawler_sleep = s->lru_crawler_sleep;
    a->crawler_tocrawl = s->lru_crawler_tocrawl;
    /* memcached's defaults, reported by stats settings */
    a->slab_automove = 0; /* nothing to move; `slabs automove` records a level */
    a->slab_automove_ratio = 0.8;
    a->hot_lru_pct = 20;
    a->warm_lru_pct = 40;
    a->hot_max_factor = 0.2;
    a->warm_max_factor = 2.0;
}

void admin_state_deinit(struct admin_state *a)
{
    pthread_mutex_destroy(&a->lock);
}

/* ---- cache_memlimit ---- */

static enum proto_action do_memlimit(struct conn *c, const struct words *w)
{
    /* memcached: 1 or 2 arguments, else ERROR; noreply as the last one */
    if (w->n < 1 || w->n > 2)
        return reply(c, LIT("ERROR\r\n"));
    bool noreply = word_is(w, w->n - 1, "noreply");
    uint32_t mb;
    if (!word_u32(w, 0, &mb))
        return reply_maybe(c, noreply, LIT("ERROR\r\n"));
    if (mb < MEMLIMIT_MIN_MB)
        return reply_maybe(c, noreply,
                           LIT("MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n"));
    if (mb > MEMLIMIT_MAX_MB)
        return reply_maybe(c, noreply,
                           LIT("MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n"));
    struct cache *cache = proxy_of(c)->cache;
    cache_set_max_bytes(cache, (size_t)mb << 20);
    size_t freed = cache_shrink(cache);
    log_info("maxbytes adjusted to %" PRIu32 "m (%zu bytes evicted)", mb, freed);
    return reply_maybe(c, noreply, LIT("OK\r\n"));
}

/* ---- lru_crawler ---- */

enum class_list { CLASSES_OK, CLASSES_BAD, CLASSES_HASH };

/* "all", "hash" or a comma-separated list of class ids. */
static enum class_list parse_classes(const char *s, size_t len, bool *classes)
{
    memset(classes, 0, CACHE_CLASSES_MAX * sizeof(*classes));
    if (len == 3 && memcmp(s, "all", 3) == 0) {
        for (unsigned i = 1; i < CACHE_CLASSES_MAX; i++)
            classes[i] = true;
        return CLASSES_OK;
    }
    if (len == 4 && memcmp(s, "hash", 4) == 0) {
        for (unsigned i = 1; i < CACHE_CLASSES_MAX; i++)
            classes[i] = true;
        return CLASSES_HASH;
    }
    size_t i = 0;
    while (i <= len) {
        size_t start = i;
        while (i < len && s[i] != ',')
            i++;
        uint64_t id;
        if (!numparse_u64(s + start, i - start, &id) || id < 1 || id >= ADMIN_CLASS_LIMIT)
            return CLASSES_BAD;
        classes[id] = true;
        i++;
    }
    return CLASSES_OK;
}

static enum proto_action crawl_start(struct conn *c, const struct words *w)
{
    struct admin_state *a = &proxy_of(c)->admin;
    bool classes[CACHE_CLASSES_MAX];
    enum class_list kind = parse_classes(w->p[1], w->len[1], classes);
    if (kind == CLASSES_BAD)
        return reply(c, LIT("BADCLASS invalid class id\r\n"));
    pthread_mutex_lock(&a->lock);
    const char *answer = "OK\r\n";
    if (!a->crawler_enabled) {
        answer = "CLIENT_ERROR lru crawler disabled\r\n";
    } else if (kind == CLASSES_HASH) {
        /* memcached: a hash walk is for metadump only */
        answer = "ERROR an unknown error happened\r\n";
    } else if (a->crawl_running) {
        answer = "BUSY currently processing crawler request\r\n";
    } else {
        memcpy(a->crawl_classes, classes, sizeof(classes));
        memset(&a->crawl, 0, sizeof(a->crawl));
        a->crawl_running = true;
        a->crawler_starts++;
    }
    pthread_mutex_unlock(&a->lock);
    return reply(c, answer, strlen(answer));
}

void admin_crawler_tick(struct proxy *p)
{
    struct admin_state *a = &p->admin;
    pthread_mutex_lock(&a->lock);
    if (a->crawl_running) {
        bool more = cache_walk_step(p->cache, &a->crawl, CRAWL_STEP_POSITIONS, a->crawl_classes,
                                    NULL, NULL);
        bool capped = a->crawler_tocrawl != 0 && a->crawl.checked >= a->crawler_tocrawl;
        if (!more || capped) {
            a->crawl_running = false;
            log_debug("lru crawler: %" PRIu64 " items checked, %" PRIu64 " reclaimed",
                      a->crawl.checked, a->crawl.reclaimed);
        }
    }
    pthread_mutex_unlock(&a->lock);
}

/* A metadump/mgdump in progress on one connection. */
struct dump {
    struct conn *c;
    struct cache_walk walk;
    bool classes[CACHE_CLASSES_MAX];
    bool mg; /* mgdump: "mg <key>" lines, "EN" at the end */
    bool failed;
};

static void dump_visit(void *arg, const struct cache_item_view *v)
{
    struct dump *d = arg;
    /* "key=" + 3 bytes per key byte + the fields */
    char *p = outq_reserve(conn_out(d->c), 3 * MC_KEY_MAX + 160);
    if (p == NULL) {
        d->failed = true;
        return;
    }
    size_t n;
    if (d->mg) {
        memcpy(p, "mg ", 3);
        memcpy(p + 3, v->key, v->nkey);
        n = 3 + v->nkey;
        /* a base64 key is listed as stored, with memcached's b flag */
        if (v->key_binary) {
            memcpy(p + n, " b", 2);
            n += 2;
        }
        memcpy(p + n, "\r\n", 2);
        n += 2;
    } else {
        memcpy(p, "key=", 4);
        n = 4 + uri_encode(v->key, v->nkey, p + 4);
        long long exp = v->exptime == 0 ? -1 : (long long)(clock_process_started() + v->exptime);
        n += (size_t)sprintf(p + n, " exp=%lld la=%llu cas=%" PRIu64 " fetch=%s cls=%u size=%zu\n",
                             exp, (unsigned long long)(clock_process_started() + v->atime), v->cas,
                             v->fetched ? "yes" : "no", v->clsid, v->size);
    }
    if (outq_commit(conn_out(d->c), n) != ST_OK)
        d->failed = true;
}

static enum conn_stream_step dump_fill(struct conn *c, void *arg)
{
    struct dump *d = arg;
    (void)c;
    bool more = cache_walk_step(proxy_of(c)->cache, &d->walk, WALK_STEP_POSITIONS, d->classes,
                                dump_visit, d);
    if (d->failed)
        return CONN_STREAM_FAIL;
    if (more)
        return CONN_STREAM_MORE;
    const char *end = d->mg ? "EN\r\n" : "END\r\n";
    if (outq_add(conn_out(c), end, strlen(end)) != ST_OK)
        return CONN_STREAM_FAIL;
    return CONN_STREAM_DONE;
}

static void dump_free(void *arg)
{
    mem_free(MEM_OTHER, arg, sizeof(struct dump));
}

static enum proto_action dump_start(struct conn *c, const struct words *w, bool mg)
{
    struct proxy *p = proxy_of(c);
    pthread_mutex_lock(&p->admin.lock);
    bool enabled = p->admin.crawler_enabled;
    pthread_mutex_unlock(&p->admin.lock);
    if (!enabled)
        return reply(c, LIT("CLIENT_ERROR lru crawler disabled\r\n"));
    if (!p->settings.dump_enabled)
        return mg ? reply(c, LIT("ERROR key dump not allowed\r\n"))
                  : reply(c, LIT("ERROR metadump not allowed\r\n"));
    /* memcached hands the connection to its crawler thread, which cannot
     * carry replies queued before the dump */
    if (outq_pending(&c->out) > 0)
        return mg ? reply(c, LIT("ERROR cannot pipeline other commands before mgdump\r\n"))
                  : reply(c, LIT("ERROR cannot pipeline other commands before metadump\r\n"));
    struct dump *d = mem_calloc(MEM_OTHER, 1, sizeof(*d));
    if (d == NULL)
        return reply(c, LIT("SERVER_ERROR out of memory\r\n"));
    d->c = c;
    d->mg = mg;
    if (parse_classes(w->p[1], w->len[1], d->classes) == CLASSES_BAD) {
        dump_free(d);
        return reply(c, LIT("BADCLASS invalid class id\r\n"));
    }
    if (conn_begin_stream(c, dump_fill, dump_free, d, false) != ST_OK)
        return reply(c, LIT("SERVER_ERROR out of memory\r\n"));
    return PROTO_NEXT;
}

static enum proto_action do_lru_crawler(struct conn *c, const struct words *w)
{
    struct admin_state *a = &proxy_of(c)->admin;
    if (w->n == 2 && word_is(w, 0, "crawl"))
        return crawl_start(c, w);
    if (w->n == 2 && word_is(w, 0, "metadump"))
        return dump_start(c, w, false);
    if (w->n == 2 && word_is(w, 0, "mgdump"))
        return dump_start(c, w, true);
    if (w->n == 2 && (word_is(w, 0, "tocrawl") || word_is(w, 0, "sleep"))) {
        uint32_t v;
        if (!word_u32(w, 1, &v))
            return reply(c, LIT("CLIENT_ERROR bad command line format\r\n"));
        bool sleep = word_is(w, 0, "sleep");
        if (sleep && v > 1000000)
            return reply(c, LIT("CLIENT_ERROR sleep must be one second or less\r\n"));
        pthread_mutex_lock(&a->lock);
        if (sleep)
            a->crawler_sleep = v;
        else
            a->crawler_tocrawl = v;
        pthread_mutex_unlock(&a->lock);
        return reply(c, LIT("OK\r\n"));
    }
    if (w->n == 1 && (word_is(w, 0, "enable") || word_is(w, 0, "disable"))) {
        bool enable = word_is(w, 0, "enable");
        pthread_mutex_lock(&a->lock);
        bool changed = a->crawler_enabled != enable;
        a->crawler_enabled = enable;
        if (!enable)
            a->crawl_running = false;
        pthread_mutex_unlock(&a->lock);
        if (changed)
            return reply(c, LIT("OK\r\n"));
        return enable ? reply(c, LIT("ERROR failed to start lru crawler thread\r\n"))
                      : reply(c, LIT("ERROR failed to stop lru crawler thread\r\n"));
    }
    return reply(c, LIT("ERROR\r\n"));
}

/* ---- slabs, lru ---- */

static enum proto_action do_slabs(struct conn *c, const struct words *w)
{
    struct admin_state *a = &proxy_of(c)->admin;
    if (w->n == 3 && word_is(w, 0, "reassign")) {
        /* strata has no slab pages to move: jemalloc owns the memory, and
         * an item's size class follows its size. memcached's reply when
         * reassignment is off is the true one. */
        return reply(c, LIT("CLIENT_ERROR slab reassignment disabled\r\n"));
    }
    if (w->n >= 2 && word_is(w, 0, "automove")) {
        bool noreply = word_is(w, w->n - 1, "noreply");
        if (word_is(w, 1, "ratio")) {
            double ratio;
            if (w->n < 3 || !word_double(w, 2, &ratio))
                return reply_maybe(c, noreply, LIT("ERROR\r\n"));
            pthread_mutex_lock(&a->lock);
            a->slab_automove_ratio = ratio;
            pthread_mutex_unlock(&a->lock);
            return reply_maybe(c, noreply, LIT("OK\r\n"));
        }
        uint32_t level;
        if (!word_u32(w, 1, &level))
            return reply_maybe(c, noreply, LIT("CLIENT_ERROR bad command line format\r\n"));
        if (level > 2)
            return reply_maybe(c, noreply, LIT("ERROR\r\n"));
        pthread_mutex_lock(&a->lock);
        a->slab_automove = level;
        pthread_mutex_unlock(&a->lock);
        return reply_maybe(c, noreply, LIT("OK\r\n"));
    }
    return reply(c, LIT("ERROR\r\n"));
}

static enum proto_action do_lru(struct conn *c, const struct words *w)
{
    struct admin_state *a = &proxy_of(c)->admin;
    if (w->n < 1)
        return reply(c, LIT("ERROR\r\n"));
    bool noreply = word_is(w, w->n - 1, "noreply");
    if (word_is(w, 0, "tune") && w->n >= 5) {
        uint32_t hot, warm;
        double hot_factor, warm_factor;
        if (!word_u32(w, 1, &hot) || !word_u32(w, 2, &warm) || !word_double(w, 3, &hot_factor) ||
            !word_double(w, 4, &warm_factor))
            return reply_maybe(c, noreply, LIT("ERROR\r\n"));
        if ((uint64_t)hot + warm > 80)
            return reply_maybe(c, noreply, LIT("ERROR hot and warm pcts must not exceed 80\r\n"));
        if (hot_factor <= 0 || warm_factor <= 0)
            return reply_maybe(c, noreply,
                               LIT("ERROR hot/warm age factors must be greater than 0\r\n"));
        pthread_mutex_lock(&a->lock);
        a->hot_lru_pct = hot;
        a->warm_lru_pct = warm;
        a->hot_max_factor = hot_factor;
        a->warm_max_factor = warm_factor;
        pthread_mutex_unlock(&a->lock);
        return reply_maybe(c, noreply, LIT("OK\r\n"));
    }
    /* `lru mode` and `lru temp_ttl` need memcached's LRU maintainer
     * thread; strata has one flat LRU per lock stripe and reports
     * lru_maintainer_thread no, so memcached's reply without it is ours. */
    return reply_maybe(c, noreply, LIT("ERROR\r\n"));
}

enum proto_action admin_text_command(struct conn *c, const struct mc_request *req)
{
    struct words w;
    split_words(req->args, req->args_len, &w);
    switch (req->cmd) {
    case MC_CMD_CACHE_MEMLIMIT: return do_memlimit(c, &w);
    case MC_CMD_LRU_CRAWLER: return do_lru_crawler(c, &w);
    case MC_CMD_SLABS: return do_slabs(c, &w);
    case MC_CMD_LRU: return do_lru(c, &w);
    default: return reply(c, LIT("ERROR\r\n"));
    }
}

/* ---- stats cachedump ---- */

struct cachedump {
    struct conn *c;
    size_t bytes;
    bool failed;
};

static bool cachedump_visit(void *arg, const struct cache_item_view *v)
{
    struct cachedump *d = arg;
    char line[MC_KEY_MAX + 64];
    unsigned long long exp =
        v->exptime == 0 ? 0 : (unsigned long long)(clock_process_started() + v->exptime);
    int n = snprintf(line, sizeof(line), "ITEM %.*s [%zu b; %llu s]\r\n", (int)v->nkey, v->key,
                     v->nvalue, exp);
    if (n < 0 || (size_t)n >= sizeof(line))
        return true;
    /* memcached: stop before the reply (with its END) would pass 2 MB */
    if (d->bytes + (size_t)n + 6 > CACHEDUMP_MAX_BYTES)
        return false;
    if (outq_add(conn_out(d->c), line, (size_t)n) != ST_OK) {
        d->failed = true;
        return false;
    }
    d->bytes += (size_t)n;
    return true;
}

enum proto_action admin_cachedump(struct conn *c, const char *args, size_t len)
{
    if (!proxy_of(c)->settings.dump_enabled)
        return reply(c, LIT("CLIENT_ERROR stats cachedump not allowed\r\n"));
    struct words w;
    split_words(args, len, &w);
    if (w.n < 2)
        return reply(c, LIT("CLIENT_ERROR bad command line\r\n"));
    uint32_t id, limit;
    if (!word_u32(&w, 0, &id) || !word_u32(&w, 1, &limit))
        return reply(c, LIT("CLIENT_ERROR bad command line format\r\n"));
    if (id >= ADMIN_CLASS_LIMIT)
        return reply(c, LIT("CLIENT_ERROR Illegal slab id\r\n"));
    struct outq_mark mark;
    outq_mark(conn_out(c), &mark);
    struct cachedump d = {c, 0, false};
    cache_dump_class(proxy_of(c)->cache, id, limit, cachedump_visit, &d);
    if (d.failed) {
        outq_rollback(conn_out(c), &mark);
        return reply(c, LIT("SERVER_ERROR out of memory writing stats\r\n"));
    }
    return reply(c, LIT("END\r\n"));
}

enum proto_action admin_text_line(struct conn *c, const struct mc_request *req, const char *line,
                                  size_t len)
{
    (void)line;
    (void)len;
    switch (req->cmd) {
    case MC_CMD_CACHE_MEMLIMIT:
    case MC_CMD_LRU_CRAWLER:
    case MC_CMD_SLABS:
    case MC_CMD_LRU: return admin_text_command(c, req);
    case MC_CMD_WATCH: return watch_command(c, req->args, req->args_len);
    case MC_CMD_STATS:
        if (mc_text_args_are(req->args, req->args_len, "cachedump"))
            return admin_cachedump(c, req->args + 9, req->args_len - 9);
        break;
    default: break;
    }
    return reply(c, LIT("ERROR\r\n"));
}
