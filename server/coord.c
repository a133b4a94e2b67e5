/*
 * coord.c - the coordinator (see coord.h). One `struct loop` per event
 * loop; everything below runs on its loop's thread.
 *
 *   set/ms     ─► wop: version once ─► WRITE to N replicas ─► ack at W
 *   get/mg     ─► rop: data from one, digests from R-1 ─► equal: answer
 *                   └► differ: data from all R ─► newest ─► repair the
 *                      stale ones in the read set ─► answer
 *                   └► by chance: digests from the rest ─► repair later
 *   add/cas/.. ─► mop: primary is us? rop at R ─► kvstore_rmw ─► wop at W
 *                   └► else: RMW frame to the primary ─► its answer
 *
 * An operation ("op") decides once (OK or a failure), and its decision is
 * reported on the next loop turn, never from inside the call that started
 * it; it lives on until its last peer request has come back, so late
 * answers (a slow replica, an async repair) still land in it. A failed or
 * slow replica of a write is counted; hints for it are the next step
 * (docs/NODE.md).
 */
#include "server/coord.h"
#include "kvstore/kvstore.h"

#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/mc_text.h"
#include "common/mem.h"
#include "server/coord_op.h"
#include "server/members.h"
#include "server/replica.h"
#include "storage/include/lsm.h"

/* ---------------------------------------------------------- placement */

static void loop_refresh(struct loop *lp)
{
    struct members *m = lp->co->members;
    if (lp->view != NULL && lp->view->version == members_view_version(m))
        return;
    struct members_view *v = members_view_acquire(m);
    if (v == NULL)
        return;
    size_t n = ring_node_count(v->ring);
    struct peerlink **pls = mem_calloc(MEM_OTHER, n ? n : 1, sizeof(*pls));
    if (pls == NULL) {
        members_view_release(&v);
        return; /* keep the old view */
    }
    for (uint32_t i = 0; i < n; i++)
        if (i != v->self && v->addrs[i][0] != '\0')
            pls[i] = peerlinks_get(lp->links, v->addrs[i]);
    members_view_release(&lp->view);
    mem_free(MEM_OTHER, lp->plinks, (lp->nplinks ? lp->nplinks : 1) * sizeof(*pls));
    lp->view = v;
    lp->plinks = pls;
    lp->nplinks = n;
}

void coord_place(struct loop *lp, const void *key, size_t nkey, struct placement *p)
{
    p->n = p->nlive = 0;
    if (lp->stopping)
        return;
    loop_refresh(lp);
    if (lp->view == NULL || !atomic_load_explicit(&lp->view->ready, memory_order_relaxed) ||
        ring_node_count(lp->view->ring) == 0)
        return;
    const struct members_view *v = lp->view;
    p->n = (unsigned)ring_preference(v->ring, ring_token(key, nkey), lp->co->cfg.replicas, p->node);
    for (unsigned i = 0; i < p->n; i++) {
        uint32_t node = p->node[i];
        p->self[i] = node == v->self;
        p->link[i] = lp->plinks[node];
        p->live[i] =
            p->self[i] || (lp->plinks[node] != NULL &&
                           atomic_load_explicit(&v->state[node], memory_order_relaxed) != PHI_DOWN);
        p->nlive += p->live[i];
    }
}

/* Replicas needed at cl among n (ANY counts as ONE until hints land). */
unsigned coord_needed(enum wire_cl cl, unsigned n)
{
    return wire_cl_needed(cl == WIRE_CL_ANY ? WIRE_CL_ONE : cl, n);
}

/* -------------------------------------------------------- op lifecycle */

void coord_op_init(struct loop *lp, struct op *op, enum op_kind kind, op_report_fn report,
                   void *owner)
{
    *op = (struct op){.lp = lp, .kind = kind, .report = report, .owner = owner};
    op->next = lp->ops;
    if (lp->ops != NULL)
        lp->ops->prev = op;
    lp->ops = op;
}

/* Frees op once it is reported and nothing of it is in flight. */
void coord_op_maybe_free(struct op *op)
{
    if (!op->reported || op->outstanding > 0)
        return;
    struct loop *lp = op->lp;
    if (op->prev != NULL)
        op->prev->next = op->next;
    else
        lp->ops = op->next;
    if (op->next != NULL)
        op->next->prev = op->prev;
    switch (op->kind) {
    case OP_WRITE: coord_write_free(op); break;
    case OP_READ: coord_read_free(op); break;
    case OP_RMW: coord_rmw_free(op); break;
    }
}

/* Decides op (once) and queues its report for the next loop turn. */
void coord_op_decide(struct op *op, enum cst status)
{
    if (op->decided)
        return;
    op->decided = true;
    op->status = status;
    struct loop *lp = op->lp;
    op->later_next = NULL;
    if (lp->later_tail != NULL)
        lp->later_tail->later_next = op;
    else
        lp->later_head = op;
    lp->later_tail = op;
    event_active(lp->later_ev, EV_TIMEOUT, 0);
}

void coord_run_reports(struct loop *lp)
{
    while (lp->later_head != NULL) {
        struct op *op = lp->later_head;
        lp->later_head = op->later_next;
        if (lp->later_head == NULL)
            lp->later_tail = NULL;
        op->report(op);
        op->reported = true;
        coord_op_maybe_free(op);
    }
}

static void on_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    coord_run_reports(arg);
}

/* A peer request's failure as an operation's status. */
enum cst coord_cst_of_peer(enum peer_result r)
{
    return r == PEER_TIMEOUT || r == PEER_CLOSED ? CST_TIMEOUT : CST_UNAVAILABLE;
}

/* --------------------------------------------- RMWs peers forward to us */

struct serve_wait {
    coord_rmw_done done;
    void *arg;
};

static void serve_report(struct op *op)
{
    struct serve_wait *sw = op->owner;
    struct mop *m = (struct mop *)op;
    switch (op->status) {
    case CST_OK: sw->done(sw->arg, 0, NULL, &m->reply); break;
    case CST_NOT_PRIMARY:
        sw->done(sw->arg, WIRE_ERR_NOT_PRIMARY, "not the key's primary", NULL);
        break;
    case CST_TIMEOUT: sw->done(sw->arg, WIRE_ERR_TIMEOUT, "replicas did not answer", NULL); break;
    case CST_FAILED: sw->done(sw->arg, WIRE_ERR_STORAGE, "storage failed", NULL); break;
    case CST_UNAVAILABLE:
        sw->done(sw->arg, WIRE_ERR_OVERLOADED, "not enough replicas available", NULL);
        break;
    }
    mem_free(MEM_CONN, sw, sizeof(*sw));
}

void coord_serve_rmw(struct coord *co, const struct wire_rmw *q, coord_rmw_done done, void *arg)
{
    struct loop *lp = &co->loops[co->nloops - 1];
    struct serve_wait *sw = mem_alloc(MEM_CONN, sizeof(*sw));
    if (sw != NULL) {
        sw->done = done;
        sw->arg = arg;
        if (coord_rmw_start(lp, q, true, serve_report, sw) != NULL)
            return;
        mem_free(MEM_CONN, sw, sizeof(*sw));
    }
    done(arg, WIRE_ERR_INTERNAL, "out of memory", NULL);
}

/* ------------------------------------- reads clients ask us to coordinate */

struct read_wait {
    coord_read_done done;
    void *arg;
};

static void serve_read_report(struct op *op)
{
    struct read_wait *rw = op->owner;
    struct rop *r = (struct rop *)op;
    switch (op->status) {
    case CST_OK: {
        const struct lsm_record *rec = r->result;
        struct wire_record wr;
        if (rec != NULL) {
            kvstore_wire_of(rec, &wr);
            if (replica_is_miss(&wr, (uint64_t)clock_unix_now()))
                rec = NULL; /* a tombstone or an expired record: none */
        }
        rw->done(rw->arg, 0, NULL, rec);
        break;
    }
    case CST_TIMEOUT: rw->done(rw->arg, WIRE_ERR_TIMEOUT, "replicas did not answer", NULL); break;
    case CST_FAILED: rw->done(rw->arg, WIRE_ERR_STORAGE, "storage failed", NULL); break;
    case CST_NOT_PRIMARY:
    case CST_UNAVAILABLE:
        rw->done(rw->arg, WIRE_ERR_OVERLOADED, "not enough replicas available", NULL);
        break;
    }
    mem_free(MEM_CONN, rw, sizeof(*rw));
}

void coord_serve_read(struct coord *co, const void *key, size_t nkey, enum wire_cl cl,
                      coord_read_done done, void *arg)
{
    struct loop *lp = &co->loops[co->nloops - 1];
    struct read_wait *rw = mem_alloc(MEM_CONN, sizeof(*rw));
    if (rw != NULL) {
        rw->done = done;
        rw->arg = arg;
        COUNT(lp, coord_reads_served);
        if (coord_read_start(lp, key, nkey, cl, serve_read_report, rw) != NULL)
            return;
        mem_free(MEM_CONN, rw, sizeof(*rw));
    }
    done(arg, WIRE_ERR_INTERNAL, "out of memory", NULL);
}

/* ------------------------------------ writes clients ask us to coordinate */

struct write_wait {
    coord_write_done done;
    void *arg;
};

static void serve_write_report(struct op *op)
{
    struct write_wait *ww = op->owner;
    switch (op->status) {
    case CST_OK: ww->done(ww->arg, 0, NULL); break;
    case CST_TIMEOUT: ww->done(ww->arg, WIRE_ERR_TIMEOUT, "replicas did not answer"); break;
    case CST_FAILED: ww->done(ww->arg, WIRE_ERR_STORAGE, "storage failed"); break;
    case CST_NOT_PRIMARY:
    case CST_UNAVAILABLE:
        ww->done(ww->arg, WIRE_ERR_OVERLOADED, "not enough replicas available");
        break;
    }
    mem_free(MEM_CONN, ww, sizeof(*ww));
}

void coord_serve_write(struct coord *co, const struct wire_record *rec, enum wire_cl cl,
                       coord_write_done done, void *arg)
{
    struct loop *lp = &co->loops[co->nloops - 1];
    struct write_wait *ww = mem_alloc(MEM_CONN, sizeof(*ww));
    struct lsm_record view, *copy = NULL;
    kvstore_lsm_of(rec, &view);
    if (ww != NULL && lsm_record_copy(&view, &copy) == ST_OK) {
        ww->done = done;
        ww->arg = arg;
        COUNT(lp, coord_writes_served);
        if (coord_write_start(lp, copy, cl, false, false, serve_write_report, ww) != NULL)
            return;
        /* (coord_write_start freed the copy) */
    } else {
        lsm_record_free(&copy);
    }
    mem_free(MEM_CONN, ww, sizeof(*ww));
    done(arg, WIRE_ERR_INTERNAL, "out of memory");
}

unsigned coord_replicas(const struct coord *co)
{
    return co->cfg.replicas;
}

/* ----------------------------------------------------------- lifecycle */

enum st_status coord_create(const struct coord_config *cfg, struct kv *kv, struct lsm_db *db,
                            struct hlc *clock, struct members *members, unsigned nloops,
                            struct coord **out)
{
    struct coord *co = mem_calloc(MEM_OTHER, 1, sizeof(*co));
    if (co == NULL)
        return ST_NOMEM;
    co->loops = mem_calloc(MEM_OTHER, nloops, sizeof(*co->loops));
    if (co->loops == NULL) {
        mem_free(MEM_OTHER, co, sizeof(*co));
        return ST_NOMEM;
    }
    co->cfg = *cfg;
    if (co->cfg.replicas > RING_MAX_REPLICAS)
        co->cfg.replicas = RING_MAX_REPLICAS;
    snprintf(co->cluster_name, sizeof(co->cluster_name), "%s", cfg->self.cluster_name);
    snprintf(co->addr, sizeof(co->addr), "%s", cfg->self.addr);
    co->cfg.self.cluster_name = co->cluster_name;
    co->cfg.self.addr = co->addr;
    co->kv = kv;
    co->db = db;
    co->clock = clock;
    co->members = members;
    co->nloops = nloops;
    *out = co;
    return ST_OK;
}

void coord_attach_handoff(struct coord *co, struct handoff *h)
{
    co->handoff = h;
}

enum st_status coord_loop_start(struct coord *co, unsigned i, struct event_base *base)
{
    struct loop *lp = &co->loops[i];
    lp->co = co;
    lp->index = i;
    lp->base = base;
    wire_buf_init(&lp->scratch);
    struct peerlinks_config pc = {
        .self = co->cfg.self,
        .max_inflight = co->cfg.max_inflight,
        .timeout_ms = co->cfg.timeout_ms,
        .retry_ms = 200,
    };
    lp->later_ev = event_new(base, -1, 0, on_later, lp);
    if (lp->later_ev == NULL || peerlinks_create(&pc, base, &lp->links) != ST_OK)
        return ST_NOMEM;
    return ST_OK;
}

void coord_loop_stop(struct coord *co, unsigned i)
{
    struct loop *lp = &co->loops[i];
    if (lp->base == NULL)
        return;
    lp->stopping = true;
    /* every request in flight fails, every op decides, every report runs */
    peerlinks_destroy(&lp->links);
    coord_run_reports(lp);
    while (lp->ops != NULL) {
        /* ops that never decided (none should remain): fail and report */
        struct op *op = lp->ops;
        op->outstanding = 0;
        coord_op_decide(op, CST_UNAVAILABLE);
        coord_run_reports(lp);
        if (lp->ops == op) /* reported earlier but held: free it now */
            coord_op_maybe_free(op);
    }
    if (lp->later_ev != NULL)
        event_free(lp->later_ev);
    members_view_release(&lp->view);
    mem_free(MEM_OTHER, lp->plinks, (lp->nplinks ? lp->nplinks : 1) * sizeof(*lp->plinks));
    wire_buf_deinit(&lp->scratch);
    lp->base = NULL;
}

void coord_destroy(struct coord **cop)
{
    struct coord *co = *cop;
    if (co == NULL)
        return;
    *cop = NULL;
    for (unsigned i = 0; i < co->nloops; i++)
        coord_loop_stop(co, i);
    mem_free(MEM_OTHER, co->loops, co->nloops * sizeof(*co->loops));
    mem_free(MEM_OTHER, co, sizeof(*co));
}

void coord_stats(struct coord *co, void (*emit)(void *arg, const char *name, const char *value),
                 void *arg)
{
    char buf[24];
#define X(name)                                                                  \
    {                                                                            \
        uint64_t t = 0;                                                          \
        for (unsigned i = 0; i < co->nloops; i++)                                \
            t += atomic_load_explicit(&co->loops[i].name, memory_order_relaxed); \
        buf[mc_u64_to_str(t, buf)] = '\0';                                       \
        emit(arg, #name, buf);                                                   \
    }
    COORD_COUNTERS(X)
#undef X
    struct peerlinks_stats total = {0};
    for (unsigned i = 0; i < co->nloops; i++) {
        if (co->loops[i].links == NULL)
            continue;
        struct peerlinks_stats s;
        peerlinks_stats(co->loops[i].links, &s);
        total.requests += s.requests;
        total.timeouts += s.timeouts;
        total.closed += s.closed;
        total.overloaded += s.overloaded;
        total.down += s.down;
        total.dials += s.dials;
        total.dial_failures += s.dial_failures;
    }
    const struct {
        const char *name;
        uint64_t v;
    } links[] = {
        {"link_requests", total.requests},
        {"link_timeouts", total.timeouts},
        {"link_closed", total.closed},
        {"link_overloaded", total.overloaded},
        {"link_down", total.down},
        {"link_dials", total.dials},
        {"link_dial_failures", total.dial_failures},
    };
    for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
        buf[mc_u64_to_str(links[i].v, buf)] = '\0';
        emit(arg, links[i].name, buf);
    }
}
