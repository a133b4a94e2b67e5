/*
 * repair.h - anti-entropy repair with Merkle trees (docs/REPAIR.md).
 *
 * The initiator (this node, on the service's own thread): for each token
 * range this node replicates and each other live replica of it, both
 * sides build a tree of the range as of one time the initiator picks;
 * roots are compared, then differing subtrees top-down (MERKLE_TREE), and
 * only the token ranges of differing leaves are read from the peer
 * (RANGE_READ) and merged in both directions by version: the peer's newer
 * records are stored here, ours are written there (WRITE). When the
 * replicas agree no key moves. A full cycle runs every `interval_s`
 * (0: only on request), throttled to `rate_bytes` per second.
 *
 * The responder (the cluster port, main loop): builds the tree a peer asks
 * for and keeps it under the peer's session id for the descent, and
 * serves range reads. Its counters and the initiator's are `stats repair`.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/peerlink.h"
#include "common/status.h"
#include "common/wire.h"

struct lsm_db;
struct members;
struct repair;

struct repair_config {
    unsigned replicas;     /* N, as the coordinator places keys */
    unsigned depth;        /* tree depth per range (leaves: 2^depth) */
    unsigned interval_s;   /* a full cycle this often; 0: on request only */
    uint64_t rate_bytes;   /* records moved per second, both ways; 0: no limit */
    uint64_t gc_grace_s;   /* the engines' tombstone grace */
    unsigned lead_ms;      /* as_of = now + lead: above the clock-skew bound */
    unsigned timeout_ms;   /* per request to a peer */
    struct peer_self self; /* as our links introduce us */
};

/* Starts the service thread. db and members are borrowed. ST_NOMEM. */
enum st_status repair_start(const struct repair_config *cfg, struct lsm_db *db,
                            struct members *members, struct repair **out);
/* Stops the thread (a session under way is abandoned: nothing is left
 * half-done, every transfer is a versioned write). NULLs *r; accepts NULL. */
void repair_stop(struct repair **r);

/* Starts a full cycle now (strata-admin repair); false when one is
 * running. Any thread. */
bool repair_request(struct repair *r);

/* The cluster port's side: a MERKLE_TREE request's reply body into out,
 * or a wire_error_code with *msg. Main loop. */
uint16_t repair_serve_merkle(struct repair *r, const struct wire_merkle_req *q,
                             struct wire_buf *out, const char **msg);
/* A RANGE_READ's reply body into out (at most `budget` bytes of records),
 * or a wire_error_code with *msg. Main loop. */
uint16_t repair_serve_range(struct repair *r, const struct wire_range_req *q, size_t budget,
                            struct wire_buf *out, const char **msg);

/* `stats repair`. Any thread. */
void repair_stats(struct repair *r, void (*emit)(void *arg, const char *name, const char *value),
                  void *arg);
