/*
 * peerlink.c - cluster-protocol client links (see peerlink.h).
 *
 *   request ─► (dial + HANDSHAKE, pipelined) ─► frame out ─► pending list
 *   response ─► match id in the pending list ─► done(OK / ERROR)
 *   tick (every PEERLINK_TICK_MS while anything is pending) ─► timeouts
 *   EOF / error / bad frame ─► every pending request done(CLOSED)
 *
 * A link's pending list is in send order, which is deadline order (one
 * timeout for all), so the timer looks at list heads only, and a response
 * (usually to the oldest request) is found near the head.
 */
#include "common/peerlink.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"

#define PEERLINK_TICK_MS 10

/* clang-format off */
#define PEERLINK_COUNTERS(X)                                                 \
    X(requests) X(responses) X(errors) X(timeouts) X(closed) X(overloaded)   \
    X(down) X(dials) X(dial_failures) X(bad_frames) X(late_responses)
/* clang-format on */

struct pending {
    struct pending *prev, *next;
    uint64_t id;
    uint64_t deadline_ms;
    peer_done_fn done;
    void *arg;
};

struct peerlink {
    struct peerlinks *pl;
    char addr[WIRE_ADDR_MAX + 1];
    struct bufferevent *bev; /* NULL: not connected */
    bool connected;          /* the dial completed */
    bool closing;            /* failing its requests: refuse new ones */
    uint64_t retry_after_ms; /* no dial before this (monotonic) */
    uint64_t next_id;
    struct pending *head, *tail;
    unsigned inflight;
    struct wire_buf out;
};

struct peerlinks {
    struct peerlinks_config cfg;
    char cluster_name[WIRE_CLUSTER_MAX + 1];
    char addr[WIRE_ADDR_MAX + 1];
    struct event_base *base;
    struct event *tick;
    bool ticking;
    unsigned pending; /* over all links */
    struct peerlink **links;
    size_t nlinks, cap;
#define X(name) _Atomic uint64_t name;
    PEERLINK_COUNTERS(X)
#undef X
};

#define COUNT(pl, name) atomic_fetch_add_explicit(&(pl)->name, 1, memory_order_relaxed)

const char *peer_result_name(enum peer_result r)
{
    switch (r) {
    case PEER_OK: return "ok";
    case PEER_ERROR: return "error";
    case PEER_TIMEOUT: return "timeout";
    case PEER_CLOSED: return "closed";
    case PEER_OVERLOADED: return "overloaded";
    case PEER_DOWN: return "down";
    }
    return "?";
}

/* ----------------------------------------------------------- pending */

static void pending_unlink(struct peerlink *l, struct pending *p)
{
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        l->head = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    else
        l->tail = p->prev;
    l->inflight--;
    l->pl->pending--;
}

/* Completes p (already unlinked) and frees it. */
static void pending_finish(struct pending *p, enum peer_result r, const struct wire_frame *f)
{
    peer_done_fn done = p->done;
    void *arg = p->arg;
    mem_free(MEM_CONN, p, sizeof(*p));
    done(arg, r, f);
}

static void tick_update(struct peerlinks *pl)
{
    if (pl->pending > 0 && !pl->ticking) {
        struct timeval tv = {0, PEERLINK_TICK_MS * 1000};
        if (event_add(pl->tick, &tv) == 0)
            pl->ticking = true;
    } else if (pl->pending == 0 && pl->ticking) {
        event_del(pl->tick);
        pl->ticking = false;
    }
}

/* ------------------------------------------------------------- links */

/* Closes l's connection and fails its requests; l stays, to be dialed
 * again after retry_ms. Requests queued on a connection that never got
 * made were not sent: they fail PEER_DOWN, the others PEER_CLOSED. */
static void link_close(struct peerlink *l, const char *why)
{
    struct peerlinks *pl = l->pl;
    enum peer_result fate = l->connected ? PEER_CLOSED : PEER_DOWN;
    if (l->bev != NULL) {
        log_info("cluster: link to %s closed: %s", l->addr, why);
        bufferevent_free(l->bev);
        l->bev = NULL;
    }
    l->connected = false;
    wire_buf_clear(&l->out);
    l->retry_after_ms = clock_monotonic_ms() + pl->cfg.retry_ms;
    l->closing = true;
    while (l->head != NULL) {
        struct pending *p = l->head;
        pending_unlink(l, p);
        if (fate == PEER_CLOSED)
            COUNT(pl, closed);
        else
            COUNT(pl, down);
        pending_finish(p, fate, NULL);
    }
    l->closing = false;
    tick_update(pl);
}

static void on_response(struct peerlink *l, const struct wire_frame *f)
{
    struct peerlinks *pl = l->pl;
    if (f->opcode == WIRE_OP_HANDSHAKE) {
        struct wire_handshake_reply r;
        if (wire_parse_handshake_reply(f->body, f->body_len, &r) != WIRE_OK) {
            link_close(l, "malformed handshake reply");
        } else if (!r.accept) {
            log_warn("cluster: %s refused our handshake: %.*s", l->addr, (int)r.msg_len, r.msg);
            link_close(l, "handshake refused");
        }
        return;
    }
    struct pending *p = l->head;
    while (p != NULL && p->id != f->id)
        p = p->next;
    if (p == NULL) {
        COUNT(pl, late_responses); /* timed out before it came */
        return;
    }
    pending_unlink(l, p);
    tick_update(pl);
    if (f->opcode == WIRE_OP_ERROR) {
        COUNT(pl, errors);
        pending_finish(p, PEER_ERROR, f);
    } else {
        COUNT(pl, responses);
        pending_finish(p, PEER_OK, f);
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct peerlink *l = arg;
    struct peerlinks *pl = l->pl;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (l->bev == bev) {
        size_t len = evbuffer_get_length(in);
        if (len == 0)
            return;
        const uint8_t *p = evbuffer_pullup(in, -1);
        struct wire_frame f;
        size_t need;
        enum wire_result r = wire_parse_frame(p, len, pl->cfg.self.frame_max, &f, &need);
        if (r == WIRE_NEED_MORE)
            return;
        if (r != WIRE_OK || (f.flags & WIRE_FLAG_RESPONSE) == 0) {
            COUNT(pl, bad_frames);
            link_close(l, r != WIRE_OK ? wire_result_name(r) : "a request on a client link");
            return;
        }
        on_response(l, &f); /* may close the link (then bev is freed) */
        if (l->bev != bev)
            return;
        evbuffer_drain(in, f.size);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct peerlink *l = arg;
    if (what & BEV_EVENT_CONNECTED) {
        l->connected = true;
    } else if (what & BEV_EVENT_ERROR) {
        if (!l->connected)
            COUNT(l->pl, dial_failures);
        link_close(l, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    } else if (what & BEV_EVENT_EOF) {
        link_close(l, "closed by the peer");
    }
}

/* Queues the bytes composed in l->out. */
static void link_flush(struct peerlink *l)
{
    if (l->out.len > 0)
        bufferevent_write(l->bev, l->out.data, l->out.len);
    wire_buf_clear(&l->out);
}

/* Connects l and queues the HANDSHAKE (requests follow it on the wire
 * before the answer comes: the acceptor reads frames in order). */
static bool link_dial(struct peerlink *l)
{
    struct peerlinks *pl = l->pl;
    char host[WIRE_ADDR_MAX + 1];
    snprintf(host, sizeof(host), "%s", l->addr);
    char *colon = strrchr(host, ':');
    if (colon == NULL)
        return false;
    *colon = '\0';
    const char *h = host;
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') { /* [v6]:port */
        host[hl - 1] = '\0';
        h = host + 1;
    }
    COUNT(pl, dials);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(h, colon + 1, &hints, &res) != 0) {
        COUNT(pl, dial_failures);
        return false;
    }
    l->bev = bufferevent_socket_new(pl->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (l->bev == NULL) {
        freeaddrinfo(res);
        return false;
    }
    bufferevent_setcb(l->bev, on_read, NULL, on_event, l);
    bufferevent_enable(l->bev, EV_READ | EV_WRITE);
    int rc = bufferevent_socket_connect(l->bev, res->ai_addr, (int)res->ai_addrlen);
    freeaddrinfo(res);
    if (rc != 0) {
        COUNT(pl, dial_failures);
        bufferevent_free(l->bev);
        l->bev = NULL;
        return false;
    }
    struct wire_handshake hs = {
        .version = WIRE_VERSION_MAX,
        .cluster = pl->cluster_name,
        .cluster_len = strlen(pl->cluster_name),
        .short_id = pl->cfg.self.short_id,
        .generation = pl->cfg.self.generation,
        .addr = pl->addr,
        .addr_len = strlen(pl->addr),
    };
    memcpy(hs.node_id, pl->cfg.self.node_id, WIRE_NODE_ID_LEN);
    size_t mark = wire_begin_frame(&l->out, WIRE_OP_HANDSHAKE, 0, l->next_id++);
    wire_compose_handshake(&l->out, &hs);
    if (wire_end_frame(&l->out, mark, pl->cfg.self.frame_max) != ST_OK) {
        bufferevent_free(l->bev);
        l->bev = NULL;
        return false;
    }
    link_flush(l);
    return true;
}

void peerlink_reset(struct peerlink *l, const char *why)
{
    if (l->bev != NULL && !l->closing) {
        COUNT(l->pl, bad_frames);
        link_close(l, why);
    }
}

enum peer_result peerlink_request(struct peerlink *l, uint8_t opcode, uint16_t flags,
                                  const void *body, size_t body_len, peer_done_fn done, void *arg)
{
    struct peerlinks *pl = l->pl;
    if (l->inflight >= pl->cfg.max_inflight) {
        COUNT(pl, overloaded);
        return PEER_OVERLOADED;
    }
    uint64_t now = clock_monotonic_ms();
    if (l->closing || (l->bev == NULL && (now < l->retry_after_ms || !link_dial(l)))) {
        /* a dial that failed at once opens the window; a refusal inside
         * the window must not move its end */
        if (l->bev == NULL && !l->closing && now >= l->retry_after_ms)
            l->retry_after_ms = now + pl->cfg.retry_ms;
        COUNT(pl, down);
        return PEER_DOWN;
    }
    struct pending *p = mem_alloc(MEM_CONN, sizeof(*p));
    if (p == NULL) {
        COUNT(pl, overloaded);
        return PEER_OVERLOADED;
    }
    uint64_t id = l->next_id++;
    size_t mark = wire_begin_frame(&l->out, opcode, flags, id);
    wire_put_raw(&l->out, body, body_len);
    if (wire_end_frame(&l->out, mark, pl->cfg.self.frame_max) != ST_OK) {
        mem_free(MEM_CONN, p, sizeof(*p));
        COUNT(pl, overloaded);
        return PEER_OVERLOADED;
    }
    link_flush(l);
    *p = (struct pending){
        .prev = l->tail,
        .id = id,
        .deadline_ms = now + pl->cfg.timeout_ms,
        .done = done,
        .arg = arg,
    };
    if (l->tail != NULL)
        l->tail->next = p;
    else
        l->head = p;
    l->tail = p;
    l->inflight++;
    pl->pending++;
    COUNT(pl, requests);
    tick_update(pl);
    return PEER_OK;
}

unsigned peerlink_inflight(const struct peerlink *l)
{
    return l->inflight;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct peerlinks *pl = arg;
    pl->ticking = false;
    uint64_t now = clock_monotonic_ms();
    for (size_t i = 0; i < pl->nlinks; i++) {
        struct peerlink *l = pl->links[i];
        while (l->head != NULL && l->head->deadline_ms <= now) {
            struct pending *p = l->head;
            pending_unlink(l, p);
            COUNT(pl, timeouts);
            pending_finish(p, PEER_TIMEOUT, NULL);
        }
    }
    tick_update(pl);
}

/* ------------------------------------------------------------- the set */

struct peerlink *peerlinks_get(struct peerlinks *pl, const char *addr)
{
    for (size_t i = 0; i < pl->nlinks; i++)
        if (strcmp(pl->links[i]->addr, addr) == 0)
            return pl->links[i];
    size_t alen = strlen(addr);
    if (alen == 0 || alen > WIRE_ADDR_MAX || strrchr(addr, ':') == NULL)
        return NULL;
    if (pl->nlinks == pl->cap) {
        size_t cap = pl->cap ? pl->cap * 2 : 8;
        struct peerlink **links = mem_alloc(MEM_OTHER, cap * sizeof(*links));
        if (links == NULL)
            return NULL;
        if (pl->nlinks > 0)
            memcpy(links, pl->links, pl->nlinks * sizeof(*links));
        mem_free(MEM_OTHER, pl->links, pl->cap * sizeof(*links));
        pl->links = links;
        pl->cap = cap;
    }
    struct peerlink *l = mem_calloc(MEM_OTHER, 1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->pl = pl;
    memcpy(l->addr, addr, alen + 1);
    l->next_id = 1;
    wire_buf_init(&l->out);
    pl->links[pl->nlinks++] = l;
    return l;
}

enum st_status peerlinks_create(const struct peerlinks_config *cfg, struct event_base *base,
                                struct peerlinks **out)
{
    struct peerlinks *pl = mem_calloc(MEM_OTHER, 1, sizeof(*pl));
    if (pl == NULL)
        return ST_NOMEM;
    pl->cfg = *cfg;
    snprintf(pl->cluster_name, sizeof(pl->cluster_name), "%s", cfg->self.cluster_name);
    snprintf(pl->addr, sizeof(pl->addr), "%s", cfg->self.addr);
    pl->cfg.self.cluster_name = pl->cluster_name;
    pl->cfg.self.addr = pl->addr;
    pl->base = base;
    pl->tick = event_new(base, -1, 0, on_tick, pl);
    if (pl->tick == NULL) {
        mem_free(MEM_OTHER, pl, sizeof(*pl));
        return ST_NOMEM;
    }
    *out = pl;
    return ST_OK;
}

void peerlinks_destroy(struct peerlinks **plp)
{
    struct peerlinks *pl = *plp;
    if (pl == NULL)
        return;
    *plp = NULL;
    for (size_t i = 0; i < pl->nlinks; i++) {
        struct peerlink *l = pl->links[i];
        link_close(l, "shutting down");
        wire_buf_deinit(&l->out);
        mem_free(MEM_OTHER, l, sizeof(*l));
    }
    mem_free(MEM_OTHER, pl->links, pl->cap * sizeof(*pl->links));
    event_free(pl->tick);
    mem_free(MEM_OTHER, pl, sizeof(*pl));
}

void peerlinks_stats(const struct peerlinks *pl, struct peerlinks_stats *out)
{
#define X(name) out->name = atomic_load_explicit(&pl->name, memory_order_relaxed);
    PEERLINK_COUNTERS(X)
#undef X
}
