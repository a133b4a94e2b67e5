/*
 * hintlog.h - the hint log of hinted handoff: one append-only, checksummed,
 * byte-bounded store per target node, holding the writes that target missed
 * until it is back. Coordinator workers append, a background thread syncs,
 * the hint replayer reads with a cursor and commits what the target
 * acknowledged. Spec: docs/formats/hints.md (keep the two in step).
 *
 * Layout: <base>/<32 lowercase hex digits of the target's node id>/ holds
 * segment files NNNNNNNN.hint (decimal number, at least 8 digits, numbers
 * only grow) and the replay position file REPLAY. All integers little-endian.
 *
 * Segment header (40 bytes):
 *
 *   offset  size  field
 *   0       8     magic: "STRTHNT1"
 *   8       4     format version (1)
 *   12      16    target node id
 *   28      8     segment number (equals the number in the file name)
 *   36      4     header check: low 32 bits of XXH3_64bits(bytes 0..35)
 *
 * Record (24-byte header, then the body), packed back to back:
 *
 *   offset  size  field
 *   0       4     body length n, HINTLOG_BODY_MIN..HINTLOG_BODY_MAX
 *   4       4     length check: low 32 bits of XXH3_64bits(bytes 0..3)
 *   8       8     checksum: XXH3_64bits(bytes 16..24+n), created_ms and body
 *   16      8     created_ms: coordinator's unix time in ms at append
 *   24      n     body: a RECORD (common/wire.h, cluster-protocol.md) with
 *                 the write's original version, flags, expiry and value
 *
 * Replay position file REPLAY (48 bytes): everything before (segment,
 * offset) has been replayed and acknowledged.
 *
 *   offset  size  field
 *   0       8     magic: "STRTHNP1"
 *   8       4     format version (1)
 *   12      16    target node id
 *   28      8     segment number
 *   36      8     offset in that segment (a record boundary)
 *   44      4     check: low 32 bits of XXH3_64bits(bytes 0..43)
 *
 * Thread-safety: a store has a mutex. hintlog_append, hintlog_sync,
 * hintlog_drop_older, hintlog_get_stats and the synced/appended sequence
 * getters may be called from any thread concurrently. At most one replay
 * cursor is open per store, used by one thread at a time. hintlog_open and
 * hintlog_close must not race with anything on the same store.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "common/wire.h"

#define HINTLOG_SEGMENT_HEADER 40u
#define HINTLOG_RECORD_HEADER 24u
#define HINTLOG_POS_SIZE 48u
#define HINTLOG_VERSION 1u
#define HINTLOG_MAGIC "STRTHNT1"
#define HINTLOG_POS_MAGIC "STRTHNP1"
/* The smallest RECORD body (cluster-protocol.md) and the largest: a hint
 * must fit a frame of the default size to be replayed. */
#define HINTLOG_BODY_MIN 26u
#define HINTLOG_BODY_MAX (WIRE_FRAME_MAX_DEFAULT - 64u)

/* Options, with their bounds. Neither changes while a store is open. */
#define HINTLOG_MAX_BYTES_DEFAULT (1ull << 30) /* per target, headers included */
#define HINTLOG_MAX_BYTES_MIN (4ull << 10)
#define HINTLOG_SEGMENT_BYTES_DEFAULT (16ull << 20)
#define HINTLOG_SEGMENT_BYTES_MIN (1ull << 10)
#define HINTLOG_SEGMENT_BYTES_MAX (1ull << 30)
/* Defaults for the caller's decisions (the store does not enforce them):
 * write hints only for a target down for less than the window. */
#define HINTLOG_WINDOW_MS_DEFAULT (3ull * 3600 * 1000)

struct hintlog;
struct hintlog_cursor;

struct hintlog_options {
    /* Bytes on disk per target (segment headers and replayed records not
     * yet deleted included); an append beyond it fails. */
    uint64_t max_bytes;
    /* A segment is closed once the next record would take it past this
     * (a single larger record gets a segment of its own). */
    uint64_t segment_bytes;
};

void hintlog_options_default(struct hintlog_options *o);

/*
 * Opens (creating <base_dir> and its target directory if missing) the store
 * of `target` and recovers it: reads every segment, truncates torn tails,
 * skips corrupt records (counted), deletes replayed segments. Reads all the
 * pending hints: call it at startup or from a background thread, not on a
 * worker. Does not sync anything. `o` NULL means defaults.
 * Returns ST_OK with *out; ST_INVAL (options out of bounds); ST_IO (errno
 * set); ST_NOMEM.
 */
enum st_status hintlog_open(const char *base_dir, const uint8_t target[WIRE_NODE_ID_LEN],
                            const struct hintlog_options *o, struct hintlog **out);

/* Closes files (without syncing: call hintlog_sync first for a clean
 * shutdown) and frees; NULLs *s; accepts NULL.
 * REQUIRES: no cursor open, no other call on the store in progress. */
void hintlog_close(struct hintlog **s);

/* The target's node id (16 bytes, owned by the store). */
const uint8_t *hintlog_target(const struct hintlog *s);

/*
 * Appends one hint: the record `rec` (key, value, version and all, as the
 * target must apply it) created at `now_ms` (unix ms). One write(2), no
 * sync: the hint is durable once hintlog_synced_seq() >= *seq. Any thread.
 * Returns ST_OK with *seq (may be NULL); ST_NOMEM when the store is full
 * (max_bytes; the hint is counted dropped_full and nothing is written: the
 * write is then repaired only by read repair or anti-entropy) or memory
 * ran out; ST_INVAL (record invalid or its body over HINTLOG_BODY_MAX);
 * ST_IO (the write failed, or an earlier sync failed: the store refuses
 * appends until reopened).
 */
enum st_status hintlog_append(struct hintlog *s, const struct wire_record *rec, uint64_t now_ms,
                              uint64_t *seq);

/*
 * Makes every hint appended before the call durable: fdatasync of the
 * segments written since the last sync, fsync of the directories where
 * files were created. Meant for a background thread (every few ms while
 * hintlog_appended_seq() > hintlog_synced_seq()), which thereby group-
 * commits all appends in between; appends proceed while it runs (calls to
 * hintlog_sync are serialized among themselves). ST_OK; ST_IO (errno set):
 * the store is then failed, appends return ST_IO, synced_seq stops.
 */
enum st_status hintlog_sync(struct hintlog *s);

/* Sequence number of the last append (0 before any) and of the last one
 * known durable. Numbers start at 1 for each open store; hints recovered
 * by hintlog_open are durable and have none. Any thread. */
uint64_t hintlog_appended_seq(struct hintlog *s);
uint64_t hintlog_synced_seq(struct hintlog *s);

/*
 * Drops the pending hints created before cutoff_ms, from the oldest on:
 * whole segments whose newest hint is older, then the leading older hints
 * of the first remaining segment (later hints a few ms out of order stay).
 * Counts them dropped_old; *dropped (may be NULL) gets how many. Any
 * thread, may read a segment. ST_OK; ST_IO.
 */
enum st_status hintlog_drop_older(struct hintlog *s, uint64_t cutoff_ms, uint64_t *dropped);

struct hintlog_stats {
    uint64_t pending_count; /* hints appended and not yet acknowledged */
    uint64_t pending_bytes; /* their bytes on disk (framing included) */
    uint64_t disk_bytes;    /* bytes of all segment files: what max_bytes bounds */
    uint64_t segments;
    uint64_t oldest_ms;       /* created_ms of the oldest pending hint, 0 if none */
    uint64_t oldest_age_ms;   /* now_ms - oldest_ms, 0 if none */
    uint64_t written;         /* appends that succeeded */
    uint64_t replayed;        /* hints acknowledged by the target (committed) */
    uint64_t dropped_full;    /* appends refused: max_bytes */
    uint64_t dropped_too_old; /* skipped at replay: older than gc_grace */
    uint64_t dropped_old;     /* removed by hintlog_drop_older */
    uint64_t dropped_corrupt; /* damaged regions skipped (each >= 1 hint) */
    uint64_t torn_tails;      /* torn tails truncated at open */
    uint64_t torn_bytes;      /* bytes they held */
    uint64_t appended_seq;
    uint64_t synced_seq;
    bool failed; /* a sync or write failed: appends refused until reopen */
};

/* A snapshot of the store's counters (since open). Any thread. */
void hintlog_get_stats(struct hintlog *s, uint64_t now_ms, struct hintlog_stats *st);

/* Calls emit(arg, name, value) for each counter of `st` under a stable
 * lowercase name ("pending_count", ...), for `stats hints`. */
void hintlog_stats_emit(const struct hintlog_stats *st,
                        void (*emit)(void *arg, const char *name, uint64_t value), void *arg);

/*
 * Calls found(arg, id) for each target directory under base_dir (a name of
 * 32 lowercase hex digits), so a starting node can open the stores it
 * holds. A missing base_dir has none. ST_OK; ST_IO.
 */
enum st_status hintlog_list_targets(const char *base_dir,
                                    void (*found)(void *arg, const uint8_t id[WIRE_NODE_ID_LEN]),
                                    void *arg);

/* ---- Replay --------------------------------------------------------------
 * The replayer opens a cursor, takes hints in append order, sends them to
 * the target (HINT_REPLAY) and, once the target acknowledged them, commits
 * the mark of the last one acknowledged: everything up to it is then
 * replayed for good (the position is persisted, fully replayed segments are
 * deleted). A crash between sending and committing sends those hints again,
 * which is harmless: the target applies them as version-compare merges.
 */

/* Where a hint ends in the log, to hand back to hintlog_replay_commit.
 * Plain data: copy it; its fields are the store's business. */
struct hintlog_mark {
    uint64_t seg;
    uint64_t off;
    uint64_t idx;     /* valid hints of seg up to here */
    uint64_t yielded; /* hints handed out by the cursor up to here */
};

struct hintlog_hint {
    struct wire_record rec; /* views valid until the next call on the cursor */
    uint64_t created_ms;
    struct hintlog_mark mark;
};

struct hintlog_replay_options {
    /* Hints created more than gc_grace_ms before now_ms are dropped
     * (dropped_too_old) instead of replayed: a tombstone that shadowed one
     * may have been purged at the target. 0 means no limit. */
    uint64_t gc_grace_ms;
    /* Throttle, in hint bytes (framing included) per second; 0 = none.
     * Bursts of a quarter second (at least 4 KiB) are allowed. */
    uint64_t rate_bytes_per_sec;
};

/* Opens the replay cursor at the first pending hint. ST_OK; ST_AGAIN (a
 * cursor is already open on s); ST_NOMEM. `o` NULL means no gc_grace limit
 * and no throttle. */
enum st_status hintlog_replay_begin(struct hintlog *s, const struct hintlog_replay_options *o,
                                    uint64_t now_ms, struct hintlog_cursor **out);

enum hintlog_next {
    HINTLOG_HINT, /* *h is the next hint */
    HINTLOG_END,  /* nothing pending now (call again after more appends) */
    HINTLOG_WAIT, /* throttled, or a bounded amount of work done: call
                     again in *wait_ms (0: at once, after yielding) */
};

/*
 * The next pending hint in append order, skipping (and counting) corrupt
 * ones and those past gc_grace. now_ms drives gc_grace and the throttle.
 * Returns the outcome, or with *st != ST_OK (ST_IO, ST_NOMEM) HINTLOG_WAIT.
 * *h's views stay valid until the next call on the cursor.
 */
enum hintlog_next hintlog_replay_next(struct hintlog_cursor *c, uint64_t now_ms,
                                      struct hintlog_hint *h, uint64_t *wait_ms,
                                      enum st_status *st);

/*
 * The target acknowledged every hint up to and including the one `m` came
 * with (marks may be committed in any order; an older one is a no-op).
 * Persists the position (no sync: a lost position only replays again) and
 * deletes fully replayed segments. Invalidates the views of the last hint.
 * ST_OK; ST_INVAL (a mark this cursor has not reached); ST_IO (the
 * position file could not be written: the progress holds in memory, and
 * after a restart those hints are sent again).
 */
enum st_status hintlog_replay_commit(struct hintlog_cursor *c, const struct hintlog_mark *m);

/* Commits everything the cursor went past: all hints handed out, and the
 * ones skipped after them. */
enum st_status hintlog_replay_commit_all(struct hintlog_cursor *c);

/* Closes the cursor (uncommitted hints stay pending); NULLs *c; accepts
 * NULL. */
void hintlog_replay_end(struct hintlog_cursor **c);
