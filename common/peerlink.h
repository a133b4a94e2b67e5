/*
 * peerlink.h - the client side of the cluster protocol on one event loop:
 * one connection per peer address, dialed on first use and handshaken,
 * carrying many requests at once, answered in any order and matched by
 * request id. Each request either gets its response or fails: the link's
 * bound on requests in flight refuses it at once, a timer fails it after
 * the configured time, a closed connection fails everything in flight on
 * it. strata-node's coordinator holds one set per worker (and one on the
 * main loop); strata-proxy's cluster backend will hold the same.
 *
 * Everything runs on the thread of the event base the set was created
 * on; completions are called from that loop's callbacks, never from
 * inside peerlink_request.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "common/wire.h"

struct event_base;
struct peerlinks;
struct peerlink;

/* Who this side is, as its HANDSHAKE says; every module that dials peers
 * takes one (peerlinks_create copies the strings). */
struct peer_self {
    const char *cluster_name;
    uint8_t node_id[WIRE_NODE_ID_LEN];
    uint16_t short_id;
    uint64_t generation;
    const char *addr; /* our own cluster address, "host:port" */
    size_t frame_max; /* largest frame sent or accepted */
};

struct peerlinks_config {
    struct peer_self self;
    unsigned max_inflight; /* per link; more are refused with PEER_OVERLOADED */
    unsigned timeout_ms;   /* per request, from when it is sent */
    unsigned retry_ms;     /* after a connection fails, requests are refused this long */
};

enum peer_result {
    PEER_OK,         /* the response arrived (f is it) */
    PEER_ERROR,      /* the peer answered ERROR (f is it) */
    PEER_TIMEOUT,    /* no answer in time: the request may have been applied */
    PEER_CLOSED,     /* the connection closed with it in flight: may have been applied */
    PEER_OVERLOADED, /* not sent: the link's bound on requests in flight */
    PEER_DOWN,       /* not sent: the connection failed lately, or cannot be made (also
                        the completion of a request queued on a dial that failed) */
};

/* Short name for logs and stats ("timeout"). */
const char *peer_result_name(enum peer_result r);

/* A request's completion: once, on the loop's thread. f is the response
 * frame for PEER_OK and PEER_ERROR (valid during the call), else NULL. */
typedef void (*peer_done_fn)(void *arg, enum peer_result r, const struct wire_frame *f);

enum st_status peerlinks_create(const struct peerlinks_config *cfg, struct event_base *base,
                                struct peerlinks **out);
/* Closes every connection; requests in flight complete with PEER_CLOSED
 * first. NULLs *pl; accepts NULL. On the loop's thread (or after it). */
void peerlinks_destroy(struct peerlinks **pl);

/* The link to addr ("host:port"), created if new (not dialed yet): a
 * handle valid until peerlinks_destroy. NULL: out of memory or a bad
 * address. */
struct peerlink *peerlinks_get(struct peerlinks *pl, const char *addr);

/*
 * Sends a request frame (opcode, flags, a body composed by the caller) on
 * the link, dialing it if needed. PEER_OK: sent, done(arg, ...) will be
 * called exactly once, later. Otherwise (PEER_OVERLOADED, PEER_DOWN) it
 * was not sent and done is never called.
 */
enum peer_result peerlink_request(struct peerlink *l, uint8_t opcode, uint16_t flags,
                                  const void *body, size_t body_len, peer_done_fn done, void *arg);

/* Closes the link because an answer broke the protocol at a level the
 * link cannot check (a body that does not decode, a record for another
 * key): its other requests fail PEER_CLOSED, the next request dials
 * again after the retry window. Callable from a completion of PEER_OK. */
void peerlink_reset(struct peerlink *l, const char *why);

/* Requests in flight on the link. */
unsigned peerlink_inflight(const struct peerlink *l);

/* Totals for stats, this set only (the caller sums across loops). */
struct peerlinks_stats {
    uint64_t requests, responses, errors, timeouts, closed, overloaded, down;
    uint64_t dials, dial_failures, bad_frames, late_responses;
};
void peerlinks_stats(const struct peerlinks *pl, struct peerlinks_stats *out);
