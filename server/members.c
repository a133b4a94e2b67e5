/*
 * members.c - gossip over the network (see members.h). Main-loop thread,
 * except members_stats; `mu` guards the gossip state and the ring against
 * those readers.
 *
 *   tick ─► gossip_tick ─► for each target: SYN over its link (peerlink.h)
 *   ACK (response) ─► gossip_handle_ack ─► ACK2 (request) ─► empty reply
 */
#include "server/members.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mc_text.h"
#include "common/mem.h"
#include "common/peerlink.h"

/* A gossip round's SYN in flight: where its ACK2 goes. */
struct syn_wait {
    struct members *m;
    struct peerlink *l;
};

struct members {
    struct members_config cfg;
    struct event_base *base;
    struct gossip *g;
    struct hlc *clock;
    struct event *tick;
    struct peerlinks *links; /* to the peers' cluster ports */
    struct wire_buf scratch; /* a SYN or ACK2 body */
    pthread_mutex_t mu;      /* g and the view, against stats readers */
    uint64_t ring_version;
    char peers_path[4096];             /* cfg.peers_path points here */
    char self_addr[WIRE_ADDR_MAX + 1]; /* cfg.self.addr points here */
    uint64_t started_ms;
    bool heard; /* a gossip exchange with a peer was merged */
    bool ready;
    struct members_view *view; /* the published view (holds a reference) */
    _Atomic uint64_t view_version;
};

static void on_ack2_done(void *arg, enum peer_result r, const struct wire_frame *f)
{
    (void)arg;
    (void)r;
    (void)f; /* empty: the round is over */
}

static void ring_refresh(struct members *m);

/* A peer's state was merged: the view can be trusted from the next ring
 * build on (made at once). */
static void heard_from_peer(struct members *m)
{
    if (!m->heard) {
        m->heard = true;
        ring_refresh(m);
    }
}

/* The ACK to our SYN: gossip takes what is newer there and answers ACK2. */
static void on_ack(void *arg, enum peer_result r, const struct wire_frame *f)
{
    struct syn_wait *sw = arg;
    struct members *m = sw->m;
    struct peerlink *l = sw->l;
    mem_free(MEM_CONN, sw, sizeof(*sw));
    if (r == PEER_ERROR) {
        struct wire_error e;
        if (wire_parse_error(f->body, f->body_len, &e) == WIRE_OK)
            log_info("cluster: a peer answered our SYN with error %u: %.*s", (unsigned)e.code,
                     (int)e.msg_len, e.msg);
        return;
    }
    if (r != PEER_OK || f->opcode != WIRE_OP_GOSSIP_ACK)
        return; /* unreachable peers are the failure detector's business */
    wire_buf_clear(&m->scratch);
    pthread_mutex_lock(&m->mu);
    enum gossip_result gr =
        gossip_handle_ack(m->g, f->body, f->body_len, clock_monotonic_ms(), &m->scratch);
    pthread_mutex_unlock(&m->mu);
    if (gr != GOSSIP_OK) {
        log_info("cluster: gossip ACK: %s", gossip_result_name(gr));
        return;
    }
    heard_from_peer(m);
    if (m->scratch.err == ST_OK)
        peerlink_request(l, WIRE_OP_GOSSIP_ACK2, 0, m->scratch.data, m->scratch.len, on_ack2_done,
                         NULL);
}

static void send_syn(struct members *m, const char *addr)
{
    /* a member that left (a wiped node's old identity) may have had our
     * address: never gossip with ourselves */
    if (strcmp(addr, m->self_addr) == 0)
        return;
    struct peerlink *l = peerlinks_get(m->links, addr);
    struct syn_wait *sw = l != NULL ? mem_alloc(MEM_CONN, sizeof(*sw)) : NULL;
    if (sw == NULL)
        return;
    *sw = (struct syn_wait){.m = m, .l = l};
    wire_buf_clear(&m->scratch);
    pthread_mutex_lock(&m->mu);
    gossip_compose_syn(m->g, &m->scratch);
    pthread_mutex_unlock(&m->mu);
    if (m->scratch.err != ST_OK || peerlink_request(l, WIRE_OP_GOSSIP_SYN, 0, m->scratch.data,
                                                    m->scratch.len, on_ack, sw) != PEER_OK)
        mem_free(MEM_CONN, sw, sizeof(*sw));
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
    v->self = ring_find(r, m->cfg.self.node_id);
    for (uint32_t i = 0; i < n; i++) {
        struct gossip_peer p;
        if (gossip_find(m->g, ring_node(r, i)->id, &p) && p.addr != NULL)
            snprintf(v->addrs[i], sizeof(v->addrs[i]), "%s", p.addr);
    }
    view_refresh_states(m, v);
    atomic_store(&v->ready, m->ready);
    return v;
}

/* Keeps the other members' cluster addresses for the next start (one per
 * line, replaced atomically). REQUIRES: mu. */
static void peers_save(struct members *m, const struct members_view *v)
{
    if (m->cfg.peers_path == NULL)
        return;
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", m->cfg.peers_path) >= sizeof(tmp))
        return;
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return;
    for (uint32_t i = 0; i < ring_node_count(v->ring); i++)
        if (i != v->self && v->addrs[i][0] != '\0')
            fprintf(f, "%s\n", v->addrs[i]);
    if (fclose(f) != 0 || rename(tmp, m->cfg.peers_path) != 0)
        log_warn("cluster: cannot keep the peer list in %s", m->cfg.peers_path);
}

/* Rebuilds the ring (and publishes a view of it) when the members'
 * tokens or statuses changed; refreshes the view's liveness and
 * readiness. */
static void ring_refresh(struct members *m)
{
    pthread_mutex_lock(&m->mu);
    if (!m->ready && (m->heard || clock_monotonic_ms() - m->started_ms >= m->cfg.ready_wait_ms)) {
        m->ready = true;
        if (!m->heard)
            log_warn("cluster: no peer answered in %u ms; serving with the members known",
                     m->cfg.ready_wait_ms);
    }
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
                peers_save(m, view);
            }
        }
    } else {
        view_refresh_states(m, m->view);
        atomic_store(&m->view->ready, m->ready);
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

struct members_view *members_view_retain(struct members_view *v)
{
    atomic_fetch_add(&v->refs, 1);
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
    for (size_t i = 0; i < n; i++)
        send_syn(m, addrs[i]);
    ring_refresh(m);
}

enum st_status members_start(const struct members_config *cfg, struct event_base *base,
                             struct gossip *g, struct hlc *clock, struct members **out)
{
    struct members *m = mem_calloc(MEM_OTHER, 1, sizeof(*m));
    if (m == NULL)
        return ST_NOMEM;
    m->cfg = *cfg;
    if (m->cfg.interval_ms == 0)
        m->cfg.interval_ms = GOSSIP_INTERVAL_MS;
    if (cfg->peers_path != NULL) {
        snprintf(m->peers_path, sizeof(m->peers_path), "%s", cfg->peers_path);
        m->cfg.peers_path = m->peers_path;
    }
    m->started_ms = clock_monotonic_ms();
    m->ready = cfg->ready_wait_ms == 0;
    m->cfg.self.cluster_name = NULL; /* peerlinks keeps its own copy */
    snprintf(m->self_addr, sizeof(m->self_addr), "%s", cfg->self.addr);
    m->cfg.self.addr = m->self_addr;
    m->base = base;
    m->g = g;
    m->clock = clock;
    pthread_mutex_init(&m->mu, NULL);
    wire_buf_init(&m->scratch);
    struct peerlinks_config pc = {
        .self = cfg->self,
        .max_inflight = 64,
        .timeout_ms = m->cfg.interval_ms * 2,
        .retry_ms = m->cfg.interval_ms,
    };
    if (peerlinks_create(&pc, base, &m->links) != ST_OK) {
        members_stop(&m);
        return ST_NOMEM;
    }
    struct timeval tv = {m->cfg.interval_ms / 1000, (m->cfg.interval_ms % 1000) * 1000};
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
    peerlinks_destroy(&m->links);
    wire_buf_deinit(&m->scratch);
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
    if (r == GOSSIP_OK)
        heard_from_peer(m);
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
