/*
 * cl2.h - the L2 pool between L1 and `backend = cluster` (docs/L2.md):
 * records of the backend kept in the pool's memcached servers with their
 * version, so that an L1 filled from L2 shows clients the record's
 * version as its CAS, exactly as one filled from the nodes does.
 *
 * An entry's value is the record's value followed by a 14-byte trailer:
 * the version's HLC (8 bytes, big endian), its node (2), and the magic
 * "SL2" 0x01. Client flags and TTL are the record's. Stock memcached
 * cannot store a given CAS (1.6.18 refuses `ms ... E`), hence the
 * trailer; a value without it (written by someone else) is a miss.
 *
 *   read miss in L1 ─► mg k v f t ─► an entry: the record (filled into L1,
 *                                     gated as any fill)
 *                                 └► none: the nodes ─► their record into
 *                                     L1, and into L2 with add (`ms ME`: an
 *                                     entry a write put there meanwhile wins)
 *   write done     ─► l2_on_write = update: the written record set (`ms`)
 *                     invalidate: `md`; a delete: `md`
 *
 * Worker threads; callbacks on the calling worker's loop.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "common/wire.h"

struct policy;
struct worker;

/* The trailer's length. */
#define CL2_TRAILER 14

/* True when the pool holds the policy's keys (l2_servers set, the
 * policy's l2 on). */
bool cl2_enabled(struct worker *w, const struct policy *pol);

/* rec: the pool's record of key (valid during the call), or NULL (a
 * miss, a foreign value, or the pool failed: the nodes are asked). */
typedef void (*cl2_read_done)(void *arg, const struct wire_record *rec);
void cl2_read(struct worker *w, const char *key, size_t nkey, cl2_read_done done, void *arg);

/* A record read from the nodes goes into the pool (add: an entry a write
 * put there meanwhile is newer). Nothing waits for it. */
void cl2_fill(struct worker *w, const struct policy *pol, const struct wire_record *rec);

/* A write of key completed on the backend: the pool's entry is replaced
 * by the written record (reply->rec, l2_on_write = update) or deleted. */
void cl2_written(struct worker *w, const struct policy *pol, const char *key, size_t nkey,
                 const struct wire_rmw_reply *reply);

/* L1 coherence: a write of key completed; the other proxies (`peers`)
 * drop their L1 copy (proxy/l2.h l2_invalidate). */
void cl2_invalidate_peers(struct worker *w, const char *key, size_t nkey,
                          const struct wire_rmw_reply *reply);
