/*
 * coord.c - the coordinator (see coord.h). One `struct loop` per event
 * loop; everything below runs on its loop's thread.
 *
 *   set/ms     ─► wop: version once ─► WRITE to N replicas ─► ack at W
 *   get/mg     ─► rop: data from one, digests from R-1 ─► equal: answer
 *                   └► differ: data from all R ─► newest ─► repair the
 *                      stale ones in the read set ─► answer
 *                   └► by chance: digests from the rest ─► repair later
 *   add/cas/.. ─► mop: primary is us? rop at R ─► kv_rmw ─► wop at W
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

#include <event2/event.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mc_text.h"
#include "common/mem.h"
#include "common/peerlink.h"
#include "common/phi.h"
#include "common/ring.h"
#include "frontend/call.h"
#include "frontend/fe.h"
#include "frontend/worker.h"
#include "server/kv.h"
#include "server/members.h"
#include "server/replica.h"
#include "storage/include/lsm.h"

/* clang-format off */
#define COORD_COUNTERS(X)                                                   \
    X(coord_reads) X(coord_writes) X(coord_rmws) X(coord_rmws_forwarded)    \
    X(coord_rmws_served) X(coord_not_primary) X(coord_unavailable)          \
    X(coord_timeouts) X(coord_failures) X(coord_replica_failures)           \
    X(coord_digest_mismatches) X(coord_read_repairs) X(coord_async_repairs)
/* clang-format on */

/* How an operation ended. */
enum cst {
    CST_OK,
    CST_UNAVAILABLE, /* too few replicas up: nothing was sent */
    CST_TIMEOUT,     /* a replica did not answer: the write may be applied */
    CST_FAILED,      /* a replica's storage failed */
    CST_NOT_PRIMARY, /* a forwarded RMW reached a node that is not the primary */
};

struct loop;
struct op;

/* Who waits for an operation: the front end (a call), a parent operation
 * or the cluster port. */
typedef void (*op_report_fn)(struct op *op);

enum op_kind { OP_WRITE, OP_READ, OP_RMW };

struct op {
    struct op *prev, *next; /* loop->ops */
    struct op *later_next;  /* loop's report queue */
    struct loop *lp;
    enum op_kind kind;
    enum cst status;
    bool decided;  /* status is final */
    bool reported; /* report() has run */
    unsigned outstanding;
    op_report_fn report;
    void *owner; /* report's context */
};

struct loop {
    struct coord *co;
    unsigned index;
    struct event_base *base;
    struct peerlinks *links;
    struct members_view *view;
    struct peerlink **plinks; /* per ring node of view; NULL: self or unknown */
    size_t nplinks;
    struct event *later_ev;
    struct op *later_head, *later_tail;
    struct op *ops;
    struct wire_buf scratch; /* bodies composed once, sent to several peers */
    bool stopping;
#define X(name) _Atomic uint64_t name;
    COORD_COUNTERS(X)
#undef X
};

struct coord {
    struct coord_config cfg;
    char cluster_name[WIRE_CLUSTER_MAX + 1];
    char addr[WIRE_ADDR_MAX + 1];
    struct kv *kv;
    struct lsm_db *db;
    struct hlc *clock;
    struct members *members;
    unsigned nloops;
    struct loop *loops;
};

#define COUNT(lp, name) atomic_fetch_add_explicit(&(lp)->name, 1, memory_order_relaxed)

/* ---------------------------------------------------------- placement */

/* The replicas of a key in this loop's view, in preference order. */
struct placement {
    unsigned n;
    unsigned nlive;
    uint32_t node[RING_MAX_REPLICAS];
    bool live[RING_MAX_REPLICAS];
    bool self[RING_MAX_REPLICAS];
};

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

static void place(struct loop *lp, const void *key, size_t nkey, struct placement *p)
{
    p->n = p->nlive = 0;
    if (lp->stopping)
        return;
    loop_refresh(lp);
    if (lp->view == NULL || ring_node_count(lp->view->ring) == 0)
        return;
    const struct members_view *v = lp->view;
    p->n = (unsigned)ring_preference(v->ring, ring_token(key, nkey), lp->co->cfg.replicas, p->node);
    for (unsigned i = 0; i < p->n; i++) {
        uint32_t node = p->node[i];
        p->self[i] = node == v->self;
        p->live[i] =
            p->self[i] || (lp->plinks[node] != NULL &&
                           atomic_load_explicit(&v->state[node], memory_order_relaxed) != PHI_DOWN);
        p->nlive += p->live[i];
    }
}

/* Replicas needed at cl among n (ANY counts as ONE until hints land). */
static unsigned needed(enum wire_cl cl, unsigned n)
{
    return wire_cl_needed(cl == WIRE_CL_ANY ? WIRE_CL_ONE : cl, n);
}

/* -------------------------------------------------------- op lifecycle */

static void op_init(struct loop *lp, struct op *op, enum op_kind kind, op_report_fn report,
                    void *owner)
{
    *op = (struct op){.lp = lp, .kind = kind, .report = report, .owner = owner};
    op->next = lp->ops;
    if (lp->ops != NULL)
        lp->ops->prev = op;
    lp->ops = op;
}

static void wop_free(struct op *op);
static void rop_free(struct op *op);
static void mop_free(struct op *op);

/* Frees op once it is reported and nothing of it is in flight. */
static void op_maybe_free(struct op *op)
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
    case OP_WRITE: wop_free(op); break;
    case OP_READ: rop_free(op); break;
    case OP_RMW: mop_free(op); break;
    }
}

/* Decides op (once) and queues its report for the next loop turn. */
static void op_decide(struct op *op, enum cst status)
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

static void run_reports(struct loop *lp)
{
    while (lp->later_head != NULL) {
        struct op *op = lp->later_head;
        lp->later_head = op->later_next;
        if (lp->later_head == NULL)
            lp->later_tail = NULL;
        op->report(op);
        op->reported = true;
        op_maybe_free(op);
    }
}

static void on_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    run_reports(arg);
}

/* A peer request's failure as an operation's status. */
static enum cst cst_of_peer(enum peer_result r)
{
    return r == PEER_TIMEOUT || r == PEER_CLOSED ? CST_TIMEOUT : CST_UNAVAILABLE;
}

/* -------------------------------------------------------------- writes */

enum rep_state { REP_IDLE, REP_ASKED, REP_DONE, REP_FAILED };

struct wrep {
    struct wop *w;
    uint32_t node;
    uint8_t state;
};

struct wop {
    struct op base;
    unsigned need, acks, n;
    bool indeterminate; /* a replica timed out or closed with it in flight */
    bool storage_failed;
    struct lsm_record *rec; /* owned */
    struct wrep reps[RING_MAX_REPLICAS];
};

static void wop_free(struct op *op)
{
    struct wop *w = (struct wop *)op;
    lsm_record_free(&w->rec);
    mem_free(MEM_CONN, w, sizeof(*w));
}

static void wop_check(struct wop *w)
{
    if (w->base.decided)
        return;
    if (w->acks >= w->need) {
        op_decide(&w->base, CST_OK);
        return;
    }
    if (w->acks + w->base.outstanding >= w->need)
        return;
    struct loop *lp = w->base.lp;
    enum cst st = w->indeterminate ? CST_TIMEOUT : w->storage_failed ? CST_FAILED : CST_UNAVAILABLE;
    if (st == CST_TIMEOUT)
        COUNT(lp, coord_timeouts);
    op_decide(&w->base, st);
}

static void wop_done(void *arg, enum peer_result r, const struct wire_frame *f)
{
    struct wrep *rep = arg;
    struct wop *w = rep->w;
    w->base.outstanding--;
    if (r == PEER_OK && f->opcode == WIRE_OP_WRITE) {
        rep->state = REP_DONE;
        w->acks++;
    } else {
        rep->state = REP_FAILED;
        COUNT(w->base.lp, coord_replica_failures);
        if (r == PEER_TIMEOUT || r == PEER_CLOSED)
            w->indeterminate = true;
        else if (r == PEER_ERROR)
            w->storage_failed = true;
    }
    wop_check(w);
    op_maybe_free(&w->base);
}

/* The body of a WRITE of one record, in lp->scratch. */
static bool compose_write(struct loop *lp, const struct lsm_record *rec)
{
    struct wire_record wr;
    replica_record_of(rec, &wr);
    wire_buf_clear(&lp->scratch);
    wire_compose_write(&lp->scratch, &wr, 1);
    return lp->scratch.err == ST_OK;
}

/*
 * Writes rec (taken; its version and expiry already chosen) to the
 * replicas of its key at cl; self_applied: this node's replica has it
 * already (an RMW at the primary). NULL when out of memory (rec freed).
 */
static struct wop *wop_start(struct loop *lp, struct lsm_record *rec, enum wire_cl cl,
                             bool self_applied, op_report_fn report, void *owner)
{
    struct wop *w = mem_calloc(MEM_CONN, 1, sizeof(*w));
    if (w == NULL) {
        lsm_record_free(&rec);
        return NULL;
    }
    op_init(lp, &w->base, OP_WRITE, report, owner);
    w->rec = rec;
    COUNT(lp, coord_writes);
    struct placement p;
    place(lp, rec->key, rec->key_len, &p);
    w->n = p.n;
    w->need = p.n > 0 ? needed(cl, p.n) : 1;
    if (p.nlive < w->need || !compose_write(lp, rec)) {
        COUNT(lp, coord_unavailable);
        op_decide(&w->base, CST_UNAVAILABLE);
        return w;
    }
    for (unsigned i = 0; i < p.n; i++) {
        struct wrep *rep = &w->reps[i];
        *rep = (struct wrep){.w = w, .node = p.node[i], .state = REP_FAILED};
        if (p.self[i]) {
            enum st_status st = ST_OK;
            if (!self_applied) {
                struct wire_record wr;
                replica_record_of(rec, &wr);
                st = replica_apply(lp->co->db, &wr);
            }
            if (st == ST_OK) {
                rep->state = REP_DONE;
                w->acks++;
            } else {
                w->storage_failed = true;
                log_warn("node: local replica write failed: %s", st_status_name(st));
            }
        } else if (p.live[i] &&
                   peerlink_request(lp->plinks[p.node[i]], WIRE_OP_WRITE, 0, lp->scratch.data,
                                    lp->scratch.len, wop_done, rep) == PEER_OK) {
            rep->state = REP_ASKED;
            w->base.outstanding++;
        } else {
            COUNT(lp, coord_replica_failures);
        }
    }
    wop_check(w);
    return w;
}

/* A repair write to one replica, nobody waiting for it. */
static void repair_done(void *arg, enum peer_result r, const struct wire_frame *f)
{
    (void)arg;
    (void)r;
    (void)f;
}

/* --------------------------------------------------------------- reads */

struct rrep {
    struct rop *r;
    uint32_t node;
    bool self;
    bool in_set;   /* counted toward R */
    bool extra;    /* asked after the answer, for async repair */
    uint8_t state; /* enum rep_state */
    bool want_data;
    bool have_data;          /* data (or not found) arrived */
    struct lsm_record *data; /* have_data: newest held, NULL none */
    struct wire_digest dg;   /* what it holds, from data or a digest */
    bool repairing;
};

struct rop {
    struct op base;
    char key[WIRE_REC_KEY_MAX];
    size_t nkey;
    unsigned n, need;
    bool phase2;
    bool indeterminate;
    unsigned repairs;          /* blocking repair writes in flight */
    struct lsm_record *result; /* newest of the read set, owned; NULL: none */
    struct rrep reps[RING_MAX_REPLICAS];
};

static void rop_free(struct op *op)
{
    struct rop *r = (struct rop *)op;
    for (unsigned i = 0; i < r->n; i++)
        lsm_record_free(&r->reps[i].data);
    lsm_record_free(&r->result);
    mem_free(MEM_CONN, r, sizeof(*r));
}

static struct wire_digest digest_of(const struct lsm_record *rec)
{
    struct wire_digest d = {.found = rec != NULL};
    if (rec != NULL) {
        struct wire_record wr;
        replica_record_of(rec, &wr);
        d.version = wr.version;
        d.digest = wire_record_digest(&wr);
    }
    return d;
}

static bool digests_equal(const struct wire_digest *a, const struct wire_digest *b)
{
    if (a->found != b->found)
        return false;
    return !a->found || (a->version.hlc == b->version.hlc && a->version.node == b->version.node &&
                         a->digest == b->digest);
}

static void rop_progress(struct rop *r);

static void rop_done(void *arg, enum peer_result res, const struct wire_frame *f)
{
    struct rrep *rep = arg;
    struct rop *r = rep->r;
    r->base.outstanding--;
    bool ok = false;
    if (res == PEER_OK && f->opcode == WIRE_OP_READ) {
        if (f->flags & WIRE_FLAG_DIGEST) {
            ok = wire_parse_digest_reply(f->body, f->body_len, &rep->dg) == WIRE_OK;
        } else {
            bool found;
            struct wire_record wr;
            ok = wire_parse_read_reply(f->body, f->body_len, &found, &wr) == WIRE_OK;
            if (ok && found) {
                struct lsm_record lr = {
                    .key = wr.key,
                    .key_len = wr.key_len,
                    .value = wr.value,
                    .value_len = wr.value_len,
                    .flags = wr.flags,
                    .expiry = wr.expiry,
                    .version = {wr.version.hlc, wr.version.node},
                    .tombstone = wr.tombstone,
                };
                ok = lsm_record_copy(&lr, &rep->data) == ST_OK;
            }
            if (ok) {
                rep->have_data = true;
                rep->dg = digest_of(rep->data);
            }
        }
    }
    if (ok) {
        rep->state = REP_DONE;
    } else {
        rep->state = REP_FAILED;
        COUNT(r->base.lp, coord_replica_failures);
        if (res == PEER_TIMEOUT || res == PEER_CLOSED)
            r->indeterminate = true;
    }
    rop_progress(r);
    op_maybe_free(&r->base);
}

/* Asks rep for data or a digest: this node's replica at once. False when
 * it could not be asked. */
static bool rop_ask(struct rop *r, struct rrep *rep, bool data)
{
    struct loop *lp = r->base.lp;
    rep->want_data = data;
    if (lp->stopping) {
        rep->state = REP_FAILED;
        return false;
    }
    if (rep->self) {
        struct lsm_record *rec = NULL;
        enum st_status st = replica_read(lp->co->db, r->key, r->nkey, &rec);
        if (st != ST_OK) {
            log_warn("node: local replica read failed: %s", st_status_name(st));
            rep->state = REP_FAILED;
            return false;
        }
        lsm_record_free(&rep->data);
        rep->data = rec;
        rep->have_data = true;
        rep->dg = digest_of(rec);
        rep->state = REP_DONE;
        return true;
    }
    wire_buf_clear(&lp->scratch);
    wire_compose_read(&lp->scratch, (const uint8_t *)r->key, r->nkey);
    if (lp->scratch.err != ST_OK ||
        peerlink_request(lp->plinks[rep->node], WIRE_OP_READ, data ? 0 : WIRE_FLAG_DIGEST,
                         lp->scratch.data, lp->scratch.len, rop_done, rep) != PEER_OK) {
        rep->state = REP_FAILED;
        return false;
    }
    rep->state = REP_ASKED;
    r->base.outstanding++;
    return true;
}

/* Adds the next live replica outside the read set to it (replacing one
 * that failed). False when there is none left. */
static bool rop_enlist(struct rop *r, bool data)
{
    for (unsigned i = 0; i < r->n; i++) {
        struct rrep *rep = &r->reps[i];
        if (rep->in_set || rep->extra || rep->state != REP_IDLE)
            continue;
        rep->in_set = true;
        if (rop_ask(r, rep, data))
            return true;
        rep->in_set = false;
    }
    return false;
}

/* Writes r->result to rep (a stale replica); blocking: counted in
 * r->repairs until it answers. */
static void repair_blocking_done(void *arg, enum peer_result res, const struct wire_frame *f)
{
    (void)res;
    (void)f;
    struct rrep *rep = arg;
    struct rop *r = rep->r;
    r->base.outstanding--;
    rep->repairing = false;
    r->repairs--;
    rop_progress(r);
    op_maybe_free(&r->base);
}

static void rop_repair(struct rop *r, struct rrep *rep, bool blocking)
{
    struct loop *lp = r->base.lp;
    if (lp->stopping)
        return;
    if (blocking)
        COUNT(lp, coord_read_repairs);
    else
        COUNT(lp, coord_async_repairs);
    if (rep->self) {
        struct wire_record wr;
        replica_record_of(r->result, &wr);
        enum st_status st = replica_apply(lp->co->db, &wr);
        if (st != ST_OK)
            log_warn("node: read repair of the local replica failed: %s", st_status_name(st));
        return;
    }
    if (!compose_write(lp, r->result))
        return;
    if (peerlink_request(lp->plinks[rep->node], WIRE_OP_WRITE, 0, lp->scratch.data, lp->scratch.len,
                         blocking ? repair_blocking_done : repair_done, rep) != PEER_OK)
        return;
    if (blocking) {
        rep->repairing = true;
        r->repairs++;
        r->base.outstanding++;
    }
}

/* After the answer, by chance: digests from the live replicas outside
 * the read set, repaired as they come if they differ. */
static void rop_check_rest(struct rop *r)
{
    struct loop *lp = r->base.lp;
    unsigned pct = lp->co->cfg.read_repair_pct;
    if (lp->stopping || r->result == NULL || pct == 0 || (pct < 100 && (unsigned)(random() % 100) >= pct))
        return;
    struct placement p;
    place(lp, r->key, r->nkey, &p);
    for (unsigned i = 0; i < r->n && i < p.n; i++) {
        struct rrep *rep = &r->reps[i];
        if (rep->in_set || rep->state != REP_IDLE || !p.live[i] || p.node[i] != rep->node)
            continue;
        rep->extra = true;
        rop_ask(r, rep, false);
    }
}

/* An extra replica's digest arrived (or its local read): repair if older. */
static void rop_extra(struct rop *r, struct rrep *rep)
{
    if (rep->state != REP_DONE || r->result == NULL || rep->repairing)
        return;
    struct wire_digest want = digest_of(r->result);
    if (digests_equal(&rep->dg, &want))
        return;
    if (rep->dg.found && replica_newer(rep->dg.version, want.version))
        return; /* it holds something newer: not ours to overwrite */
    rep->repairing = true;
    rop_repair(r, rep, false);
}

static void rop_resolve(struct rop *r)
{
    /* the newest record of the read set */
    const struct lsm_record *best = NULL;
    for (unsigned i = 0; i < r->n; i++) {
        const struct rrep *rep = &r->reps[i];
        if (rep->in_set && rep->have_data && rep->data != NULL &&
            (best == NULL ||
             replica_newer((struct wire_version){rep->data->version.hlc, rep->data->version.node},
                           (struct wire_version){best->version.hlc, best->version.node})))
            best = rep->data;
    }
    if (best != NULL && lsm_record_copy(best, &r->result) != ST_OK) {
        op_decide(&r->base, CST_FAILED);
        return;
    }
    if (r->result == NULL)
        return;
    struct wire_digest want = digest_of(r->result);
    for (unsigned i = 0; i < r->n; i++) {
        struct rrep *rep = &r->reps[i];
        if (rep->in_set && rep->state == REP_DONE && !digests_equal(&rep->dg, &want))
            rop_repair(r, rep, true);
    }
}

static void rop_progress(struct rop *r)
{
    if (r->base.decided) {
        for (unsigned i = 0; i < r->n; i++)
            if (r->reps[i].extra)
                rop_extra(r, &r->reps[i]);
        return;
    }
    unsigned done = 0, asked = 0, failed = 0;
    for (unsigned i = 0; i < r->n; i++) {
        const struct rrep *rep = &r->reps[i];
        if (!rep->in_set)
            continue;
        done += rep->state == REP_DONE;
        asked += rep->state == REP_ASKED;
        failed += rep->state == REP_FAILED;
    }
    /* replace the failed members of the read set while replicas are left */
    while (failed > 0) {
        for (unsigned i = 0; i < r->n; i++)
            if (r->reps[i].in_set && r->reps[i].state == REP_FAILED)
                r->reps[i].in_set = false;
        failed--;
        rop_enlist(r, true);
    }
    done = asked = 0;
    for (unsigned i = 0; i < r->n; i++) {
        const struct rrep *rep = &r->reps[i];
        if (rep->in_set) {
            done += rep->state == REP_DONE;
            asked += rep->state == REP_ASKED;
        }
    }
    if (done + asked < r->need) {
        struct loop *lp = r->base.lp;
        if (r->indeterminate)
            COUNT(lp, coord_timeouts);
        op_decide(&r->base, r->indeterminate ? CST_TIMEOUT : CST_UNAVAILABLE);
        return;
    }
    if (asked > 0 || r->repairs > 0)
        return; /* wait */
    if (r->result != NULL || r->phase2) {
        if (r->result == NULL && r->phase2) {
            rop_resolve(r);
            if (r->base.decided || r->repairs > 0)
                return;
        }
        op_decide(&r->base, CST_OK);
        rop_check_rest(r);
        return;
    }
    /* phase 1 is in: do the digests agree with the data? */
    const struct rrep *ref = NULL;
    for (unsigned i = 0; i < r->n && ref == NULL; i++)
        if (r->reps[i].in_set && r->reps[i].have_data)
            ref = &r->reps[i];
    bool agree = ref != NULL;
    for (unsigned i = 0; i < r->n && agree; i++)
        if (r->reps[i].in_set && !digests_equal(&r->reps[i].dg, &ref->dg))
            agree = false;
    if (agree) {
        if (ref->data != NULL && lsm_record_copy(ref->data, &r->result) != ST_OK) {
            op_decide(&r->base, CST_FAILED);
            return;
        }
        op_decide(&r->base, CST_OK);
        rop_check_rest(r);
        return;
    }
    /* they differ: data from every member, then the newest wins */
    COUNT(r->base.lp, coord_digest_mismatches);
    r->phase2 = true;
    for (unsigned i = 0; i < r->n; i++) {
        struct rrep *rep = &r->reps[i];
        if (rep->in_set && !rep->have_data && !rop_ask(r, rep, true))
            rep->state = REP_FAILED;
    }
    rop_progress(r);
}

/*
 * Reads key at cl. prefer_self: this node's replica is in the read set
 * whenever it is a replica (an RMW at the primary reads through its own
 * copy, which the read then repairs).
 */
static struct rop *rop_start(struct loop *lp, const void *key, size_t nkey, enum wire_cl cl,
                             op_report_fn report, void *owner)
{
    struct rop *r = mem_calloc(MEM_CONN, 1, sizeof(*r));
    if (r == NULL)
        return NULL;
    op_init(lp, &r->base, OP_READ, report, owner);
    memcpy(r->key, key, nkey);
    r->nkey = nkey;
    COUNT(lp, coord_reads);
    struct placement p;
    place(lp, key, nkey, &p);
    r->n = p.n;
    r->need = p.n > 0 ? needed(cl, p.n) : 1;
    if (p.nlive < r->need) {
        COUNT(lp, coord_unavailable);
        op_decide(&r->base, CST_UNAVAILABLE);
        return r;
    }
    for (unsigned i = 0; i < p.n; i++)
        r->reps[i] = (struct rrep){.r = r, .node = p.node[i], .self = p.self[i]};
    /* the read set: our own replica first (no network), then in order */
    unsigned chosen = 0;
    for (unsigned pass = 0; pass < 2 && chosen < r->need; pass++)
        for (unsigned i = 0; i < p.n && chosen < r->need; i++)
            if (p.live[i] && p.self[i] == (pass == 0) && !r->reps[i].in_set) {
                r->reps[i].in_set = true;
                chosen++;
            }
    bool first = true;
    for (unsigned i = 0; i < p.n; i++) {
        struct rrep *rep = &r->reps[i];
        if (!rep->in_set)
            continue;
        bool data = first || rep->self;
        first = false;
        rop_ask(r, rep, data);
    }
    rop_progress(r);
    return r;
}

/* ---------------------------------------------------------------- RMW */

struct mop {
    struct op base;
    struct wire_rmw q; /* key and value point into buf */
    uint8_t *buf;
    size_t nbuf;
    bool serve; /* forwarded to us: we must be the primary */
    struct wire_rmw_reply reply;
    struct lsm_record *rec; /* owned: reply.rec views it */
    uint16_t err;           /* a forwarded RMW's ERROR code */
};

static void mop_free(struct op *op)
{
    struct mop *m = (struct mop *)op;
    lsm_record_free(&m->rec);
    mem_free(MEM_CONN, m->buf, m->nbuf ? m->nbuf : 1);
    mem_free(MEM_CONN, m, sizeof(*m));
}

static void mop_after_write(struct op *child)
{
    struct mop *m = child->owner;
    m->base.outstanding--;
    op_decide(&m->base, child->status);
}

/* Runs the RMW on our replica and replicates what it wrote. */
static void mop_apply(struct mop *m)
{
    struct loop *lp = m->base.lp;
    struct coord *co = lp->co;
    if (lp->stopping) {
        op_decide(&m->base, CST_UNAVAILABLE);
        return;
    }
    if (kv_rmw(co->kv, &m->q, &m->reply, &m->rec) != ST_OK) {
        COUNT(lp, coord_failures);
        op_decide(&m->base, CST_FAILED);
        return;
    }
    if (m->rec == NULL) {
        op_decide(&m->base, CST_OK);
        return;
    }
    struct lsm_record *copy = NULL;
    struct wop *w = NULL;
    if (lsm_record_copy(m->rec, &copy) == ST_OK)
        w = wop_start(lp, copy, (enum wire_cl)m->q.write_cl, true, mop_after_write, m);
    if (w == NULL) {
        op_decide(&m->base, CST_FAILED);
        return;
    }
    m->base.outstanding++; /* the child reports to us */
}

static void mop_after_read(struct op *child)
{
    struct mop *m = child->owner;
    m->base.outstanding--;
    if (child->status != CST_OK)
        op_decide(&m->base, child->status);
    else
        mop_apply(m);
}

static void mop_forward_done(void *arg, enum peer_result r, const struct wire_frame *f)
{
    struct mop *m = arg;
    struct loop *lp = m->base.lp;
    m->base.outstanding--;
    if (r == PEER_OK && f->opcode == WIRE_OP_RMW) {
        struct wire_rmw_reply rep;
        bool ok = wire_parse_rmw_reply(f->body, f->body_len, &rep) == WIRE_OK;
        if (ok && rep.has_record) {
            struct lsm_record lr = {
                .key = rep.rec.key,
                .key_len = rep.rec.key_len,
                .value = rep.rec.value,
                .value_len = rep.rec.value_len,
                .flags = rep.rec.flags,
                .expiry = rep.rec.expiry,
                .version = {rep.rec.version.hlc, rep.rec.version.node},
            };
            ok = lsm_record_copy(&lr, &m->rec) == ST_OK;
            if (ok) {
                rep.rec.key = m->rec->key;
                rep.rec.value = m->rec->value;
            }
        }
        if (ok) {
            m->reply = rep;
            op_decide(&m->base, CST_OK);
        } else {
            COUNT(lp, coord_failures);
            op_decide(&m->base, CST_FAILED);
        }
    } else if (r == PEER_ERROR) {
        struct wire_error e = {.code = WIRE_ERR_INTERNAL};
        wire_parse_error(f->body, f->body_len, &e);
        m->err = e.code;
        enum cst st = e.code == WIRE_ERR_TIMEOUT       ? CST_TIMEOUT
                      : e.code == WIRE_ERR_STORAGE     ? CST_FAILED
                      : e.code == WIRE_ERR_NOT_PRIMARY ? CST_NOT_PRIMARY
                                                       : CST_UNAVAILABLE;
        if (st == CST_NOT_PRIMARY)
            COUNT(lp, coord_not_primary);
        op_decide(&m->base, st);
    } else {
        if (r == PEER_TIMEOUT || r == PEER_CLOSED)
            COUNT(lp, coord_timeouts);
        op_decide(&m->base, cst_of_peer(r));
    }
    op_maybe_free(&m->base);
}

/*
 * An RMW (q copied): at the key's primary (the first live replica) when
 * that is us, else forwarded to it. serve: it was forwarded to us, so we
 * refuse (NOT_PRIMARY) rather than forward again.
 */
static struct mop *mop_start(struct loop *lp, const struct wire_rmw *q, bool serve,
                             op_report_fn report, void *owner)
{
    struct mop *m = mem_calloc(MEM_CONN, 1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->nbuf = q->key_len + q->value_len;
    m->buf = mem_alloc(MEM_CONN, m->nbuf ? m->nbuf : 1);
    if (m->buf == NULL) {
        mem_free(MEM_CONN, m, sizeof(*m));
        return NULL;
    }
    op_init(lp, &m->base, OP_RMW, report, owner);
    m->serve = serve;
    m->q = *q;
    memcpy(m->buf, q->key, q->key_len);
    if (q->value_len > 0)
        memcpy(m->buf + q->key_len, q->value, q->value_len);
    m->q.key = m->buf;
    m->q.value = m->buf + q->key_len;
    if (serve)
        COUNT(lp, coord_rmws_served);
    else
        COUNT(lp, coord_rmws);

    struct placement p;
    place(lp, q->key, q->key_len, &p);
    unsigned primary = p.n;
    for (unsigned i = 0; i < p.n && primary == p.n; i++)
        if (p.live[i])
            primary = i;
    if (primary == p.n) {
        COUNT(lp, coord_unavailable);
        op_decide(&m->base, CST_UNAVAILABLE);
    } else if (p.self[primary]) {
        if (q->read_cl == WIRE_CL_ONE || p.n == 1) {
            mop_apply(m); /* our replica is the one read */
        } else {
            struct rop *r =
                rop_start(lp, q->key, q->key_len, (enum wire_cl)q->read_cl, mop_after_read, m);
            if (r == NULL)
                op_decide(&m->base, CST_FAILED);
            else
                m->base.outstanding++;
        }
    } else if (serve) {
        COUNT(lp, coord_not_primary);
        op_decide(&m->base, CST_NOT_PRIMARY);
    } else {
        COUNT(lp, coord_rmws_forwarded);
        wire_buf_clear(&lp->scratch);
        wire_compose_rmw(&lp->scratch, &m->q);
        enum peer_result r =
            lp->scratch.err != ST_OK
                ? PEER_OVERLOADED
                : peerlink_request(lp->plinks[p.node[primary]], WIRE_OP_RMW, 0, lp->scratch.data,
                                   lp->scratch.len, mop_forward_done, m);
        if (r == PEER_OK)
            m->base.outstanding++;
        else
            op_decide(&m->base, CST_UNAVAILABLE);
    }
    return m;
}

/* -------------------------------------------------- the front end's side */

enum fe_kind {
    FK_GET,    /* get/gets: item or miss */
    FK_GAT,    /* gat/gats: touch, item or miss */
    FK_MG,     /* mg: item + info */
    FK_MG_T,   /* mg with T: touch, item + info */
    FK_STORE,  /* set/add/...: result + cas */
    FK_DELETE, /* delete */
    FK_MD,     /* md */
    FK_TOUCH,  /* touch */
    FK_DELTA,  /* incr/decr */
    FK_MA,     /* ma, binary incr/decr */
};

/* A front-end command waiting for its operation. */
struct fe_wait {
    struct fe_call *call;
    struct worker *w;
    enum fe_kind kind;
    enum fe_store_mode mode;
    struct fe_meta_ttl ttl;
    struct fe_meta_arith arith;
};

static struct loop *loop_of(struct worker *w)
{
    struct coord *co = kv_coord(w->fe->exec);
    return &co->loops[w->id];
}

static enum fe_result fe_of_cst(enum cst st)
{
    switch (st) {
    case CST_OK: return FE_OK;
    case CST_TIMEOUT: return FE_TIMEOUT;
    case CST_FAILED: return FE_FAILED;
    case CST_UNAVAILABLE:
    case CST_NOT_PRIMARY: return FE_UNAVAILABLE;
    }
    return FE_FAILED;
}

static enum fe_result fe_of_rmw(uint8_t result)
{
    switch ((enum wire_rmw_result)result) {
    case WIRE_RMW_STORED: return FE_STORED;
    case WIRE_RMW_NOT_STORED: return FE_NOT_STORED;
    case WIRE_RMW_EXISTS: return FE_EXISTS;
    case WIRE_RMW_NOT_FOUND: return FE_NOT_FOUND;
    case WIRE_RMW_NON_NUMERIC: return FE_NON_NUMERIC;
    case WIRE_RMW_TOO_LARGE: return FE_TOO_LARGE;
    }
    return FE_FAILED;
}

static void *item_of(const struct lsm_record *rec)
{
    struct wire_record wr;
    replica_record_of(rec, &wr);
    return kv_item_copy(&wr);
}

/* A read's result as the client sees it: NULL for none, a tombstone or an
 * expired record. */
static const struct lsm_record *live_result(const struct rop *r)
{
    if (r->result == NULL)
        return NULL;
    struct wire_record wr;
    replica_record_of(r->result, &wr);
    return replica_is_miss(&wr, (uint64_t)clock_unix_now()) ? NULL : r->result;
}

static void count_lookup(struct worker *w, bool touch, bool hit)
{
    if (touch) {
        STAT_INCR(&w->stats, cmd_touch);
        if (hit)
            STAT_INCR(&w->stats, touch_hits);
        else
            STAT_INCR(&w->stats, touch_misses);
    } else {
        STAT_INCR(&w->stats, cmd_get);
        if (hit)
            STAT_INCR(&w->stats, get_hits);
        else
            STAT_INCR(&w->stats, get_misses);
    }
}

/* Reports a read (get, gets, mg) to the front end. */
static void fe_read_report(struct op *op)
{
    struct fe_wait *fw = op->owner;
    struct rop *r = (struct rop *)op;
    struct fe_answer a = {.result = fe_of_cst(op->status)};
    const struct lsm_record *rec = op->status == CST_OK ? live_result(r) : NULL;
    if (rec != NULL) {
        a.item = item_of(rec);
        if (a.item == NULL)
            a.result = FE_NO_MEMORY;
        a.info.ttl = kv_ttl_left(rec->expiry);
    }
    if (op->status == CST_OK)
        count_lookup(fw->w, false, rec != NULL);
    fe_call_done(fw->call, &a);
    mem_free(MEM_CONN, fw, sizeof(*fw));
}

/* Reports an RMW to the front end, per command. */
static void fe_rmw_report(struct op *op)
{
    struct fe_wait *fw = op->owner;
    struct mop *m = (struct mop *)op;
    struct worker *w = fw->w;
    struct fe_answer a = {.result = fe_of_cst(op->status)};
    bool ok = op->status == CST_OK;
    enum fe_result r = ok ? fe_of_rmw(m->reply.result) : a.result;
    bool stored = ok && m->reply.result == WIRE_RMW_STORED;
    switch (fw->kind) {
    case FK_GAT:
    case FK_MG_T:
        if (stored && m->reply.has_record) {
            a.item = kv_item_copy(&m->reply.rec);
            if (a.item == NULL)
                a.result = FE_NO_MEMORY;
            const struct fe_meta_ttl *t = &fw->ttl;
            bool old = fw->kind == FK_MG_T && t->t_pos >= 0 && t->t_pos < t->touch_pos;
            a.info.ttl = kv_ttl_left(old ? m->reply.old_expiry : m->reply.rec.expiry);
        }
        if (ok && fw->ttl.fail_pos < 0)
            count_lookup(w, true, a.item != NULL);
        break;
    case FK_STORE:
        a.result = r;
        a.cas = m->reply.cas;
        STAT_INCR(&w->stats, cmd_set);
        if (fw->mode == FE_CAS && r == FE_STORED)
            STAT_INCR(&w->stats, cas_hits);
        else if (fw->mode == FE_CAS && r == FE_EXISTS)
            STAT_INCR(&w->stats, cas_badval);
        else if (fw->mode == FE_CAS && r == FE_NOT_FOUND)
            STAT_INCR(&w->stats, cas_misses);
        else if (r == FE_TOO_LARGE)
            STAT_INCR(&w->stats, store_too_large);
        break;
    case FK_DELETE:
    case FK_MD:
        a.result = stored ? FE_OK : r;
        if (stored)
            STAT_INCR(&w->stats, delete_hits);
        else if (ok)
            STAT_INCR(&w->stats, delete_misses);
        break;
    case FK_TOUCH:
        a.result = stored ? FE_OK : r;
        STAT_INCR(&w->stats, cmd_touch);
        if (stored)
            STAT_INCR(&w->stats, touch_hits);
        else
            STAT_INCR(&w->stats, touch_misses);
        break;
    case FK_DELTA:
    case FK_MA: {
        a.result = stored ? FE_OK : r;
        a.value = m->reply.number;
        a.cas = m->reply.cas;
        a.arith = fw->arith;
        a.arith.value = m->reply.number;
        a.arith.cas = m->reply.cas;
        a.arith.created = m->reply.created;
        const struct fe_meta_ttl *t = &fw->arith.ttl;
        bool new_ttl =
            m->reply.created || (t->touch_pos >= 0 && !(t->t_pos >= 0 && t->t_pos < t->touch_pos));
        a.arith.ttl_reported =
            kv_ttl_left(new_ttl && m->reply.has_record ? m->reply.rec.expiry : m->reply.old_expiry);
        bool incr = fw->arith.incr;
        if (ok && m->reply.result == WIRE_RMW_NOT_FOUND) {
            if (incr)
                STAT_INCR(&w->stats, incr_misses);
            else
                STAT_INCR(&w->stats, decr_misses);
        } else if (stored && !m->reply.created) {
            if (incr)
                STAT_INCR(&w->stats, incr_hits);
            else
                STAT_INCR(&w->stats, decr_hits);
        }
        break;
    }
    default: break;
    }
    fe_call_done(fw->call, &a);
    mem_free(MEM_CONN, fw, sizeof(*fw));
}

/* Reports a set to the front end. */
static void fe_write_report(struct op *op)
{
    struct fe_wait *fw = op->owner;
    struct wop *wo = (struct wop *)op;
    struct fe_answer a = {.result = op->status == CST_OK ? FE_STORED : fe_of_cst(op->status)};
    if (op->status == CST_OK)
        a.cas = wo->rec->version.hlc;
    STAT_INCR(&fw->w->stats, cmd_set);
    fe_call_done(fw->call, &a);
    mem_free(MEM_CONN, fw, sizeof(*fw));
}

static struct fe_wait *fe_wait_new(struct worker *w, struct fe_call *call, enum fe_kind kind)
{
    struct fe_wait *fw = mem_calloc(MEM_CONN, 1, sizeof(*fw));
    if (fw == NULL) {
        struct fe_answer a = {.result = FE_NO_MEMORY};
        fe_call_done(call, &a); /* NOTE: the front end accepts an answer now
                                   only for out-of-memory; see call.h */
        return NULL;
    }
    fw->call = call;
    fw->w = w;
    fw->kind = kind;
    return fw;
}

/* Starts an RMW for the front end. */
static void fe_rmw(struct worker *w, struct fe_wait *fw, const struct wire_rmw *q)
{
    struct loop *lp = loop_of(w);
    struct wire_rmw full = *q;
    full.read_cl = (uint8_t)lp->co->cfg.read_cl;
    full.write_cl = (uint8_t)lp->co->cfg.write_cl;
    if (mop_start(lp, &full, false, fe_rmw_report, fw) == NULL) {
        struct fe_answer a = {.result = FE_NO_MEMORY};
        fe_call_done(fw->call, &a);
        mem_free(MEM_CONN, fw, sizeof(*fw));
    }
}

static void co_get_async(void *wctx, const char *key, size_t nkey, bool touch, rel_time_t exptime,
                         struct fe_call *call)
{
    struct worker *w = wctx;
    struct fe_wait *fw = fe_wait_new(w, call, touch ? FK_GAT : FK_GET);
    if (fw == NULL)
        return;
    fw->ttl = (struct fe_meta_ttl)FE_META_TTL_NONE;
    if (touch) {
        struct wire_rmw q = {
            .op = WIRE_RMW_TOUCH,
            .rflags = WIRE_RMW_RETURN,
            .key = (const uint8_t *)key,
            .key_len = nkey,
            .expiry = kv_expiry_of(exptime),
        };
        fe_rmw(w, fw, &q);
        return;
    }
    struct loop *lp = loop_of(w);
    if (rop_start(lp, key, nkey, lp->co->cfg.read_cl, fe_read_report, fw) == NULL) {
        struct fe_answer a = {.result = FE_NO_MEMORY};
        fe_call_done(call, &a);
        mem_free(MEM_CONN, fw, sizeof(*fw));
    }
}

static void co_meta_get_async(void *wctx, const char *key, size_t nkey,
                              const struct fe_meta_ttl *ttl, bool no_bump, struct fe_call *call)
{
    (void)no_bump; /* no LRU on a node */
    struct worker *w = wctx;
    bool touch = ttl->touch_pos >= 0 && (ttl->fail_pos < 0 || ttl->touch_pos < ttl->fail_pos);
    struct fe_wait *fw = fe_wait_new(w, call, touch ? FK_MG_T : FK_MG);
    if (fw == NULL)
        return;
    fw->ttl = *ttl;
    if (touch) {
        struct wire_rmw q = {
            .op = WIRE_RMW_TOUCH,
            .rflags = WIRE_RMW_RETURN,
            .key = (const uint8_t *)key,
            .key_len = nkey,
            .expiry = kv_expiry_of(ttl->touch_exptime),
        };
        fe_rmw(w, fw, &q);
        return;
    }
    struct loop *lp = loop_of(w);
    if (rop_start(lp, key, nkey, lp->co->cfg.read_cl, fe_read_report, fw) == NULL) {
        struct fe_answer a = {.result = FE_NO_MEMORY};
        fe_call_done(call, &a);
        mem_free(MEM_CONN, fw, sizeof(*fw));
    }
}

static void co_store_async(void *wctx, void *item, enum fe_store_mode mode, uint64_t cas_in,
                           unsigned mflags, struct fe_call *call)
{
    (void)mflags; /* no stale items on a node: ms I stores as a plain cas */
    struct worker *w = wctx;
    struct fe *fe = w->fe;
    struct fe_item_view v;
    fe->xo->view(fe->exec, item, &v);
    struct fe_wait *fw = fe_wait_new(w, call, FK_STORE);
    if (fw == NULL) {
        fe->xo->release(fe->exec, item);
        return;
    }
    fw->mode = mode;
    struct loop *lp = loop_of(w);
    if (mode == FE_SET) {
        /* a blind write: the version and expiry are chosen here, once */
        struct lsm_record rec = {
            .key = (const uint8_t *)v.key,
            .key_len = v.nkey,
            .value = (const uint8_t *)v.value,
            .value_len = v.nvalue,
            .flags = v.flags,
            .expiry = kv_item_expiry(item),
            .version = {hlc_now(lp->co->clock), lp->co->cfg.short_id},
        };
        struct lsm_record *copy = NULL;
        if (lsm_record_copy(&rec, &copy) != ST_OK ||
            wop_start(lp, copy, lp->co->cfg.write_cl, false, fe_write_report, fw) == NULL) {
            struct fe_answer a = {.result = FE_NO_MEMORY};
            fe_call_done(call, &a);
            mem_free(MEM_CONN, fw, sizeof(*fw));
        }
        fe->xo->release(fe->exec, item);
        return;
    }
    static const uint8_t ops[] = {
        [FE_ADD] = WIRE_RMW_ADD,       [FE_REPLACE] = WIRE_RMW_REPLACE,
        [FE_APPEND] = WIRE_RMW_APPEND, [FE_PREPEND] = WIRE_RMW_PREPEND,
        [FE_CAS] = WIRE_RMW_CAS,
    };
    struct wire_rmw q = {
        .op = ops[mode],
        .key = (const uint8_t *)v.key,
        .key_len = v.nkey,
        .value = (const uint8_t *)v.value,
        .value_len = v.nvalue,
        .flags = v.flags,
        .expiry = kv_item_expiry(item),
        .cas_in = cas_in,
    };
    fe_rmw(w, fw, &q);
    fe->xo->release(fe->exec, item);
}

static void co_remove_async(void *wctx, const char *key, size_t nkey, uint64_t cas_in,
                            struct fe_call *call)
{
    struct worker *w = wctx;
    struct fe_wait *fw = fe_wait_new(w, call, FK_DELETE);
    if (fw == NULL)
        return;
    struct wire_rmw q = {
        .op = WIRE_RMW_DELETE,
        .key = (const uint8_t *)key,
        .key_len = nkey,
        .cas_in = cas_in,
    };
    fe_rmw(w, fw, &q);
}

static void co_touch_async(void *wctx, const char *key, size_t nkey, rel_time_t exptime,
                           struct fe_call *call)
{
    struct worker *w = wctx;
    struct fe_wait *fw = fe_wait_new(w, call, FK_TOUCH);
    if (fw == NULL)
        return;
    struct wire_rmw q = {
        .op = WIRE_RMW_TOUCH,
        .key = (const uint8_t *)key,
        .key_len = nkey,
        .expiry = kv_expiry_of(exptime),
    };
    fe_rmw(w, fw, &q);
}

static void co_delta_async(void *wctx, const char *key, size_t nkey, bool incr, uint64_t delta,
                           uint64_t cas_in, struct fe_call *call)
{
    struct worker *w = wctx;
    struct fe_wait *fw = fe_wait_new(w, call, FK_DELTA);
    if (fw == NULL)
        return;
    fw->arith = (struct fe_meta_arith){.incr = incr, .ttl = FE_META_TTL_NONE};
    struct wire_rmw q = {
        .op = incr ? WIRE_RMW_INCR : WIRE_RMW_DECR,
        .key = (const uint8_t *)key,
        .key_len = nkey,
        .cas_in = cas_in,
        .delta = delta,
    };
    fe_rmw(w, fw, &q);
}

static void co_meta_delete_async(void *wctx, const char *key, size_t nkey, bool has_cas,
                                 uint64_t cas_in, bool invalidate, bool new_ttl, rel_time_t exptime,
                                 struct fe_call *call)
{
    /* no stale items on a node: md I deletes (docs/NODE.md) */
    (void)invalidate;
    (void)new_ttl;
    (void)exptime;
    struct worker *w = wctx;
    struct fe_wait *fw = fe_wait_new(w, call, FK_MD);
    if (fw == NULL)
        return;
    struct wire_rmw q = {
        .op = WIRE_RMW_DELETE,
        .key = (const uint8_t *)key,
        .key_len = nkey,
        .cas_in = has_cas ? cas_in : 0,
    };
    fe_rmw(w, fw, &q);
}

static void co_meta_delta_async(void *wctx, const char *key, size_t nkey,
                                const struct fe_meta_arith *a, struct fe_call *call)
{
    struct worker *w = wctx;
    struct fe_wait *fw = fe_wait_new(w, call, FK_MA);
    if (fw == NULL)
        return;
    fw->arith = *a;
    bool retouch = a->ttl.touch_pos >= 0;
    struct wire_rmw q = {
        .op = a->incr ? WIRE_RMW_INCR : WIRE_RMW_DECR,
        .rflags = (uint8_t)(WIRE_RMW_RETURN | (a->vivify ? WIRE_RMW_VIVIFY : 0) |
                            (retouch ? WIRE_RMW_RETOUCH : 0)),
        .key = (const uint8_t *)key,
        .key_len = nkey,
        .expiry = a->vivify ? kv_expiry_of(a->ttl.vivify_exptime) : 0,
        .expiry2 = retouch ? kv_expiry_of(a->ttl.touch_exptime) : 0,
        .cas_in = a->cas_in,
        .delta = a->delta,
        .initial = a->initial,
    };
    fe_rmw(w, fw, &q);
}

const struct fe_exec_ops *coord_exec(const struct fe_exec_ops *inner, struct fe_exec_ops *storage)
{
    *storage = *inner;
    storage->get_async = co_get_async;
    storage->meta_get_async = co_meta_get_async;
    storage->store_async = co_store_async;
    storage->remove_async = co_remove_async;
    storage->touch_async = co_touch_async;
    storage->delta_async = co_delta_async;
    storage->meta_delete_async = co_meta_delete_async;
    storage->meta_delta_async = co_meta_delta_async;
    return storage;
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
        if (mop_start(lp, q, true, serve_report, sw) != NULL)
            return;
        mem_free(MEM_CONN, sw, sizeof(*sw));
    }
    done(arg, WIRE_ERR_INTERNAL, "out of memory", NULL);
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
    snprintf(co->cluster_name, sizeof(co->cluster_name), "%s", cfg->cluster_name);
    snprintf(co->addr, sizeof(co->addr), "%s", cfg->addr);
    co->cfg.cluster_name = co->cluster_name;
    co->cfg.addr = co->addr;
    co->kv = kv;
    co->db = db;
    co->clock = clock;
    co->members = members;
    co->nloops = nloops;
    *out = co;
    return ST_OK;
}

enum st_status coord_loop_start(struct coord *co, unsigned i, struct event_base *base)
{
    struct loop *lp = &co->loops[i];
    lp->co = co;
    lp->index = i;
    lp->base = base;
    wire_buf_init(&lp->scratch);
    struct peerlinks_config pc = {
        .cluster_name = co->cfg.cluster_name,
        .short_id = co->cfg.short_id,
        .generation = co->cfg.generation,
        .addr = co->cfg.addr,
        .frame_max = co->cfg.frame_max,
        .max_inflight = co->cfg.max_inflight,
        .timeout_ms = co->cfg.timeout_ms,
        .retry_ms = 200,
    };
    memcpy(pc.node_id, co->cfg.node_id, WIRE_NODE_ID_LEN);
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
    run_reports(lp);
    while (lp->ops != NULL) {
        /* ops that never decided (none should remain): fail and report */
        struct op *op = lp->ops;
        op->outstanding = 0;
        op_decide(op, CST_UNAVAILABLE);
        run_reports(lp);
        if (lp->ops == op) /* reported earlier but held: free it now */
            op_maybe_free(op);
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
