/*
 * gossip.h - membership of strata-node: every node's endpoint state
 * (generation, heartbeat, versioned application states), the three-message
 * gossip exchange (SYN, ACK, ACK2) with its body codecs, the choice of peers
 * each round, phi-accrual liveness per peer, and the node list the ring is
 * built from (docs/GOSSIP.md).
 *
 * Pure: no sockets, no threads, no clock. The node's event loop calls
 * gossip_tick once per gossip interval with the current monotonic time,
 * sends a SYN to each peer it returns, and passes every gossip body it
 * receives to the matching gossip_handle_* function, which may append the
 * reply body. Not thread-safe: one thread (the node's gossip loop) owns a
 * struct gossip.
 *
 * Byte table of the bodies (integers little-endian; varint = unsigned
 * LEB128, shortest form; bytes = varint length + bytes; spec in
 * docs/GOSSIP.md, to be merged into docs/formats/cluster-protocol.md):
 *
 *   SYN   cluster bytes(1..255), count varint, DIGEST x count
 *   ACK   cluster bytes(1..255), count varint, STATE x count,
 *                                count varint, DIGEST x count (requests)
 *   ACK2  cluster bytes(1..255), count varint, STATE x count
 *   (the ACK2 response, which only ends the exchange, has an empty body)
 *
 *   DIGEST  id16 | generation u64 | version varint                 (25..34 B)
 *   STATE   id16 | short id u16 | generation u64 | from varint |
 *           heartbeat varint (>= 1) | count varint (0..16) |
 *           APP x count                                   (at most 83,276 B)
 *   APP     key u8 (< 16) | version varint (> from) | value bytes (<= 8192)
 *
 * Lists of DIGESTs and STATEs are in strictly ascending id order (memcmp),
 * APPs in strictly ascending key order: every view has one encoding, and a
 * duplicate is malformed.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/phi.h"
#include "common/ring.h"
#include "common/status.h"
#include "common/wire.h"

#define GOSSIP_ID_LEN RING_ID_LEN /* 16 */
/* Endpoints a view holds (ourselves included), and so the longest list in a
 * body. New endpoints beyond it are dropped and counted. */
#define GOSSIP_MAX_NODES 4096
#define GOSSIP_MAX_SEEDS 64
/* Application state keys are 0..GOSSIP_APP_SLOTS-1; values at most
 * GOSSIP_VALUE_MAX bytes (a full TOKENS value). */
#define GOSSIP_APP_SLOTS 16
#define GOSSIP_VALUE_MAX (8 * RING_MAX_VNODES)
/* Peers gossip_tick returns at most: a live one, a down one, a seed. */
#define GOSSIP_MAX_TARGETS 3
/* The interval the node calls gossip_tick at; the phi defaults assume it. */
#define GOSSIP_INTERVAL_MS 1000
/*
 * Body size budget (gossip_config.max_body): ACK and ACK2 bodies never
 * exceed it. The minimum holds the largest ACK that must always fit (every
 * request digest of a full view plus the largest single STATE), so every
 * exchange makes progress. The receiver's frame limit must be at least
 * max_body + WIRE_HEADER_LEN.
 */
#define GOSSIP_BODY_MIN (256u << 10)
#define GOSSIP_BODY_DEFAULT (1u << 20)
#define GOSSIP_BODY_MAX (WIRE_FRAME_MAX_DEFAULT - WIRE_HEADER_LEN)

/* Application state keys. On the wire: never renumber. Keys from
 * GOSSIP_APP_KNOWN to GOSSIP_APP_SLOTS-1 are not interpreted by this build:
 * they are merged and relayed verbatim, so a newer node's states cross older
 * nodes during a rolling upgrade. */
enum gossip_app {
    GOSSIP_APP_STATUS = 0,   /* u8 enum gossip_status [+ id16 for REPLACING] */
    GOSSIP_APP_ADDR = 1,     /* cluster address "host:port", 1..512 bytes */
    GOSSIP_APP_MC_ADDR = 2,  /* memcached address "host:port", 0..512 bytes */
    GOSSIP_APP_RACK = 3,     /* 0..RING_RACK_MAX bytes; empty = no rack */
    GOSSIP_APP_TOKENS = 4,   /* u64 x n, 0..RING_MAX_VNODES vnode tokens */
    GOSSIP_APP_LOAD = 5,     /* u64: bytes of data the node holds */
    GOSSIP_APP_SCHEMA = 6,   /* u64: digest of the placement settings */
    GOSSIP_APP_PROTOCOL = 7, /* u8 >= 1: highest cluster protocol version */
    GOSSIP_APP_KNOWN = 8,    /* count of the keys above, not a key */
};

/*
 * A node's place in the cluster's life cycle (first byte of the STATUS
 * value). On the wire: never renumber. Only NORMAL is used until the
 * topology issue (bootstrap, decommission, replace); the others are
 * defined now so that their layout is fixed. Codes this build does not know
 * are kept and relayed, and count as "not in the ring".
 */
enum gossip_status {
    GOSSIP_STATUS_NONE = 0,      /* not announced yet (never on the wire) */
    GOSSIP_STATUS_JOINING = 1,   /* streaming its ranges in; not in the ring */
    GOSSIP_STATUS_NORMAL = 2,    /* owns its tokens */
    GOSSIP_STATUS_LEAVING = 3,   /* streaming its ranges out; still owns them */
    GOSSIP_STATUS_LEFT = 4,      /* gone for good; not in the ring, not gossiped to */
    GOSSIP_STATUS_REPLACING = 5, /* takes over a dead node's tokens; value + id16 */
    GOSSIP_STATUS_OTHER = 255,   /* a code this build does not know (never sent) */
};

/* What handling a gossip body found. Anything but GOSSIP_OK means nothing
 * was changed and no reply was appended, except GOSSIP_NOMEM (below). */
enum gossip_result {
    GOSSIP_OK = 0,
    GOSSIP_MALFORMED,     /* the body does not decode: answer ERROR BAD_REQUEST, close */
    GOSSIP_OTHER_CLUSTER, /* the body names another cluster: close */
    GOSSIP_NOMEM,         /* out of memory; what was merged before it stays */
};

struct gossip;

struct gossip_config {
    const char *cluster; /* cluster name, 1..WIRE_CLUSTER_MAX bytes */
    uint8_t id[GOSSIP_ID_LEN];
    uint16_t short_id;
    uint64_t generation; /* bumped at every start of the process */
    const char *addr;    /* our cluster address "host:port", 1..WIRE_ADDR_MAX */
    /* Seed cluster addresses, written as the seeds announce themselves
     * (compared as strings); ours among them is ignored. */
    const char *const *seeds;
    size_t nseeds; /* 0..GOSSIP_MAX_SEEDS */
    /* Failure detector per peer; NULL = phi_options_default (threshold 8,
     * suspect at threshold / 2). */
    const struct phi_options *phi;
    size_t max_body;   /* 0 = GOSSIP_BODY_DEFAULT; else GOSSIP_BODY_MIN..MAX */
    uint64_t rng_seed; /* peer choice; 0 = derived from id and generation */
};

/*
 * Creates the membership view of a node that knows only itself, with status
 * NONE and the cluster address of `cfg` (version 1 and 2: heartbeat and
 * ADDR). Everything in cfg is copied. Returns ST_OK, ST_INVAL (a bound
 * above, an address or name with a NUL byte, invalid phi options) or
 * ST_NOMEM; *out is NULL on failure. gossip_destroy frees it.
 */
enum st_status gossip_create(struct gossip **out, const struct gossip_config *cfg);
/* Frees everything and NULLs *g; accepts NULL and *g == NULL. */
void gossip_destroy(struct gossip **g);

/* ---- Our own state ----------------------------------------------------- */

/*
 * Sets one of our application states. A value equal to the current one
 * changes nothing; otherwise it takes the next version of our generation.
 * Known keys are validated as on the wire (enum gossip_app). ST_OK,
 * ST_INVAL, ST_NOMEM (the old value stays).
 */
enum st_status gossip_set_app(struct gossip *g, uint8_t key, const void *value, size_t len);
/* Typed forms of gossip_set_app. `replacing` is the id of the node taken
 * over, required for GOSSIP_STATUS_REPLACING and ignored otherwise. */
enum st_status gossip_set_status(struct gossip *g, enum gossip_status status,
                                 const uint8_t *replacing);
enum st_status gossip_set_memcached_addr(struct gossip *g, const char *addr);
enum st_status gossip_set_rack(struct gossip *g, const char *rack);
enum st_status gossip_set_tokens(struct gossip *g, const uint64_t *tokens, size_t n);
enum st_status gossip_set_load(struct gossip *g, uint64_t bytes);
enum st_status gossip_set_schema(struct gossip *g, uint64_t schema);
enum st_status gossip_set_protocol(struct gossip *g, uint8_t version);

/* ---- Rounds and messages ---------------------------------------------- */

/* A peer to send a SYN to this round. */
struct gossip_target {
    bool has_id;               /* false: a seed not known by id yet */
    uint8_t id[GOSSIP_ID_LEN]; /* has_id only */
    const char *addr;          /* cluster address; valid until the next
                                  * gossip_handle_*, gossip_set_* or destroy */
};

/*
 * One gossip round at `now_ms` (monotonic): takes the next version of our
 * generation as our heartbeat, then picks the peers to gossip with
 * (docs/GOSSIP.md "Choosing peers"): one random live peer; a random down
 * peer with probability down / (live + 1); a random seed when the live peer
 * was no seed or there are fewer live peers than seeds (always when no peer
 * is live, else with probability seeds / (live + down)). Writes 0 to
 * GOSSIP_MAX_TARGETS distinct targets (never ourselves) and returns the count.
 */
size_t gossip_tick(struct gossip *g, uint64_t now_ms, struct gossip_target *out);

/*
 * Appends a SYN body (digests of every endpoint we know) to b, between the
 * caller's wire_begin_frame(WIRE_OP_GOSSIP_SYN) and wire_end_frame. It
 * never exceeds GOSSIP_BODY_MIN. ST_OK, or b->err (ST_NOMEM).
 */
enum st_status gossip_compose_syn(struct gossip *g, struct wire_buf *b);

/*
 * Handle a received body at `now_ms`. gossip_handle_syn appends the ACK
 * body to `ack` (the states we have that are newer than the sender's, and
 * requests for those that are older here), gossip_handle_ack merges the
 * ACK's states and appends the ACK2 body (what the ACK requested) to
 * `ack2`, gossip_handle_ack2 merges the states. Every heartbeat increase
 * learned feeds that peer's failure detector. Appended bodies are at most
 * the configured max_body. The whole body is validated before anything is
 * merged: GOSSIP_MALFORMED and GOSSIP_OTHER_CLUSTER change nothing and
 * append nothing. GOSSIP_NOMEM: endpoints merged before the failure stay
 * (each endpoint merges whole or not at all) and the reply may be partly
 * appended: drop the frame (wire_end_frame reports the error and does).
 * `body` is borrowed for the call.
 */
enum gossip_result gossip_handle_syn(struct gossip *g, const uint8_t *body, size_t len,
                                     uint64_t now_ms, struct wire_buf *ack);
enum gossip_result gossip_handle_ack(struct gossip *g, const uint8_t *body, size_t len,
                                     uint64_t now_ms, struct wire_buf *ack2);
enum gossip_result gossip_handle_ack2(struct gossip *g, const uint8_t *body, size_t len,
                                      uint64_t now_ms);

/* ---- The view ---------------------------------------------------------- */

/*
 * Liveness of a node at `now_ms`: phi_check of its detector. Ourselves:
 * always PHI_UP. An id we do not know: PHI_DOWN (it cannot be reached).
 */
enum phi_state gossip_peer_state(const struct gossip *g, const uint8_t id[GOSSIP_ID_LEN],
                                 uint64_t now_ms);
/* Its phi value (0 for ourselves and unknown ids), for stats. */
double gossip_peer_phi(const struct gossip *g, const uint8_t id[GOSSIP_ID_LEN], uint64_t now_ms);

/* An endpoint as the view holds it. Pointers are into the view, valid until
 * the next gossip_handle_*, gossip_set_* or destroy; strings are
 * NUL-terminated and "" when the state was never set. */
struct gossip_peer {
    uint8_t id[GOSSIP_ID_LEN];
    uint16_t short_id;
    uint64_t generation;
    uint64_t heartbeat;   /* version of the last heartbeat */
    uint64_t max_version; /* highest version held (what a digest carries) */
    bool self;
    enum gossip_status status; /* OTHER for an unknown code (see status_code) */
    uint8_t status_code;
    uint8_t replacing[GOSSIP_ID_LEN]; /* status REPLACING only */
    const char *addr;
    const char *mc_addr;
    const char *rack;
    const uint64_t *tokens; /* NULL when ntokens == 0 */
    uint32_t ntokens;
    uint64_t load, schema;               /* 0 when never set */
    uint8_t protocol;                    /* 0 when never set */
    uint64_t versions[GOSSIP_APP_SLOTS]; /* per key; 0 = not set */
};

/* Endpoints in the view, ourselves included (>= 1). */
size_t gossip_count(const struct gossip *g);
/* The i-th endpoint in id order. REQUIRES: i < gossip_count(g). */
void gossip_peer_at(const struct gossip *g, size_t i, struct gossip_peer *out);
/* The endpoint with this id: true and *out filled, or false. */
bool gossip_find(const struct gossip *g, const uint8_t id[GOSSIP_ID_LEN], struct gossip_peer *out);
/* The raw bytes of one application state (a view as above; NULL and *len
 * 0 when not set). False when the id is unknown or key >= GOSSIP_APP_SLOTS. */
bool gossip_app_value(const struct gossip *g, const uint8_t id[GOSSIP_ID_LEN], uint8_t key,
                      const uint8_t **value, size_t *len, uint64_t *version);

/*
 * Ring version: grows whenever the node list gossip_ring_nodes returns may
 * have changed (a node entering or leaving NORMAL/LEAVING, its tokens, rack
 * or short id changing, a restart that changed any of them). The node keeps
 * the version of the ring it built and rebuilds (ring_build) when it differs.
 */
uint64_t gossip_ring_version(const struct gossip *g);

/*
 * The nodes that place keys: those with status NORMAL or LEAVING and at
 * least one token, in id order, ourselves included. When two of them share
 * a short id the one with the larger id is left out (every node decides
 * alike), so ring_build never sees a duplicate. Writes
 * up to `cap` entries and returns how many there are (call again with a
 * larger out when that exceeds cap). rack and tokens point into the view
 * (valid as gossip_peer's pointers).
 */
size_t gossip_ring_nodes(const struct gossip *g, struct ring_node *out, size_t cap);

struct gossip_stats {
    uint64_t rounds;         /* gossip_tick calls */
    uint64_t syn, ack, ack2; /* bodies handled with GOSSIP_OK */
    uint64_t malformed;      /* bodies rejected as malformed */
    uint64_t other_cluster;  /* bodies from another cluster */
    uint64_t states_merged;  /* endpoint states that changed something */
    uint64_t restarts;       /* endpoints replaced by a newer generation */
    uint64_t stale;          /* states of an older generation, ignored */
    uint64_t gaps;           /* deltas that did not connect with our versions */
    uint64_t conflicts;      /* same generation with another short id */
    uint64_t self_conflicts; /* someone holds a newer state of our own id */
    uint64_t dropped;        /* new endpoints refused at GOSSIP_MAX_NODES */
    uint64_t truncated;      /* replies that left states out to fit max_body */
};

void gossip_stats(const struct gossip *g, struct gossip_stats *out);

/* Names for logs; never NULL. */
const char *gossip_status_name(enum gossip_status s);
const char *gossip_result_name(enum gossip_result r);

/* ---- Body codec ----------------------------------------------------------
 * The pieces the gossip_* message functions are made of, public for tests,
 * fuzzers and tools. Parsed pointers are views into the body.
 */

/* DIGEST: "I hold id at this generation up to this version" (SYN), or "send
 * me id's state newer than version if you hold this generation, all of it
 * if you hold a newer one" (ACK requests). */
struct gossip_digest {
    uint8_t id[GOSSIP_ID_LEN];
    uint64_t generation;
    uint64_t version;
};

struct gossip_app_value {
    uint8_t key; /* < GOSSIP_APP_SLOTS */
    uint64_t version;
    const uint8_t *value;
    size_t len; /* <= GOSSIP_VALUE_MAX, and the key's own bounds */
};

/* STATE: an endpoint's state, or the part of it newer than `from` (every
 * application state with a version above from; from 0 = all of it). */
struct gossip_state {
    uint8_t id[GOSSIP_ID_LEN];
    uint16_t short_id;
    uint64_t generation;
    uint64_t from;
    uint64_t heartbeat; /* >= 1 */
    size_t napps;
    struct gossip_app_value apps[GOSSIP_APP_SLOTS]; /* ascending keys, versions > from */
};

/* A parsed message. `states` and `digests` are readers positioned at the
 * first STATE and the first DIGEST: exactly nstates gossip_get_state calls on
 * states and ndigests gossip_get_digest calls on digests follow, each of
 * which succeeds. SYN has no states, ACK2 no digests. */
struct gossip_msg {
    const char *cluster;
    size_t cluster_len;
    size_t nstates;
    struct wire_reader states;
    size_t ndigests;
    struct wire_reader digests;
};

/* Checks a whole body of each kind: WIRE_OK, or WIRE_MALFORMED (short,
 * trailing bytes, a field out of bounds, lists out of order or too long). */
enum wire_result gossip_parse_syn(const uint8_t *body, size_t len, struct gossip_msg *m);
enum wire_result gossip_parse_ack(const uint8_t *body, size_t len, struct gossip_msg *m);
enum wire_result gossip_parse_ack2(const uint8_t *body, size_t len, struct gossip_msg *m);

/* Field readers: on a broken rule they mark r bad (and *out is unspecified).
 * gossip_get_state checks each value against its key's rules. */
void gossip_get_digest(struct wire_reader *r, struct gossip_digest *out);
void gossip_get_state(struct wire_reader *r, struct gossip_state *out);

/* Field writers. REQUIRES: the fields obey the rules gossip_get_* check. */
void gossip_put_digest(struct wire_buf *b, const struct gossip_digest *d);
void gossip_put_state(struct wire_buf *b, const struct gossip_state *s);
/* Encoded sizes. */
size_t gossip_digest_size(const struct gossip_digest *d);
size_t gossip_state_size(const struct gossip_state *s);

/* Whether `value` is a valid value of application state `key` (the rules
 * gossip_get_state and gossip_set_app apply). */
bool gossip_app_valid(uint8_t key, const uint8_t *value, size_t len);
