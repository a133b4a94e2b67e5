/*
 * replica.h - what this node does as one replica of a key, on its own
 * engine: the records the cluster protocol carries (struct wire_record)
 * read from and merged into the local store. The cluster port serves
 * peers' READ and WRITE with it, and the coordinator its own replica's
 * share of a request, so both apply the same rules: a write is a
 * version-compare merge (the engine keeps the highest version of a key,
 * so a replay is harmless) and a read sees tombstones and expired records
 * (the coordinator resolves them). Any thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "common/status.h"
#include "common/wire.h"

struct lsm_db;
struct lsm_batch;
struct lsm_record;

/* The newest version held of key, tombstone or expired included; *out
 * NULL when none (free with lsm_record_free). Engine errors as lsm_get. */
enum st_status replica_read(struct lsm_db *db, const void *key, size_t key_len,
                            struct lsm_record **out);

/* Adds rec to a batch as a version-compare merge. */
enum st_status replica_batch_add(struct lsm_batch *batch, const struct wire_record *rec);

/* Merges one record into the store. ST_OK, or the engine's error. */
enum st_status replica_apply(struct lsm_db *db, const struct wire_record *rec);

/* True when rec reads as a miss at unix time now: a tombstone, or expired. */
bool replica_is_miss(const struct wire_record *rec, uint64_t now);

/* True when a's version is newer than b's (hlc, then node). */
static inline bool replica_newer(struct wire_version a, struct wire_version b)
{
    return wire_version_newer(a, b);
}
