/*
 * merkle.h - Merkle trees over one token range of the local engine, for
 * anti-entropy repair between the replicas of that range (docs/REPAIR.md).
 * A tree is built from an engine snapshot at an as-of time both replicas
 * agree on; two trees of one (range, depth) compare leaf by leaf, and only
 * the token sub-ranges of differing leaves are exchanged. No I/O, no
 * threads: the repair service calls this from its own thread, one tree per
 * thread at a time (a finished tree is immutable and may be read from any
 * thread).
 *
 * Shape: a complete binary tree of `depth` levels below the root; level 0
 * is the root, level `depth` the 2^depth leaves. Leaf i covers the tokens
 * whose offset from range.start, o = token - range.start - 1 (mod 2^64), is
 * in [floor(i * W / 2^depth), floor((i + 1) * W / 2^depth)), W being the
 * range's width (2^64 for the whole circle). When W < 2^depth some leaves
 * cover no token (zero-width) and are always empty.
 *
 * Hashes (all 64-bit XXH3; the byte layout is a wire format between nodes of
 * different versions: never change it without a protocol version):
 *   record encoding (little-endian, 21 + n bytes):
 *     0   8  version.hlc
 *     8   2  version.node
 *     10  1  kind: 0 = put, 1 = tombstone
 *     11  8  expiry (put; 0 = never) / deletion time (tombstone), unix s
 *     19  2  key length n (1..250)
 *     21  n  key bytes
 *   leaf  = XXH3_64bits_withSeed(concatenated encodings of the leaf's
 *           records in (offset, key) order, MERKLE_LEAF_SEED); an empty
 *           leaf is that hash of zero bytes, a fixed value.
 *   inner = XXH3_64bits_withSeed(left as u64 LE || right as u64 LE,
 *           MERKLE_INNER_SEED): ordered, never XOR.
 * The value and the client flags are not hashed: a version (hlc, node)
 * names exactly one write (docs/STORAGE.md), so equal versions mean equal
 * values.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/ring.h"
#include "common/status.h"
#include "storage/include/lsm.h"

/* Depth bounds: 2^depth leaves, (2^(depth+1)) * 8 bytes of hashes. */
#define MERKLE_MAX_DEPTH 20u
/* Seeds that separate leaf hashes from inner hashes (on the wire: never
 * change). ASCII "STRMLEAF" and "STRMNODE" as little-endian integers. */
#define MERKLE_LEAF_SEED 0x4641454c4d525453ull
#define MERKLE_INNER_SEED 0x45444f4e4d525453ull
/* Bytes of a record's canonical encoding before the key. */
#define MERKLE_RECORD_HEADER 21u

struct merkle_tree;

/*
 * The as-of rule: whether a record, as the engine's newest version of its
 * key, enters a tree (and counts in a repair comparison) built as of
 * `as_of` (unix seconds) with tombstone grace `gc_grace` (seconds):
 * - a put whose expiry is set and <= as_of is left out (it reads as a miss
 *   everywhere, and compaction may drop it on one replica only);
 * - a tombstone whose deletion time is <= as_of - gc_grace is left out
 *   (compaction may purge it on one replica and not the other); every
 *   younger tombstone is in, so deletes spread.
 * Both comparisons match the engine's own (lsm.h, storage/compaction.c), so
 * a replica that dropped a record the rule leaves out hashes the same as one
 * that kept it. Pure.
 */
bool merkle_record_counts(bool tombstone, uint64_t expiry, uint64_t as_of, uint64_t gc_grace);

/*
 * Writes the canonical encoding of a record (layout above) into `out`, which
 * holds MERKLE_RECORD_HEADER + LSM_MAX_KEY_LEN bytes; returns its length.
 * REQUIRES: 1 <= key_len <= LSM_MAX_KEY_LEN. Pure; for tests and for a peer
 * that wants to hash records the same way.
 */
size_t merkle_record_encode(uint8_t *out, const void *key, size_t key_len,
                            struct lsm_version version, bool tombstone, uint64_t expiry);

/*
 * Creates an empty tree over `range` with 2^depth leaves, ready for
 * merkle_add. Returns ST_OK and *out (the caller owns it: merkle_destroy),
 * ST_INVAL (depth > MERKLE_MAX_DEPTH), ST_NOMEM; *out is NULL on failure.
 */
enum st_status merkle_create(struct ring_range range, unsigned depth, struct merkle_tree **out);

/* Frees the tree and NULLs *t; accepts NULL and *t == NULL. */
void merkle_destroy(struct merkle_tree **t);

/*
 * Adds one record: the newest version of its key, already admitted by the
 * as-of rule (merkle_record_counts; this function does not filter). Records
 * come in clockwise order from range.start: ascending (offset, key), offset
 * = token - range.start - 1 (mod 2^64), keys as the engine orders them
 * (memcmp, shorter first on a common prefix). For a range that does not
 * wrap that is the engine's (token, key) order; for one that wraps, the
 * part above range.start first, then the part from token 0.
 * `key` is borrowed for the call.
 * Returns ST_OK; ST_INVAL, with the tree unchanged, when the record is out
 * of order or repeats the previous key, the token is outside the range, the
 * key length is not 1..LSM_MAX_KEY_LEN, or the tree is finished.
 * REQUIRES: token == ring_token(key, key_len) (not checked: it costs a hash).
 */
enum st_status merkle_add(struct merkle_tree *t, uint64_t token, const void *key, size_t key_len,
                          struct lsm_version version, bool tombstone, uint64_t expiry);

/*
 * Closes the last leaf and computes the inner nodes; after it the tree is
 * read-only. ST_OK; ST_INVAL if already finished.
 */
enum st_status merkle_finish(struct merkle_tree *t);

/*
 * Builds and finishes the tree of `range` from the local engine: scans
 * `snap` (NULL = now) over the range (two scans when it wraps) with
 * LSM_READ_TOMBSTONES | LSM_READ_EXPIRED, keeps what merkle_record_counts
 * admits as of `as_of` with `gc_grace`, and adds it. gc_grace must be the
 * engine's gc_grace_seconds (never more), and `snap` must be taken while
 * the engine's clock reads <= as_of (docs/REPAIR.md, "As-of time").
 * Returns ST_OK and *out (caller owns); ST_INVAL (bad depth), ST_NOMEM, or
 * the engine's ST_IO / ST_CORRUPT / ST_CLOSED; *out is NULL on failure.
 * Reads the whole range: call from the repair thread, never a worker.
 */
enum st_status merkle_build_from_db(struct lsm_db *db, const struct lsm_snapshot *snap,
                                    struct ring_range range, unsigned depth, uint64_t as_of,
                                    uint64_t gc_grace, struct merkle_tree **out);

/* ---- a tree's shape and hashes (REQUIRES: finished, except the shape) -- */

struct ring_range merkle_range(const struct merkle_tree *t);
unsigned merkle_depth(const struct merkle_tree *t);
/* Records added. */
uint64_t merkle_records(const struct merkle_tree *t);
/* The root hash: equal roots mean equal (as-of filtered) contents. */
uint64_t merkle_root(const struct merkle_tree *t);
/* Hash of node `index` (0..2^level - 1, left to right) of `level`.
 * REQUIRES: level <= depth, index < 2^level. */
uint64_t merkle_node_hash(const struct merkle_tree *t, unsigned level, uint64_t index);

/*
 * Copies the 2^level hashes of `level` into out[0..2^level). ST_OK;
 * ST_INVAL when level > depth or cap < 2^level (nothing written).
 */
enum st_status merkle_level_hashes(const struct merkle_tree *t, unsigned level, uint64_t *out,
                                   size_t cap);

/*
 * Responder's half of a top-down exchange: for each of the n nodes of
 * `level` named in nodes[] (indices, as a peer sent them), the hashes of its
 * 2^step descendants at level + step, left to right, written to
 * out[k * 2^step .. (k + 1) * 2^step) for nodes[k]. ST_OK; ST_INVAL (level
 * + step > depth, an index >= 2^level, or cap < n * 2^step: nothing
 * written).
 */
enum st_status merkle_subtree_hashes(const struct merkle_tree *t, unsigned level,
                                     const uint64_t *nodes, size_t n, unsigned step, uint64_t *out,
                                     size_t cap);

/*
 * Requester's half: given the nodes of `level` it asked about and the peer's
 * answer (`peer`, n * 2^step hashes as merkle_subtree_hashes lays them out),
 * writes to out[] the indices at level + step whose local hash differs, in
 * the order of nodes[] (ascending when nodes[] is), and their count to
 * *count. Those are the nodes to ask about next, or at the leaf level the
 * leaves to repair. ST_OK; ST_INVAL as merkle_subtree_hashes.
 * REQUIRES: cap >= n * 2^step.
 */
enum st_status merkle_descend(const struct merkle_tree *t, unsigned level, const uint64_t *nodes,
                              size_t n, unsigned step, const uint64_t *peer, uint64_t *out,
                              size_t cap, size_t *count);

/* ---- leaves and token ranges ------------------------------------------- */

/* The leaf holding `token`. REQUIRES: ring_range_contains(range, token). */
uint64_t merkle_leaf_of(const struct merkle_tree *t, uint64_t token);

/*
 * The tokens of leaf `leaf` as a range (start, end]. *empty is set when the
 * leaf covers no token (then the range's start == end and must not be read
 * as the whole circle). REQUIRES: leaf < 2^depth.
 */
struct ring_range merkle_leaf_range(const struct merkle_tree *t, uint64_t leaf, bool *empty);

/*
 * Turns strictly ascending leaf indices into token ranges, merging leaves
 * whose ranges touch (zero-width leaves in between included) and skipping
 * zero-width ones. Writes up to cap ranges to out and the number there are
 * to *count (call again with a larger out if that is more than cap).
 * ST_OK; ST_INVAL (indices not ascending or >= 2^depth).
 */
enum st_status merkle_leaf_ranges(const struct merkle_tree *t, const uint64_t *leaves, size_t n,
                                  struct ring_range *out, size_t cap, size_t *count);

/*
 * Compares two finished trees of one (range, depth) top-down, descending
 * only into differing subtrees, and reports the token ranges of the
 * differing leaves as merkle_leaf_ranges does (ascending from range.start,
 * touching leaves merged). Equal roots give *count == 0. ST_OK; ST_INVAL
 * when the trees' ranges or depths differ.
 */
enum st_status merkle_diff(const struct merkle_tree *a, const struct merkle_tree *b,
                           struct ring_range *out, size_t cap, size_t *count);

/* Bytes a tree of `depth` allocates (hash array, hashing state, handle). */
size_t merkle_memory(unsigned depth);
