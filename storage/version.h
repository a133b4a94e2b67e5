/*
 * version.h - the file set of a database (a version: SSTables per level),
 * the edits that change it, and the version set that logs edits to the
 * manifest and points CURRENT at it. Spec of the manifest payloads:
 * docs/formats/manifest.md.
 *
 * Version edit (one manifest record payload): a sequence of fields
 *
 *   varint tag, varint length, length bytes of body
 *
 * Tags (never renumber; unknown tags are skipped):
 *   1  format name: bytes "strata-lsm-1" (first record of every manifest)
 *   2  log number: varint; WAL segments below it are fully in SSTables
 *   3  next file number: varint
 *   4  deleted file: varint level, varint file number
 *   5  new file: varint level, varint number, varint size,
 *      varint len + smallest internal key, varint len + largest internal
 *      key, varint records, varint tombstones, varint earliest expiry,
 *      varint raw key+value bytes
 *   6  newest version of a new file: varint number, varint hlc, varint node
 *   7  oldest version of a new file: varint number, varint hlc, varint node
 *
 * Threads: a version is immutable and reference-counted (readers pin it);
 * vset_log_and_apply is serialised inside the vset (flush and compaction
 * threads call it); vset_current may be called from any thread.
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "storage/coding.h"
#include "storage/env.h"
#include "storage/ikey.h"
#include "storage/iter.h"
#include "storage/logfile.h"
#include "storage/tcache.h"

#define VERSION_FORMAT_NAME "strata-lsm-1"
/* A manifest past this size is replaced by a snapshot in a new one. */
#define VSET_MANIFEST_LIMIT (64ull << 20)

struct vset;

/* One SSTable as the manifest knows it. Shared by every version holding
 * it; when the last reference goes the file number is queued for deletion
 * (vset_take_obsolete). */
struct file_meta {
    atomic_int refs;
    struct vset *vs;
    uint64_t number;
    uint64_t size;
    uint8_t smallest[IKEY_MAX_LEN];
    uint8_t largest[IKEY_MAX_LEN];
    uint16_t smallest_len, largest_len;
    uint64_t records, tombstones, earliest_expiry, raw_bytes;
    /* Bounds of the versions of the records in the file (tags 6 and 7);
     * unknown for files named by a manifest written before they were
     * recorded, and then taken as the widest: newest {max}, oldest {0}. */
    struct lsm_version newest, oldest;
    bool newest_known, oldest_known;
    bool being_compacted; /* guarded by the db mutex */
};

struct version {
    atomic_int refs;
    /* L0: newest (highest number) first; L1+: sorted, disjoint ranges. */
    struct file_meta **files[LSM_MAX_LEVELS];
    size_t nfiles[LSM_MAX_LEVELS];
    /* newest_from[l]: an upper bound of the versions in levels >= l (a
     * point read holding a version at least that new stops descending);
     * {0, 0} when those levels are empty. */
    struct lsm_version newest_from[LSM_MAX_LEVELS];
};

struct edit_file {
    int level;
    struct file_meta *meta; /* new: one reference held by the edit */
};

struct edit_del {
    int level;
    uint64_t number;
};

struct version_edit {
    bool has_log_number, has_next_file;
    uint64_t log_number, next_file;
    struct edit_file *added;
    size_t nadded, added_cap;
    struct edit_del *deleted;
    size_t ndeleted, deleted_cap;
};

void version_edit_init(struct version_edit *e);
void version_edit_deinit(struct version_edit *e);
/* Adds a new file (allocates its meta with one reference). ST_NOMEM. */
enum st_status version_edit_add(struct version_edit *e, struct vset *vs, int level, uint64_t number,
                                uint64_t size, const uint8_t *smallest, size_t smallest_len,
                                const uint8_t *largest, size_t largest_len, uint64_t records,
                                uint64_t tombstones, uint64_t earliest_expiry, uint64_t raw_bytes);
enum st_status version_edit_delete(struct version_edit *e, int level, uint64_t number);
/* Records the newest / oldest version held by new file `number` of this
 * edit. ST_CORRUPT if the edit adds no such file. */
enum st_status version_edit_set_newest(struct version_edit *e, uint64_t number,
                                       struct lsm_version newest);
enum st_status version_edit_set_oldest(struct version_edit *e, uint64_t number,
                                       struct lsm_version oldest);
/* A file's version bounds, the widest when unknown. */
struct lsm_version file_newest(const struct file_meta *m);
struct lsm_version file_oldest(const struct file_meta *m);
/* Drops the edit's new-file metas without queueing their files for
 * deletion: after a failed manifest write the edit may be durable, so its
 * files must stay (the cleanup at the next open removes them if not). */
void version_edit_forget_added(struct version_edit *e);
/* Appends the encoding of `e` to `out`. */
enum st_status version_edit_encode(const struct version_edit *e, struct buf *out);
/* Decodes a manifest record into `e` (initialised, empty). ST_CORRUPT on
 * any malformed field, ST_NOMEM. `vs` owns the new file metas. */
enum st_status version_edit_decode(struct version_edit *e, struct vset *vs, const uint8_t *p,
                                   size_t len);

void version_ref(struct version *v);
void version_unref(struct version **v);
/* Sum of file sizes of a level. */
uint64_t version_level_bytes(const struct version *v, int level);

/*
 * Looks the user key of `ikey` up and keeps the highest version: every L0
 * file whose range may hold it, then the one candidate file of each deeper
 * level. A file whose newest version is not above the best found so far
 * is skipped, and the descent stops once no deeper level can hold a
 * higher version (newest_from). On entry *found says whether ikey_out/
 * rval_out already hold a candidate (from the memtables); on return they
 * hold the winner. `trace` (may be NULL) records the cost. ST_OK, ST_IO,
 * ST_CORRUPT.
 */
struct get_trace {
    unsigned probes_after_hit; /* layers read while a candidate was held */
    bool newer_after_hit;      /* one of them held a higher version */
};
enum st_status version_get(struct version *v, struct tcache *tc, const uint8_t *ikey,
                           size_t ikey_len, bool *found, struct buf *ikey_out, struct buf *rval_out,
                           struct get_trace *trace);
/*
 * Appends to `its` (a MEM_STORAGE array of *n entries, capacity *cap) one
 * iterator per L0 file and one concatenating iterator per deeper level.
 * Iterators pin `v`. ST_NOMEM.
 */
enum st_status version_add_iters(struct version *v, struct tcache *tc, struct iter ***its,
                                 size_t *n, size_t *cap);
/* An iterator over the given files of one level >= 1 (sorted, disjoint),
 * borrowed from `v`, which the iterator pins. */
enum st_status version_level_iter_create(struct version *v, struct file_meta **files, size_t n,
                                         struct tcache *tc, struct iter **out);
/*
 * Whether a file of `v` for which is_input(file, arg) is false (files
 * outside a compaction) may hold a version of the user key of `ikey` older
 * than or equal to `ver`: its key range holds the key and its oldest
 * version is not above `ver`. Compaction may drop a tombstone or an expired
 * record only when none does, or the older version would come back.
 */
bool version_older_outside(const struct version *v,
                           bool (*is_input)(const struct file_meta *m, const void *arg),
                           const void *arg, const uint8_t *ikey, size_t ikey_len,
                           struct lsm_version ver);

/* ---- version set ---- */

enum st_status vset_create(struct lsm_env *env, const char *dir, struct vset **out);
void vset_destroy(struct vset **vs);
/*
 * Replays the manifest named by CURRENT. ST_OK and *exists (false: no
 * CURRENT, nothing read); ST_CORRUPT (logged with the manifest name);
 * ST_IO.
 */
enum st_status vset_recover(struct vset *vs, bool *exists);
/*
 * Starts a new manifest holding a snapshot of the current version (plus
 * log number and next file), syncs it, points CURRENT at it (temp file,
 * sync, rename, directory sync) and deletes the old manifest. Used at open.
 */
enum st_status vset_write_snapshot(struct vset *vs);
/* Changes the rollover size (tests). */
void vset_set_manifest_limit(struct vset *vs, uint64_t bytes);
/*
 * Applies `e` to the current version, logs it to the manifest (sync), then
 * installs the new version; rolls over to a new manifest (a snapshot, as at
 * open) when the current one exceeds the manifest limit. Fills e->next_file. ST_IO leaves the current
 * version untouched (the db must stop writing). ST_CORRUPT if the edit
 * would make a level >= 1 overlap (a bug, logged).
 */
enum st_status vset_log_and_apply(struct vset *vs, struct version_edit *e);
/* A new reference to the current version. Any thread. */
struct version *vset_current(struct vset *vs);
uint64_t vset_new_file_number(struct vset *vs);
/* Makes sure numbers up to `n` are never handed out (recovery of WALs). */
void vset_mark_file_number_used(struct vset *vs, uint64_t n);
uint64_t vset_log_number(struct vset *vs);
uint64_t vset_manifest_number(struct vset *vs);
/* Moves the queued obsolete file numbers to the caller (who deletes the
 * files); *out is a MEM_STORAGE array of *n numbers (cap *n), NULL if none. */
void vset_take_obsolete(struct vset *vs, uint64_t **out, size_t *n);
/* Whether file `number` is in the current version (cleanup at open). */
bool vset_is_live(struct vset *vs, uint64_t number);
