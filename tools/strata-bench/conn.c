/*
 * conn.c - one strata-bench connection (see conn.h): connect, compose a
 * batch into the preallocated buffer, writev it, read and match replies,
 * record latencies, fail loudly on anything the protocol does not allow.
 * Worker thread only; every callback runs under the worker's lock.
 */

/*
 *   on_read:  read() ─► mcwire_parse ─► mcwire_match ─► complete (latency,
 *             counts) ─► fill: compose freed slots ─► one writev()
 *   on_write: the rest of a writev the socket did not take
 */
#include "tools/strata-bench/conn.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/mem.h"
#include "tools/strata-bench/mono.h"
#include "tools/strata-bench/worker.h"

#define CONN_IN_CAP (32u << 10)
_Static_assert(CONN_IN_CAP > 2 * MCWIRE_HEAD_MAX, "a reply header must fit in the read buffer");

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);

static size_t slots_bytes(const struct conn *c)
{
    return (size_t)c->cap * sizeof(*c->slots);
}

static size_t ids_bytes(const struct conn *c)
{
    return (size_t)c->cap * c->width * sizeof(*c->ids);
}

static void conn_close_fd(struct conn *c)
{
    if (c->rev != NULL)
        event_free(c->rev);
    if (c->wev != NULL)
        event_free(c->wev);
    c->rev = c->wev = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->alive = false;
}

/* Closes a live connection after a failure; what is in flight is lost. */
static void conn_fail(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_fail(struct conn *c, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    worker_report(c->w, "conn %u: %s; closing it with %u requests in flight", c->id, msg, c->count);
    c->w->tally.conn_failures++;
    c->w->tally.unanswered += c->count;
    c->count = 0;
    conn_close_fd(c);
    worker_conn_closed(c->w, c->idle);
}

static enum st_status conn_connect(struct conn *c, const struct worker_shared *sh)
{
    const struct sockaddr *sa = (const struct sockaddr *)&sh->addr;
    c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return ST_IO;
    double t = sh->o->timeout;
    struct timeval tv = {.tv_sec = (time_t)t,
                         .tv_usec = (suseconds_t)((t - (double)(time_t)t) * 1e6)};
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)); /* bounds connect() */
    while (connect(c->fd, sa, sh->addrlen) != 0) {
        if (errno == EINTR)
            continue;
        return errno == EINPROGRESS || errno == EAGAIN ? ST_TIMEOUT : ST_IO;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int fl = fcntl(c->fd, F_GETFL);
    if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) != 0)
        return ST_IO;
    c->rev = event_new(c->w->base, c->fd, EV_READ | EV_PERSIST, on_read, c);
    c->wev = event_new(c->w->base, c->fd, EV_WRITE | EV_PERSIST, on_write, c);
    if (c->rev == NULL || c->wev == NULL || event_add(c->rev, NULL) != 0)
        return ST_NOMEM;
    c->alive = true;
    return ST_OK;
}

enum st_status conn_create(struct conn **out, struct worker *w, unsigned id)
{
    const struct bench_opts *o = w->sh->o;
    struct conn *c = mem_calloc(MEM_CONN, 1, sizeof(*c));
    *out = c;
    if (c == NULL)
        return ST_NOMEM;
    c->w = w;
    c->id = id;
    c->fd = -1;
    c->width = o->width;
    c->cap = o->depth;
    if (o->preload && o->preload_depth > c->cap)
        c->cap = o->preload_depth;
    mcwire_parser_init(&c->parser, o->proto);
    size_t key_max = keys_max_len(w->sh->keys);
    size_t get_max = mcwire_get_size_max(o->proto, key_max, c->width);
    size_t set_max = mcwire_set_size_max(o->proto, key_max) + 2;
    c->out_cap = (size_t)c->cap * (get_max > set_max ? get_max : set_max);
    c->iov_cap = 2 * c->cap + 1;
    c->in_cap = CONN_IN_CAP;
    c->slots = mem_calloc(MEM_CONN, c->cap, sizeof(*c->slots));
    c->ids = mem_calloc(MEM_CONN, (size_t)c->cap * c->width, sizeof(*c->ids));
    c->out = mem_alloc(MEM_CONN, c->out_cap);
    c->iov = mem_calloc(MEM_CONN, c->iov_cap, sizeof(*c->iov));
    c->in = mem_alloc(MEM_CONN, c->in_cap);
    if (c->slots == NULL || c->ids == NULL || c->out == NULL || c->iov == NULL || c->in == NULL)
        return ST_NOMEM;
    return conn_connect(c, w->sh);
}

void conn_destroy(struct conn **cp)
{
    struct conn *c = *cp;
    if (c == NULL)
        return;
    conn_close_fd(c);
    mem_free(MEM_CONN, c->slots, slots_bytes(c));
    mem_free(MEM_CONN, c->ids, ids_bytes(c));
    mem_free(MEM_CONN, c->out, c->out_cap);
    mem_free(MEM_CONN, c->iov, (size_t)c->iov_cap * sizeof(*c->iov));
    mem_free(MEM_CONN, c->in, c->in_cap);
    mem_free(MEM_CONN, c, sizeof(*c));
    *cp = NULL;
}

/* Sends what is left of the batch with one writev; a short write waits for
 * the socket. Returns false if the connection failed. */
static bool conn_flush(struct conn *c)
{
    unsigned n = c->niov - c->iov_pos;
    if (n > IOV_MAX)
        n = IOV_MAX;
    ssize_t w;
    do
        w = writev(c->fd, c->iov + c->iov_pos, (int)n);
    while (w < 0 && errno == EINTR);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        conn_fail(c, "write: %s", strerror(errno));
        return false;
    }
    if (w > 0) {
        c->w->tally.bytes_out += (uint64_t)w;
        size_t left = (size_t)w;
        while (left > 0 && left >= c->iov[c->iov_pos].iov_len)
            left -= c->iov[c->iov_pos++].iov_len;
        if (left > 0) {
            c->iov[c->iov_pos].iov_base = (char *)c->iov[c->iov_pos].iov_base + left;
            c->iov[c->iov_pos].iov_len -= left;
        }
    }
    bool done = c->iov_pos == c->niov;
    if (done != !c->write_blocked) {
        c->write_blocked = !done;
        if (done)
            event_del(c->wev);
        else
            event_add(c->wev, NULL);
    }
    if (done)
        c->niov = c->iov_pos = 0;
    return true;
}

static uint32_t pick_value_len(struct conn *c)
{
    const struct bench_opts *o = c->w->sh->o;
    if (o->value_min == o->value_max)
        return o->value_min;
    return o->value_min +
           (uint32_t)rng_below(&c->w->rng, (uint64_t)o->value_max - o->value_min + 1);
}

/* Picks the next request into slot s (ids: its key ids). Returns false if
 * this connection has nothing more to send in this phase. */
static bool pick_request(struct conn *c, uint64_t *ids, bool *is_set)
{
    struct worker *w = c->w;
    const struct bench_opts *o = w->sh->o;
    if (w->phase == WORKER_PRELOAD) {
        *is_set = true;
        return worker_next_preload(w, &ids[0]);
    }
    if (c->budget == 0)
        return false;
    if (o->ratio_set == 0)
        *is_set = false;
    else if (o->ratio_get == 0)
        *is_set = true;
    else
        *is_set = rng_below(&w->rng, (uint64_t)o->ratio_get + o->ratio_set) >= o->ratio_get;
    unsigned n = *is_set ? 1 : c->width;
    for (unsigned i = 0; i < n; i++)
        ids[i] = keys_pick(w->sh->keys, &w->rng, &w->seq_cursor);
    c->budget--;
    return true;
}

/* Composes requests into every free slot and sends them with one writev. */
static void conn_fill(struct conn *c, uint64_t now)
{
    if (!c->alive || c->write_blocked)
        return;
    struct worker *w = c->w;
    const struct worker_shared *sh = w->sh;
    enum mcwire_proto proto = sh->o->proto;
    const char *trailer = mcwire_set_trailer(proto);
    size_t ntrailer = strlen(trailer);
    size_t used = 0, seg = 0;
    unsigned niov = 0;
    bool may = worker_may_send(w, now);
    while (may && c->count < c->depth) {
        unsigned idx = (c->head + c->count) % c->cap;
        struct conn_slot *s = &c->slots[idx];
        uint64_t *ids = c->ids + (size_t)idx * c->width;
        bool is_set;
        if (!pick_request(c, ids, &is_set))
            break;
        if (is_set) {
            uint32_t vlen = pick_value_len(c);
            used += mcwire_compose_set(proto, c->out + used, sh->keys, ids[0], vlen, sh->o->exptime,
                                       c->seq);
            c->iov[niov++] = (struct iovec){c->out + seg, used - seg};
            if (vlen > 0)
                c->iov[niov++] = (struct iovec){(void *)sh->value, vlen};
            seg = used;
            memcpy(c->out + used, trailer, ntrailer);
            used += ntrailer;
            mcwire_expect_init(&s->x, MCWIRE_SET, ids, 1, c->seq);
        } else {
            used += mcwire_compose_get(proto, c->out + used, sh->keys, ids, c->width, c->seq);
            mcwire_expect_init(&s->x, MCWIRE_GET, ids, c->width, c->seq);
        }
        s->sent_ns = now;
        c->count++;
        c->seq++;
    }
    if (used > seg)
        c->iov[niov++] = (struct iovec){c->out + seg, used - seg};
    if (niov > 0) {
        c->niov = niov;
        c->iov_pos = 0;
        if (!conn_flush(c))
            return;
    }
    if (c->count == 0 && !c->write_blocked && !c->idle) {
        c->idle = true;
        worker_conn_idle(w);
    }
}

static void complete(struct conn *c, struct conn_slot *s, uint64_t now)
{
    struct tally *t = &c->w->tally;
    t->requests++;
    if (s->x.op == MCWIRE_GET) {
        t->gets++;
        t->get_keys += s->x.nkeys;
        t->hits += s->x.hits;
        t->misses += s->x.misses;
    } else {
        t->sets++;
    }
    t->errors += s->x.errors;
    hist_record(&t->latency, now > s->sent_ns ? now - s->sent_ns : 0);
    c->head = (c->head + 1) % c->cap;
    c->count--;
}

static const char *op_name(const struct mcwire_expect *x)
{
    return x->op == MCWIRE_SET ? "set" : x->nkeys > 1 ? "multi-get" : "get";
}

/* Matches every complete reply in the input to the in-flight requests.
 * Returns false if the connection failed. */
static bool conn_parse(struct conn *c, uint64_t now)
{
    enum mcwire_proto proto = c->w->sh->o->proto;
    size_t pos = 0;
    while (pos < c->in_len) {
        struct mcwire_event ev;
        pos += mcwire_parse(&c->parser, c->in + pos, c->in_len - pos, &ev);
        if (ev.type == MCWIRE_EV_NONE)
            break;
        if (c->count == 0) {
            c->w->tally.unexpected++;
            conn_fail(c, "%s reply with no request in flight%s%.*s", mcwire_ev_name(ev.type),
                      ev.ntext ? ": " : "", (int)ev.ntext, ev.text ? ev.text : "");
            return false;
        }
        struct conn_slot *s = &c->slots[c->head];
        const char *why;
        enum mcwire_match m = mcwire_match(proto, c->w->sh->keys, &s->x, &ev, &why);
        if (m == MCWIRE_MATCH_UNEXPECTED) {
            c->w->tally.unexpected++;
            c->head = (c->head + 1) % c->cap;
            c->count--;
            conn_fail(c, "unexpected reply to %s: %s (%s%s%.*s%s%.*s)", op_name(&s->x), why,
                      mcwire_ev_name(ev.type), ev.nkey ? " key " : "", (int)ev.nkey,
                      ev.nkey ? ev.key : "", ev.ntext ? ": " : "", (int)ev.ntext,
                      ev.ntext ? ev.text : "");
            return false;
        }
        if (ev.type == MCWIRE_EV_ERROR || ev.type == MCWIRE_EV_NOT_STORED)
            worker_report(c->w, "conn %u: %s reply to %s: %.*s", c->id, mcwire_ev_name(ev.type),
                          op_name(&s->x), (int)ev.ntext, ev.text);
        if (m == MCWIRE_MATCH_DONE)
            complete(c, s, now);
    }
    c->in_len -= pos;
    if (c->in_len > 0)
        memmove(c->in, c->in + pos, c->in_len);
    return true;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct conn *c = arg;
    struct worker *w = c->w;
    pthread_mutex_lock(&w->lock);
    uint64_t now = mono_now_ns();
    ssize_t n = read(fd, c->in + c->in_len, c->in_cap - c->in_len);
    if (n > 0) {
        c->last_rx = now;
        w->tally.bytes_in += (uint64_t)n;
        c->in_len += (size_t)n;
        if (conn_parse(c, now))
            conn_fill(c, now);
    } else if (n == 0) {
        conn_fail(c, "server closed the connection");
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        conn_fail(c, "read: %s", strerror(errno));
    }
    pthread_mutex_unlock(&w->lock);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    pthread_mutex_lock(&c->w->lock);
    if (conn_flush(c) && !c->write_blocked)
        conn_fill(c, mono_now_ns());
    pthread_mutex_unlock(&c->w->lock);
}

void conn_start(struct conn *c, unsigned depth, uint64_t budget, uint64_t now)
{
    c->depth = depth < c->cap ? depth : c->cap;
    c->budget = budget;
    c->idle = false;
    c->last_rx = now;
    conn_fill(c, now);
}

void conn_tick(struct conn *c, uint64_t now)
{
    if (!c->alive)
        return;
    if (c->count > 0) {
        uint64_t since = c->slots[c->head].sent_ns;
        if (c->last_rx > since)
            since = c->last_rx;
        uint64_t limit = (uint64_t)(c->w->sh->o->timeout * 1e9);
        if (now - since > limit)
            conn_fail(c, "no reply for %.1f s", (double)(now - since) / 1e9);
        return;
    }
    conn_fill(c, now); /* nothing in flight: send, or notice the end */
}
