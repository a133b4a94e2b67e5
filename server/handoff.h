/*
 * handoff.h - hinted handoff: the writes a replica missed (it was down, or
 * did not answer in time) are kept by the coordinator in a hint log per
 * target node (server/hintlog.h, under <data>/hints/) and replayed to the
 * target once gossip sees it up again: batched WRITEs carrying each
 * record's original version, so a replay is a version-compare merge and
 * replaying twice is harmless. Replay is throttled; hints older than the
 * window are dropped (the target then needs repair, docs/REPAIR.md);
 * hints older than gc_grace are never replayed (a tombstone that
 * shadowed them may be gone).
 *
 * handoff_store is called from any thread (the coordinator's workers);
 * the replayer runs on the event base it is started on (the main loop).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/peerlink.h"
#include "common/status.h"
#include "common/wire.h"

struct event_base;
struct members;
struct handoff;

struct handoff_config {
    const char *dir;           /* the hint stores' base directory */
    uint64_t max_bytes;        /* per target */
    uint64_t window_ms;        /* hints older than this are dropped */
    uint64_t gc_grace_ms;      /* never replay a hint older than this */
    uint64_t rate_bytes;       /* replay throttle per target, bytes/s; 0: none */
    unsigned sync_interval_ms; /* hints are synced at least this often */
    struct peer_self self;     /* as our links introduce us */
    unsigned timeout_ms;
};

/* Opens the stores found under cfg->dir (creating it) and starts the
 * replayer on base; members (borrowed) tells who is up and where.
 * ST_IO, ST_NOMEM. */
enum st_status handoff_start(const struct handoff_config *cfg, struct event_base *base,
                             struct members *members, struct handoff **out);
/* Syncs and closes the stores; NULLs *h; accepts NULL. After base's loop
 * has stopped. */
void handoff_stop(struct handoff **h);

/*
 * Stores a hint for target (the record as the coordinator wrote it).
 * sync: return only once it is on disk (a write at ANY counts it as an
 * acknowledgement). ST_OK; ST_NOMEM (the target's store is full, or
 * memory), ST_IO. Any thread.
 */
enum st_status handoff_store(struct handoff *h, const uint8_t target[WIRE_NODE_ID_LEN],
                             const struct wire_record *rec, bool sync);

/* `stats hints`: totals, then one line per target. Any thread. */
void handoff_stats(struct handoff *h, void (*emit)(void *arg, const char *name, const char *value),
                   void *arg);
