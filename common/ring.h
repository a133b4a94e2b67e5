/*
 * ring.h - placement on the consistent-hash ring: tokens, vnodes, the
 * preference list of a token (with the rack rule), the ranges a node
 * replicates and ownership. strata-node and strata-proxy both place keys
 * with this code (docs/RING.md).
 *
 * A struct ring is an immutable value built from a node list: nothing
 * mutates it after ring_build, so every lookup is thread-safe. Membership
 * builds a new ring when the topology changes and swaps the pointer; keeping
 * the old one alive until its readers are done is the swapper's job.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

#define RING_ID_LEN 16
/* Vnodes a node picks when its configuration says nothing. */
#define RING_DEFAULT_VNODES 16
/* Input limits, checked by ring_build (node lists come from peers). */
#define RING_MAX_VNODES 1024 /* tokens per node */
#define RING_MAX_NODES 65536 /* short ids are 16 bits */
#define RING_RACK_MAX 64     /* rack name bytes, NUL excluded */
/* Largest replica count the fixed-buffer helpers (ring_is_replica,
 * ring_ranges, ring_ownership) handle; ring_preference has no limit. */
#define RING_MAX_REPLICAS 64
/* "No node": ring_primary of an empty ring, ring_find of an unknown id. */
#define RING_NONE UINT32_MAX

struct ring;

/*
 * A node as ring_build takes it, and as ring_node shows it. ring_build
 * copies everything; the caller keeps ownership of its arrays.
 */
struct ring_node {
    uint8_t id[RING_ID_LEN]; /* identity; orders nodes (memcmp) */
    uint16_t short_id;       /* the id stamped into versions */
    const char *rack;        /* NULL or "" = no rack */
    const uint64_t *tokens;  /* the node's vnode tokens, any order */
    uint32_t ntokens;        /* 1..RING_MAX_VNODES */
};

/*
 * A token range (start, end], read clockwise: it wraps through 0 when
 * start >= end. start == end is the whole circle (a ring with one distinct
 * token); ranges are never empty.
 */
struct ring_range {
    uint64_t start, end;
};

/* The token of a key: XXH3_64bits(key), the storage engine's key order
 * (lsm_token). Pure, any thread. */
uint64_t ring_token(const void *key, size_t len);

/*
 * Builds a ring from `count` nodes in any order: the result does not depend
 * on the order (nodes are ranked by id; equal tokens of different nodes are
 * ordered by id too). count may be 0 (an empty ring places nothing).
 * Returns ST_OK with *out set, ST_INVAL (two nodes with one id or one short
 * id, a node with no tokens or more than RING_MAX_VNODES, a rack name over
 * RING_RACK_MAX bytes, more than RING_MAX_NODES nodes) or ST_NOMEM; *out is
 * NULL on failure. The caller owns the ring (ring_free).
 */
enum st_status ring_build(const struct ring_node *nodes, size_t count, struct ring **out);
/* Frees the ring and NULLs *r; accepts NULL and *r == NULL. */
void ring_free(struct ring **r);

/*
 * Nodes are numbered 0..ring_node_count()-1 in id order; the number is
 * valid in this ring only (a new ring may number differently; ids and short
 * ids are stable). ring_node's view (rack and tokens point into the ring,
 * tokens sorted ascending, rack NULL when none) lives as long as the ring.
 * REQUIRES: node < ring_node_count(r).
 */
uint32_t ring_node_count(const struct ring *r);
const struct ring_node *ring_node(const struct ring *r, uint32_t node);
/* Node number of an id / a short id, or RING_NONE. O(log n). */
uint32_t ring_find(const struct ring *r, const uint8_t id[RING_ID_LEN]);
uint32_t ring_find_short(const struct ring *r, uint16_t short_id);
/* Vnode tokens in the ring (duplicates counted): a bound on the number of
 * ranges of one node (ring_ranges). */
size_t ring_vnode_count(const struct ring *r);

/*
 * The preference list of `token`: walk clockwise from the first vnode token
 * >= token (wrapping past the top to the lowest token), take distinct nodes
 * by the rack rule (docs/RING.md), stop at n. Writes min(n, node count)
 * node numbers to out[] and returns that count; out[0] is the primary.
 * Allocation-free; O(log vnodes) to find the start, then a short walk.
 * REQUIRES: out holds min(n, ring_node_count(r)) entries.
 */
size_t ring_preference(const struct ring *r, uint64_t token, size_t n, uint32_t *out);
/* The primary of `token` (ring_preference's out[0]): the owner of the
 * first vnode clockwise. RING_NONE on an empty ring. */
uint32_t ring_primary(const struct ring *r, uint64_t token);
/* True if `node` is among the first n of token's preference list.
 * REQUIRES: min(n, ring_node_count(r)) <= RING_MAX_REPLICAS. */
bool ring_is_replica(const struct ring *r, uint64_t token, size_t n, uint32_t node);

/*
 * The ranges for which `node` is in the preference list of n: one range
 * per vnode arc (not merged, so that every token of a range has the same
 * replica set: ring_preference(r, range.end, ...)), clockwise from the arc
 * ending at the lowest token. Writes up to cap ranges and returns how many
 * there are (call again with a larger out if that is more than cap;
 * ring_vnode_count bounds it). Allocation-free; O(vnodes * walk).
 * REQUIRES: node < ring_node_count(r), min(n, node count) <=
 * RING_MAX_REPLICAS.
 */
size_t ring_ranges(const struct ring *r, uint32_t node, size_t n, struct ring_range *out,
                   size_t cap);

/*
 * Ownership of every node as a fraction of the circle: primary[i] is the
 * share of tokens whose primary is i (the primaries sum to 1), replicated[i]
 * the share for which i is in the preference list of n (these sum to
 * min(n, node count)). Either array may be NULL; each holds
 * ring_node_count(r) entries. O(vnodes * walk).
 * REQUIRES: min(n, node count) <= RING_MAX_REPLICAS.
 */
void ring_ownership(const struct ring *r, size_t n, double *primary, double *replicated);

/* True if `token` lies in the range (start, end] (clockwise). */
static inline bool ring_range_contains(struct ring_range range, uint64_t token)
{
    if (range.start < range.end)
        return token > range.start && token <= range.end;
    return token > range.start || token <= range.end; /* wraps, or whole circle */
}
