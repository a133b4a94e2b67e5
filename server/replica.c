/*
 * replica.c - the local replica's reads and merges (see replica.h).
 */
#include "server/replica.h"

#include "storage/include/lsm.h"

void replica_record_of(const struct lsm_record *in, struct wire_record *out)
{
    *out = (struct wire_record){
        .key = in->key,
        .key_len = in->key_len,
        .value = in->tombstone ? NULL : in->value,
        .value_len = in->tombstone ? 0 : in->value_len,
        .flags = in->flags,
        .expiry = in->expiry,
        .version = {in->version.hlc, in->version.node},
        .tombstone = in->tombstone,
    };
}

enum st_status replica_read(struct lsm_db *db, const void *key, size_t key_len,
                            struct lsm_record **out)
{
    *out = NULL;
    return lsm_get(db, key, key_len, LSM_READ_TOMBSTONES | LSM_READ_EXPIRED, out);
}

static struct lsm_record lsm_of(const struct wire_record *w)
{
    return (struct lsm_record){
        .key = w->key,
        .key_len = w->key_len,
        .value = w->value,
        .value_len = w->value_len,
        .flags = w->flags,
        .expiry = w->expiry,
        .version = {w->version.hlc, w->version.node},
    };
}

enum st_status replica_batch_add(struct lsm_batch *batch, const struct wire_record *rec)
{
    struct lsm_version v = {rec->version.hlc, rec->version.node};
    if (rec->tombstone)
        return lsm_batch_delete(batch, rec->key, rec->key_len, v, rec->expiry);
    struct lsm_record r = lsm_of(rec);
    return lsm_batch_put(batch, &r);
}

enum st_status replica_apply(struct lsm_db *db, const struct wire_record *rec)
{
    struct lsm_version v = {rec->version.hlc, rec->version.node};
    if (rec->tombstone)
        return lsm_delete(db, rec->key, rec->key_len, v, rec->expiry);
    struct lsm_record r = lsm_of(rec);
    return lsm_put(db, &r);
}

bool replica_is_miss(const struct wire_record *rec, uint64_t now)
{
    return rec->tombstone || (rec->expiry != 0 && rec->expiry <= now);
}
