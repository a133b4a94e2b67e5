/*
 * watch.c - log watchers (see watch.h): the registry in struct proxy, the
 * line formats of memcached 1.6.18's logger, and the stream that sends a
 * watcher's buffer from its connection's own worker.
 *
 *   event site (any worker, or the cache's eviction callback under a
 *   shard lock) ──► format the line ──► ws->lock: append to the ring
 *   buffer of each interested watcher (or count it skipped when full)
 *   watcher's worker: conn stream fill() ──► ws->lock: move ring bytes
 *   into the connection's output queue
 */
#include "proxy/watch.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "common/clock.h"
#include "common/mem.h"
#include "common/uri.h"
#include "frontend/conn.h"
#include "proxy/proxy.h"

/* The proxy a connection's commands run for: its executor context. */
static struct proxy *proxy_of(const struct conn *c)
{
    return c->exec;
}

#define LIT(s) s, sizeof(s) - 1
/* memcached's tokenizer hands `watch` at most this many words; words past
 * them are ignored (MAX_TOKENS 24 minus the command and the terminator). */
#define WATCH_MAX_WORDS 22
/* Room kept free beyond a line for the "skipped=N" notice before it (as
 * memcached's logger does). */
#define WATCH_SKIP_RESERVE 128
/* Bytes moved from a watcher's ring into its output queue per fill. */
#define WATCH_FILL_MAX 16384
/* A line without its "ts=... gid=... " prefix: a 250-byte key encoded to
 * 750 bytes plus the fields. */
#define WATCH_BODY_MAX 1024

/* One watching connection. Its ring buffer and counters are guarded by
 * ws->lock; the struct is owned by the connection's stream (freed by
 * watch_free when the connection closes). */
struct watch_watcher {
    struct watch_watcher *next; /* ws->watchers */
    struct watch_state *ws;
    unsigned events;  /* enum watch_event bits */
    char *buf;        /* ring of cap bytes */
    size_t cap;       /* ws->logbuf_size */
    size_t head, len; /* unsent bytes: len of them from head, wrapping */
    uint64_t skipped; /* lines dropped since the last one buffered */
};

static _Thread_local int watch_client_fd = -1;

void watch_set_client_fd(int fd)
{
    watch_client_fd = fd;
}

void watch_state_init(struct watch_state *ws, size_t logbuf_size)
{
    memset(ws, 0, sizeof(*ws));
    atomic_init(&ws->mask, 0);
    pthread_mutex_init(&ws->lock, NULL);
    ws->logbuf_size = logbuf_size;
}

void watch_state_deinit(struct watch_state *ws)
{
    pthread_mutex_destroy(&ws->lock);
}

void watch_stats_read(struct watch_state *ws, struct watch_stats *st)
{
    pthread_mutex_lock(&ws->lock);
    st->watchers = ws->nwatchers;
    st->sent = ws->sent;
    st->skipped = ws->skipped;
    pthread_mutex_unlock(&ws->lock);
}

void watch_stats_reset(struct watch_state *ws)
{
    pthread_mutex_lock(&ws->lock);
    ws->sent = 0;
    ws->skipped = 0;
    pthread_mutex_unlock(&ws->lock);
}

/* ---- the registry ---- */

/* REQUIRES: ws->lock. */
static void update_mask_locked(struct watch_state *ws)
{
    unsigned mask = 0;
    for (const struct watch_watcher *w = ws->watchers; w != NULL; w = w->next)
        mask |= w->events;
    atomic_store_explicit(&ws->mask, mask, memory_order_relaxed);
}

static void watcher_destroy(struct watch_watcher *w)
{
    mem_free(MEM_OTHER, w->buf, w->cap);
    mem_free(MEM_OTHER, w, sizeof(*w));
}

/* Stream free: the connection is closing; stop feeding it. */
static void watch_free(void *arg)
{
    struct watch_watcher *w = arg;
    struct watch_state *ws = w->ws;
    pthread_mutex_lock(&ws->lock);
    for (struct watch_watcher **link = &ws->watchers; *link != NULL; link = &(*link)->next) {
        if (*link == w) {
            *link = w->next;
            ws->nwatchers--;
            break;
        }
    }
    update_mask_locked(ws);
    pthread_mutex_unlock(&ws->lock);
    watcher_destroy(w);
}

/* Links w unless WATCH_LIMIT watchers exist (ST_AGAIN). */
static enum st_status watch_register(struct watch_state *ws, struct watch_watcher *w)
{
    pthread_mutex_lock(&ws->lock);
    if (ws->nwatchers >= WATCH_LIMIT) {
        pthread_mutex_unlock(&ws->lock);
        return ST_AGAIN;
    }
    w->next = ws->watchers;
    ws->watchers = w;
    ws->nwatchers++;
    update_mask_locked(ws);
    pthread_mutex_unlock(&ws->lock);
    return ST_OK;
}

/* ---- buffering lines ---- */

/* REQUIRES: ws->lock and n bytes free in the ring. */
static void ring_put(struct watch_watcher *w, const char *p, size_t n)
{
    size_t tail = (w->head + w->len) % w->cap;
    size_t first = w->cap - tail < n ? w->cap - tail : n;
    memcpy(w->buf + tail, p, first);
    memcpy(w->buf, p + first, n - first);
    w->len += n;
}

/* Buffers prefix+body for w, or counts the line skipped when the ring is
 * (nearly) full: the watcher is not reading fast enough. REQUIRES:
 * ws->lock. */
static void watcher_append_locked(struct watch_state *ws, struct watch_watcher *w,
                                  const char *prefix, size_t nprefix, const char *body,
                                  size_t nbody)
{
    if (w->cap - w->len < nprefix + nbody + WATCH_SKIP_RESERVE) {
        w->skipped++;
        ws->skipped++;
        return;
    }
    if (w->skipped > 0) {
        char note[48];
        int n = snprintf(note, sizeof(note), "skipped=%llu\n", (unsigned long long)w->skipped);
        ring_put(w, note, (size_t)n);
        w->skipped = 0;
    }
    ring_put(w, prefix, nprefix);
    ring_put(w, body, nbody);
    ws->sent++;
}

/* Stamps a formatted body with time and the next event id and buffers it
 * for every watcher of `event`. */
static void emit(struct watch_state *ws, unsigned event, const char *body, size_t nbody)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char prefix[80];
    pthread_mutex_lock(&ws->lock);
    /* memcached: %d for the microseconds, so they are not zero-padded */
    int n = snprintf(prefix, sizeof(prefix), "ts=%lld.%d gid=%llu ", (long long)tv.tv_sec,
                     (int)tv.tv_usec, (unsigned long long)++ws->gid);
    for (struct watch_watcher *w = ws->watchers; w != NULL; w = w->next) {
        if (w->events & event)
            watcher_append_locked(ws, w, prefix, (size_t)n, body, nbody);
    }
    pthread_mutex_unlock(&ws->lock);
}

/* Emits a body formatted by snprintf; a body that does not fit (it
 * cannot, with keys of at most 250 bytes) is dropped. */
static void emit_formatted(struct watch_state *ws, unsigned event, const char *body, int n)
{
    if (n > 0 && n < WATCH_BODY_MAX)
        emit(ws, event, body, (size_t)n);
}

/* Writes the uri-encoded key, NUL-terminated. REQUIRES: nkey <= CACHE_KEY_MAX. */
static void encode_key(const char *key, size_t nkey, char *out)
{
    if (nkey > CACHE_KEY_MAX)
        nkey = CACHE_KEY_MAX;
    out[uri_encode(key, nkey, out)] = '\0';
}

/* ---- event lines ---- */

void watch_log_fetch(struct watch_state *ws, const char *key, size_t nkey, enum watch_fetch status,
                     unsigned clsid, size_t nvalue)
{
    static const char *const names[] = {"not_found", "found", "flushed", "expired"};
    char ekey[URI_ENCODED_MAX(CACHE_KEY_MAX) + 1];
    encode_key(key, nkey, ekey);
    char body[WATCH_BODY_MAX];
    int n = snprintf(body, sizeof(body), "type=item_get key=%s status=%s clsid=%u cfd=%d size=%d\n",
                     ekey, names[status], clsid, watch_client_fd, (int)nvalue);
    emit_formatted(ws, WATCH_FETCHERS, body, n);
}

static const char *store_status_name(enum cache_result res)
{
    switch (res) {
    case CACHE_STORED: return "stored";
    case CACHE_EXISTS: return "exists";
    case CACHE_NOT_FOUND: return "not_found";
    case CACHE_TOO_LARGE: return "too_large";
    case CACHE_NO_MEMORY: return "no_memory";
    default: return "not_stored";
    }
}

static const char *store_cmd_name(enum cache_store_mode mode)
{
    switch (mode) {
    case CACHE_SET: return "set";
    case CACHE_ADD: return "add";
    case CACHE_REPLACE: return "replace";
    case CACHE_APPEND: return "append";
    case CACHE_PREPEND: return "prepend";
    case CACHE_CAS: return "cas";
    case CACHE_FILL: return "fill";
    }
    return "null";
}

void watch_log_store(struct watch_state *ws, const char *key, size_t nkey, enum cache_result res,
                     enum cache_store_mode mode, rel_time_t exptime, unsigned clsid, size_t nvalue)
{
    char ekey[URI_ENCODED_MAX(CACHE_KEY_MAX) + 1];
    encode_key(key, nkey, ekey);
    /* memcached: the remaining seconds in unsigned relative time */
    rel_time_t ttl = exptime != 0 ? exptime - clock_now() : 0;
    char body[WATCH_BODY_MAX];
    int n = snprintf(body, sizeof(body),
                     "type=item_store key=%s status=%s cmd=%s ttl=%u clsid=%u cfd=%d size=%d\n",
                     ekey, store_status_name(res), store_cmd_name(mode), (unsigned)ttl, clsid,
                     watch_client_fd, (int)nvalue);
    emit_formatted(ws, WATCH_MUTATIONS, body, n);
}

void watch_on_evict(void *arg, const struct cache_item_view *v)
{
    struct watch_state *ws = arg;
    if (!watch_wants(ws, WATCH_EVICTIONS))
        return;
    rel_time_t now = clock_now();
    char ekey[URI_ENCODED_MAX(CACHE_KEY_MAX) + 1];
    encode_key(v->key, v->nkey, ekey);
    /* memcached: unsigned relative-time differences, -1 for no TTL */
    long long ttl = v->exptime > 0 ? (long long)(rel_time_t)(v->exptime - now) : -1;
    int la = (int)(rel_time_t)(now - v->atime);
    char body[WATCH_BODY_MAX];
    int n = snprintf(body, sizeof(body),
                     "type=eviction key=%s fetch=%s ttl=%lld la=%d clsid=%u size=%d\n", ekey,
                     v->fetched ? "yes" : "no", ttl, la, v->clsid, (int)v->nvalue);
    emit_formatted(ws, WATCH_EVICTIONS, body, n);
}

/* Splits conn.h's peer string into address and port (memcached prints
 * IPv6 addresses without brackets). */
static void peer_split(const char *peer, char *rip, size_t riplen, unsigned short *port)
{
    snprintf(rip, riplen, "unknown");
    *port = 0;
    const char *p = strchr(peer, ':');
    if (p == NULL)
        return;
    p++;
    const char *end, *portstr;
    if (*p == '[') {
        p++;
        end = strchr(p, ']');
        portstr = end != NULL && end[1] == ':' ? end + 2 : NULL;
    } else {
        end = strrchr(p, ':');
        portstr = end != NULL ? end + 1 : NULL;
    }
    if (end == NULL || portstr == NULL)
        return;
    snprintf(rip, riplen, "%.*s", (int)(end - p), p);
    unsigned v = 0;
    for (; *portstr >= '0' && *portstr <= '9'; portstr++)
        v = v * 10 + (unsigned)(*portstr - '0');
    *port = (unsigned short)v;
}

void watch_log_conn(struct watch_state *ws, bool is_close, const char *peer, int fd,
                    enum watch_close_reason why)
{
    static const char *const reasons[] = {"error", "normal", "idle_timeout", "shutdown"};
    char rip[INET6_ADDRSTRLEN + 8];
    unsigned short rport;
    peer_split(peer, rip, sizeof(rip), &rport);
    char body[WATCH_BODY_MAX];
    int n;
    if (is_close)
        n = snprintf(body, sizeof(body),
                     "type=conn_close rip=%s rport=%hu transport=tcp reason=%s cfd=%d\n", rip,
                     rport, reasons[why], fd);
    else
        n = snprintf(body, sizeof(body), "type=conn_new rip=%s rport=%hu transport=tcp cfd=%d\n",
                     rip, rport, fd);
    emit_formatted(ws, WATCH_CONNEVENTS, body, n);
}

/* ---- the watching connection ---- */

/* Stream fill, on the watcher's own worker: moves buffered lines into the
 * connection's output queue. */
static enum conn_stream_step watch_fill(struct conn *c, void *arg)
{
    struct watch_watcher *w = arg;
    struct watch_state *ws = w->ws;
    pthread_mutex_lock(&ws->lock);
    if (w->len == 0) {
        pthread_mutex_unlock(&ws->lock);
        return CONN_STREAM_IDLE;
    }
    size_t n = w->cap - w->head;
    if (n > w->len)
        n = w->len;
    if (n > WATCH_FILL_MAX)
        n = WATCH_FILL_MAX;
    enum st_status s = outq_add(conn_out(c), w->buf + w->head, n);
    if (s == ST_OK) {
        w->head = (w->head + n) % w->cap;
        w->len -= n;
        if (w->len == 0)
            w->head = 0;
    }
    pthread_mutex_unlock(&ws->lock);
    return s == ST_OK ? CONN_STREAM_MORE : CONN_STREAM_FAIL;
}

static const struct {
    const char *name;
    unsigned event;
} watch_names[] = {
    {"rawcmds", WATCH_RAWCMDS},     {"evictions", WATCH_EVICTIONS},
    {"fetchers", WATCH_FETCHERS},   {"mutations", WATCH_MUTATIONS},
    {"sysevents", WATCH_SYSEVENTS}, {"connevents", WATCH_CONNEVENTS},
    {"proxyreqs", WATCH_PROXYREQS}, {"proxyevents", WATCH_PROXYEVENTS},
    {"proxyuser", WATCH_PROXYUSER},
};

/* The event type named by a word, 0 if none. */
static unsigned event_named(const char *p, size_t len)
{
    for (size_t i = 0; i < sizeof(watch_names) / sizeof(watch_names[0]); i++) {
        if (strlen(watch_names[i].name) == len && memcmp(watch_names[i].name, p, len) == 0)
            return watch_names[i].event;
    }
    return 0;
}

static enum proto_action reply_maybe(struct conn *c, bool noreply, const char *s, size_t n)
{
    if (noreply)
        return PROTO_NEXT;
    return outq_add(conn_out(c), s, n) == ST_OK ? PROTO_NEXT : PROTO_CLOSE;
}

enum proto_action watch_command(struct conn *c, const char *args, size_t len)
{
    const char *word[WATCH_MAX_WORDS];
    size_t wlen[WATCH_MAX_WORDS], nwords = 0;
    for (size_t i = 0; i < len && nwords < WATCH_MAX_WORDS;) {
        while (i < len && args[i] == ' ')
            i++;
        size_t start = i;
        while (i < len && args[i] != ' ')
            i++;
        if (i > start) {
            word[nwords] = args + start;
            wlen[nwords++] = i - start;
        }
    }
    /* memcached takes a last word "noreply" as the flag, then fails on it
     * as an unknown type: the only effect is silencing the error. */
    bool noreply =
        nwords > 0 && wlen[nwords - 1] == 7 && memcmp(word[nwords - 1], "noreply", 7) == 0;

    /* memcached hands the connection to its logger thread, which cannot
     * carry replies queued before the watch */
    if (outq_pending(&c->out) > 0)
        return reply_maybe(c, noreply,
                           LIT("ERROR cannot pipeline other commands before watch\r\n"));
    unsigned events = nwords == 0 ? WATCH_FETCHERS : 0;
    for (size_t i = 0; i < nwords; i++) {
        unsigned e = event_named(word[i], wlen[i]);
        if (e == 0)
            return reply_maybe(c, noreply, LIT("ERROR\r\n"));
        events |= e;
    }

    struct watch_state *ws = &proxy_of(c)->watch;
    struct watch_watcher *w = mem_calloc(MEM_OTHER, 1, sizeof(*w));
    if (w != NULL && (w->buf = mem_alloc(MEM_OTHER, ws->logbuf_size)) == NULL) {
        mem_free(MEM_OTHER, w, sizeof(*w));
        w = NULL;
    }
    if (w == NULL)
        return reply_maybe(c, noreply, LIT("WATCHER_FAILED failed to add log watcher\r\n"));
    w->ws = ws;
    w->events = events;
    w->cap = ws->logbuf_size;
    if (watch_register(ws, w) != ST_OK) {
        watcher_destroy(w);
        return reply_maybe(c, noreply, LIT("WATCHER_TOO_MANY log watcher limit reached\r\n"));
    }
    /* On failure conn_begin_stream has called watch_free (unregistered). */
    if (conn_begin_stream(c, watch_fill, watch_free, w, true) != ST_OK)
        return reply_maybe(c, noreply, LIT("WATCHER_FAILED failed to add log watcher\r\n"));
    /* Lines buffered from now on follow this: the first fill comes after
     * the handler returns. */
    return outq_add(conn_out(c), LIT("OK\r\n")) == ST_OK ? PROTO_NEXT : PROTO_CLOSE;
}
