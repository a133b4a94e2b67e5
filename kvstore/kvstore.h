/*
 * kvstore.h - memcached's data commands on an LSM engine: the one place
 * where "add", "cas", "append", "incr" ... are decided for persistent
 * data, shared by both daemons (strata-node runs them at a key's primary,
 * strata-proxy's local backend on its embedded engine).
 *
 * Every record carries a version from a hybrid logical clock; the CAS
 * unique a client sees is that version's HLC. Writes that read first are
 * serialised per key by a striped lock, so each is atomic against every
 * other write of the same key through this kvstore; reads take no lock.
 * A caller may hold a key's lock across a read-modify-write and work of
 * its own (the proxy updates its L1 under it), through the _locked
 * variants. Thread-safe.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"
#include "common/hlc.h"
#include "common/status.h"
#include "common/wire.h"

struct lsm_batch;
struct lsm_db;
struct lsm_record;
struct kvstore;

/* db and clock are borrowed and must outlive the kvstore. node_id: the
 * short id stamped into versions; max_value_len: the largest value a
 * store may leave (TOO_LARGE beyond). */
struct kvstore_config {
    struct lsm_db *db;
    struct hlc *clock;
    uint16_t node_id;
    size_t max_value_len;
    /* SET writes without reading the live record first: only when every
     * version in the engine was issued by `clock`, and the clock's bound
     * survives restarts (hlc_floor from a stored hlc_upper_bound), so a
     * new version is always the newest */
    bool blind_sets;
};

enum st_status kvstore_create(const struct kvstore_config *cfg, struct kvstore **out);
/* Accepts NULL and *ks == NULL; sets *ks to NULL. */
void kvstore_destroy(struct kvstore **ks);

struct lsm_db *kvstore_db(const struct kvstore *ks);
struct hlc *kvstore_clock(const struct kvstore *ks);

/* The key's write lock (striped: unrelated keys may share one). */
void kvstore_lock(struct kvstore *ks, const void *key, size_t nkey);
void kvstore_unlock(struct kvstore *ks, const void *key, size_t nkey);

/* The stripes themselves, for a caller that holds several at once (the
 * proxy keeps a loop turn's written keys locked until their batch is in
 * the engine): KVSTORE_LOCKS of them, key's is kvstore_stripe(). A
 * thread that holds one must take the next with trylock, or release all
 * it holds before it waits: two holders waiting on each other deadlock. */
#define KVSTORE_LOCKS 4096u
unsigned kvstore_stripe(const void *key, size_t nkey);
void kvstore_lock_stripe(struct kvstore *ks, unsigned stripe);
bool kvstore_trylock_stripe(struct kvstore *ks, unsigned stripe);
void kvstore_unlock_stripe(struct kvstore *ks, unsigned stripe);

/* The newest live record of key in *out (NULL: none, deleted or
 * expired), owned by the caller (lsm_record_free). ST_IO/ST_CORRUPT when
 * the engine could not read it (logged). Needs no lock. */
enum st_status kvstore_read(struct kvstore *ks, const void *key, size_t nkey,
                            struct lsm_record **out);

/*
 * A read-modify-write (every op of struct wire_rmw; read and write levels
 * are the caller's business): reads the live record, decides as memcached
 * does, and writes the result at a version above both the clock and the
 * record it read. *reply gets the outcome; *written (when not NULL) the
 * record written, owned by the caller (lsm_record_free), NULL when
 * nothing was; with WIRE_RMW_RETURN, reply->rec is a view of *written
 * (REQUIRES: written not NULL). ST_OK, or ST_IO/ST_CORRUPT/ST_NOMEM when
 * the engine failed (logged).
 */
enum st_status kvstore_rmw(struct kvstore *ks, const struct wire_rmw *q,
                           struct wire_rmw_reply *reply, struct lsm_record **written);
/* The same; REQUIRES: the caller holds q->key's lock. */
enum st_status kvstore_rmw_locked(struct kvstore *ks, const struct wire_rmw *q,
                                  struct wire_rmw_reply *reply, struct lsm_record **written);

/* kvstore_rmw_locked with the record written into batch, not the engine:
 * the caller writes the batch (lsm_write) before it releases the key's
 * lock or tells anyone the write is done. */
enum st_status kvstore_rmw_into(struct kvstore *ks, struct lsm_batch *batch,
                                const struct wire_rmw *q, struct wire_rmw_reply *reply,
                                struct lsm_record **written);

/*
 * Where an RMW reads the live record and writes its result: the engine
 * (kvstore_rmw), or a store in front of it whose records are newer (the
 * proxy's write-behind journal, which reads through to the engine). read:
 * the live record or NULL (a tombstone is NULL); write: rec, a tombstone
 * for a delete, at its version.
 */
struct kvstore_io {
    enum st_status (*read)(void *arg, const void *key, size_t nkey, struct lsm_record **cur);
    enum st_status (*write)(void *arg, const struct lsm_record *rec);
    void *arg;
};

/* kvstore_rmw_locked through io: memcached's decision and the version
 * rules, the records elsewhere. REQUIRES: q->key's lock. */
enum st_status kvstore_rmw_via(struct kvstore *ks, const struct kvstore_io *io,
                               const struct wire_rmw *q, struct wire_rmw_reply *reply,
                               struct lsm_record **written);

/* A record written elsewhere (a journal's, with its original version)
 * put into the engine as is: last write wins by version, so applying it
 * twice, or after a newer write of the key, changes nothing. */
enum st_status kvstore_apply(struct kvstore *ks, const struct lsm_record *rec);

/* The engine's record as the wire carries it and back (views: the
 * bytes stay the other's). */
void kvstore_wire_of(const struct lsm_record *in, struct wire_record *out);
void kvstore_lsm_of(const struct wire_record *in, struct lsm_record *out);

/* The front end's exptime (relative to process start, 0: never) as the
 * engine's absolute unix seconds; seconds left of an expiry (meta t), -1
 * for none. */
uint64_t kvstore_expiry_of(rel_time_t exptime);
int64_t kvstore_ttl_left(uint64_t expiry);
