/*
 * members.c - gossip over the network (see members.h). Main-loop thread,
 * except members_stats; `mu` guards the gossip state and the ring against
 * those readers.
 *
 *   tick ─► gossip_tick ─► for each target: link (dial, HANDSHAKE) ─► SYN
 *   ACK (response) ─► gossip_handle_ack ─► ACK2 (request) ─► empty reply
 */
#include "server/members.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common/clock.h"
#include "common/hlc.h"
#include "common/log.h"
#include "common/mc_text.h"
#include "common/mem.h"
#include "common/phi.h"
#include "common/ring.h"
#include "server/gossip.h"

#define MEMBERS_MAX_LINKS 64

/* A connection this node dialed to a peer's cluster port. */
struct link {
    struct members *m;
    char addr[WIRE_ADDR_MAX + 1];
    struct bufferevent *bev;
    bool handshaken;
    bool syn_wanted; /* a round chose this peer before the handshake ended */
    uint64_t next_id;
    struct wire_buf out;
};

struct members {
    struct members_config cfg;
    char cluster_name[WIRE_CLUSTER_MAX + 1];
    char addr[WIRE_ADDR_MAX + 1];
    struct event_base *base;
    struct gossip *g;
    struct hlc *clock;
    struct event *tick;
    struct link *links[MEMBERS_MAX_LINKS];
    pthread_mutex_t mu; /* g and ring, against stats readers */
    uint64_t ring_version;
    struct members_view *view; /* the published view (holds a reference) */
    _Atomic uint64_t view_version;
};

static void link_free(struct link *l)
{
    struct members *m = l->m;
    for (int i = 0; i < MEMBERS_MAX_LINKS; i++)
        if (m->links[i] == l)
            m->links[i] = NULL;
    if (l->bev != NULL)
        bufferevent_free(l->bev);
    wire_buf_deinit(&l->out);
    mem_free(MEM_CONN, l, sizeof(*l));
}

static void link_flush(struct link *l)
{
    if (l->out.len > 0)
        bufferevent_write(l->bev, l->out.data, l->out.len);
    wire_buf_clear(&l->out);
}

static void send_syn(struct link *l)
{
    struct members *m = l->m;
    size_t mark = wire_begin_frame(&l->out, WIRE_OP_GOSSIP_SYN, 0, l->next_id++);
    pthread_mutex_lock(&m->mu);
    gossip_compose_syn(m->g, &l->out);
    pthread_mutex_unlock(&m->mu);
    if (wire_end_frame(&l->out, mark, m->cfg.frame_max) == ST_OK)
        link_flush(l);
}

static void on_response(struct link *l, const struct wire_frame *f)
{
    struct members *m = l->m;
    switch (f->opcode) {
    case WIRE_OP_HANDSHAKE: {
        struct wire_handshake_reply r;
        if (wire_parse_handshake_reply(f->body, f->body_len, &r) != WIRE_OK || !r.accept) {
            log_warn("cluster: %s refused our handshake: %.*s", l->addr,
                     r.accept ? 9 : (int)r.msg_len, r.accept ? "malformed" : r.msg);
            link_free(l);
            return;
        }
        l->handshaken = true;
        if (l->syn_wanted) {
            l->syn_wanted = false;
            send_syn(l);
        }
        return;
    }
    case WIRE_OP_GOSSIP_ACK: {
        size_t mark = wire_begin_frame(&l->out, WIRE_OP_GOSSIP_ACK2, 0, l->next_id++);
        pthread_mutex_lock(&m->mu);
        enum gossip_result r =
            gossip_handle_ack(m->g, f->body, f->body_len, clock_monotonic_ms(), &l->out);
        pthread_mutex_unlock(&m->mu);
        if (r != GOSSIP_OK) {
            wire_abort_frame(&l->out, mark);
            log_info("cluster: gossip ACK from %s: %s", l->addr, gossip_result_name(r));
            return;
        }
        if (wire_end_frame(&l->out, mark, m->cfg.frame_max) == ST_OK)
            link_flush(l);
        return;
    }
    case WIRE_OP_GOSSIP_ACK2: return; /* empty: ACK2 was received */
    case WIRE_OP_ERROR: {
        struct wire_error e;
        if (wire_parse_error(f->body, f->body_len, &e) == WIRE_OK)
            log_info("cluster: %s answered error %u: %.*s", l->addr, (unsigned)e.code,
                     (int)e.msg_len, e.msg);
        return;
    }
    default: log_info("cluster: %s: unexpected response %s", l->addr, wire_opcode_name(f->opcode));
    }
}

static void link_read(struct bufferevent *bev, void *arg)
{
    struct link *l = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        size_t len = evbuffer_get_length(in);
        if (len == 0)
            return;
        const uint8_t *p = evbuffer_pullup(in, -1);
        struct wire_frame f;
        size_t need;
        enum wire_result r = wire_parse_frame(p, len, l->m->cfg.frame_max, &f, &need);
        if (r == WIRE_NEED_MORE)
            return;
        if (r != WIRE_OK || (f.flags & WIRE_FLAG_RESPONSE) == 0) {
            log_info("cluster: %s sent %s; closing the link", l->addr,
                     r != WIRE_OK ? wire_result_name(r) : "a request");
            link_free(l);
            return;
        }
        size_t size = f.size;
        struct members *m = l->m;
        on_response(l, &f); /* may free l (and its input buffer) */
        bool alive = false;
        for (int i = 0; i < MEMBERS_MAX_LINKS; i++)
            alive |= m->links[i] == l;
        if (!alive)
            return;
        evbuffer_drain(in, size);
    }
}

static void link_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct link *l = arg;
    struct members *m = l->m;
    if (what & BEV_EVENT_CONNECTED) {
        struct wire_handshake h = {
            .version = WIRE_VERSION_MAX,
            .cluster = m->cluster_name,
            .cluster_len = strlen(m->cluster_name),
            .short_id = m->cfg.short_id,
            .generation = m->cfg.generation,
            .addr = m->addr,
            .addr_len = strlen(m->addr),
        };
        memcpy(h.node_id, m->cfg.node_id, WIRE_NODE_ID_LEN);
        size_t mark = wire_begin_frame(&l->out, WIRE_OP_HANDSHAKE, 0, l->next_id++);
        wire_compose_handshake(&l->out, &h);
        if (wire_end_frame(&l->out, mark, m->cfg.frame_max) == ST_OK)
            link_flush(l);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        log_debug("cluster: link to %s closed", l->addr);
        link_free(l);
    }
}

/* The link to addr, dialing it if there is none. NULL on failure. */
static struct link *link_get(struct members *m, const char *addr)
{
    int free_slot = -1;
    for (int i = 0; i < MEMBERS_MAX_LINKS; i++) {
        if (m->links[i] != NULL && strcmp(m->links[i]->addr, addr) == 0)
            return m->links[i];
        if (m->links[i] == NULL && free_slot < 0)
            free_slot = i;
    }
    size_t alen = strlen(addr);
    if (free_slot < 0 || alen > WIRE_ADDR_MAX)
        return NULL;
    char host[WIRE_ADDR_MAX + 1];
    memcpy(host, addr, alen + 1);
    char *colon = strrchr(host, ':');
    if (colon == NULL)
        return NULL;
    *colon = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
        return NULL;
    struct link *l = mem_calloc(MEM_CONN, 1, sizeof(*l));
    if (l == NULL) {
        freeaddrinfo(res);
        return NULL;
    }
    l->m = m;
    l->next_id = 1;
    memcpy(l->addr, addr, alen + 1);
    wire_buf_init(&l->out);
    l->bev = bufferevent_socket_new(m->base, -1, BEV_OPT_CLOSE_ON_FREE);
    m->links[free_slot] = l;
    if (l->bev == NULL) {
        freeaddrinfo(res);
        link_free(l);
        return NULL;
    }
    bufferevent_setcb(l->bev, link_read, NULL, link_event, l);
    bufferevent_enable(l->bev, EV_READ | EV_WRITE);
    int rc = bufferevent_socket_connect(l->bev, res->ai_addr, (int)res->ai_addrlen);
    freeaddrinfo(res);
    if (rc != 0) {
        link_free(l);
        return NULL;
    }
    return l;
}

void members_view_release(struct members_view **vp)
{
    struct members_view *v = *vp;
    if (v == NULL)
        return;
    *vp = NULL;
    if (atomic_fetch_sub(&v->refs, 1) != 1)
        return;
    size_t n = v->ring != NULL ? ring_node_count(v->ring) : 0;
    mem_free(MEM_OTHER, v->addrs, (n ? n : 1) * sizeof(*v->addrs));
    mem_free(MEM_OTHER, (void *)v->state, (n ? n : 1) * sizeof(*v->state));
    ring_free(&v->ring);
    mem_free(MEM_OTHER, v, sizeof(*v));
}

/* Each ring node's liveness as gossip sees it now. REQUIRES: mu. */
static void view_refresh_states(struct members *m, struct members_view *v)
{
    uint64_t now = clock_monotonic_ms();
    for (uint32_t i = 0; i < ring_node_count(v->ring); i++)
        atomic_store_explicit(
            &v->state[i], (unsigned char)gossip_peer_state(m->g, ring_node(v->ring, i)->id, now),
            memory_order_relaxed);
}

/* A view of ring r (taken): addresses from gossip. REQUIRES: mu. */
static struct members_view *view_build(struct members *m, struct ring *r)
{
    size_t n = ring_node_count(r);
    struct members_view *v = mem_calloc(MEM_OTHER, 1, sizeof(*v));
    if (v != NULL) {
        v->addrs = mem_calloc(MEM_OTHER, n ? n : 1, sizeof(*v->addrs));
        v->state = mem_calloc(MEM_OTHER, n ? n : 1, sizeof(*v->state));
    }
    if (v == NULL || v->addrs == NULL || v->state == NULL) {
        if (v != NULL) {
            mem_free(MEM_OTHER, v->addrs, (n ? n : 1) * sizeof(*v->addrs));
            mem_free(MEM_OTHER, (void *)v->state, (n ? n : 1) * sizeof(*v->state));
            mem_free(MEM_OTHER, v, sizeof(*v));
        }
        ring_free(&r);
        return NULL;
    }
    v->ring = r;
    v->refs = 1;
    v->self = ring_find(r, m->cfg.node_id);
    for (uint32_t i = 0; i < n; i++) {
        struct gossip_peer p;
        if (gossip_find(m->g, ring_node(r, i)->id, &p) && p.addr != NULL)
            snprintf(v->addrs[i], sizeof(v->addrs[i]), "%s", p.addr);
    }
    view_refresh_states(m, v);
    return v;
}

/* Rebuilds the ring (and publishes a view of it) when the members'
 * tokens or statuses changed; refreshes the view's liveness. */
static void ring_refresh(struct members *m)
{
    pthread_mutex_lock(&m->mu);
    uint64_t v = gossip_ring_version(m->g);
    if (v != m->ring_version || m->view == NULL) {
        struct ring_node nodes[256];
        size_t n = gossip_ring_nodes(m->g, nodes, 256);
        struct ring *r = NULL;
        if (ring_build(nodes, n < 256 ? n : 256, &r) == ST_OK) {
            struct members_view *view = view_build(m, r);
            if (view != NULL) {
                m->ring_version = v;
                view->version = atomic_load(&m->view_version) + 1;
                members_view_release(&m->view);
                m->view = view;
                atomic_store(&m->view_version, view->version);
            }
        }
    } else {
        view_refresh_states(m, m->view);
    }
    pthread_mutex_unlock(&m->mu);
}

struct members_view *members_view_acquire(struct members *m)
{
    pthread_mutex_lock(&m->mu);
    struct members_view *v = m->view;
    if (v != NULL)
        atomic_fetch_add(&v->refs, 1);
    pthread_mutex_unlock(&m->mu);
    return v;
}

uint64_t members_view_version(struct members *m)
{
    return atomic_load_explicit(&m->view_version, memory_order_acquire);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct members *m = arg;
    struct gossip_target t[GOSSIP_MAX_TARGETS];
    char addrs[GOSSIP_MAX_TARGETS][WIRE_ADDR_MAX + 1];
    pthread_mutex_lock(&m->mu);
    size_t n = gossip_tick(m->g, clock_monotonic_ms(), t);
    for (size_t i = 0; i < n; i++)
        snprintf(addrs[i], sizeof(addrs[i]), "%s", t[i].addr);
    pthread_mutex_unlock(&m->mu);
    for (size_t i = 0; i < n; i++) {
        struct link *l = link_get(m, addrs[i]);
        if (l == NULL)
            continue;
        if (l->handshaken)
            send_syn(l);
        else
            l->syn_wanted = true;
    }
    ring_refresh(m);
}

enum st_status members_start(const struct members_config *cfg, struct event_base *base,
                             struct gossip *g, struct hlc *clock, struct members **out)
{
    struct members *m = mem_calloc(MEM_OTHER, 1, sizeof(*m));
    if (m == NULL)
        return ST_NOMEM;
    m->cfg = *cfg;
    snprintf(m->cluster_name, sizeof(m->cluster_name), "%s", cfg->cluster_name);
    snprintf(m->addr, sizeof(m->addr), "%s", cfg->addr);
    m->cfg.cluster_name = m->cluster_name;
    m->cfg.addr = m->addr;
    m->base = base;
    m->g = g;
    m->clock = clock;
    pthread_mutex_init(&m->mu, NULL);
    struct timeval tv = {GOSSIP_INTERVAL_MS / 1000, (GOSSIP_INTERVAL_MS % 1000) * 1000};
    m->tick = event_new(base, -1, EV_PERSIST, on_tick, m);
    if (m->tick == NULL || event_add(m->tick, &tv) != 0) {
        members_stop(&m);
        return ST_NOMEM;
    }
    ring_refresh(m);
    *out = m;
    return ST_OK;
}

void members_stop(struct members **mp)
{
    struct members *m = *mp;
    if (m == NULL)
        return;
    *mp = NULL;
    for (int i = 0; i < MEMBERS_MAX_LINKS; i++)
        if (m->links[i] != NULL)
            link_free(m->links[i]);
    if (m->tick != NULL)
        event_free(m->tick);
    members_view_release(&m->view);
    pthread_mutex_destroy(&m->mu);
    mem_free(MEM_OTHER, m, sizeof(*m));
}

enum gossip_result members_handle_syn(struct members *m, const uint8_t *body, size_t len,
                                      struct wire_buf *ack)
{
    pthread_mutex_lock(&m->mu);
    enum gossip_result r = gossip_handle_syn(m->g, body, len, clock_monotonic_ms(), ack);
    pthread_mutex_unlock(&m->mu);
    return r;
}

enum gossip_result members_handle_ack2(struct members *m, const uint8_t *body, size_t len)
{
    pthread_mutex_lock(&m->mu);
    enum gossip_result r = gossip_handle_ack2(m->g, body, len, clock_monotonic_ms());
    pthread_mutex_unlock(&m->mu);
    return r;
}

void members_stats(struct members *m, void (*emit)(void *arg, const char *name, const char *value),
                   void *arg)
{
    pthread_mutex_lock(&m->mu);
    const struct ring *ring = m->view != NULL ? m->view->ring : NULL;
    uint64_t now = clock_monotonic_ms();
    size_t n = gossip_count(m->g);
    char buf[WIRE_ADDR_MAX + 160], name[32];
    buf[mc_u64_to_str(n, buf)] = '\0';
    emit(arg, "members", buf);
    unsigned in_ring = ring != NULL ? ring_node_count(ring) : 0;
    buf[mc_u64_to_str(in_ring, buf)] = '\0';
    emit(arg, "ring_nodes", buf);
    double owned[256];
    if (ring != NULL && in_ring <= 256)
        ring_ownership(ring, m->cfg.replicas, owned, NULL);
    for (size_t i = 0; i < n; i++) {
        struct gossip_peer p;
        gossip_peer_at(m->g, i, &p);
        uint32_t rn = ring != NULL ? ring_find(ring, p.id) : RING_NONE;
        double own = rn != RING_NONE && in_ring <= 256 ? owned[rn] * 100.0 : 0.0;
        snprintf(name, sizeof(name), "member_%u", (unsigned)p.short_id);
        snprintf(buf, sizeof(buf), "addr=%s state=%s status=%s generation=%llu owns=%.1f%%%s",
                 p.addr != NULL ? p.addr : "?", phi_state_name(gossip_peer_state(m->g, p.id, now)),
                 gossip_status_name(p.status), (unsigned long long)p.generation, own,
                 p.self ? " self" : "");
        emit(arg, name, buf);
    }
    pthread_mutex_unlock(&m->mu);
}
