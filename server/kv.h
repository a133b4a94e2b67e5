/*
 * kv.h - memcached's commands on the node's own engine: the executor
 * strata-node's front end runs (frontend/exec.h) until replication puts a
 * coordinator in front of it, and what a replica applies locally.
 *
 * Every record carries a version from the node's hybrid logical clock:
 * the CAS unique a client sees is that version's HLC. Writes that read
 * first (add, replace, cas, append, prepend, incr/decr, touch, delete
 * with its NOT_FOUND) are serialised per key by a striped lock, so each is
 * atomic against every other write of the same key on this node; a plain
 * set takes the lock too, so it never slips between another command's
 * read and write. Reads take no lock. Differences from memcached's cache
 * semantics are in docs/NODE.md.
 */
#pragma once

#include <stdint.h>

#include "common/hlc.h"
#include "common/status.h"
#include "common/wire.h"
#include "frontend/exec.h"

struct cluster;
struct coord;
struct handoff;
struct members;
struct repair;
struct fe;
struct lsm_db;
struct lsm_record;
struct kv;
struct kvstore;

/* The executor; its context is the struct kv, each worker's is the
 * front end's worker (its counter shard). */
extern const struct fe_exec_ops kv_exec_ops;

/* fe (whose exec must be this kv), db and clock are borrowed and must
 * outlive the kv. node_id: the short id stamped into versions. */
enum st_status kv_create(struct fe *fe, struct lsm_db *db, struct hlc *clock, uint16_t node_id,
                         size_t max_value_len, struct kv **out);
/* `stats cluster` reads the membership view and the cluster port's
 * counters (NULL: none). Before the workers start. */
void kv_attach_cluster(struct kv *kv, struct cluster *cluster, struct members *members);
/* The coordinator in front of this kv (its operations find their loop
 * through it) and its `stats cluster` part. Before the workers start. */
void kv_attach_coord(struct kv *kv, struct coord *coord);
struct coord *kv_coord(const struct kv *kv);
/* `stats hints` reads it. Before the workers start. */
void kv_attach_handoff(struct kv *kv, struct handoff *h);
/* `stats repair` and the `repair` command go to it. Before the workers
 * start. */
void kv_attach_repair(struct kv *kv, struct repair *r);
void kv_destroy(struct kv **kv);

/* The absolute expiry (unix seconds, 0 never) of an item from kv's
 * reserve(). */
uint64_t kv_item_expiry(const void *item);

/* An item the front end can hold (view/release of kv_exec_ops) holding a
 * copy of the record's fields; NULL when out of memory. Any thread. */
void *kv_item_copy(const struct wire_record *rec);

/* The RMWs and per-key locks on the node's engine (kvstore/kvstore.h):
 * what the key's primary runs (docs/NODE.md, "The coordinator"). */
struct kvstore *kv_kvstore(const struct kv *kv);
