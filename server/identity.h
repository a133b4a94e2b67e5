/*
 * identity.h - the storage node's identity, kept in its data directory in
 * the file NODE: node id, short id, gossip generation, cluster name, vnode
 * tokens and the persisted upper bound of the hybrid logical clock.
 * Spec: docs/formats/identity.md (keep the two in step).
 *
 * Called from strata-node's main thread at startup (load), then from the
 * background tick (HLC bound) and the gossip thread (short id collisions).
 *
 * File layout (format version 1), integers little-endian; c = cluster name
 * length, v = vnode count; total length 72 + 8v + c bytes:
 *
 *   offset    size  field
 *   0         8     magic: "STRTNODE"
 *   8         4     format version (1)
 *   12        4     file length in bytes, checksum included
 *   16        16    node id (random, UUID version 4 layout)
 *   32        2     short id (random, nonzero)
 *   34        2     cluster name length c, 1..IDENTITY_CLUSTER_MAX
 *   36        4     vnode count v, 1..RING_MAX_VNODES
 *   40        8     generation (gossip generation of the last start)
 *   48        8     creation time, unix ms
 *   56        8     HLC upper bound (0 = none stored yet)
 *   64        8v    vnode tokens, strictly ascending
 *   64+8v     c     cluster name, printable ASCII (0x20..0x7e), no NUL
 *   64+8v+c   8     checksum: XXH3_64bits of bytes 0 .. 64+8v+c-1
 *
 * Bytes 0..15 and the trailing checksum keep their meaning in every future
 * version, so a reader tells "written by a newer strata" from "corrupt".
 * The version number must never be reused for another layout.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/ring.h"
#include "common/status.h"

#define IDENTITY_FILE "NODE"
#define IDENTITY_TMP_FILE "NODE.tmp"
#define IDENTITY_MAGIC "STRTNODE"
#define IDENTITY_FORMAT_VERSION 1
#define IDENTITY_CLUSTER_MAX 255 /* cluster name bytes, NUL excluded */
/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" plus the NUL. */
#define IDENTITY_ID_STR_LEN 37

struct identity;
struct lsm_env;

/*
 * What identity_load_or_create found. The values never reach the disk. A
 * refusal (every IDENTITY_ERR_ but _IO) writes, renames and removes nothing
 * in the directory, and logs the reason with the paths involved.
 */
enum identity_result {
    /* ST_OK: the stored identity, with a new generation. */
    IDENTITY_LOADED = 0,
    /* ST_OK: a new identity in an empty or new directory. */
    IDENTITY_CREATED,
    /* ST_INVAL: bad dir, cluster name or vnode count. */
    IDENTITY_ERR_ARGS,
    /* ST_IO or ST_NOMEM (see the status; errno is logged). NODE is as it
     * was, or, if only the final directory sync failed, possibly the new
     * one. */
    IDENTITY_ERR_IO,
    /* ST_CORRUPT: NODE exists but fails a check (magic, length, checksum,
     * a field out of range). */
    IDENTITY_ERR_CORRUPT,
    /* ST_CORRUPT: NODE has a valid checksum but a format version this
     * build does not know (written by a newer strata). */
    IDENTITY_ERR_VERSION,
    /* ST_INVAL: NODE belongs to another cluster name. */
    IDENTITY_ERR_CLUSTER,
    /* ST_CORRUPT: no NODE, but the directory holds other entries (engine
     * files, hints, anything): the identity was lost, the data was not. */
    IDENTITY_ERR_ORPHAN_DATA,
};

/* Short lowercase name of a result, for logs. Never NULL. */
const char *identity_result_name(enum identity_result r);

struct identity_load_info {
    enum identity_result result;
    /* IDENTITY_LOADED only: the stored vnode count differs from the
     * `vnodes` asked for. The stored tokens are kept (changing tokens is a
     * topology operation); a warning was logged. */
    bool vnodes_differ;
};

struct identity_options {
    struct lsm_env *env; /* file I/O; NULL = env_posix(). Borrowed: must
                          * outlive the identity */
    uint64_t now_ms;     /* wall clock for the creation time and the
                          * generation; 0 = CLOCK_REALTIME (tests fix it) */
};

/*
 * Loads the node's identity from <dir>/NODE, or creates one, and starts a
 * new generation; call it once per start, before anything else writes into
 * `dir` (the engine, hints) and before the node serves.
 *
 * - NODE exists: it is read and verified, its cluster name must equal
 *   `cluster_name` (bytes), and the generation becomes
 *   max(stored + 1, now in seconds); the file is rewritten with it
 *   (atomically, synced) before this returns. A stale NODE.tmp is replaced.
 * - NODE is missing and `dir` holds nothing but NODE.tmp, LOCK and
 *   lost+found (or `dir` does not exist: it is created, its parent must
 *   exist): a new identity is made from getrandom(2): a node id, a nonzero
 *   short id, `vnodes` distinct tokens; generation = max(1, now in seconds),
 *   HLC bound 0. It is written and synced before this returns.
 * - Anything else: refused, see enum identity_result. A corrupt NODE is
 *   never replaced by a new identity: the data beside it belongs to the old
 *   one, and only the operator can decide what becomes of it.
 *
 * `vnodes` is 1..RING_MAX_VNODES; it only matters when creating (see
 * identity_load_info.vnodes_differ). `cluster_name` is 1..IDENTITY_CLUSTER_MAX
 * bytes of printable ASCII.
 *
 * Returns ST_OK with *out set (free with identity_destroy), or ST_INVAL,
 * ST_IO, ST_NOMEM, ST_CORRUPT with *out NULL; `info` (may be NULL) tells
 * which case it was. REQUIRES: the caller holds `dir` exclusively (one node
 * process per directory; this function takes no lock of its own).
 */
enum st_status identity_load_or_create(const char *dir, const char *cluster_name, uint32_t vnodes,
                                       struct identity **out, struct identity_load_info *info);
/* The same with options (NULL = defaults): a fault env, a fixed clock. */
enum st_status identity_load_or_create_opt(const struct identity_options *opt, const char *dir,
                                           const char *cluster_name, uint32_t vnodes,
                                           struct identity **out, struct identity_load_info *info);

/* Frees the identity (the file stays) and NULLs *id; accepts NULL and
 * *id == NULL. REQUIRES: no other thread uses it. */
void identity_destroy(struct identity **id);

/*
 * Persists a new HLC upper bound (hlc_upper_bound, docs/CLOCKS.md): the
 * whole file is rewritten to NODE.tmp, synced, renamed over NODE and the
 * directory synced (two fsyncs, about 100 bytes plus 8 per vnode). The
 * stored bound never decreases: a bound <= the stored one writes nothing
 * and returns ST_OK (the stored, higher bound still covers every timestamp
 * the lower one would). ST_IO: NODE still holds the previous bound, or, if
 * only the directory sync failed, possibly the new one; identity_hlc_bound
 * keeps returning the previous one, and the caller must not issue
 * timestamps beyond it. Any thread; serialised with the other writers.
 */
enum st_status identity_store_hlc_bound(struct identity *id, uint64_t bound);

/*
 * Picks a new random short id, persists it like identity_store_hlc_bound,
 * and writes it to *out: for when gossip finds another node with our short
 * id. The new id is nonzero, differs from the current one and from the
 * `ntaken` values of `taken` (may be NULL when ntaken is 0; zeros and
 * duplicates in it are harmless), uniformly among the rest. ST_INVAL if no
 * value is left (nothing changes); ST_IO as for identity_store_hlc_bound
 * (the old short id stays in use). Any thread; serialised with the other
 * writers.
 */
enum st_status identity_regenerate_short_id(struct identity *id, const uint16_t *taken,
                                            size_t ntaken, uint16_t *out);

/* ---- accessors; views live as long as the identity ---- */

/* The 16-byte node id. Immutable, any thread. */
const uint8_t *identity_id(const struct identity *id);
/* The gossip generation of this start. Immutable, any thread. */
uint64_t identity_generation(const struct identity *id);
/* Creation time of the identity, unix ms. Immutable, any thread. */
uint64_t identity_created_ms(const struct identity *id);
/* The stored cluster name (NUL-terminated). Immutable, any thread. */
const char *identity_cluster_name(const struct identity *id);
/* The vnode tokens, strictly ascending, identity_vnode_count of them.
 * Immutable, any thread. */
uint32_t identity_vnode_count(const struct identity *id);
const uint64_t *identity_tokens(const struct identity *id);
/* Current short id and last stored HLC bound (the value to pass to
 * hlc_floor at startup). Any thread, lock-free. */
uint16_t identity_short_id(struct identity *id);
uint64_t identity_hlc_bound(struct identity *id);
/* Fills `node` for ring_build: id, current short id, tokens (pointing into
 * the identity), rack NULL (the caller sets it from its configuration). */
void identity_ring_node(struct identity *id, struct ring_node *node);

/* Formats a node id as lowercase UUID text (8-4-4-4-12 hex digits). */
void identity_format_id(const uint8_t id[RING_ID_LEN], char out[IDENTITY_ID_STR_LEN]);
