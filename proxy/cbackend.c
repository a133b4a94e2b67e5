/*
 * cbackend.c - requests to strata-nodes (see cbackend.h).
 *
 *   request ─► the key's preference list in the worker's view ─► the
 *   first candidate up ─► peerlink_request ─► answer ─► done
 *                  ▲ not sent (down, over the bound), or a read that
 *                  └─ failed, or NOT_PRIMARY: the next candidate
 *
 * A write that was sent and got no answer (timeout, closed connection)
 * may have been applied: it is answered FE_TIMEOUT, never retried
 * elsewhere (an incr would apply twice).
 */
#include "proxy/cbackend.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mc_text.h"
#include "common/mem.h"
#include "common/peerlink.h"
#include "common/ring.h"
#include "frontend/worker.h"
#include "proxy/clusterview.h"
#include "proxy/policy.h"
#include "proxy/settings.h"

/* One worker's side: its links, the view it uses, a compose buffer. */
struct cb_worker {
    struct peerlinks *links; /* created on the worker's thread, first use */
    struct cview *view;
    struct wire_buf scratch;
    _Atomic uint64_t reads, writes, retries, errors, timeouts, busy, unavailable;
} __attribute__((aligned(64)));

struct cbackend {
    struct clusterview *cv;
    struct peerlinks_config links_cfg;
    char cluster_name[WIRE_CLUSTER_MAX + 1];
    char self_addr[WIRE_ADDR_MAX + 1];
    unsigned nworkers;
    struct cb_worker *w;
};

enum req_kind { REQ_READ, REQ_RMW, REQ_WRITE };

/* A request in flight: its candidates and what to answer. */
struct creq {
    struct cbackend *b;
    struct cb_worker *cw;
    enum req_kind kind;
    uint8_t read_cl;
    struct wire_rmw q;      /* REQ_RMW: key and value point into buf */
    struct wire_record rec; /* REQ_WRITE: key and value point into buf */
    uint8_t write_cl;       /* REQ_WRITE */
    uint8_t *buf;           /* the key (and an RMW's or a record's value) */
    size_t nbuf;
    size_t nkey;
    struct cview *view; /* referenced for the addresses below */
    uint32_t cand[RING_MAX_REPLICAS];
    unsigned ncand, next;
    struct peerlink *link; /* the one the request is on */
    bool busy_seen;
    enum fe_result err; /* a node's refusal, the answer when no candidate is left */
    cbackend_read_done read_done;
    cbackend_rmw_done rmw_done;
    cbackend_write_done write_done;
    void *arg;
};

/* --------------------------------------------------------------- views */

/* The worker's view, refreshed when the poller published a newer one. */
static struct cview *view_of(struct cbackend *b, struct cb_worker *cw)
{
    uint64_t v = clusterview_version(b->cv);
    if (cw->view == NULL || cw->view->version != v) {
        cview_release(&cw->view);
        cw->view = clusterview_acquire(b->cv);
    }
    return cw->view;
}

static struct peerlinks *links_of(struct cbackend *b, struct cb_worker *cw, struct event_base *base)
{
    if (cw->links == NULL && peerlinks_create(&b->links_cfg, base, &cw->links) != ST_OK)
        return NULL;
    return cw->links;
}

/* -------------------------------------------------------------- requests */

static void creq_free(struct creq *rq)
{
    cview_release(&rq->view);
    mem_free(MEM_CONN, rq->buf, rq->nbuf ? rq->nbuf : 1);
    mem_free(MEM_CONN, rq, sizeof(*rq));
}

static void finish(struct creq *rq, enum fe_result r, const struct wire_record *rec,
                   const struct wire_rmw_reply *reply)
{
    struct cb_worker *cw = rq->cw;
    if (r == FE_TIMEOUT)
        atomic_fetch_add_explicit(&cw->timeouts, 1, memory_order_relaxed);
    else if (r == FE_BUSY)
        atomic_fetch_add_explicit(&cw->busy, 1, memory_order_relaxed);
    else if (r == FE_UNAVAILABLE)
        atomic_fetch_add_explicit(&cw->unavailable, 1, memory_order_relaxed);
    else if (r != FE_OK)
        atomic_fetch_add_explicit(&cw->errors, 1, memory_order_relaxed);
    if (rq->kind == REQ_READ)
        rq->read_done(rq->arg, r, rec);
    else if (rq->kind == REQ_RMW)
        rq->rmw_done(rq->arg, r, reply);
    else
        rq->write_done(rq->arg, r);
    creq_free(rq);
}

static void send_next(struct creq *rq);

/* True when a record answered is for the key asked about. */
static bool same_key(const struct creq *rq, const struct wire_record *rec)
{
    return rec->key_len == rq->nkey && memcmp(rec->key, rq->buf, rq->nkey) == 0;
}

static enum fe_result fe_of_error(uint16_t code)
{
    switch (code) {
    case WIRE_ERR_TIMEOUT: return FE_TIMEOUT;
    case WIRE_ERR_STORAGE: return FE_FAILED;
    case WIRE_ERR_OVERLOADED:
    case WIRE_ERR_NOT_READY: return FE_UNAVAILABLE;
    default: return FE_FAILED;
    }
}

static uint8_t opcode_of(enum req_kind kind)
{
    return kind == REQ_READ  ? WIRE_OP_COORD_READ
           : kind == REQ_RMW ? WIRE_OP_RMW
                             : WIRE_OP_COORD_WRITE;
}

static void on_answer(void *arg, enum peer_result pr, const struct wire_frame *f)
{
    struct creq *rq = arg;
    bool read = rq->kind == REQ_READ;
    /* a replayed record may go elsewhere after any failure: writing it
     * twice is writing it once */
    bool idempotent = rq->kind != REQ_RMW;
    if (pr == PEER_OK) {
        /* an answer that does not decode, or that is about another key,
         * means the link cannot be trusted: it is reset, and no client
         * gets what it carried */
        bool ok = f->opcode == opcode_of(rq->kind);
        bool found = false;
        struct wire_record rec;
        struct wire_rmw_reply rep;
        if (ok && read) {
            ok = wire_parse_read_reply(f->body, f->body_len, &found, &rec) == WIRE_OK &&
                 (!found || same_key(rq, &rec));
        } else if (ok && rq->kind == REQ_RMW) {
            ok = wire_parse_rmw_reply(f->body, f->body_len, &rep) == WIRE_OK &&
                 (!rep.has_record || same_key(rq, &rep.rec));
        } else if (ok) {
            ok = f->body_len == 0;
        }
        if (!ok) {
            log_warn("cluster backend: %s sent a malformed answer; resetting the link",
                     rq->view->addrs[rq->cand[rq->next - 1]]);
            peerlink_reset(rq->link, "malformed answer");
            finish(rq, FE_FAILED, NULL, NULL);
        } else if (read) {
            finish(rq, FE_OK, found && !rec.tombstone ? &rec : NULL, NULL);
        } else {
            finish(rq, FE_OK, NULL, rq->kind == REQ_RMW ? &rep : NULL);
        }
        return;
    }
    if (pr == PEER_ERROR) {
        struct wire_error e = {.code = WIRE_ERR_INTERNAL};
        wire_parse_error(f->body, f->body_len, &e);
        /* a read may go elsewhere after any failure; a write only when
         * the node refused it before applying anything */
        bool retry = idempotent || e.code == WIRE_ERR_NOT_PRIMARY || e.code == WIRE_ERR_NOT_READY;
        enum fe_result fr = e.code == WIRE_ERR_NOT_PRIMARY ? FE_UNAVAILABLE : fe_of_error(e.code);
        if (retry && rq->next < rq->ncand) {
            if (rq->err == FE_OK)
                rq->err = fr;
            atomic_fetch_add_explicit(&rq->cw->retries, 1, memory_order_relaxed);
            send_next(rq);
            return;
        }
        finish(rq, rq->err != FE_OK ? rq->err : fr, NULL, NULL);
        return;
    }
    if (pr == PEER_DOWN) {
        /* queued on a dial that failed: never sent, any request may go on */
        atomic_fetch_add_explicit(&rq->cw->retries, 1, memory_order_relaxed);
        send_next(rq);
        return;
    }
    /* timeout or closed: a read goes on; an RMW may have been applied */
    if (idempotent && rq->next < rq->ncand) {
        atomic_fetch_add_explicit(&rq->cw->retries, 1, memory_order_relaxed);
        send_next(rq);
        return;
    }
    finish(rq, FE_TIMEOUT, NULL, NULL);
}

/* Sends rq to its next candidate that takes it, or finishes it. */
static void send_next(struct creq *rq)
{
    struct cb_worker *cw = rq->cw;
    while (rq->next < rq->ncand) {
        uint32_t node = rq->cand[rq->next++];
        struct peerlink *l = peerlinks_get(cw->links, rq->view->addrs[node]);
        if (l == NULL)
            continue;
        wire_buf_clear(&cw->scratch);
        uint8_t op = opcode_of(rq->kind);
        if (rq->kind == REQ_READ)
            wire_compose_coord_read(&cw->scratch, rq->read_cl, rq->buf, rq->nkey);
        else if (rq->kind == REQ_RMW)
            wire_compose_rmw(&cw->scratch, &rq->q);
        else
            wire_compose_coord_write(&cw->scratch, rq->write_cl, &rq->rec);
        if (cw->scratch.err != ST_OK) {
            finish(rq, FE_FAILED, NULL, NULL);
            return;
        }
        enum peer_result pr =
            peerlink_request(l, op, 0, cw->scratch.data, cw->scratch.len, on_answer, rq);
        if (pr == PEER_OK) {
            rq->link = l;
            return;
        }
        if (pr == PEER_OVERLOADED)
            rq->busy_seen = true;
    }
    finish(rq, rq->err != FE_OK ? rq->err : rq->busy_seen ? FE_BUSY : FE_UNAVAILABLE, NULL, NULL);
}

/* The candidates of key: its preference list, up nodes first in order,
 * then the rest (the view may be stale: a node seen down may be back). */
static bool place(struct creq *rq, struct cview *v)
{
    uint32_t pref[RING_MAX_REPLICAS];
    size_t n =
        ring_preference(v->ring, ring_token(rq->buf, rq->nkey),
                        v->replicas < RING_MAX_REPLICAS ? v->replicas : RING_MAX_REPLICAS, pref);
    rq->ncand = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n; i++)
            if (v->up[pref[i]] == (pass == 0) && v->addrs[pref[i]][0] != '\0')
                rq->cand[rq->ncand++] = pref[i];
    return rq->ncand > 0;
}

static struct creq *creq_new(struct cbackend *b, unsigned slot, enum req_kind kind, size_t nbuf)
{
    struct creq *rq = mem_calloc(MEM_CONN, 1, sizeof(*rq));
    if (rq == NULL)
        return NULL;
    rq->buf = mem_alloc(MEM_CONN, nbuf ? nbuf : 1);
    if (rq->buf == NULL) {
        mem_free(MEM_CONN, rq, sizeof(*rq));
        return NULL;
    }
    rq->nbuf = nbuf;
    rq->b = b;
    rq->cw = &b->w[slot];
    rq->kind = kind;
    return rq;
}

/* Places and sends rq (its buf and fields set). */
static void start(struct creq *rq, struct event_base *base)
{
    struct cbackend *b = rq->b;
    struct cview *v = view_of(b, rq->cw);
    if (v == NULL || links_of(b, rq->cw, base) == NULL) {
        finish(rq, FE_UNAVAILABLE, NULL, NULL);
        return;
    }
    rq->view = v;
    atomic_fetch_add(&v->refs, 1);
    if (!place(rq, v)) {
        finish(rq, FE_UNAVAILABLE, NULL, NULL);
        return;
    }
    send_next(rq);
}

void cbackend_read(struct cbackend *b, struct worker *w, const struct policy *pol, const char *key,
                   size_t nkey, cbackend_read_done done, void *arg)
{
    struct creq *rq = creq_new(b, w->id, REQ_READ, nkey);
    if (rq == NULL) {
        done(arg, FE_NO_MEMORY, NULL);
        return;
    }
    memcpy(rq->buf, key, nkey);
    rq->nkey = nkey;
    rq->read_cl = pol->read_cl;
    rq->read_done = done;
    rq->arg = arg;
    atomic_fetch_add_explicit(&rq->cw->reads, 1, memory_order_relaxed);
    start(rq, w->base);
}

void cbackend_rmw(struct cbackend *b, struct worker *w, const struct policy *pol,
                  const struct wire_rmw *q, cbackend_rmw_done done, void *arg)
{
    struct creq *rq = creq_new(b, w->id, REQ_RMW, q->key_len + q->value_len);
    if (rq == NULL) {
        done(arg, FE_NO_MEMORY, NULL);
        return;
    }
    rq->q = *q;
    memcpy(rq->buf, q->key, q->key_len);
    if (q->value_len > 0)
        memcpy(rq->buf + q->key_len, q->value, q->value_len);
    rq->q.key = rq->buf;
    rq->q.value = rq->buf + q->key_len;
    rq->q.read_cl = pol->read_cl;
    rq->q.write_cl = pol->write_cl;
    rq->nkey = q->key_len;
    rq->rmw_done = done;
    rq->arg = arg;
    atomic_fetch_add_explicit(&rq->cw->writes, 1, memory_order_relaxed);
    start(rq, w->base);
}

void cbackend_write(struct cbackend *b, struct event_base *base, uint8_t write_cl,
                    const struct wire_record *rec, cbackend_write_done done, void *arg)
{
    struct creq *rq = creq_new(b, b->nworkers, REQ_WRITE, rec->key_len + rec->value_len);
    if (rq == NULL) {
        done(arg, FE_NO_MEMORY);
        return;
    }
    rq->rec = *rec;
    memcpy(rq->buf, rec->key, rec->key_len);
    if (rec->value_len > 0)
        memcpy(rq->buf + rec->key_len, rec->value, rec->value_len);
    rq->rec.key = rq->buf;
    rq->rec.value = rec->value_len > 0 ? rq->buf + rec->key_len : NULL;
    rq->write_cl = write_cl;
    rq->nkey = rec->key_len;
    rq->write_done = done;
    rq->arg = arg;
    atomic_fetch_add_explicit(&rq->cw->writes, 1, memory_order_relaxed);
    start(rq, base);
}

void cbackend_close_writer(struct cbackend *b)
{
    if (b != NULL)
        peerlinks_destroy(&b->w[b->nworkers].links);
}

/* ---------------------------------------------------------- lifecycle */

int cbackend_open(const struct settings *s, unsigned workers, struct cbackend **out)
{
    *out = NULL;
    struct cbackend *b = mem_calloc(MEM_OTHER, 1, sizeof(*b));
    if (b == NULL)
        return 71; /* EX_OSERR */
    b->nworkers = workers;
    /* one slot per worker, and the write-behind drainer's last */
    b->w = mem_calloc(MEM_OTHER, workers + 1, sizeof(*b->w));
    if (b->w == NULL) {
        cbackend_close(&b);
        return 71;
    }
    for (unsigned i = 0; i <= workers; i++)
        wire_buf_init(&b->w[i].scratch);
    snprintf(b->cluster_name, sizeof(b->cluster_name), "%s", s->cluster_name);
    /* a proxy's handshake: a random identity, its client address as the
     * address the nodes log */
    snprintf(b->self_addr, sizeof(b->self_addr), "proxy@%s:%u", s->listen_addr, s->port);
    struct peer_self self = {
        .cluster_name = b->cluster_name,
        .short_id = 0,
        .generation = (uint64_t)getpid(),
        .addr = b->self_addr,
        .frame_max = WIRE_FRAME_MAX_DEFAULT,
    };
    if (getrandom(self.node_id, sizeof(self.node_id), 0) != (ssize_t)sizeof(self.node_id))
        memset(self.node_id, 0x5a, sizeof(self.node_id));
    b->links_cfg = (struct peerlinks_config){
        .self = self,
        .max_inflight = s->cluster_max_inflight,
        .timeout_ms = s->cluster_timeout_ms,
        .retry_ms = 500,
    };
    struct clusterview_config cc = {
        .seeds = s->cluster_seeds,
        .self = self,
        .poll_ms = s->cluster_poll_ms,
        .timeout_ms = s->cluster_timeout_ms,
    };
    if (clusterview_start(&cc, &b->cv) != ST_OK) {
        fprintf(stderr, "strata-proxy: backend = cluster needs cluster_seeds (host:port of "
                        "nodes' cluster ports, comma separated)\n");
        cbackend_close(&b);
        return 78; /* EX_CONFIG */
    }
    if (!clusterview_wait(b->cv, s->cluster_timeout_ms * 3))
        log_warn("backend cluster: no ring from %s yet; requests fail until one answers",
                 s->cluster_seeds);
    *out = b;
    return 0;
}

void cbackend_close_links(struct cbackend *b)
{
    for (unsigned i = 0; b != NULL && b->w != NULL && i < b->nworkers; i++)
        peerlinks_destroy(&b->w[i].links);
}

void cbackend_close(struct cbackend **bp)
{
    struct cbackend *b = *bp;
    if (b == NULL)
        return;
    *bp = NULL;
    cbackend_close_links(b);
    cbackend_close_writer(b);
    for (unsigned i = 0; b->w != NULL && i <= b->nworkers; i++) {
        cview_release(&b->w[i].view);
        wire_buf_deinit(&b->w[i].scratch);
    }
    clusterview_stop(&b->cv);
    if (b->w != NULL)
        mem_free(MEM_OTHER, b->w, (b->nworkers + 1) * sizeof(*b->w));
    mem_free(MEM_OTHER, b, sizeof(*b));
}

/* ------------------------------------------------------------- stats */

void cbackend_stats(struct cbackend *b,
                    void (*emit)(void *arg, const char *name, const char *value), void *arg)
{
    uint64_t reads = 0, writes = 0, retries = 0, errors = 0, timeouts = 0, busy = 0, unav = 0;
    for (unsigned i = 0; i <= b->nworkers; i++) {
        struct cb_worker *cw = &b->w[i];
        reads += atomic_load_explicit(&cw->reads, memory_order_relaxed);
        writes += atomic_load_explicit(&cw->writes, memory_order_relaxed);
        retries += atomic_load_explicit(&cw->retries, memory_order_relaxed);
        errors += atomic_load_explicit(&cw->errors, memory_order_relaxed);
        timeouts += atomic_load_explicit(&cw->timeouts, memory_order_relaxed);
        busy += atomic_load_explicit(&cw->busy, memory_order_relaxed);
        unav += atomic_load_explicit(&cw->unavailable, memory_order_relaxed);
    }
    emit(arg, "backend", "cluster");
    mc_emit_u64(emit, arg, "reads", reads);
    mc_emit_u64(emit, arg, "writes", writes);
    mc_emit_u64(emit, arg, "errors", errors);
    mc_emit_u64(emit, arg, "timeouts", timeouts);
    mc_emit_u64(emit, arg, "busy", busy);
    mc_emit_u64(emit, arg, "unavailable", unav);
    mc_emit_u64(emit, arg, "retries", retries);
    struct clusterview_stats cs;
    clusterview_stats(b->cv, &cs);
    mc_emit_u64(emit, arg, "ring_polls", cs.polls);
    mc_emit_u64(emit, arg, "ring_poll_failures", cs.poll_failures);
    mc_emit_u64(emit, arg, "ring_versions", cs.rings_published);
    mc_emit_u64(emit, arg, "ring_age_ms",
                cs.last_ring_age_ms == UINT64_MAX ? 0 : cs.last_ring_age_ms);
    mc_emit_u64(emit, arg, "nodes", cs.nodes);
    mc_emit_u64(emit, arg, "nodes_up", cs.nodes_up);
}
