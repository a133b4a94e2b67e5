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
#include "frontend/exec.h"

struct cluster;
struct members;
struct fe;
struct lsm_db;
struct kv;

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
void kv_destroy(struct kv **kv);
