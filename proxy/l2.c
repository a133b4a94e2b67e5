/*
 * l2.c - the L2 pool's servers, their connections and ejection (see
 * l2.h).
 *
 *   l2_request ─► ketama: the key's server, or the next one up
 *                 (an ejected server whose time is up is claimed by one
 *                  worker, sent flush_all, and serves once it answers OK)
 *              ─► the worker's link to it: "<line> O<id>\r\n[data\r\n]"
 *   replies    ─► in order; each must echo its request's O token
 *                 (error lines carry none) ─► done(arg, L2_OK, reply)
 *   failures   ─► a reply that does not parse or answers another token,
 *                 a closed connection, the oldest request's timeout: the
 *                 link is reset and every request on it fails; the server
 *                 counts one failure, l2_eject_after in a row eject it
 */
#include "proxy/l2_link.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <inttypes.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>

#include "common/clock.h"
#include "common/ketama.h"
#include "common/log.h"
#include "common/mc_meta.h"
#include "common/mc_text.h"
#include "common/mem.h"
#include "common/ring.h"
#include "frontend/worker.h"
#include "proxy/l2.h"
#include "proxy/settings.h"

#define L2_TICK_MS 5

struct pending {
    struct pending *next;
    uint64_t id;
    uint64_t deadline_ms;
    uint64_t start_us;
    l2_done_fn done; /* NULL: the return flush */
    void *arg;
    bool get; /* mg: VA counts a hit, EN a miss */
};

const char *l2_result_name(enum l2_result r)
{
    switch (r) {
    case L2_OK: return "ok";
    case L2_TIMEOUT: return "timeout";
    case L2_CLOSED: return "closed";
    case L2_DOWN: return "down";
    case L2_BUSY: return "busy";
    }
    return "?";
}

void l2_line_add(struct l2_line *ln, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(ln->buf + ln->n, sizeof(ln->buf) - ln->n, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < sizeof(ln->buf) - ln->n)
        ln->n += (size_t)n;
}

void l2_line_text(struct l2_line *ln, const char *text)
{
    size_t n = strlen(text);
    if (n < sizeof(ln->buf) - ln->n) {
        memcpy(ln->buf + ln->n, text, n);
        ln->n += n;
    }
}

/* " <letter>[-]<digits>": 23 bytes at most. */
static void line_number(struct l2_line *ln, char letter, bool negative, uint64_t magnitude)
{
    if (sizeof(ln->buf) - ln->n < 24)
        return;
    char *p = ln->buf + ln->n;
    *p++ = ' ';
    if (letter != 0)
        *p++ = letter;
    if (negative)
        *p++ = '-';
    p += mc_u64_to_str(magnitude, p);
    ln->n = (size_t)(p - ln->buf);
}

void l2_line_u64(struct l2_line *ln, char letter, uint64_t v)
{
    line_number(ln, letter, false, v);
}

void l2_line_i64(struct l2_line *ln, char letter, int64_t v)
{
    line_number(ln, letter, v < 0, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
}

void l2_line_start(struct l2_line *ln, const char *cmd, const char *key, size_t nkey)
{
    ln->n = 0;
    ln->b64 = false;
    l2_line_text(ln, cmd);
    ln->buf[ln->n++] = ' ';
    for (size_t i = 0; i < nkey; i++)
        if ((unsigned char)key[i] <= ' ' || (unsigned char)key[i] == 0x7f)
            ln->b64 = true;
    if (ln->b64) {
        ln->n += mc_base64_encode(key, nkey, ln->buf + ln->n);
    } else {
        memcpy(ln->buf + ln->n, key, nkey);
        ln->n += nkey;
    }
}

void l2_line_end(struct l2_line *ln)
{
    if (ln->b64)
        l2_line_text(ln, " b");
}

static unsigned gate_slot(const char *key, size_t nkey)
{
    return (unsigned)(ring_token(key, nkey) & (L2_GATE_SLOTS - 1));
}

uint64_t *l2_gate_lock(struct l2 *l, const char *key, size_t nkey)
{
    if (l == NULL)
        return NULL;
    unsigned s = gate_slot(key, nkey);
    pthread_mutex_lock(&l->gate_mu[s]);
    return &l->gate_gen[s];
}

void l2_gate_unlock(struct l2 *l, const char *key, size_t nkey)
{
    if (l != NULL)
        pthread_mutex_unlock(&l->gate_mu[gate_slot(key, nkey)]);
}

size_t l2_value_max(const struct l2 *l)
{
    return l->value_max;
}

/* ------------------------------------------------------- ejection */

static void server_ok(struct l2_server *s)
{
    if (atomic_load_explicit(&s->fails, memory_order_relaxed) != 0)
        atomic_store_explicit(&s->fails, 0, memory_order_relaxed);
}

/* Ejects s from `from` (UP or RETURNING): its interval doubles when it
 * fails again within l2_retry_max_ms of its last return, else starts at
 * the base, so a flapping server stays out longer each time. */
static void server_eject(struct l2 *l, struct l2_server *s, int from)
{
    /* under the server's lock: the interval is in place before another
     * worker can see the state and judge the time up */
    pthread_mutex_lock(&s->mu);
    if (atomic_load(&s->state) != from) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    uint64_t now = clock_monotonic_ms();
    uint64_t back = atomic_load(&s->returned_ms), prev = atomic_load(&s->retry_ms);
    uint64_t retry = l->retry_base_ms;
    if (back != 0 && now - back < l->retry_max_ms && prev > 0)
        retry = prev * 2 < l->retry_max_ms ? prev * 2 : l->retry_max_ms;
    atomic_store(&s->retry_ms, retry);
    atomic_store(&s->until_ms, now + retry);
    atomic_store(&s->state, SRV_EJECTED);
    pthread_mutex_unlock(&s->mu);
    COUNT(s, ejections);
    log_warn("l2: server %s ejected for %" PRIu64 " ms", s->addr, retry);
}

/* One failure of s (a reset, a timeout, a refused dial). */
static void server_failed(struct l2 *l, struct l2_server *s)
{
    uint32_t f = atomic_fetch_add(&s->fails, 1) + 1;
    if (f >= l->eject_after)
        server_eject(l, s, SRV_UP);
}

static void server_returned(struct l2_server *s)
{
    pthread_mutex_lock(&s->mu);
    atomic_store(&s->fails, 0);
    atomic_store(&s->returned_ms, clock_monotonic_ms());
    atomic_store(&s->state, SRV_UP);
    pthread_mutex_unlock(&s->mu);
    log_info("l2: server %s is back", s->addr);
}

/* ------------------------------------------------------------ links */

static void lat_record(struct l2_server *s, uint64_t start_us)
{
    lathist_record(&s->lat, clock_monotonic_us() - start_us);
}

static void tick_update(struct l2_worker *lw)
{
    if (lw->pending > 0 && !lw->ticking) {
        struct timeval tv = {0, L2_TICK_MS * 1000};
        if (event_add(lw->tick, &tv) == 0)
            lw->ticking = true;
    } else if (lw->pending == 0 && lw->ticking) {
        event_del(lw->tick);
        lw->ticking = false;
    }
}

static struct pending *pending_pop(struct link *k)
{
    struct pending *p = k->head;
    k->head = p->next;
    if (k->head == NULL)
        k->tail = NULL;
    k->inflight--;
    k->lw->pending--;
    return p;
}

/* Completes p (popped) and frees it. */
static void pending_finish(struct link *k, struct pending *p, enum l2_result r,
                           const struct mc_reply *reply)
{
    struct l2_server *s = k->srv;
    l2_done_fn done = p->done;
    void *arg = p->arg;
    bool get = p->get;
    if (r == L2_OK)
        lat_record(s, p->start_us);
    mem_free(MEM_CONN, p, sizeof(*p));
    if (r == L2_OK) {
        if (reply->code == MC_REPLY_SERVER_ERROR || reply->code == MC_REPLY_ERROR ||
            reply->code == MC_REPLY_CLIENT_ERROR)
            COUNT(s, errors);
        else if (get && reply->code == MC_REPLY_VA)
            COUNT(s, hits);
        else if (get && reply->code == MC_REPLY_EN)
            COUNT(s, misses);
    }
    if (done != NULL)
        done(arg, r, reply);
}

/* Fails every request on k (closed): the oldest with `first`, the rest
 * L2_CLOSED (they were behind it: replies come in order). */
static void link_fail_all(struct link *k, enum l2_result first)
{
    if (k->bev != NULL) {
        bufferevent_free(k->bev);
        k->bev = NULL;
    }
    k->connected = false;
    k->resets++;
    /* the failed requests leave the link first: a callback may queue a new
     * request on it (a new connection), which must not fail with them */
    struct pending *list = k->head;
    k->lw->pending -= k->inflight;
    k->head = k->tail = NULL;
    k->inflight = 0;
    enum l2_result r = first;
    while (list != NULL) {
        struct pending *p = list;
        list = p->next;
        pending_finish(k, p, r, NULL);
        r = L2_CLOSED;
    }
    tick_update(k->lw);
}

/* Closes k's connection and fails its requests (link_fail_all); the
 * server counts one failure. */
static void link_reset(struct link *k, enum l2_result first, const char *why)
{
    if (k->bev != NULL)
        log_info("l2: connection to %s reset: %s", k->srv->addr, why);
    COUNT(k->srv, resets);
    server_failed(k->lw->l2, k->srv);
    link_fail_all(k, first);
}

void l2_link_drop(struct link *k)
{
    if (k->bev != NULL || k->head != NULL)
        link_fail_all(k, L2_CLOSED);
}

/* True when reply answers p: meta replies echo p's token; error lines
 * and OK (flush_all) carry none. */
static bool reply_matches(const struct mc_reply *r, const struct pending *p)
{
    switch (r->code) {
    case MC_REPLY_OK:
    case MC_REPLY_VERSION:
    case MC_REPLY_ERROR:
    case MC_REPLY_CLIENT_ERROR:
    case MC_REPLY_SERVER_ERROR: return true;
    default: break;
    }
    uint64_t id;
    return mc_reply_flag_u64(r, 'O', &id) && id == p->id;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct link *k = arg;
    struct l2 *l = k->lw->l2;
    uint64_t resets = k->resets;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        size_t len = evbuffer_get_length(in);
        if (len == 0)
            return;
        const char *buf = (const char *)evbuffer_pullup(in, -1);
        struct mc_reply r;
        enum mc_reply_parse pr = mc_reply_parse(buf, len, l->value_max, &r);
        if (pr == MC_REPLY_PARTIAL)
            return;
        if (pr == MC_REPLY_BAD || k->head == NULL || !reply_matches(&r, k->head)) {
            COUNT(k->srv, errors);
            link_reset(k, L2_CLOSED,
                       pr == MC_REPLY_BAD ? "a reply that does not parse"
                       : k->head == NULL  ? "a reply nothing asked for"
                                          : "a reply to another request");
            return;
        }
        struct pending *p = pending_pop(k);
        server_ok(k->srv);
        pending_finish(k, p, L2_OK, &r);
        tick_update(k->lw);
        if (k->resets != resets || k->bev != bev)
            return; /* the callback reset the link: bev is gone */
        evbuffer_drain(in, r.size);
    }
}

static void flush_arm(struct l2_worker *lw)
{
    if (!lw->flush_armed) {
        lw->flush_armed = true;
        event_active(lw->flush, 0, 0);
    }
}

/* A link's output drained by the bufferevent (after on_flush left some):
 * on_flush writes again. */
static void on_drained(struct bufferevent *bev, void *arg)
{
    struct link *k = arg;
    if (k->connected)
        bufferevent_disable(bev, EV_WRITE);
}

/*
 * After the callbacks of a loop turn: each connected link's queued
 * requests leave in one write, at once rather than when epoll next says
 * the socket is writable (a turn of latency and two epoll_ctl calls per
 * batch). What the socket does not take is left to the bufferevent.
 */
static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct l2_worker *lw = arg;
    lw->flush_armed = false;
    for (uint32_t i = 0; i < lw->l2->nservers; i++)
        l2_link_flush(&lw->links[i]);
    l2_peers_flush(lw);
}

void l2_link_flush(struct link *k)
{
    if (k->bev == NULL || !k->connected)
        return;
    struct evbuffer *out = bufferevent_get_output(k->bev);
    if (evbuffer_get_length(out) == 0)
        return;
    evbuffer_write(out, bufferevent_getfd(k->bev));
    if (evbuffer_get_length(out) > 0)
        bufferevent_enable(k->bev, EV_WRITE);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct link *k = arg;
    if (what & BEV_EVENT_CONNECTED) {
        /* from now on on_flush writes what the loop turn queued */
        k->connected = true;
        bufferevent_disable(bev, EV_WRITE);
        flush_arm(k->lw);
        return;
    }
    link_reset(k, L2_CLOSED, what & BEV_EVENT_EOF ? "closed by the server" : "connection error");
}

static bool link_dial(struct link *k)
{
    struct l2_server *s = k->srv;
    k->bev = bufferevent_socket_new(k->lw->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (k->bev == NULL)
        return false;
    bufferevent_setcb(k->bev, on_read, on_drained, on_event, k);
    bufferevent_enable(k->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(k->bev, (struct sockaddr *)&s->sa, (int)s->salen) != 0) {
        bufferevent_free(k->bev);
        k->bev = NULL;
        return false;
    }
    return true;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct l2_worker *lw = arg;
    lw->ticking = false;
    uint64_t now = clock_monotonic_ms();
    for (uint32_t i = 0; i < lw->l2->nservers; i++)
        l2_link_check_deadline(&lw->links[i], now);
    l2_peers_check_deadlines(lw, now);
    tick_update(lw);
}

void l2_link_check_deadline(struct link *k, uint64_t now_ms)
{
    if (k->head != NULL && k->head->deadline_ms <= now_ms) {
        COUNT(k->srv, timeouts);
        link_reset(k, L2_TIMEOUT, "a request timed out");
    }
}

enum l2_result l2_link_send(struct link *k, const char *line, size_t nline, const void *data,
                            size_t ndata, bool has_data, l2_done_fn done, void *arg)
{
    struct l2 *l = k->lw->l2;
    struct l2_server *s = k->srv;
    if (k->inflight >= l->max_inflight) {
        COUNT(s, busy);
        return L2_BUSY;
    }
    if (k->bev == NULL && !link_dial(k)) {
        server_failed(l, s);
        return L2_DOWN;
    }
    struct pending *p = mem_alloc(MEM_CONN, sizeof(*p));
    if (p == NULL)
        return L2_BUSY;
    uint64_t id = k->next_id++;
    char tok[32];
    size_t nt = 0;
    /* meta commands carry the token their reply echoes; the others
     * (flush_all) are answered by a line without one */
    if (nline >= 3 && line[0] == 'm' && line[2] == ' ') {
        tok[nt++] = ' ';
        tok[nt++] = 'O';
        nt += mc_u64_to_str(id, tok + nt);
    }
    tok[nt++] = '\r';
    tok[nt++] = '\n';
    struct evbuffer *out = bufferevent_get_output(k->bev);
    evbuffer_add(out, line, nline);
    evbuffer_add(out, tok, nt);
    if (has_data) {
        evbuffer_add(out, data, ndata);
        evbuffer_add(out, "\r\n", 2);
    }
    uint64_t now_us = clock_monotonic_us();
    *p = (struct pending){
        .id = id,
        .deadline_ms = now_us / 1000 + l->timeout_ms,
        .start_us = now_us,
        .done = done,
        .arg = arg,
        .get = nline >= 2 && line[0] == 'm' && line[1] == 'g',
    };
    if (k->tail != NULL)
        k->tail->next = p;
    else
        k->head = p;
    k->tail = p;
    k->inflight++;
    k->lw->pending++;
    COUNT(s, requests);
    tick_update(k->lw);
    if (k->connected)
        flush_arm(k->lw);
    return L2_OK;
}

void l2_link_init(struct link *k, struct l2_worker *lw, struct l2_server *s)
{
    *k = (struct link){.lw = lw, .srv = s, .next_id = 1};
}

struct l2_worker *l2_worker_of(struct l2 *l, struct worker *w)
{
    struct l2_worker *lw = l->workers[w->id];
    if (lw != NULL)
        return lw;
    lw = mem_calloc(MEM_OTHER, 1, sizeof(*lw));
    if (lw == NULL)
        return NULL;
    lw->links = mem_calloc(MEM_OTHER, l->nservers, sizeof(*lw->links));
    lw->tick = event_new(w->base, -1, 0, on_tick, lw);
    lw->flush = event_new(w->base, -1, 0, on_flush, lw);
    if (lw->links == NULL || lw->tick == NULL || lw->flush == NULL) {
        if (lw->tick != NULL)
            event_free(lw->tick);
        if (lw->flush != NULL)
            event_free(lw->flush);
        if (lw->links != NULL)
            mem_free(MEM_OTHER, lw->links, l->nservers * sizeof(*lw->links));
        mem_free(MEM_OTHER, lw, sizeof(*lw));
        return NULL;
    }
    lw->l2 = l;
    lw->base = w->base;
    for (uint32_t i = 0; i < l->nservers; i++)
        l2_link_init(&lw->links[i], lw, &l->servers[i]);
    l->workers[w->id] = lw;
    return lw;
}

/* ---------------------------------------------------------- requests */

struct pick {
    struct l2 *l;
    struct l2_worker *lw;
};

/* The answer to a returning server's flush_all: OK, it serves again;
 * anything else, it is ejected again (for longer). */
static void on_flushed(void *arg, enum l2_result r, const struct mc_reply *reply)
{
    struct link *k = arg;
    struct l2 *l = k->lw->l2;
    struct l2_server *s = k->srv;
    if (r == L2_OK && reply->code == MC_REPLY_OK)
        server_returned(s);
    else
        server_eject(l, s, SRV_RETURNING);
}

/*
 * ketama's `up`: an UP server; an ejected one whose time is up is
 * claimed by this caller (one worker), which sends it flush_all: it
 * serves again once that answers. Meanwhile its keys go on to the next.
 */
bool l2_server_usable(struct l2 *l, struct l2_server *s, struct link *k, bool flush)
{
    int st = atomic_load_explicit(&s->state, memory_order_acquire);
    if (st == SRV_UP)
        return true;
    if (st != SRV_EJECTED || clock_monotonic_ms() < atomic_load(&s->until_ms))
        return false;
    pthread_mutex_lock(&s->mu);
    bool claimed =
        atomic_load(&s->state) == SRV_EJECTED && clock_monotonic_ms() >= atomic_load(&s->until_ms);
    if (claimed)
        atomic_store(&s->state, SRV_RETURNING);
    pthread_mutex_unlock(&s->mu);
    if (!claimed)
        return false;
    if (!flush) {
        server_returned(s);
        return true;
    }
    atomic_store(&s->fails, 0);
    static const char flush_all[] = "flush_all";
    if (l2_link_send(k, flush_all, sizeof(flush_all) - 1, NULL, 0, false, on_flushed, k) != L2_OK)
        server_eject(l, s, SRV_RETURNING);
    return false;
}

/* ketama's `up` for the pool and the gutter. */
static bool server_up(void *arg, uint32_t i)
{
    struct pick *pk = arg;
    return l2_server_usable(pk->l, &pk->l->servers[i], &pk->lw->links[i], pk->l->flush_on_return);
}

/* A request that could not be sent completes on the next loop turn. */
struct failed_req {
    struct event *ev;
    enum l2_result r;
    l2_done_fn done;
    void *arg;
};

static void on_failed(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct failed_req *f = arg;
    l2_done_fn done = f->done;
    void *darg = f->arg;
    enum l2_result r = f->r;
    event_free(f->ev);
    mem_free(MEM_CONN, f, sizeof(*f));
    done(darg, r, NULL);
}

static void fail_later(struct event_base *base, enum l2_result r, l2_done_fn done, void *arg)
{
    if (done == NULL)
        return; /* nothing waits for it */
    struct failed_req *f = mem_alloc(MEM_CONN, sizeof(*f));
    if (f != NULL) {
        f->ev = event_new(base, -1, 0, on_failed, f);
        if (f->ev != NULL) {
            f->r = r;
            f->done = done;
            f->arg = arg;
            event_active(f->ev, 0, 0);
            return;
        }
        mem_free(MEM_CONN, f, sizeof(*f));
    }
    /* out of memory: the caller's contract is bent rather than a request lost */
    done(arg, r, NULL);
}

void l2_delete(struct l2 *l, struct worker *w, const char *key, size_t nkey)
{
    struct l2_line ln;
    l2_line_start(&ln, "md", key, nkey);
    l2_line_end(&ln);
    l2_request(l, w, key, nkey, ln.buf, ln.n, NULL, 0, NULL, NULL);
}

void l2_broadcast(struct l2 *l, struct worker *w, const char *line, size_t nline)
{
    struct l2_worker *lw = l2_worker_of(l, w);
    if (lw == NULL)
        return;
    struct pick pk = {l, lw};
    for (uint32_t i = 0; i < l->npool; i++)
        if (i != l->self && server_up(&pk, i))
            l2_link_send(&lw->links[i], line, nline, NULL, 0, false, NULL, NULL);
}

bool l2_local(struct l2 *l, struct worker *w, const char *key, size_t nkey)
{
    if (l->self == KETAMA_NONE)
        return false;
    struct l2_worker *lw = l2_worker_of(l, w);
    if (lw == NULL)
        return false;
    struct pick pk = {l, lw};
    return ketama_pick(l->ketama, key, nkey, server_up, &pk) == l->self;
}

/* Offset of the gutter's server up for key among the gutter servers. */
static bool gutter_up(void *arg, uint32_t g)
{
    struct pick *pk = arg;
    return server_up(pk, pk->l->gutter_first + g);
}

/*
 * A request for the gutter pool: an ms line's TTL (T<n>) is capped at
 * gutter_ttl (an item there is a stand-in for a server that is out and
 * must not outlive its return by long), added when the line has none.
 */
static void gutter_send(struct l2 *l, struct l2_worker *lw, const char *key, size_t nkey,
                        const char *line, size_t nline, const void *data, size_t ndata,
                        l2_done_fn done, void *arg)
{
    struct pick pk = {l, lw};
    uint32_t g = ketama_pick(l->gutter, key, nkey, gutter_up, &pk);
    if (g == KETAMA_NONE) {
        fail_later(lw->base, L2_DOWN, done, arg);
        return;
    }
    char buf[MC_REPLY_LINE_MAX];
    const char *out = line;
    size_t nout = nline;
    if (nline >= 3 && memcmp(line, "ms ", 3) == 0 && nline + 16 < sizeof(buf)) {
        size_t n = 0;
        bool capped = false;
        for (size_t i = 0; i < nline;) {
            size_t j = i;
            while (j < nline && line[j] != ' ')
                j++;
            if (i > 0 && line[i] == 'T' && j > i + 1) {
                long t = strtol(line + i + 1, NULL, 10);
                if (t <= 0 || t > (long)l->gutter_ttl)
                    t = (long)l->gutter_ttl;
                n += (size_t)snprintf(buf + n, sizeof(buf) - n, "T%ld", t);
                capped = true;
            } else {
                memcpy(buf + n, line + i, j - i);
                n += j - i;
            }
            if (j < nline)
                buf[n++] = ' ';
            i = j + 1;
        }
        if (!capped)
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, " T%u", l->gutter_ttl);
        out = buf;
        nout = n;
    }
    struct link *k = &lw->links[l->gutter_first + g];
    COUNT(&l->servers[l->gutter_first + g], gutter_requests);
    enum l2_result r = l2_link_send(k, out, nout, data, ndata, data != NULL, done, arg);
    if (r != L2_OK)
        fail_later(lw->base, r, done, arg);
}

void l2_request(struct l2 *l, struct worker *w, const char *key, size_t nkey, const char *line,
                size_t nline, const void *data, size_t ndata, l2_done_fn done, void *arg)
{
    struct l2_worker *lw = l2_worker_of(l, w);
    if (lw == NULL) {
        fail_later(w->base, L2_BUSY, done, arg);
        return;
    }
    struct pick pk = {l, lw};
    enum l2_result r = L2_DOWN;
    if (l->gutter != NULL) {
        /* with a gutter pool, the keys of a server that is out go there
         * (items set with a short TTL), not to the next server */
        uint32_t owner = ketama_pick(l->ketama, key, nkey, NULL, NULL);
        if (owner != KETAMA_NONE && !server_up(&pk, owner)) {
            gutter_send(l, lw, key, nkey, line, nline, data, ndata, done, arg);
            return;
        }
    }
    /* a server whose dial fails at once is passed over for the next */
    for (unsigned tries = 0; tries < 2 && r == L2_DOWN; tries++) {
        uint32_t i = ketama_pick(l->ketama, key, nkey, server_up, &pk);
        if (i == KETAMA_NONE)
            break;
        r = l2_link_send(&lw->links[i], line, nline, data, ndata, data != NULL, done, arg);
    }
    if (r != L2_OK)
        fail_later(w->base, r, done, arg);
}

/* ---------------------------------------------------------- open/close */

/* "host:port[:weight]" into s; false with a message. */
bool l2_server_parse(const char *spec, struct l2_server *s)
{
    char buf[300];
    if (snprintf(buf, sizeof(buf), "%s", spec) >= (int)sizeof(buf))
        return false;
    char *weight = NULL, *port;
    char *c1 = strrchr(buf, ':');
    if (c1 == NULL)
        return false;
    *c1 = '\0';
    char *c2 = strrchr(buf, ':');
    if (c2 != NULL && buf[0] != '[') {
        *c2 = '\0';
        port = c2 + 1;
        weight = c1 + 1;
    } else {
        port = c1 + 1;
    }
    char *host = buf;
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        host++;
    }
    char *end;
    unsigned long p = strtoul(port, &end, 10);
    if (*host == '\0' || *port == '\0' || *end != '\0' || p == 0 || p > 65535)
        return false;
    unsigned long wt = 1;
    if (weight != NULL) {
        wt = strtoul(weight, &end, 10);
        if (*weight == '\0' || *end != '\0' || wt == 0 || wt > 1000000)
            return false;
    }
    if (strlen(host) >= sizeof(s->host))
        return false;
    memcpy(s->host, host, strlen(host) + 1);
    s->port = (uint16_t)p;
    s->weight = (uint32_t)wt;
    snprintf(s->addr, sizeof(s->addr), "%s:%u", s->host, s->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(s->host, port, &hints, &res) != 0 || res == NULL)
        return false;
    memcpy(&s->sa, res->ai_addr, res->ai_addrlen);
    s->salen = res->ai_addrlen;
    freeaddrinfo(res);
    return true;
}

/* True when server s is this host's listen address (or loopback when
 * listening on every interface or loopback). */
static bool is_local(const struct l2_server *s, const char *listen_addr)
{
    if (strcmp(s->host, listen_addr) == 0)
        return true;
    bool any = strcmp(listen_addr, "0.0.0.0") == 0 || strcmp(listen_addr, "::") == 0;
    bool loop = strcmp(listen_addr, "127.0.0.1") == 0 || strcmp(listen_addr, "localhost") == 0;
    bool s_loop = strcmp(s->host, "127.0.0.1") == 0 || strcmp(s->host, "localhost") == 0;
    return (any || loop) && s_loop;
}

uint32_t l2_list_count(const char *list)
{
    if (list == NULL || *list == '\0')
        return 0;
    uint32_t n = 1;
    for (const char *c = list; *c != '\0'; c++)
        n += *c == ',';
    return n;
}

/* Parses a "host:port[:weight],..." list into l->servers from `first`. */
static bool list_parse(struct l2 *l, const char *name, const char *list, uint32_t first)
{
    uint32_t n = l2_list_count(list);
    const char *p = list;
    for (uint32_t i = 0; i < n; i++) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        char spec[300];
        if (len >= sizeof(spec) || !(snprintf(spec, sizeof(spec), "%.*s", (int)len, p), 1) ||
            !l2_server_parse(spec, &l->servers[first + i])) {
            fprintf(stderr,
                    "strata-proxy: %s: \"%.*s\" is not host:port[:weight] with a host "
                    "that resolves\n",
                    name, (int)len, p);
            return false;
        }
        p = comma != NULL ? comma + 1 : p + len;
    }
    return true;
}

int l2_open(const struct settings *s, unsigned workers, struct l2 **out)
{
    *out = NULL;
    if (s->l2_servers == NULL || s->l2_servers[0] == '\0')
        return 0;
    struct l2 *l = mem_calloc(MEM_OTHER, 1, sizeof(*l));
    if (l == NULL)
        return EX_OSERR;
    for (unsigned i = 0; i < L2_GATE_SLOTS; i++)
        pthread_mutex_init(&l->gate_mu[i], NULL);
    pthread_mutex_init(&l->peers_mu, NULL);
    l->timeout_ms = s->l2_timeout_ms;
    l->max_inflight = s->l2_max_inflight;
    l->eject_after = s->l2_eject_after;
    l->retry_base_ms = s->l2_retry_ms;
    l->retry_max_ms = s->l2_retry_max_ms > s->l2_retry_ms ? s->l2_retry_max_ms : s->l2_retry_ms;
    l->flush_on_return = s->l2_flush_on_return;
    l->value_max = s->item_size_max;
    l->nworkers = workers;
    uint32_t n = l2_list_count(s->l2_servers), ngutter = l2_list_count(s->l2_gutter);
    l->servers = mem_calloc(MEM_OTHER, n + ngutter, sizeof(*l->servers));
    l->npool = n;
    l->gutter_first = n;
    l->ngutter = ngutter;
    l->gutter_ttl = s->l2_gutter_ttl;
    l->nservers = n + ngutter; /* l2_close frees by these */
    l->workers = mem_calloc(MEM_OTHER, workers, sizeof(*l->workers));
    struct ketama_server *ks = mem_calloc(MEM_OTHER, n, sizeof(*ks));
    if (l->servers == NULL || l->workers == NULL || ks == NULL) {
        if (ks != NULL)
            mem_free(MEM_OTHER, ks, n * sizeof(*ks));
        l2_close(&l);
        return EX_OSERR;
    }
    for (uint32_t i = 0; i < l->nservers; i++)
        pthread_mutex_init(&l->servers[i].mu, NULL);
    l->self = KETAMA_NONE;
    if (!list_parse(l, "l2_servers", s->l2_servers, 0) ||
        !list_parse(l, "l2_gutter", s->l2_gutter, l->gutter_first) ||
        l2_peers_open(l, s->peers) != 0) {
        mem_free(MEM_OTHER, ks, n * sizeof(*ks));
        l2_close(&l);
        return EX_CONFIG;
    }
    for (uint32_t i = 0; i < n; i++) {
        ks[i] =
            (struct ketama_server){l->servers[i].host, l->servers[i].port, l->servers[i].weight};
        if (s->peer_port != 0 && l->servers[i].port == s->peer_port &&
            is_local(&l->servers[i], s->listen_addr))
            l->self = i;
    }
    enum st_status st = ketama_build(ks, n, &l->ketama);
    mem_free(MEM_OTHER, ks, n * sizeof(*ks));
    if (st == ST_OK && ngutter > 0) {
        struct ketama_server gs[KETAMA_MAX_SERVERS];
        for (uint32_t i = 0; i < ngutter && i < KETAMA_MAX_SERVERS; i++) {
            const struct l2_server *g = &l->servers[l->gutter_first + i];
            gs[i] = (struct ketama_server){g->host, g->port, g->weight};
        }
        st = ketama_build(gs, ngutter, &l->gutter);
    }
    if (st != ST_OK) {
        fprintf(stderr, "strata-proxy: l2_servers: cannot build the continuum: %s\n",
                st_status_name(st));
        l2_close(&l);
        return EX_CONFIG;
    }
    *out = l;
    return 0;
}

void l2_close_links(struct l2 *l)
{
    if (l == NULL)
        return;
    for (unsigned w = 0; w < l->nworkers; w++) {
        struct l2_worker *lw = l->workers[w];
        if (lw == NULL)
            continue;
        for (uint32_t i = 0; i < l->nservers; i++)
            l2_link_drop(&lw->links[i]);
        l2_peers_close_links(lw);
        event_free(lw->tick);
        event_free(lw->flush);
        mem_free(MEM_OTHER, lw->links, l->nservers * sizeof(*lw->links));
        mem_free(MEM_OTHER, lw, sizeof(*lw));
        l->workers[w] = NULL;
    }
}

void l2_close(struct l2 **lp)
{
    struct l2 *l = *lp;
    if (l == NULL)
        return;
    *lp = NULL;
    l2_close_links(l);
    ketama_destroy(&l->ketama);
    ketama_destroy(&l->gutter);
    if (l->servers != NULL) {
        for (uint32_t i = 0; i < l->nservers; i++)
            pthread_mutex_destroy(&l->servers[i].mu);
        mem_free(MEM_OTHER, l->servers, l->nservers * sizeof(*l->servers));
    }
    if (l->workers != NULL)
        mem_free(MEM_OTHER, l->workers, l->nworkers * sizeof(*l->workers));
    l2_peers_free(l);
    for (unsigned i = 0; i < L2_GATE_SLOTS; i++)
        pthread_mutex_destroy(&l->gate_mu[i]);
    pthread_mutex_destroy(&l->peers_mu);
    mem_free(MEM_OTHER, l, sizeof(*l));
}

/* ------------------------------------------------------------- stats */

static uint64_t lat_percentile(const struct l2_server *s, double p)
{
    uint64_t counts[LATHIST_BUCKETS] = {0};
    lathist_add_to(&s->lat, counts);
    return lathist_percentile(counts, p);
}

static const char *state_name(const struct l2_server *s)
{
    switch (atomic_load(&s->state)) {
    case SRV_UP: return "up";
    case SRV_EJECTED: return "ejected";
    default: return "returning";
    }
}

void l2_server_stats(const struct l2_server *s, const char *role,
                     void (*emit)(void *arg, const char *name, const char *value), void *arg)
{
    char name[sizeof(s->addr) + 32];
#define STAT(field)                                                                          \
    do {                                                                                     \
        snprintf(name, sizeof(name), "%s:%s", s->addr, #field);                              \
        mc_emit_u64(emit, arg, name, atomic_load_explicit(&s->field, memory_order_relaxed)); \
    } while (0)
    snprintf(name, sizeof(name), "%s:state", s->addr);
    emit(arg, name, state_name(s));
    snprintf(name, sizeof(name), "%s:role", s->addr);
    emit(arg, name, role);
    snprintf(name, sizeof(name), "%s:weight", s->addr);
    mc_emit_u64(emit, arg, name, s->weight);
    STAT(requests);
    STAT(hits);
    STAT(misses);
    STAT(errors);
    STAT(timeouts);
    STAT(resets);
    STAT(ejections);
    STAT(busy);
    if (strcmp(role, "peer") == 0)
        STAT(dropped);
    else if (strcmp(role, "gutter") == 0)
        STAT(gutter_requests);
#undef STAT
    static const struct {
        const char *name;
        double p;
    } pcts[] = {{"p50_us", 0.50}, {"p99_us", 0.99}, {"p999_us", 0.999}};
    for (size_t j = 0; j < sizeof(pcts) / sizeof(pcts[0]); j++) {
        snprintf(name, sizeof(name), "%s:%s", s->addr, pcts[j].name);
        mc_emit_u64(emit, arg, name, lat_percentile(s, pcts[j].p));
    }
}

void l2_stats(struct l2 *l, void (*emit)(void *arg, const char *name, const char *value), void *arg)
{
    mc_emit_u64(emit, arg, "servers", l->npool);
    mc_emit_u64(emit, arg, "gutter", l->ngutter);
    mc_emit_u64(emit, arg, "gutter_ttl", l->gutter_ttl);
    mc_emit_u64(emit, arg, "peers", l2_peers_count(l));
    mc_emit_u64(emit, arg, "timeout_ms", l->timeout_ms);
    mc_emit_u64(emit, arg, "eject_after", l->eject_after);
    mc_emit_u64(emit, arg, "retry_ms", l->retry_base_ms);
    mc_emit_u64(emit, arg, "retry_max_ms", l->retry_max_ms);
    emit(arg, "flush_on_return", l->flush_on_return ? "yes" : "no");
    for (uint32_t i = 0; i < l->nservers; i++)
        l2_server_stats(&l->servers[i], i < l->npool ? "pool" : "gutter", emit, arg);
    l2_peers_stats(l, emit, arg);
}
