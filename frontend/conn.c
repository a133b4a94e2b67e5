/*
 * conn.c - connection I/O and state machine (see conn.h). Worker thread.
 *
 *   readable ──► read once (into rbuf, or straight into the item being
 *   filled) ──► process: parse lines / fill value / swallow, at most
 *   reqs_per_event commands ──► write the batch's replies with writev
 *
 * Backpressure: when more than out_max reply bytes are unsent, reading
 * stops until the client drains them; a client that makes no progress for
 * drain_timeout seconds is disconnected. A client that half-closes still
 * gets every reply before we close.
 *
 * Input buffers: each connection keeps its own, unless -o
 * read_buf_mem_limit is set; then, as in memcached, a connection holds a
 * buffer only while it has unprocessed input, taken from a pool of at most
 * limit / threads bytes per worker, and one that finds the pool empty is
 * closed and counted in read_buf_oom.
 */
#include "frontend/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/assert.h"
#include "common/log.h"
#include "common/mc_binary.h"
#include "common/mc_text.h"
#include "common/mem.h"
#include "frontend/fe.h"
#include "frontend/proto_binary.h"
#include "frontend/proto_meta.h"
#include "frontend/proto_text.h"
#include "frontend/worker.h"

#define RBUF_INITIAL 16384
/* The read buffer never grows past the longest legal line plus a read. */
#define RBUF_MAX (MC_GET_LINE_MAX + RBUF_INITIAL)
/* A stream producer is asked for more while less than this is unsent. */
#define STREAM_LOW_WATER (64u << 10)
/* How soon an idle producer (a watcher with nothing new) is asked again. */
#define STREAM_IDLE_USEC 20000
/* What a connection's read event carries when we make it active to run
 * the connection (a reply completed, commands still buffered) rather than
 * because epoll saw input: on_readable then does not read (an EAGAIN per
 * completed command otherwise). libevent ORs it with EV_READ when both
 * happen in one turn. */
#define CONN_RESUME EV_TIMEOUT
/* Commands one connection may have waiting on a pipelined executor. */
#define CONN_PIPELINE_MAX 1024
/* Freed slots a connection keeps for reuse. */
#define CONN_SPARE_SLOTS 16

static void on_readable(evutil_socket_t fd, short what, void *arg);
static void on_writable(evutil_socket_t fd, short what, void *arg);

/* A reply position held for a command that completes later. */
struct conn_slot {
    struct conn_slot *next;
    struct conn *c; /* NULL once the connection is gone */
    struct outq out;
    bool done;
    bool last;    /* the connection's output ends with this reply */
    bool counted; /* its bytes are in c->slot_bytes */
};

/* Another command may start while c->slots_pending are waiting: up to
 * CONN_PIPELINE_MAX of them, and while the replies held behind the oldest
 * (done slots, answered at once or completed out of order) stay within
 * max_output, as c->out's do. */
static bool may_start(const struct conn *c)
{
    size_t held = c->slot_bytes + (c->slots_tail != NULL ? outq_pending(&c->slots_tail->out) : 0);
    return c->xo->pipelined && c->slots_pending < CONN_PIPELINE_MAX &&
           held <= c->fe->settings.out_max;
}

/* A pooled buffer on the worker's free list (its first bytes). */
struct conn_rbuf {
    struct conn_rbuf *next;
};

/* Owner-thread update of a gauge other threads read. */
static void gauge_add(_Atomic uint64_t *g, int64_t d)
{
    atomic_store_explicit(g, atomic_load_explicit(g, memory_order_relaxed) + (uint64_t)d,
                          memory_order_relaxed);
}

void conn_rbuf_setup(struct worker *w, size_t limit, unsigned threads)
{
    w->rbuf_limit = 0;
    if (limit == 0)
        return;
    size_t per_worker = limit / threads;
    w->rbuf_limit = per_worker < RBUF_INITIAL ? 1 : (unsigned)(per_worker / RBUF_INITIAL);
}

/* A buffer for c: from the pool when the limit is on. False when the pool
 * is exhausted (counted) or memory is short. */
static bool rbuf_acquire(struct conn *c)
{
    struct worker *w = c->w;
    char *b;
    if (w->rbuf_limit > 0 && w->rbuf_free != NULL) {
        b = (char *)w->rbuf_free;
        w->rbuf_free = w->rbuf_free->next;
        gauge_add(&w->rbuf_bytes_free, -(int64_t)RBUF_INITIAL);
    } else {
        if (w->rbuf_limit > 0 && w->rbuf_pooled >= w->rbuf_limit) {
            STAT_INCR(&w->stats, read_buf_oom);
            return false;
        }
        b = mem_alloc(MEM_CONN, RBUF_INITIAL);
        if (b == NULL)
            return false;
        if (w->rbuf_limit > 0)
            w->rbuf_pooled++;
        gauge_add(&w->rbuf_count, 1);
        gauge_add(&w->rbuf_bytes, RBUF_INITIAL);
    }
    c->rbuf = b;
    c->rcap = RBUF_INITIAL;
    c->rpos = c->rlen = 0;
    return true;
}

/* Gives c's buffer back: to the pool if it is one of its size, else to
 * the allocator. */
static void rbuf_release(struct conn *c)
{
    struct worker *w = c->w;
    if (c->rbuf == NULL)
        return;
    if (w->rbuf_limit > 0 && c->rcap == RBUF_INITIAL) {
        struct conn_rbuf *f = (struct conn_rbuf *)(void *)c->rbuf;
        f->next = w->rbuf_free;
        w->rbuf_free = f;
        gauge_add(&w->rbuf_bytes_free, RBUF_INITIAL);
    } else {
        if (w->rbuf_limit > 0)
            w->rbuf_pooled--;
        gauge_add(&w->rbuf_count, -1);
        gauge_add(&w->rbuf_bytes, -(int64_t)c->rcap);
        mem_free(MEM_CONN, c->rbuf, c->rcap);
    }
    c->rbuf = NULL;
    c->rcap = c->rpos = c->rlen = 0;
}

void conn_rbuf_teardown(struct worker *w)
{
    while (w->rbuf_free != NULL) {
        struct conn_rbuf *f = w->rbuf_free;
        w->rbuf_free = f->next;
        mem_free(MEM_CONN, f, RBUF_INITIAL);
        w->rbuf_pooled--;
        gauge_add(&w->rbuf_count, -1);
        gauge_add(&w->rbuf_bytes, -(int64_t)RBUF_INITIAL);
        gauge_add(&w->rbuf_bytes_free, -(int64_t)RBUF_INITIAL);
    }
}

const char *conn_state_name(const struct conn *c)
{
    if (atomic_load_explicit(&c->write_blocked, memory_order_relaxed))
        return "conn_mwrite";
    switch ((enum conn_state)atomic_load_explicit(&c->state, memory_order_relaxed)) {
    case CONN_PARSE_CMD: return "conn_parse_cmd";
    case CONN_NREAD: return "conn_nread";
    case CONN_SWALLOW: return "conn_swallow";
    case CONN_STREAM: return "conn_watch"; /* memcached's name for both uses */
    case CONN_CLOSING: return "conn_closing";
    }
    return "conn_unknown";
}

static void set_state(struct conn *c, enum conn_state s)
{
    atomic_store_explicit(&c->state, (int)s, memory_order_relaxed);
}

static enum conn_state get_state(const struct conn *c)
{
    return (enum conn_state)atomic_load_explicit(&c->state, memory_order_relaxed);
}

struct conn *conn_next(const struct conn *c)
{
    return c->next;
}

static void format_peer(char *buf, size_t n, const struct sockaddr_storage *ss)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
        snprintf(buf, n, "tcp:%s:%d", host, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
        snprintf(buf, n, "tcp6:[%s]:%d", host, port);
    } else {
        snprintf(buf, n, "unknown");
    }
}

enum st_status conn_create(struct worker *w, int fd, const struct sockaddr_storage *peer,
                           socklen_t peerlen, const struct fe_exec_ops *xo)
{
    (void)peerlen;
    struct conn *c = mem_calloc(MEM_CONN, 1, sizeof(*c));
    if (c == NULL)
        return ST_NOMEM;
    c->w = w;
    c->fe = w->fe;
    c->xo = xo != NULL ? xo : c->fe->xo;
    c->exec = c->fe->exec;
    c->wctx = w->wctx;
    c->fd = fd;
    format_peer(c->peer, sizeof(c->peer), peer);
    atomic_store(&c->last_cmd, clock_now());
    outq_init(&c->out, c->xo->release, c->exec);
    bool have_rbuf = w->rbuf_limit > 0 || rbuf_acquire(c); /* pooled: taken on input */
    c->rev = event_new(w->base, fd, EV_READ | EV_PERSIST, on_readable, c);
    c->wev = event_new(w->base, fd, EV_WRITE, on_writable, c);
    if (!have_rbuf || c->rev == NULL || c->wev == NULL || event_add(c->rev, NULL) != 0) {
        if (c->rev != NULL)
            event_free(c->rev);
        if (c->wev != NULL)
            event_free(c->wev);
        rbuf_release(c);
        mem_free(MEM_CONN, c, sizeof(*c));
        return ST_NOMEM;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    pthread_mutex_lock(&w->conns_lock);
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    pthread_mutex_unlock(&w->conns_lock);
    atomic_fetch_add(&c->fe->total_conns, 1);
    log_debug("<%d new client connection from %s", fd, c->peer);
    if (c->fe->hooks.conn_event != NULL)
        c->fe->hooks.conn_event(c->fe->hooks.arg, false, c->peer, fd, FE_CLOSE_NORMAL);
    return ST_OK;
}

static void slots_orphan(struct conn *c);

static void stream_end(struct conn *c)
{
    if (c->stream_free != NULL)
        c->stream_free(c->stream_arg);
    c->stream_fill = NULL;
    c->stream_free = NULL;
    c->stream_arg = NULL;
    if (c->stream_timer != NULL) {
        event_free(c->stream_timer);
        c->stream_timer = NULL;
    }
}

/* ------------------------------------------------------------ slots */

static struct conn_slot *slot_new(struct conn *c, bool done)
{
    struct conn_slot *s = c->spare;
    if (s != NULL) {
        c->spare = s->next;
        c->nspare--;
    } else {
        s = mem_alloc(MEM_CONN, sizeof(*s));
        if (s == NULL)
            return NULL;
        outq_init_small(&s->out, c->xo->release, c->exec);
    }
    s->next = NULL;
    s->c = c;
    s->done = done;
    s->last = false;
    s->counted = false;
    if (c->slots_tail != NULL)
        c->slots_tail->next = s;
    else
        c->slots = s;
    c->slots_tail = s;
    return s;
}

/* A slot of a live connection is kept for its next command, with its
 * queue's memory: a pipelined connection allocates none per command. */
static void slot_free(struct conn_slot *s)
{
    struct conn *c = s->c;
    if (c != NULL && c->nspare < CONN_SPARE_SLOTS) {
        outq_clear(&s->out);
        s->next = c->spare;
        c->spare = s;
        c->nspare++;
        return;
    }
    outq_deinit(&s->out);
    mem_free(MEM_CONN, s, sizeof(*s));
}

static void slots_free_spare(struct conn *c)
{
    while (c->spare != NULL) {
        struct conn_slot *s = c->spare;
        c->spare = s->next;
        outq_deinit(&s->out);
        mem_free(MEM_CONN, s, sizeof(*s));
    }
    c->nspare = 0;
}

struct outq *conn_out(struct conn *c)
{
    /* The oldest slot's replies go straight behind what c->out holds:
     * every reply before them is there already. */
    if (c->completing != NULL)
        return c->completing == c->slots ? &c->out : &c->completing->out;
    /* conn_defer leaves a done slot at the tail: nothing to allocate. */
    return c->slots_tail != NULL ? &c->slots_tail->out : &c->out;
}

struct conn_slot *conn_defer(struct conn *c)
{
    ASSERT(c->completing == NULL);
    struct conn_slot *t = c->slots_tail;
    struct conn_slot *s;
    if (t != NULL && t->done && t->out.pending == 0 && t->out.niov == 0) {
        s = t; /* the empty tail becomes the waiting slot */
    } else {
        s = slot_new(c, false);
        if (s == NULL)
            return NULL;
    }
    /* And a tail behind it for the replies of the meantime. */
    if (slot_new(c, true) == NULL) {
        if (s != t) {
            /* undo: s is the tail, just appended */
            struct conn_slot **pp = &c->slots;
            while (*pp != s)
                pp = &(*pp)->next;
            *pp = NULL;
            c->slots_tail = t;
            slot_free(s);
        }
        return NULL;
    }
    if (s != t && t != NULL && t->done && !t->counted) {
        /* the old tail's replies stay behind: held until collected */
        t->counted = true;
        c->slot_bytes += outq_pending(&t->out);
    }
    s->done = false;
    c->slots_pending++;
    return s;
}

/* Moves the replies of the leading done slots to c->out. False when out
 * of memory (the connection must close: order can no longer be kept). */
static void slots_orphan(struct conn *c);

static bool slots_collect(struct conn *c)
{
    while (c->slots != NULL && c->slots->done) {
        struct conn_slot *s = c->slots;
        size_t bytes = outq_pending(&s->out);
        if (outq_splice(&c->out, &s->out) != ST_OK)
            return false;
        if (s->counted)
            c->slot_bytes -= bytes;
        bool last = s->last;
        c->slots = s->next;
        if (c->slots == NULL)
            c->slots_tail = NULL;
        slot_free(s);
        if (last) {
            slots_orphan(c); /* what was queued behind it is not sent */
            break;
        }
    }
    return true;
}

/* The connection closes: done slots go, waiting ones are left to their
 * completers, which free them in conn_slot_done. */
static void slots_orphan(struct conn *c)
{
    struct conn_slot *s = c->slots;
    while (s != NULL) {
        struct conn_slot *next = s->next;
        if (s->done)
            slot_free(s);
        else
            s->c = NULL;
        s = next;
    }
    c->slots = c->slots_tail = NULL;
    c->slots_pending = 0;
    c->slot_bytes = 0;
}

void conn_end_output(struct conn *c)
{
    ASSERT(c->completing != NULL);
    c->completing->last = true;
    c->close_after_write = true;
}

struct conn *conn_slot_enter(struct conn_slot *s)
{
    ASSERT(!s->done);
    struct conn *c = s->c;
    if (c != NULL) {
        ASSERT(c->completing == NULL);
        c->completing = s;
    }
    return c;
}

void conn_slot_done(struct conn_slot *s)
{
    struct conn *c = s->c;
    if (c == NULL) {
        slot_free(s);
        return;
    }
    c->completing = NULL;
    s->done = true;
    c->slots_pending--;
    if (s != c->slots) { /* behind the oldest: held until collected */
        s->counted = true;
        c->slot_bytes += outq_pending(&s->out);
    }
    /* The oldest reply is ready: run the connection from the event loop
     * (collect, write, go on with buffered commands), never nested in
     * whatever called us. */
    if (s == c->slots)
        event_active(c->rev, CONN_RESUME, 0);
}

/* Frees the connection; `why` is what `watch connevents` reports. */
static void conn_free(struct conn *c, enum fe_close_reason why)
{
    struct worker *w = c->w;
    if (c->reply_waiting) {
        struct conn **p = &w->reply_waiters;
        while (*p != c)
            p = &(*p)->reply_next;
        *p = c->reply_next;
    }
    stream_end(c);
    if (c->fe->hooks.conn_event != NULL)
        c->fe->hooks.conn_event(c->fe->hooks.arg, true, c->peer, c->fd, why);
    pthread_mutex_lock(&w->conns_lock);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    w->nconns--;
    pthread_mutex_unlock(&w->conns_lock);

    event_free(c->rev);
    event_free(c->wev);
    close(c->fd);
    if (c->it != NULL)
        c->xo->release(c->exec, c->it);
    outq_deinit(&c->out);
    slots_orphan(c);
    slots_free_spare(c);
    proto_meta_conn_free(c);
    rbuf_release(c);
    atomic_fetch_sub(&c->fe->curr_conns, 1);
    mem_free(MEM_CONN, c, sizeof(*c));
    worker_conn_closed(w, NULL);
}

void conn_close(struct conn *c)
{
    log_debug("<%d connection closed", c->fd);
    set_state(c, CONN_CLOSING);
    if (c->in_handler) {
        c->dead = true;
        return;
    }
    /* only the worker's shutdown closes connections from outside */
    conn_free(c, FE_CLOSE_SHUTDOWN);
}

bool conn_close_if_idle(struct conn *c, rel_time_t now, unsigned timeout)
{
    rel_time_t last = atomic_load_explicit(&c->last_cmd, memory_order_relaxed);
    if (now <= last || now - last <= timeout)
        return false;
    if (c->in_handler || get_state(c) != CONN_PARSE_CMD || outq_pending(&c->out) > 0 ||
        c->slots != NULL)
        return false; /* memcached kicks only connections in conn_new_cmd / conn_read */
    log_debug("<%d closing idle connection (%u s without a command)", c->fd, now - last);
    conn_free(c, FE_CLOSE_IDLE_TIMEOUT);
    return true;
}

void conn_begin_nread(struct conn *c, void *it, unsigned ntail, enum fe_store_mode mode,
                      uint64_t cas_in, bool noreply)
{
    ASSERT(c->it == NULL);
    ASSERT(ntail <= sizeof(c->tail));
    c->it = it;
    struct fe_item_view v;
    c->xo->view(c->exec, it, &v);
    c->dst = v.value;
    c->left = v.nvalue;
    c->tail_left = (uint8_t)ntail;
    c->mode = mode;
    c->cas_in = cas_in;
    c->noreply = noreply;
    c->nread_meta = false;
    set_state(c, CONN_NREAD);
}

bool conn_tail_is_crlf(const struct conn *c)
{
    return c->tail[0] == '\r' && c->tail[1] == '\n';
}

void conn_begin_swallow(struct conn *c, size_t nbytes, enum proto_action (*then)(struct conn *c))
{
    c->swallow = nbytes;
    c->after_swallow = then;
    set_state(c, CONN_SWALLOW);
}

static void on_stream_timer(evutil_socket_t fd, short what, void *arg);

enum st_status conn_begin_stream(struct conn *c, conn_stream_fn fill, conn_stream_free_fn free,
                                 void *arg, bool discard_input)
{
    ASSERT(c->stream_fill == NULL);
    c->stream_timer = evtimer_new(c->w->base, on_stream_timer, c);
    if (c->stream_timer == NULL) {
        free(arg);
        return ST_NOMEM;
    }
    c->stream_fill = fill;
    c->stream_free = free;
    c->stream_arg = arg;
    c->stream_discard_input = discard_input;
    set_state(c, CONN_STREAM);
    return ST_OK;
}

/* Lets the producer queue more while the backlog is small. Returns
 * PROTO_CLOSE when it failed. */
static enum proto_action stream_run(struct conn *c)
{
    if (c->stream_discard_input)
        conn_consume(c, c->rlen);
    while (outq_pending(&c->out) < STREAM_LOW_WATER) {
        switch (c->stream_fill(c, c->stream_arg)) {
        case CONN_STREAM_MORE: continue;
        case CONN_STREAM_IDLE: {
            struct timeval tv = {0, STREAM_IDLE_USEC};
            evtimer_add(c->stream_timer, &tv);
            return PROTO_NEXT;
        }
        case CONN_STREAM_DONE:
            stream_end(c);
            set_state(c, CONN_PARSE_CMD);
            return PROTO_NEXT;
        case CONN_STREAM_FAIL: return PROTO_CLOSE;
        }
    }
    return PROTO_NEXT;
}

void conn_consume(struct conn *c, size_t n)
{
    c->rpos += n;
    c->rlen -= n;
    if (c->rlen == 0)
        c->rpos = 0;
}

/* Makes room at the end of rbuf; false if the buffer may not grow. */
static bool rbuf_make_room(struct conn *c)
{
    if (c->rpos > 0) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen);
        c->rpos = 0;
    }
    if (c->rlen < c->rcap)
        return true;
    size_t cap = c->rcap * 2;
    if (cap > RBUF_MAX)
        return false;
    char *b = mem_realloc(MEM_CONN, c->rbuf, c->rcap, cap);
    if (b == NULL)
        return false;
    gauge_add(&c->w->rbuf_bytes, (int64_t)(cap - c->rcap));
    c->rbuf = b;
    c->rcap = cap;
    return true;
}

/* Shrinks a grown read buffer back once it is empty. */
static void rbuf_shrink(struct conn *c)
{
    if (c->rcap > RBUF_INITIAL && c->rlen == 0) {
        char *b = mem_realloc(MEM_CONN, c->rbuf, c->rcap, RBUF_INITIAL);
        if (b != NULL) {
            gauge_add(&c->w->rbuf_bytes, -(int64_t)(c->rcap - RBUF_INITIAL));
            c->rbuf = b;
            c->rcap = RBUF_INITIAL;
        }
    }
}

/* One read(2). Returns ST_OK, ST_AGAIN, ST_CLOSED (EOF), ST_IO, or
 * ST_NOMEM when no input buffer can be had. */
static enum st_status conn_read(struct conn *c)
{
    char *dst;
    size_t room;
    if (get_state(c) == CONN_NREAD && c->rlen == 0 && c->left > 0) {
        dst = c->dst; /* large values go straight into the item */
        room = c->left;
    } else {
        if (c->rbuf == NULL && !rbuf_acquire(c))
            return ST_NOMEM;
        if (c->rpos + c->rlen == c->rcap && !rbuf_make_room(c))
            return ST_OK; /* full; process() decides what a full buffer means */
        dst = c->rbuf + c->rpos + c->rlen;
        room = c->rcap - c->rpos - c->rlen;
    }
    ssize_t n;
    do
        n = read(c->fd, dst, room);
    while (n < 0 && errno == EINTR);
    if (n == 0)
        return ST_CLOSED;
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? ST_AGAIN : ST_IO;
    STAT_ADD(&c->w->stats, bytes_read, (uint64_t)n);
    if (dst == c->dst) {
        c->dst += n;
        c->left -= (size_t)n;
    } else {
        c->rlen += (size_t)n;
    }
    return ST_OK;
}

/*
 * Runs buffered input through the state machine. Returns PROTO_CLOSE if
 * the connection must be dropped. *yielded is set when the command budget
 * ran out with complete input still buffered.
 */
static enum proto_action conn_process(struct conn *c, bool *yielded)
{
    unsigned budget = c->fe->settings.reqs_per_event;
    *yielded = false;
    for (;;) {
        if (c->close_after_write || c->w->draining)
            return PROTO_NEXT;
        switch (get_state(c)) {
        case CONN_NREAD: {
            size_t n = c->rlen < c->left ? c->rlen : c->left;
            if (n > 0) /* (a pooled buffer may be absent while empty) */
                memcpy(c->dst, c->rbuf + c->rpos, n);
            c->dst += n;
            c->left -= n;
            conn_consume(c, n);
            if (c->left == 0 && c->tail_left > 0 && c->rlen > 0) {
                size_t t = c->rlen < c->tail_left ? c->rlen : c->tail_left;
                memcpy(c->tail + sizeof(c->tail) - c->tail_left, c->rbuf + c->rpos, t);
                c->tail_left = (uint8_t)(c->tail_left - t);
                conn_consume(c, t);
            }
            if (c->left > 0 || c->tail_left > 0)
                return PROTO_NEXT;
            set_state(c, CONN_PARSE_CMD);
            enum proto_action done = c->proto == CONN_PROTO_BINARY ? proto_binary_nread_done(c)
                                     : c->nread_meta               ? proto_meta_nread_done(c)
                                                                   : proto_text_nread_done(c);
            if (done == PROTO_CLOSE)
                return PROTO_CLOSE;
            if (budget > 0)
                budget--;
            continue;
        }
        case CONN_SWALLOW: {
            size_t n = c->rlen < c->swallow ? c->rlen : c->swallow;
            conn_consume(c, n);
            c->swallow -= n;
            if (c->swallow > 0)
                return PROTO_NEXT;
            set_state(c, CONN_PARSE_CMD);
            if (c->after_swallow != NULL) {
                enum proto_action (*then)(struct conn *) = c->after_swallow;
                c->after_swallow = NULL;
                if (then(c) == PROTO_CLOSE)
                    return PROTO_CLOSE;
            }
            continue;
        }
        case CONN_STREAM:
            if (stream_run(c) == PROTO_CLOSE)
                return PROTO_CLOSE;
            if (get_state(c) == CONN_STREAM)
                return PROTO_NEXT;
            continue;
        default: break;
        }
        /* A command runs only once every earlier one has completed, unless
         * the executor keeps their order itself (up to a bound). */
        if (c->slots_pending > 0 && !may_start(c))
            return PROTO_NEXT;
        if (c->slots != NULL && !slots_collect(c))
            return PROTO_CLOSE;
        if (c->close_after_write)
            return PROTO_NEXT; /* nothing more runs: the output ends */
        if (c->rlen == 0)
            return PROTO_NEXT;
        if (c->proto == CONN_PROTO_UNKNOWN)
            c->proto =
                (uint8_t)c->rbuf[c->rpos] == MC_BIN_REQ_MAGIC ? CONN_PROTO_BINARY : CONN_PROTO_TEXT;
        if (c->proto == CONN_PROTO_BINARY) {
            if (!proto_binary_ready(c))
                return PROTO_NEXT;
            if (budget == 0 || outq_pending(&c->out) > c->fe->settings.out_max) {
                *yielded = budget == 0;
                return PROTO_NEXT;
            }
            budget--;
            atomic_store_explicit(&c->last_cmd, clock_now(), memory_order_relaxed);
            if (proto_binary_command(c) == PROTO_CLOSE)
                return PROTO_CLOSE;
            continue;
        }
        const char *start = c->rbuf + c->rpos;
        const char *nl = memchr(start, '\n', c->rlen);
        if (nl == NULL) {
            /* Bad input ends the connection, but the commands before it
             * were complete: their replies still go out first. */
            if (c->rlen > MC_LINE_MAX && !mc_text_is_long_line_ok(start, c->rlen)) {
                log_info("<%d line over %d bytes without newline, closing", c->fd, MC_LINE_MAX);
                c->close_after_write = true;
            } else if (c->rlen >= MC_GET_LINE_MAX) {
                log_info("<%d get line over %u bytes, closing", c->fd, MC_GET_LINE_MAX);
                c->close_after_write = true;
            }
            return PROTO_NEXT;
        }
        if (budget == 0 || outq_pending(&c->out) > c->fe->settings.out_max) {
            *yielded = budget == 0;
            return PROTO_NEXT;
        }
        size_t linelen = (size_t)(nl - start);
        size_t len = linelen > 0 && start[linelen - 1] == '\r' ? linelen - 1 : linelen;
        conn_consume(c, linelen + 1);
        atomic_store_explicit(&c->last_cmd, clock_now(), memory_order_relaxed);
        budget--;
        if (proto_text_line(c, start, len) == PROTO_CLOSE)
            return PROTO_CLOSE;
    }
}

/* A whole command is buffered (in the parse state). */
static bool has_complete_command(const struct conn *c)
{
    if (c->rlen == 0)
        return false;
    if (c->proto == CONN_PROTO_BINARY)
        return proto_binary_ready(c);
    return memchr(c->rbuf + c->rpos, '\n', c->rlen) != NULL;
}

/* Writes queued replies; arms the write event when the socket is full.
 * ST_AGAIN also while the executor holds them (c->reply_waiting). */
static enum st_status conn_flush(struct conn *c)
{
    if (c->reply_waiting)
        return ST_AGAIN;
    if (c->xo->before_reply != NULL && outq_pending(&c->out) > 0) {
        enum fe_reply_gate g = c->xo->before_reply(c->wctx);
        if (g == FE_REPLY_FAILED)
            return ST_IO;
        if (g == FE_REPLY_LATER) {
            c->reply_waiting = true;
            c->reply_next = c->w->reply_waiters;
            c->w->reply_waiters = c;
            return ST_AGAIN;
        }
    }
    size_t written;
    enum st_status s = outq_write(&c->out, c->fd, &written);
    STAT_ADD(&c->w->stats, bytes_written, written);
    if (s == ST_AGAIN) {
        struct timeval tv = {(time_t)c->fe->settings.drain_timeout, 0};
        if (written > 0 || !event_pending(c->wev, EV_WRITE, NULL))
            event_add(c->wev, &tv); /* (re)starts the drain timer on progress */
    }
    return s;
}

/* Decides whether we keep reading, given the output backlog. */
static void update_read_interest(struct conn *c)
{
    /* While a dump streams, commands sent after it wait in the socket. */
    bool dumping = get_state(c) == CONN_STREAM && !c->stream_discard_input;
    bool want = !c->eof && !c->close_after_write && !c->w->draining && !dumping &&
                (c->slots_pending == 0 || may_start(c)) &&
                outq_pending(&c->out) <= c->fe->settings.out_max;
    if (want && c->paused) {
        /* libevent's event_add does not register the fd of an event that
         * is in the active queue (a completed slot made it active): the
         * connection would never hear of new input. Take it out of the
         * queue, add it, and make it active again. */
        short active =
            (short)event_pending(c->rev, EV_READ | CONN_RESUME, NULL); /* paused: only active */
        if (active)
            event_del(c->rev);
        event_add(c->rev, NULL);
        if (active)
            event_active(c->rev, active, 0);
        c->paused = false;
    } else if (!want && !c->paused) {
        event_del(c->rev);
        c->paused = true;
    }
}

/* Process, flush, and decide what comes next. May free c. */
static void conn_run(struct conn *c)
{
    bool yielded;
    if (c->fe->hooks.conn_running != NULL)
        c->fe->hooks.conn_running(c->fe->hooks.arg, c->fd);
    c->in_handler = true;
    enum proto_action a = conn_process(c, &yielded);
    c->in_handler = false;
    if (a != PROTO_CLOSE && !c->dead && c->slots != NULL && !slots_collect(c))
        a = PROTO_CLOSE;
    if (a == PROTO_CLOSE || c->dead) {
        conn_free(c, c->dead ? FE_CLOSE_SHUTDOWN : FE_CLOSE_ERROR);
        return;
    }
    enum st_status s = conn_flush(c);
    if (s == ST_IO || s == ST_CLOSED) {
        conn_free(c, FE_CLOSE_ERROR);
        return;
    }
    atomic_store_explicit(&c->write_blocked, s == ST_AGAIN && !c->reply_waiting,
                          memory_order_relaxed);
    /* A complete command line still buffered, that a run could start?
     * (NREAD/SWALLOW consume the whole buffer, so only the parse state can
     * leave one behind; after quit nothing starts, and a run that would
     * start nothing must not be scheduled again and again while replies
     * are still to come.) */
    bool pending_cmd = get_state(c) == CONN_PARSE_CMD && !c->close_after_write && !c->w->draining &&
                       (c->slots_pending == 0 || may_start(c)) && has_complete_command(c);
    /* A producer that stopped at the low-water mark (not idling on its
     * timer) has more to say: wake it again like a pending command. */
    bool streaming = get_state(c) == CONN_STREAM;
    bool stream_more = streaming && !evtimer_pending(c->stream_timer, NULL);
    /* A dump goes on after the client half-closed; a watch ends. */
    bool keep_streaming = streaming && !c->stream_discard_input;
    /* Replies still to come (slots) keep the connection, whatever ends it. */
    if (s == ST_OK && c->slots == NULL &&
        (c->close_after_write || c->w->draining || (c->eof && !pending_cmd && !keep_streaming))) {
        enum fe_close_reason why = FE_CLOSE_NORMAL;
        if (c->w->draining)
            why = FE_CLOSE_SHUTDOWN;
        else if (c->close_after_write && !c->quitting)
            why = FE_CLOSE_ERROR;
        conn_free(c, why);
        return;
    }
    if (c->rlen == 0 && c->w->rbuf_limit > 0)
        rbuf_release(c); /* pooled: held only while input waits */
    else if (s == ST_OK && c->rlen == 0)
        rbuf_shrink(c);
    update_read_interest(c);
    if (yielded)
        STAT_INCR(&c->w->stats, conn_yields);
    /* Complete commands still buffered: the socket will not wake us for
     * them, so schedule ourselves (after other connections had a turn). */
    if (s == ST_OK && (pending_cmd || stream_more))
        event_active(c->rev, CONN_RESUME, 0);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct conn *c = arg;
    /* Paused, the event only fires when made active (a completed slot):
     * run the connection without reading past the backpressure. */
    if ((what & EV_READ) && !c->eof && !c->paused) {
        enum st_status s = conn_read(c);
        if (s == ST_IO) {
            log_info("<%d read error: %s", c->fd, strerror(errno));
            conn_free(c, FE_CLOSE_ERROR);
            return;
        }
        if (s == ST_NOMEM) {
            /* memcached closes a connection it has no read buffer for */
            log_info("<%d no input buffer (read_buf_mem_limit), closing", c->fd);
            conn_free(c, FE_CLOSE_ERROR); /* memcached's reason: none set, "error" */
            return;
        }
        if (s == ST_CLOSED) {
            c->eof = true;
            if (!c->paused) {
                event_del(c->rev);
                c->paused = true;
            }
        }
    }
    conn_run(c);
}

static void on_stream_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_run(arg);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct conn *c = arg;
    if (what & EV_TIMEOUT) {
        log_info("<%d client did not read its replies for %u s, closing", c->fd,
                 c->fe->settings.drain_timeout);
        conn_free(c, FE_CLOSE_ERROR);
        return;
    }
    conn_run(c);
}

void conn_release_replies(struct conn *c, bool ok)
{
    c->reply_waiting = false;
    c->reply_next = NULL;
    if (ok)
        event_active(c->wev, EV_WRITE, 0); /* on_writable: run, then write */
    else
        conn_free(c, FE_CLOSE_ERROR);
}

void conn_drain(struct conn *c)
{
    /* Replies already queued (or still to complete) go out; nothing new
     * is read. */
    if (outq_pending(&c->out) == 0 && c->slots == NULL) {
        conn_free(c, FE_CLOSE_SHUTDOWN);
        return;
    }
    update_read_interest(c);
}
