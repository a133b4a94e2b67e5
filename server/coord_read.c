/*
 * coord_read.c - a read at a consistency level (coord_op.h): data from
 * one replica of the read set (ours first: no network), digests from the
 * rest of it; a failed member is replaced by the next live replica. Equal
 * digests answer; different ones fetch data from every member, and the
 * newest version (LWW) is written back to the stale members before the
 * answer (blocking read repair). By chance (read_repair_pct) the live
 * replicas outside the read set are checked after the answer and
 * repaired when older (asynchronous read repair).
 */
#include "kvstore/kvstore.h"
#include "server/coord_op.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "server/replica.h"
#include "storage/include/lsm.h"

/* --------------------------------------------------------------- reads */

/* A repair write to one replica, nobody waiting for it. */
static void repair_done(void *arg, enum peer_result r, const struct wire_frame *f)
{
    (void)arg;
    (void)r;
    (void)f;
}

void coord_read_free(struct op *op)
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
        kvstore_wire_of(rec, &wr);
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
    coord_op_maybe_free(&r->base);
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
        peerlink_request(rep->link, WIRE_OP_READ, data ? 0 : WIRE_FLAG_DIGEST, lp->scratch.data,
                         lp->scratch.len, rop_done, rep) != PEER_OK) {
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
    coord_op_maybe_free(&r->base);
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
        kvstore_wire_of(r->result, &wr);
        enum st_status st = replica_apply(lp->co->db, &wr);
        if (st != ST_OK)
            log_warn("node: read repair of the local replica failed: %s", st_status_name(st));
        return;
    }
    if (!coord_compose_write(lp, r->result))
        return;
    if (peerlink_request(rep->link, WIRE_OP_WRITE, 0, lp->scratch.data, lp->scratch.len,
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
    if (lp->stopping || r->result == NULL || pct == 0 ||
        (pct < 100 && (unsigned)(random() % 100) >= pct))
        return;
    struct placement p;
    coord_place(lp, r->key, r->nkey, &p);
    for (unsigned i = 0; i < r->n && i < p.n; i++) {
        struct rrep *rep = &r->reps[i];
        if (rep->in_set || rep->state != REP_IDLE || !p.live[i] || p.link[i] != rep->link ||
            p.self[i] != rep->self)
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
        coord_op_decide(&r->base, CST_FAILED);
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
        coord_op_decide(&r->base, r->indeterminate ? CST_TIMEOUT : CST_UNAVAILABLE);
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
        coord_op_decide(&r->base, CST_OK);
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
            coord_op_decide(&r->base, CST_FAILED);
            return;
        }
        coord_op_decide(&r->base, CST_OK);
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
struct rop *coord_read_start(struct loop *lp, const void *key, size_t nkey, enum wire_cl cl,
                             op_report_fn report, void *owner)
{
    struct rop *r = mem_calloc(MEM_CONN, 1, sizeof(*r));
    if (r == NULL)
        return NULL;
    coord_op_init(lp, &r->base, OP_READ, report, owner);
    memcpy(r->key, key, nkey);
    r->nkey = nkey;
    COUNT(lp, coord_reads);
    struct placement p;
    coord_place(lp, key, nkey, &p);
    r->n = p.n;
    r->need = p.n > 0 ? coord_needed(cl, p.n) : 1;
    if (p.nlive < r->need) {
        COUNT(lp, coord_unavailable);
        coord_op_decide(&r->base, CST_UNAVAILABLE);
        return r;
    }
    for (unsigned i = 0; i < p.n; i++)
        r->reps[i] = (struct rrep){.r = r, .link = p.link[i], .self = p.self[i]};
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
