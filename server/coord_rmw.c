/*
 * coord_rmw.c - read-modify-writes (coord_op.h): run at the key's primary,
 * the first live replica of its preference list. There: a read at R
 * brings our replica up to date (its blocking repair writes the newest
 * version here), kvstore_rmw decides under the key's lock on our replica and
 * writes the result at a new version, which is then written to the other
 * replicas at W. Elsewhere: one RMW frame to the primary, whose answer
 * is ours.
 */
#include "server/coord_op.h"

#include <string.h>

#include "common/mem.h"
#include "kvstore/kvstore.h"
#include "server/kv.h"
#include "storage/include/lsm.h"

/* ---------------------------------------------------------------- RMW */

void coord_rmw_free(struct op *op)
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
    coord_op_decide(&m->base, child->status);
}

/* Runs the RMW on our replica and replicates what it wrote. */
static void mop_apply(struct mop *m)
{
    struct loop *lp = m->base.lp;
    struct coord *co = lp->co;
    if (lp->stopping) {
        coord_op_decide(&m->base, CST_UNAVAILABLE);
        return;
    }
    if (kvstore_rmw(kv_kvstore(co->kv), &m->q, &m->reply, &m->rec) != ST_OK) {
        COUNT(lp, coord_failures);
        coord_op_decide(&m->base, CST_FAILED);
        return;
    }
    if (m->rec == NULL) {
        coord_op_decide(&m->base, CST_OK);
        return;
    }
    struct lsm_record *copy = NULL;
    struct wop *w = NULL;
    if (lsm_record_copy(m->rec, &copy) == ST_OK)
        w = coord_write_start(lp, copy, (enum wire_cl)m->q.write_cl, true, true, mop_after_write,
                              m);
    if (w == NULL) {
        coord_op_decide(&m->base, CST_FAILED);
        return;
    }
    m->base.outstanding++; /* the child reports to us */
}

static void mop_after_read(struct op *child)
{
    struct mop *m = child->owner;
    m->base.outstanding--;
    if (child->status != CST_OK)
        coord_op_decide(&m->base, child->status);
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
            struct lsm_record lr;
            kvstore_lsm_of(&rep.rec, &lr);
            ok = lsm_record_copy(&lr, &m->rec) == ST_OK;
            if (ok) {
                rep.rec.key = m->rec->key;
                rep.rec.value = m->rec->value;
            }
        }
        if (ok) {
            m->reply = rep;
            coord_op_decide(&m->base, CST_OK);
        } else {
            COUNT(lp, coord_failures);
            coord_op_decide(&m->base, CST_FAILED);
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
        coord_op_decide(&m->base, st);
    } else {
        if (r == PEER_TIMEOUT || r == PEER_CLOSED)
            COUNT(lp, coord_timeouts);
        coord_op_decide(&m->base, coord_cst_of_peer(r));
    }
    coord_op_maybe_free(&m->base);
}

/*
 * An RMW (q copied): at the key's primary (the first live replica) when
 * that is us, else forwarded to it. serve: it was forwarded to us, so we
 * refuse (NOT_PRIMARY) rather than forward again.
 */
struct mop *coord_rmw_start(struct loop *lp, const struct wire_rmw *q, bool serve,
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
    coord_op_init(lp, &m->base, OP_RMW, report, owner);
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
    coord_place(lp, q->key, q->key_len, &p);
    unsigned primary = p.n;
    for (unsigned i = 0; i < p.n && primary == p.n; i++)
        if (p.live[i])
            primary = i;
    bool enough = p.n > 0 && p.nlive >= coord_needed((enum wire_cl)q->write_cl, p.n) &&
                  p.nlive >= coord_needed((enum wire_cl)q->read_cl, p.n);
    if (primary == p.n || (p.self[primary] && !enough)) {
        /* refused before anything is applied: the primary checks the
         * levels it will need before it runs the command */
        COUNT(lp, coord_unavailable);
        coord_op_decide(&m->base, CST_UNAVAILABLE);
    } else if (p.self[primary]) {
        if (q->read_cl == WIRE_CL_ONE || p.n == 1 || q->op == WIRE_RMW_SET) {
            /* our replica is the one read; a set reads nothing (its
             * version is above our replica's and our clock's, as a
             * coordinator's set is) */
            mop_apply(m);
        } else {
            struct rop *r = coord_read_start(lp, q->key, q->key_len, (enum wire_cl)q->read_cl,
                                             mop_after_read, m);
            if (r == NULL)
                coord_op_decide(&m->base, CST_FAILED);
            else
                m->base.outstanding++;
        }
    } else if (serve) {
        COUNT(lp, coord_not_primary);
        coord_op_decide(&m->base, CST_NOT_PRIMARY);
    } else {
        COUNT(lp, coord_rmws_forwarded);
        wire_buf_clear(&lp->scratch);
        wire_compose_rmw(&lp->scratch, &m->q);
        enum peer_result r =
            lp->scratch.err != ST_OK
                ? PEER_OVERLOADED
                : peerlink_request(p.link[primary], WIRE_OP_RMW, 0, lp->scratch.data,
                                   lp->scratch.len, mop_forward_done, m);
        if (r == PEER_OK)
            m->base.outstanding++;
        else
            coord_op_decide(&m->base, CST_UNAVAILABLE);
    }
    return m;
}
