/*
 * members.h - membership on the network: once a second a gossip round
 * (server/gossip.h picks the peers) sends SYN over links this node dials
 * to the peers' cluster ports, handles their ACKs and answers ACK2; the
 * cluster port (cluster.c) answers the SYNs and ACK2s peers send here.
 * After each round the ring is rebuilt if the members' tokens or statuses
 * changed. Main-loop thread; the ring and the view are read by `stats
 * cluster` under a mutex.
 */
#pragma once

#include <stdint.h>

#include <stdatomic.h>

#include "common/peerlink.h"
#include "common/status.h"
#include "common/wire.h"
#include "server/gossip.h"

struct event_base;
struct gossip;
struct hlc;
struct ring;
struct members;

struct members_config {
    struct peer_self self; /* as our links introduce us */
    unsigned replicas;     /* replication factor, for ownership in stats */
    unsigned interval_ms;  /* between gossip rounds; 0: GOSSIP_INTERVAL_MS */
    /* Where the other members' cluster addresses are kept for the next
     * start (written when the ring changes); NULL: nowhere. */
    const char *peers_path;
    /* Until a peer has been heard from (a gossip exchange merged), or this
     * long has passed, the view says not ready: a restarted node knows only
     * itself, and must not serve as a one-node ring. 0: ready at once (no
     * peer to wait for). */
    unsigned ready_wait_ms;
};

/* Starts the rounds on base. g and clock are borrowed. */
enum st_status members_start(const struct members_config *cfg, struct event_base *base,
                             struct gossip *g, struct hlc *clock, struct members **out);
/* Closes the links; NULLs *m; accepts NULL. Main-loop thread. */
void members_stop(struct members **m);

/* The cluster port's side of a round a peer started: its SYN (the ACK
 * body appended to ack) and its ACK2. */
enum gossip_result members_handle_syn(struct members *m, const uint8_t *body, size_t len,
                                      struct wire_buf *ack);
enum gossip_result members_handle_ack2(struct members *m, const uint8_t *body, size_t len);

/*
 * What a coordinator reads to place a request: the ring with each ring
 * node's cluster address and liveness. Immutable but for `state`, which
 * each gossip round refreshes; published anew when the ring changes and
 * kept alive by references, so a worker holds one without a lock and
 * swaps it when members_view_version moves.
 */
struct members_view {
    struct ring *ring;
    uint64_t version;                 /* members_view_version when published */
    uint32_t self;                    /* our ring node number, RING_NONE if not in it */
    char (*addrs)[WIRE_ADDR_MAX + 1]; /* per ring node: cluster address ("" unknown) */
    _Atomic unsigned char *state;     /* per ring node: enum phi_state */
    _Atomic bool ready;               /* members_config.ready_wait_ms */
    _Atomic unsigned refs;
};

/* The current view, referenced (release it). Never NULL once started:
 * before the first ring it is an empty ring. Any thread. */
struct members_view *members_view_acquire(struct members *m);
/* One more reference to a view already held; returns it. */
struct members_view *members_view_retain(struct members_view *v);
/* Drops a reference (the last frees); NULLs *v; accepts NULL. */
void members_view_release(struct members_view **v);
/* Moves each time a new view is published. Any thread, lock-free. */
uint64_t members_view_version(struct members *m);

/* `stats cluster`'s membership part: one line per known node and the
 * ring's size. Any thread. */
void members_stats(struct members *m, void (*emit)(void *arg, const char *name, const char *value),
                   void *arg);
