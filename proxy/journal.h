/*
 * journal.h - write-behind's durable queue: the writes acknowledged to
 * clients and not yet applied to the backend, one record per key (a later
 * write of a key replaces its pending one: overwrites coalesce), each
 * with the version it was acknowledged at.
 *
 * The journal is an instance of the storage engine of its own
 * (data_dir/journal): its WAL gives group commit and crash recovery, its
 * point reads answer "is this key's write still pending?" when L1 has
 * evicted it. A pending delete is a record too (the engine's tombstones
 * mark records drained). Bounded by entries and bytes. Thread-safe;
 * writers of a key hold that key's lock (kvstore's), so the pending state
 * of a key changes under it only.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "storage/include/lsm.h"

struct journal;

struct journal_config {
    const char *dir;
    enum lsm_sync_mode sync; /* when an append is on disk: before its answer (ALWAYS) */
    uint32_t sync_interval_ms;
    uint64_t max_entries, max_bytes;
    size_t max_value_len;
};

/* Opens (creating) the journal and counts what is pending. */
enum st_status journal_open(const struct journal_config *cfg, struct journal **out);
void journal_close(struct journal **j);

/*
 * The pending write of key: ST_OK with *out NULL (none), a record, or a
 * record with tombstone set (a pending delete), owned by the caller
 * (lsm_record_free). ST_IO/ST_CORRUPT from the engine.
 */
enum st_status journal_get(struct journal *j, const void *key, size_t nkey,
                           struct lsm_record **out);

/*
 * Appends rec (a tombstone: a delete) as the key's pending write, on
 * disk per the sync setting before it returns. `replaces`: the key's
 * pending record (NULL: none), for the bounds: a new key over
 * max_entries, or any write past max_bytes, is refused with ST_AGAIN
 * (nothing written). REQUIRES: the key's lock.
 */
enum st_status journal_put(struct journal *j, const struct lsm_record *rec,
                           const struct lsm_record *replaces);

/*
 * Drops the pending write of rec's key if it is still rec's version
 * (applied to the backend). REQUIRES: the key's lock. ST_OK also when a
 * newer write has replaced it (which stays pending).
 */
enum st_status journal_drained(struct journal *j, const struct lsm_record *rec);

/*
 * Calls fn(arg, rec) for the pending writes in a snapshot of the journal
 * (key order, not age), until fn returns false. A record it gives may
 * have been replaced or drained since: callers check under the key's
 * lock with journal_get. ST_OK or the engine's error.
 */
enum st_status journal_scan(struct journal *j, bool (*fn)(void *arg, const struct lsm_record *rec),
                            void *arg);

struct journal_stats {
    uint64_t pending, bytes; /* now */
    uint64_t appended, applied, retried, refused_full;
    uint64_t oldest_ms; /* HLC ms of the oldest pending write the last scan saw; 0: none */
};
void journal_stats(struct journal *j, struct journal_stats *st);
/* Makes every append that has returned durable (one shared fdatasync:
 * lsm_sync). For a journal opened with sync NONE whose caller batches. */
enum st_status journal_sync(struct journal *j);
/* Counters the drainer keeps. */
void journal_count_applied(struct journal *j);
void journal_count_retried(struct journal *j);
void journal_set_oldest(struct journal *j, uint64_t hlc_ms);
uint64_t journal_pending(struct journal *j);
