/*
 * writebehind.h - the write-behind mode (docs/TIERS.md): a write is
 * decided against the key's pending write (or the backend's record when
 * none is pending), appended to the journal (proxy/journal.h) and synced
 * before it is acknowledged; a drainer thread applies pending writes to
 * the backend with their original versions, retrying with backoff while
 * the backend fails. A full journal sends the write through to the
 * backend or refuses it, as the policy's `overflow` says. The backend is
 * the local engine, or the cluster (the tiers' cbackend; the drainer then
 * sends COORD_WRITEs from a loop of its own).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "common/wire.h"
#include "frontend/exec.h"

struct lsm_record;
struct policy;
struct settings;
struct tiers;
struct writebehind;

/* Opens data_dir/journal and applies what an earlier run left pending
 * before returning (the prefixes it belongs to are served afterwards),
 * then starts the drainer. Prints why on failure and returns an exit
 * code, else 0. */
int writebehind_open(struct tiers *t, const struct settings *s, struct writebehind **out);
/* True when data_dir holds a journal (an earlier run's, maybe with
 * pending writes). */
bool writebehind_exists(const struct settings *s);
/* Drains for at most the settings' journal_drain_timeout, keeps the rest
 * in the journal for the next start, stops the drainer. Accepts NULL. */
void writebehind_close(struct writebehind **wb);

/* An RMW of a write-behind key, as tiers_rmw: FE_OK (outcome in reply),
 * FE_FAILED, or FE_NO_MEMORY (journal full, overflow = error).
 * *written: the record acknowledged (the caller fills L1 with it).
 * REQUIRES: the key's lock. */
enum fe_result writebehind_rmw(struct writebehind *wb, const struct policy *pol,
                               const struct wire_rmw *q, struct wire_rmw_reply *reply,
                               struct lsm_record **written);

/*
 * backend = cluster: an RMW of a write-behind key, decided against its
 * pending write or, with none, against `below` (the cluster's live record,
 * NULL for none) once the caller has read it (below_read). Takes the key's
 * lock itself. Returns WB_DONE with *r as writebehind_rmw's result (and
 * *written the record acknowledged, the caller's to free), WB_NEED_READ
 * (nothing pending and q reads: read the cluster at the policy's level and
 * call again), or WB_WRITE_THROUGH (the journal is full, the policy's
 * overflow is write-through and nothing of the key is pending: send q to
 * the cluster as write-through does).
 */
enum wb_step { WB_DONE, WB_NEED_READ, WB_WRITE_THROUGH };
enum wb_step writebehind_rmw_cluster(struct writebehind *wb, const struct policy *pol,
                                     const struct wire_rmw *q, const struct wire_record *below,
                                     bool below_read, enum fe_result *r,
                                     struct wire_rmw_reply *reply, struct lsm_record **written);

/* The key's pending write: ST_OK with *out NULL (none pending), or the
 * record (tombstone set: a pending delete). REQUIRES: the key's lock. */
enum st_status writebehind_pending(struct writebehind *wb, const char *key, size_t nkey,
                                   struct lsm_record **out);

/* True when journal appends are synced per batch (journal_sync =
 * always); writebehind_sync then makes them durable. */
bool writebehind_batched(const struct writebehind *wb);
enum st_status writebehind_sync(struct writebehind *wb);

/* `stats journal`. */
void writebehind_stats(struct writebehind *wb,
                       void (*emit)(void *arg, const char *name, const char *value), void *arg);
