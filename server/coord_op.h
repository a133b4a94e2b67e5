/*
 * coord_op.h - the coordinator's insides, shared by its files (not a
 * public interface: coord.h is). An "op" is one coordinated operation on
 * one event loop: a write to the replicas (coord_write.c), a read with
 * digests and repair (coord_read.c) or an RMW at the primary
 * (coord_rmw.c); the front end's commands (coord_exec.c) and the cluster
 * port (coord.c) start them and are told the outcome through report().
 *
 * Rules every op keeps: it decides once (coord_op_decide), its report
 * runs on a later loop turn (never inside the call that started it), and
 * it is freed only when reported and nothing of it is in flight
 * (`outstanding`: peer requests and child ops), so late answers still
 * land in live memory.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/peerlink.h"
#include "common/ring.h"
#include "common/wire.h"
#include "server/coord.h"

struct event;
struct lsm_record;
struct members_view;
struct peerlink;
struct peerlinks;

/* clang-format off */
#define COORD_COUNTERS(X)                                                   \
    X(coord_reads) X(coord_writes) X(coord_rmws) X(coord_rmws_forwarded)    \
    X(coord_rmws_served) X(coord_not_primary) X(coord_unavailable)          \
    X(coord_timeouts) X(coord_failures) X(coord_replica_failures)           \
    X(coord_digest_mismatches) X(coord_read_repairs) X(coord_async_repairs)     \
    X(coord_hints) X(coord_hint_failures) X(coord_clock_refusals)           \
    X(coord_reads_served) X(coord_writes_served)
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
    struct handoff *handoff; /* NULL: no hints */
    unsigned nloops;
    struct loop *loops;
};

#define COUNT(lp, name) atomic_fetch_add_explicit(&(lp)->name, 1, memory_order_relaxed)

/* The replicas of a key in this loop's view, in preference order. */
struct placement {
    unsigned n;
    unsigned nlive;
    uint32_t node[RING_MAX_REPLICAS];
    bool live[RING_MAX_REPLICAS];
    bool self[RING_MAX_REPLICAS];
    /* the link to each (NULL: ourselves or no address): stable for the
     * loop's life, unlike node numbers, which name nodes of one view */
    struct peerlink *link[RING_MAX_REPLICAS];
};

/* Places key on the loop's current view (refreshed when it moved). */
void coord_place(struct loop *lp, const void *key, size_t nkey, struct placement *p);
/* Replicas needed at cl among n (ANY: 1, which a stored hint satisfies). */
unsigned coord_needed(enum wire_cl cl, unsigned n);
/* A peer request's failure as an operation's status. */
enum cst coord_cst_of_peer(enum peer_result r);

void coord_op_init(struct loop *lp, struct op *op, enum op_kind kind, op_report_fn report,
                   void *owner);
/* Decides op (once) and queues its report for the next loop turn. */
void coord_op_decide(struct op *op, enum cst status);
/* Frees op once it is reported and nothing of it is in flight. */
void coord_op_maybe_free(struct op *op);
/* Runs the queued reports (the loop's event, and teardown). */
void coord_run_reports(struct loop *lp);

/* ---- writes (coord_write.c) */

enum rep_state { REP_IDLE, REP_ASKED, REP_DONE, REP_FAILED };

struct wrep {
    struct wop *w;
    uint32_t node;
    uint8_t state;
};

struct wop {
    struct op base;
    enum wire_cl cl;
    struct members_view *view; /* held: the replicas' ids, for hints */
    unsigned need, acks, n;
    bool indeterminate; /* a replica timed out or closed with it in flight */
    bool storage_failed;
    struct lsm_record *rec; /* owned */
    struct wrep reps[RING_MAX_REPLICAS];
};

/* The body of a WRITE of one record, in lp->scratch. */
bool coord_compose_write(struct loop *lp, const struct lsm_record *rec);
/*
 * Writes rec (taken; its version and expiry already chosen) to the
 * replicas of its key at cl; self_applied: this node's replica has it
 * already (an RMW at the primary); fresh: its version was stamped just
 * now by this node (a client's write: the replicas' WRITE carries FRESH),
 * not a version chosen elsewhere earlier (a proxy's journal). NULL when
 * out of memory (rec freed).
 */
struct wop *coord_write_start(struct loop *lp, struct lsm_record *rec, enum wire_cl cl,
                              bool self_applied, bool fresh, op_report_fn report, void *owner);
void coord_write_free(struct op *op);

/* ---- reads (coord_read.c) */

struct rrep {
    struct rop *r;
    struct peerlink *link; /* NULL for ourselves */
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

/* Reads key at cl: the result (r->result, NULL for none) is the newest
 * version of the read set, tombstones and expired records included. */
struct rop *coord_read_start(struct loop *lp, const void *key, size_t nkey, enum wire_cl cl,
                             op_report_fn report, void *owner);
void coord_read_free(struct op *op);

/* ---- RMW (coord_rmw.c) */

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

/* An RMW (q copied) at the key's primary: run here when we are it, else
 * forwarded; serve: it was forwarded to us (refused when we are not the
 * primary). NULL when out of memory. */
struct mop *coord_rmw_start(struct loop *lp, const struct wire_rmw *q, bool serve,
                            op_report_fn report, void *owner);
void coord_rmw_free(struct op *op);
