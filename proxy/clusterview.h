/*
 * clusterview.h - how strata-proxy places keys on a cluster of
 * strata-nodes: the ring the nodes gossip, learned by asking one of them
 * (RING on the cluster port) every poll interval, on a thread of its own.
 * Each answer is published as an immutable, reference-counted view; the
 * workers keep one and swap it when the version moves (no lock on the
 * request path).
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/peerlink.h"
#include "common/status.h"
#include "common/wire.h"

struct ring;
struct clusterview;

/* A placement snapshot: the ring, each ring node's cluster address and
 * whether the node that answered saw it up. */
struct cview {
    struct ring *ring;
    unsigned replicas;                /* N */
    uint64_t version;                 /* this proxy's publication count */
    char (*addrs)[WIRE_ADDR_MAX + 1]; /* per ring node */
    bool *up;                         /* per ring node */
    _Atomic unsigned refs;
};

struct clusterview_config {
    const char *seeds; /* "host:port[,host:port...]": nodes' cluster ports */
    struct peer_self self;
    unsigned poll_ms;    /* how often the ring is asked for */
    unsigned timeout_ms; /* per request */
};

/* Starts the poller thread. ST_INVAL for no usable seed, ST_NOMEM. */
enum st_status clusterview_start(const struct clusterview_config *cfg, struct clusterview **out);
/* Stops the thread and frees the current view (once unreferenced).
 * Accepts NULL. */
void clusterview_stop(struct clusterview **cv);

/* Waits until a first ring is known or timeout_ms passed; true when one
 * is. */
bool clusterview_wait(struct clusterview *cv, unsigned timeout_ms);

/* The current view, referenced (NULL before the first ring). Any thread. */
struct cview *clusterview_acquire(struct clusterview *cv);
void cview_release(struct cview **v);
/* Moves each time a view is published; lock-free. */
uint64_t clusterview_version(const struct clusterview *cv);

/* Counters for `stats backend`. */
struct clusterview_stats {
    uint64_t polls, poll_failures, rings_published;
    uint64_t last_ring_age_ms; /* since the last answer; UINT64_MAX: never */
    unsigned nodes, nodes_up;
};
void clusterview_stats(struct clusterview *cv, struct clusterview_stats *st);
