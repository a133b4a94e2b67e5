/*
 * clusterview.c - the ring learned from strata-nodes (see clusterview.h).
 *
 *   tick (100 ms) ─► due? ─► RING to the next node (a known up node,
 *   else a seed) ─► parse ─► ring_build ─► publish (if it changed)
 */
#include "proxy/clusterview.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/ring.h"

#define TICK_MS 100
#define MAX_SEEDS 32

struct clusterview {
    struct clusterview_config cfg;
    char seeds[MAX_SEEDS][WIRE_ADDR_MAX + 1];
    unsigned nseeds;
    unsigned next; /* round robin over seeds and known nodes */
    struct event_base *base;
    struct event *tick;
    struct peerlinks *links;
    pthread_t thread;
    bool thread_started;
    _Atomic bool stopping;
    bool in_flight;
    uint64_t next_poll_ms;
    uint64_t last_digest; /* of the last ring published */

    pthread_mutex_t mu; /* guards view, the stats, wakes waiters */
    pthread_cond_t published;
    struct cview *view;
    _Atomic uint64_t version;
    uint64_t polls, poll_failures, last_ok_ms;
};

/* ------------------------------------------------------------- views */

static void view_free(struct cview *v)
{
    unsigned n = v->ring != NULL ? ring_node_count(v->ring) : 0;
    ring_free(&v->ring);
    free(v->addrs);
    free(v->up);
    (void)n;
    free(v);
}

void cview_release(struct cview **vp)
{
    struct cview *v = *vp;
    if (v == NULL)
        return;
    *vp = NULL;
    if (atomic_fetch_sub(&v->refs, 1) == 1)
        view_free(v);
}

struct cview *clusterview_acquire(struct clusterview *cv)
{
    pthread_mutex_lock(&cv->mu);
    struct cview *v = cv->view;
    if (v != NULL)
        atomic_fetch_add(&v->refs, 1);
    pthread_mutex_unlock(&cv->mu);
    return v;
}

uint64_t clusterview_version(const struct clusterview *cv)
{
    return atomic_load_explicit(&cv->version, memory_order_acquire);
}

/* A digest of what a RING answer says, to publish only changes. */
static uint64_t digest_of(const uint8_t *body, size_t len)
{
    /* skip the answering node's own version: the ring it describes is
     * what matters */
    return len > 8 ? ring_token(body + 8, len - 8) : 0;
}

/* Builds a view from a RING body; NULL when malformed or out of memory. */
static struct cview *view_of(const uint8_t *body, size_t len)
{
    struct wire_reader r;
    struct wire_ring_head h;
    if (wire_parse_ring_head(body, len, &r, &h) != WIRE_OK || h.count == 0)
        return NULL;
    struct cview *v = calloc(1, sizeof(*v));
    struct ring_node *nodes = calloc(h.count, sizeof(*nodes));
    uint64_t *tokens = calloc((size_t)h.count * WIRE_RING_VNODES_MAX, sizeof(uint64_t));
    char(*racks)[WIRE_RACK_MAX + 1] = calloc(h.count, sizeof(*racks));
    char(*addrs)[WIRE_ADDR_MAX + 1] = calloc(h.count, sizeof(*addrs));
    uint8_t *states = calloc(h.count, 1);
    bool ok = v != NULL && nodes != NULL && tokens != NULL && racks != NULL && addrs != NULL &&
              states != NULL;
    for (uint32_t i = 0; ok && i < h.count; i++) {
        struct wire_ring_node wn;
        wire_get_ring_node(&r, &wn);
        if (r.bad) {
            ok = false;
            break;
        }
        uint64_t *t = tokens + (size_t)i * WIRE_RING_VNODES_MAX;
        for (uint32_t k = 0; k < wn.ntokens; k++)
            t[k] = wire_ring_token(&wn, k);
        snprintf(racks[i], sizeof(racks[i]), "%.*s", (int)wn.rack_len, wn.rack);
        snprintf(addrs[i], sizeof(addrs[i]), "%.*s", (int)wn.addr_len, wn.addr);
        states[i] = wn.state;
        memcpy(nodes[i].id, wn.id, RING_ID_LEN);
        nodes[i].short_id = wn.short_id;
        nodes[i].rack = racks[i];
        nodes[i].tokens = t;
        nodes[i].ntokens = wn.ntokens;
    }
    ok = ok && wire_reader_done(&r) && ring_build(nodes, h.count, &v->ring) == ST_OK;
    if (ok) {
        /* the ring numbers nodes by id: addresses and states follow */
        v->addrs = calloc(h.count, sizeof(*v->addrs));
        v->up = calloc(h.count, sizeof(*v->up));
        ok = v->addrs != NULL && v->up != NULL;
        for (uint32_t i = 0; ok && i < h.count; i++) {
            uint32_t k = ring_find(v->ring, nodes[i].id);
            memcpy(v->addrs[k], addrs[i], sizeof(addrs[i]));
            v->up[k] = states[i] != 2 && addrs[i][0] != '\0'; /* suspect still serves */
        }
        v->replicas = h.replicas;
        atomic_init(&v->refs, 1);
    }
    free(nodes);
    free(tokens);
    free(racks);
    free(addrs);
    free(states);
    if (!ok && v != NULL) {
        view_free(v);
        v = NULL;
    }
    return v;
}

static void publish(struct clusterview *cv, struct cview *v)
{
    pthread_mutex_lock(&cv->mu);
    struct cview *old = cv->view;
    v->version = atomic_load(&cv->version) + 1;
    cv->view = v;
    atomic_store_explicit(&cv->version, v->version, memory_order_release);
    pthread_cond_broadcast(&cv->published);
    pthread_mutex_unlock(&cv->mu);
    cview_release(&old);
}

/* ----------------------------------------------------------- polling */

static void on_ring(void *arg, enum peer_result r, const struct wire_frame *f)
{
    struct clusterview *cv = arg;
    cv->in_flight = false;
    struct cview *v = NULL;
    uint64_t digest = 0;
    if (r == PEER_OK && f->opcode == WIRE_OP_RING) {
        digest = digest_of(f->body, f->body_len);
        if (digest != cv->last_digest || cv->view == NULL)
            v = view_of(f->body, f->body_len);
    }
    pthread_mutex_lock(&cv->mu);
    bool ok = r == PEER_OK && f->opcode == WIRE_OP_RING &&
              (v != NULL || (digest == cv->last_digest && cv->view != NULL));
    if (ok)
        cv->last_ok_ms = clock_monotonic_ms();
    else
        cv->poll_failures++;
    pthread_mutex_unlock(&cv->mu);
    if (!ok)
        log_debug("cluster backend: a ring request failed (%s)", peer_result_name(r));
    if (v != NULL) {
        cv->last_digest = digest;
        publish(cv, v);
    }
    /* after a failure ask another node soon */
    cv->next_poll_ms = clock_monotonic_ms() + (ok ? cv->cfg.poll_ms : TICK_MS);
}

/* The next address to ask: the known up nodes and the seeds, in turn. */
static const char *next_addr(struct clusterview *cv, char *buf, size_t cap)
{
    struct cview *v = clusterview_acquire(cv);
    unsigned nnodes = v != NULL ? ring_node_count(v->ring) : 0;
    unsigned total = nnodes + cv->nseeds;
    const char *addr = NULL;
    for (unsigned tries = 0; addr == NULL && tries < total; tries++) {
        unsigned i = cv->next++ % total;
        if (i < nnodes) {
            if (v->up[i] && v->addrs[i][0] != '\0') {
                snprintf(buf, cap, "%s", v->addrs[i]);
                addr = buf;
            }
        } else {
            snprintf(buf, cap, "%s", cv->seeds[i - nnodes]);
            addr = buf;
        }
    }
    cview_release(&v);
    return addr;
}

static void poll_once(struct clusterview *cv)
{
    char buf[WIRE_ADDR_MAX + 1];
    const char *addr = next_addr(cv, buf, sizeof(buf));
    struct peerlink *l = addr != NULL ? peerlinks_get(cv->links, addr) : NULL;
    pthread_mutex_lock(&cv->mu);
    cv->polls++;
    pthread_mutex_unlock(&cv->mu);
    if (l != NULL && peerlink_request(l, WIRE_OP_RING, 0, NULL, 0, on_ring, cv) == PEER_OK) {
        cv->in_flight = true;
        return;
    }
    pthread_mutex_lock(&cv->mu);
    cv->poll_failures++;
    pthread_mutex_unlock(&cv->mu);
    cv->next_poll_ms = clock_monotonic_ms() + TICK_MS;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct clusterview *cv = arg;
    if (atomic_load(&cv->stopping)) {
        event_base_loopbreak(cv->base);
        return;
    }
    if (!cv->in_flight && clock_monotonic_ms() >= cv->next_poll_ms)
        poll_once(cv);
}

static void *poller_main(void *arg)
{
    struct clusterview *cv = arg;
    event_base_dispatch(cv->base);
    return NULL;
}

/* ---------------------------------------------------------- lifecycle */

static unsigned parse_seeds(struct clusterview *cv, const char *list)
{
    unsigned n = 0;
    for (const char *p = list; p != NULL && *p != '\0' && n < MAX_SEEDS;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (len > 0 && len <= WIRE_ADDR_MAX && memchr(p, ':', len) != NULL)
            snprintf(cv->seeds[n++], sizeof(cv->seeds[0]), "%.*s", (int)len, p);
        p = comma != NULL ? comma + 1 : NULL;
    }
    return n;
}

enum st_status clusterview_start(const struct clusterview_config *cfg, struct clusterview **out)
{
    *out = NULL;
    struct clusterview *cv = mem_calloc(MEM_OTHER, 1, sizeof(*cv));
    if (cv == NULL)
        return ST_NOMEM;
    cv->cfg = *cfg;
    pthread_mutex_init(&cv->mu, NULL);
    pthread_cond_init(&cv->published, NULL);
    cv->nseeds = parse_seeds(cv, cfg->seeds);
    if (cv->nseeds == 0) {
        clusterview_stop(&cv);
        return ST_INVAL;
    }
    struct peerlinks_config pc = {
        .self = cfg->self,
        .max_inflight = 4,
        .timeout_ms = cfg->timeout_ms,
        .retry_ms = 500,
    };
    cv->base = event_base_new();
    struct timeval tv = {0, TICK_MS * 1000};
    if (cv->base == NULL || peerlinks_create(&pc, cv->base, &cv->links) != ST_OK ||
        (cv->tick = event_new(cv->base, -1, EV_PERSIST, on_tick, cv)) == NULL ||
        event_add(cv->tick, &tv) != 0 || pthread_create(&cv->thread, NULL, poller_main, cv) != 0) {
        clusterview_stop(&cv);
        return ST_NOMEM;
    }
    cv->thread_started = true;
    *out = cv;
    return ST_OK;
}

void clusterview_stop(struct clusterview **cvp)
{
    struct clusterview *cv = *cvp;
    if (cv == NULL)
        return;
    *cvp = NULL;
    atomic_store(&cv->stopping, true);
    if (cv->thread_started)
        pthread_join(cv->thread, NULL);
    peerlinks_destroy(&cv->links);
    if (cv->tick != NULL)
        event_free(cv->tick);
    if (cv->base != NULL)
        event_base_free(cv->base);
    cview_release(&cv->view);
    pthread_cond_destroy(&cv->published);
    pthread_mutex_destroy(&cv->mu);
    mem_free(MEM_OTHER, cv, sizeof(*cv));
}

bool clusterview_wait(struct clusterview *cv, unsigned timeout_ms)
{
    struct timespec ts = clock_deadline_after_ms(timeout_ms);
    pthread_mutex_lock(&cv->mu);
    while (cv->view == NULL)
        if (pthread_cond_timedwait(&cv->published, &cv->mu, &ts) != 0)
            break;
    bool ok = cv->view != NULL;
    pthread_mutex_unlock(&cv->mu);
    return ok;
}

void clusterview_stats(struct clusterview *cv, struct clusterview_stats *st)
{
    pthread_mutex_lock(&cv->mu);
    *st = (struct clusterview_stats){
        .polls = cv->polls,
        .poll_failures = cv->poll_failures,
        .rings_published = atomic_load(&cv->version),
        .last_ring_age_ms =
            cv->last_ok_ms == 0 ? UINT64_MAX : clock_monotonic_ms() - cv->last_ok_ms,
    };
    if (cv->view != NULL) {
        st->nodes = ring_node_count(cv->view->ring);
        for (unsigned i = 0; i < st->nodes; i++)
            st->nodes_up += cv->view->up[i] ? 1 : 0;
    }
    pthread_mutex_unlock(&cv->mu);
}
