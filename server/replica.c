/*
 * replica.c - the local replica's reads and merges (see replica.h).
 */
#include "server/replica.h"

#include "kvstore/kvstore.h"
#include "storage/include/lsm.h"

enum st_status replica_read(struct lsm_db *db, const void *key, size_t key_len,
                            struct lsm_record **out)
{
    *out = NULL;
    return lsm_get(db, key, key_len, LSM_READ_TOMBSTONES | LSM_READ_EXPIRED, out);
}

enum st_status replica_batch_add(struct lsm_batch *batch, const struct wire_record *rec)
{
    struct lsm_version v = {rec->version.hlc, rec->version.node};
    if (rec->tombstone)
        return lsm_batch_delete(batch, rec->key, rec->key_len, v, rec->expiry);
    struct lsm_record r;
    kvstore_lsm_of(rec, &r);
    return lsm_batch_put(batch, &r);
}

enum st_status replica_apply(struct lsm_db *db, const struct wire_record *rec)
{
    struct lsm_version v = {rec->version.hlc, rec->version.node};
    if (rec->tombstone)
        return lsm_delete(db, rec->key, rec->key_len, v, rec->expiry);
    struct lsm_record r;
    kvstore_lsm_of(rec, &r);
    return lsm_put(db, &r);
}

bool replica_is_miss(const struct wire_record *rec, uint64_t now)
{
    return rec->tombstone || (rec->expiry != 0 && rec->expiry <= now);
}
