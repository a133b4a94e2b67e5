/*
 * cl2.h - the L2 pool between L1 and `backend = cluster` (docs/L2.md):
 * records of the backend kept in the pool's memcached servers with their
 * version, so that an L1 filled from L2 shows clients the record's
 * version as its CAS, exactly as one filled from the nodes does.
 *
 * An entry's value is the record's value followed by a 14-byte trailer:
 * the version's HLC (8 bytes, big endian), its node (2), "SL2" and a kind
 * byte: 0x01 a value, 0x02 "gone" (the trailer alone: the key was deleted,
 * or its entry invalidated, at that version). Client flags and TTL are
 * the record's. Stock memcached cannot store a given CAS (1.6.18 refuses
 * `ms ... E`), hence the trailer; a value without it (written by someone
 * else) is a miss.
 *
 *   read miss in L1 ─► mg k v f t c ─► a value: the record (filled into L1,
 *                                       gated as any fill)
 *                                   └► else: the nodes ─► their record into
 *                                       L1, and into the pool
 *   write done     ─► l2_on_write = update: the written record into the
 *                     pool; invalidate, or a delete: a "gone" entry
 *
 * Every entry goes in version-gated: only over an older one (memcached's
 * own CAS makes the check and the write one step), so fills and writes
 * arriving out of order never bring back an older record, and a fill of
 * a value read before a write cannot land after the write's "gone".
 *
 * Worker threads; callbacks on the calling worker's loop.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wire.h"

struct policy;
struct worker;

/* The trailer's length. */
#define CL2_TRAILER 14
/* Seconds a "gone" entry lives without a policy l2_ttl_cap below it. */
#define CL2_GONE_TTL 60

/* What the pool held for a key when it was read. */
enum cl2_state {
    CL2_UNKNOWN, /* the pool did not answer */
    CL2_ABSENT,
    CL2_VALUE,   /* an entry of ours: the record */
    CL2_GONE,    /* a "gone" entry */
    CL2_FOREIGN, /* a value someone else wrote */
};
struct cl2_seen {
    enum cl2_state state;
    uint64_t cas;                /* memcached's, of the entry */
    struct wire_version version; /* CL2_VALUE, CL2_GONE */
};

/* True when the pool holds the policy's keys (l2_servers set, the
 * policy's l2 on). */
bool cl2_enabled(struct worker *w, const struct policy *pol);

/* rec: the pool's record of key (valid during the call), or NULL (a
 * miss, a "gone" or foreign entry, or the pool failed: the nodes are
 * asked); seen: what the pool held, for cl2_fill. */
typedef void (*cl2_read_done)(void *arg, const struct wire_record *rec,
                              const struct cl2_seen *seen);
void cl2_read(struct worker *w, const char *key, size_t nkey, cl2_read_done done, void *arg);

/* A record read from the nodes goes into the pool, over what the read
 * of the pool saw (seen; NULL: read again), if that is older. Nothing
 * waits for it. */
void cl2_fill(struct worker *w, const struct policy *pol, const struct wire_record *rec,
              const struct cl2_seen *seen);

/* A write of key completed on the backend: the pool's entry becomes the
 * written record (reply->rec, l2_on_write = update) or "gone" at its
 * version (invalidate, or a delete), unless the pool holds a newer one. */
void cl2_written(struct worker *w, const struct policy *pol, const char *key, size_t nkey,
                 const struct wire_rmw_reply *reply);

/* L1 coherence: a write of key completed; the other proxies (`peers`)
 * drop their L1 copy (proxy/l2.h l2_invalidate). */
void cl2_invalidate_peers(struct worker *w, const char *key, size_t nkey,
                          const struct wire_rmw_reply *reply);
