/*
 * coord.h - the coordinator: strata-node's executor for client commands
 * in a cluster (docs/NODE.md, "The coordinator"). Every command is placed
 * on the ring (members' view) and runs against the key's N replicas at a
 * consistency level: plain writes (set, ms) are stamped with a version
 * once and sent to every replica, acknowledged after W; reads take data
 * from one replica and digests from the others up to R, repairing what
 * differs; read-modify-writes (add, cas, incr, delete, touch, ...) run at
 * the key's primary, which serialises them per key on its replica
 * (kvstore_rmw) and replicates the result. This node's own replica is read and
 * written on its engine directly; the others over the cluster protocol,
 * through links each event loop owns (common/peerlink.h).
 *
 * The coordinator runs on every worker and on the main loop (where the
 * cluster port serves the RMWs that peers forward here): one "loop" each,
 * never shared between threads. Operations without a network part (flush,
 * me, stats, the first half of a store) stay kv.c's.
 */
#pragma once

#include <stdint.h>

#include "common/hlc.h"
#include "common/peerlink.h"
#include "common/status.h"
#include "common/wire.h"
#include "frontend/exec.h"

struct event_base;
struct handoff;
struct kv;
struct lsm_db;
struct members;
struct coord;

struct coord_config {
    unsigned replicas;        /* N: replicas of every key (1..RING_MAX_REPLICAS) */
    enum wire_cl read_cl;     /* R for get/gets/mg and an RMW's read */
    enum wire_cl write_cl;    /* W for writes and an RMW's write */
    unsigned timeout_ms;      /* per request to a peer */
    unsigned max_inflight;    /* per link to a peer */
    unsigned read_repair_pct; /* chance (0..100) that a read also checks the
                                 replicas outside its read set */
    struct peer_self self;    /* as our links introduce us */
};

/* nloops: the workers plus one for the main loop. kv, db, clock and
 * members are borrowed and must outlive the coordinator. */
enum st_status coord_create(const struct coord_config *cfg, struct kv *kv, struct lsm_db *db,
                            struct hlc *clock, struct members *members, unsigned nloops,
                            struct coord **out);
/* Writes a replica missed go to h as hints (before the loops run). */
void coord_attach_handoff(struct coord *co, struct handoff *h);
/* Sets up loop i on base (worker i's; the main loop's is nloops-1), before
 * that loop runs. ST_NOMEM. */
enum st_status coord_loop_start(struct coord *co, unsigned i, struct event_base *base);
/* Fails what is still in flight on loop i and closes its links; after its
 * thread has stopped running the loop, before the base is freed. */
void coord_loop_stop(struct coord *co, unsigned i);
/* After every loop is stopped. NULLs *co; accepts NULL. */
void coord_destroy(struct coord **co);

/* The executor: `inner` (kv_exec_ops) with the coordinator's asynchronous
 * operations in place of its own. Fills *storage, returns it. */
const struct fe_exec_ops *coord_exec(const struct fe_exec_ops *inner, struct fe_exec_ops *storage);

/*
 * An RMW a peer forwarded (the cluster port, main loop): runs it as the
 * key's primary. done(arg, 0, NULL, reply) with the reply (valid during
 * the call), or done(arg, code, msg, NULL) with a wire_error_code
 * (NOT_PRIMARY when this node is not the first live replica in its view).
 * Later, on the main loop; q is copied.
 */
typedef void (*coord_rmw_done)(void *arg, uint16_t err, const char *msg,
                               const struct wire_rmw_reply *reply);
struct lsm_record;
void coord_serve_rmw(struct coord *co, const struct wire_rmw *q, coord_rmw_done done, void *arg);

/*
 * A read a client of the cluster (strata-proxy) asked this node to
 * coordinate (the cluster port, main loop): key at level cl, as a client's
 * get here would read it. done(arg, 0, NULL, rec) with the live record or
 * NULL (valid during the call), or done(arg, code, msg, NULL) with a
 * wire_error_code. Later, on the main loop; key is copied.
 */
typedef void (*coord_read_done)(void *arg, uint16_t err, const char *msg,
                                const struct lsm_record *rec);
void coord_serve_read(struct coord *co, const void *key, size_t nkey, enum wire_cl cl,
                      coord_read_done done, void *arg);
/*
 * A record a client of the cluster (strata-proxy's write-behind drainer)
 * asked this node to write to its key's replicas at level cl, at the
 * version it carries: an old one maybe, merged by version as a hint is
 * (no FRESH). done(arg, 0, NULL) once written at cl, or done(arg, code,
 * msg) with a wire_error_code. Later, on the main loop; rec is copied.
 */
typedef void (*coord_write_done)(void *arg, uint16_t err, const char *msg);
struct wire_record;
void coord_serve_write(struct coord *co, const struct wire_record *rec, enum wire_cl cl,
                       coord_write_done done, void *arg);
/* N, the replicas of every key. */
unsigned coord_replicas(const struct coord *co);

/* `stats cluster`'s coordinator part. Any thread. */
void coord_stats(struct coord *co, void (*emit)(void *arg, const char *name, const char *value),
                 void *arg);
