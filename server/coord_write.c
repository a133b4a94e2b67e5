/*
 * coord_write.c - a write at a consistency level (coord_op.h): one WRITE
 * of the record, composed once, to each replica of its key (this node's
 * own through the engine), decided at W acknowledgements, or as soon as W
 * can no longer be reached. A replica that is down, failed or timed out
 * gets a hint (server/handoff.h), which counts toward W only at ANY
 * (strict quorums: a hint is not a replica).
 */
#include "kvstore/kvstore.h"
#include "server/coord_op.h"

#include "common/log.h"
#include "common/mem.h"
#include "server/handoff.h"
#include "server/members.h"
#include "server/replica.h"
#include "storage/include/lsm.h"

/* -------------------------------------------------------------- writes */

void coord_write_free(struct op *op)
{
    struct wop *w = (struct wop *)op;
    lsm_record_free(&w->rec);
    members_view_release(&w->view);
    mem_free(MEM_CONN, w, sizeof(*w));
}

static void wop_check(struct wop *w)
{
    if (w->base.decided)
        return;
    if (w->acks >= w->need) {
        coord_op_decide(&w->base, CST_OK);
        return;
    }
    if (w->acks + w->base.outstanding >= w->need)
        return;
    struct loop *lp = w->base.lp;
    /* Some replica may hold the write (one timed out, or some acknowledged
     * short of W): the outcome is indeterminate, which the client learns
     * as the timeout line; only a write no replica took is "unavailable"
     * or a storage error. */
    bool maybe_applied = w->indeterminate || w->acks > 0;
    enum cst st = maybe_applied ? CST_TIMEOUT : w->storage_failed ? CST_FAILED : CST_UNAVAILABLE;
    if (st == CST_TIMEOUT)
        COUNT(lp, coord_timeouts);
    coord_op_decide(&w->base, st);
}

/* A replica that missed the write: a hint for it, synced first at ANY,
 * where it counts as the acknowledgement. */
static void wop_hint(struct wop *w, const struct wrep *rep)
{
    struct loop *lp = w->base.lp;
    if (lp->co->handoff == NULL || w->view == NULL)
        return;
    struct wire_record wr;
    kvstore_wire_of(w->rec, &wr);
    bool any = w->cl == WIRE_CL_ANY;
    if (handoff_store(lp->co->handoff, ring_node(w->view->ring, rep->node)->id, &wr, any) !=
        ST_OK) {
        COUNT(lp, coord_hint_failures);
        return;
    }
    COUNT(lp, coord_hints);
    if (any)
        w->acks++;
}

/* True for an ERROR saying the version is too far behind the replica's
 * clock (WIRE_ERR_CLOCK): not a storage failure, a skewed coordinator. */
static bool clock_refused(const struct wire_frame *f)
{
    struct wire_error e;
    return wire_parse_error(f->body, f->body_len, &e) == WIRE_OK && e.code == WIRE_ERR_CLOCK;
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
        else if (r == PEER_ERROR && !clock_refused(f))
            w->storage_failed = true;
        else if (r == PEER_ERROR)
            COUNT(w->base.lp, coord_clock_refusals); /* our clock is behind theirs */
        wop_hint(w, rep);
    }
    wop_check(w);
    coord_op_maybe_free(&w->base);
}

/* The body of a WRITE of one record, in lp->scratch. */
bool coord_compose_write(struct loop *lp, const struct lsm_record *rec)
{
    struct wire_record wr;
    kvstore_wire_of(rec, &wr);
    wire_buf_clear(&lp->scratch);
    wire_compose_write(&lp->scratch, &wr, 1);
    return lp->scratch.err == ST_OK;
}

/*
 * Writes rec (taken; its version and expiry already chosen) to the
 * replicas of its key at cl; self_applied: this node's replica has it
 * already (an RMW at the primary). NULL when out of memory (rec freed).
 */
struct wop *coord_write_start(struct loop *lp, struct lsm_record *rec, enum wire_cl cl,
                              bool self_applied, bool fresh, op_report_fn report, void *owner)
{
    struct wop *w = mem_calloc(MEM_CONN, 1, sizeof(*w));
    if (w == NULL) {
        lsm_record_free(&rec);
        return NULL;
    }
    coord_op_init(lp, &w->base, OP_WRITE, report, owner);
    w->rec = rec;
    COUNT(lp, coord_writes);
    struct placement p;
    coord_place(lp, rec->key, rec->key_len, &p);
    w->n = p.n;
    w->cl = cl;
    w->need = p.n > 0 ? coord_needed(cl, p.n) : 1;
    if (lp->view != NULL)
        w->view = members_view_retain(lp->view);
    bool any = cl == WIRE_CL_ANY && lp->co->handoff != NULL && p.n > 0;
    if ((p.nlive < w->need && !any) || !coord_compose_write(lp, rec)) {
        /* an RMW's result is already on our replica: not "nothing sent" */
        if (self_applied)
            COUNT(lp, coord_timeouts);
        else
            COUNT(lp, coord_unavailable);
        coord_op_decide(&w->base, self_applied ? CST_TIMEOUT : CST_UNAVAILABLE);
        return w;
    }
    for (unsigned i = 0; i < p.n; i++) {
        struct wrep *rep = &w->reps[i];
        *rep = (struct wrep){.w = w, .node = p.node[i], .state = REP_FAILED};
        if (p.self[i]) {
            enum st_status st = ST_OK;
            if (!self_applied) {
                struct wire_record wr;
                kvstore_wire_of(rec, &wr);
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
                   peerlink_request(p.link[i], WIRE_OP_WRITE, fresh ? WIRE_FLAG_FRESH : 0,
                                    lp->scratch.data, lp->scratch.len, wop_done, rep) == PEER_OK) {
            rep->state = REP_ASKED;
            w->base.outstanding++;
        } else {
            COUNT(lp, coord_replica_failures);
            wop_hint(w, rep);
        }
    }
    wop_check(w);
    return w;
}
