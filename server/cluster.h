/*
 * cluster.h - the node's cluster port (7311 by default): the server side
 * of the internal protocol (docs/formats/cluster-protocol.md) - the
 * handshake, PING, and a replica's READ and WRITE on the local engine.
 * RMWs forwarded by peers go to the coordinator (coord.h); gossip rounds
 * to membership (members.h).
 *
 * Runs on the event base it is given (strata-node's main loop). A
 * malformed, oversized or corrupt frame closes that connection and is
 * counted; the node stays up. Counters are atomics any thread may read.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/hlc.h"
#include "common/status.h"
#include "common/wire.h"

struct event_base;
struct lsm_db;
struct members;
struct coord;
struct repair;
struct cluster;

struct cluster_config {
    const char *listen_addr;
    unsigned port;
    const char *cluster_name;
    uint8_t node_id[WIRE_NODE_ID_LEN];
    uint16_t short_id;
    uint64_t generation;
    size_t frame_max;   /* largest frame accepted (header included) */
    unsigned max_conns; /* cluster connections; more are closed at once */
};

/* Binds and starts accepting on base. db and clock are borrowed. ST_IO
 * (cannot bind: logged), ST_NOMEM. */
enum st_status cluster_start(const struct cluster_config *cfg, struct event_base *base,
                             struct lsm_db *db, struct hlc *clock, struct cluster **out);
/* Closes every connection and the listener; NULLs *c; accepts NULL.
 * REQUIRES: base's loop is not running callbacks of c (call after it). */
void cluster_stop(struct cluster **c);
/* Gossip SYN and ACK2 frames go to m (members.h). Before the loop runs. */
void cluster_attach_members(struct cluster *c, struct members *m);
/* RMW frames go to co (coord.h), answered when it is done. Before the
 * loop runs. */
void cluster_attach_coord(struct cluster *c, struct coord *co);
/* MERKLE_TREE and RANGE_READ frames go to r (repair.h). Before the loop
 * runs. */
void cluster_attach_repair(struct cluster *c, struct repair *r);
/* "tcp:host:port" actually bound. */
const char *cluster_addr(const struct cluster *c);

/* `stats cluster`: emit(arg, name, value) per counter. Any thread. */
void cluster_stats(struct cluster *c, void (*emit)(void *arg, const char *name, const char *value),
                   void *arg);
