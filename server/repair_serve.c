/*
 * repair_serve.c - the responder's half of anti-entropy (repair.h): the
 * trees peers compare against (built on request from a snapshot, kept
 * under the session id for the descent) and the range reads that follow.
 * Main loop (the cluster port).
 */
#include <string.h>

#include "common/clock.h"
#include "common/mem.h"
#include "server/merkle.h"
#include "server/repair_int.h"
#include "storage/include/lsm.h"

enum st_status repair_scan(struct lsm_db *db, const struct lsm_snapshot *snap,
                           struct ring_range range, const uint8_t *after, size_t after_len,
                           bool (*fn)(void *arg, const struct lsm_record *rec), void *arg)
{
    /* (start, end] as token intervals: one, or two when it wraps */
    uint64_t first[2], last[2];
    int parts = 0;
    if (range.start < range.end) {
        first[parts] = range.start + 1, last[parts++] = range.end;
    } else {
        if (range.start != UINT64_MAX)
            first[parts] = range.start + 1, last[parts++] = UINT64_MAX;
        first[parts] = 0, last[parts++] = range.end;
    }
    uint64_t after_token = after != NULL ? lsm_token(after, after_len) : 0;
    bool skipping = after != NULL;
    for (int p = 0; p < parts; p++) {
        uint64_t from = first[p];
        if (skipping) {
            if (after_token < first[p] || after_token > last[p])
                continue; /* the page ended in the other part */
            from = after_token;
        }
        struct lsm_iter *it = NULL;
        enum st_status st =
            lsm_iter_create(db, snap, from, last[p], LSM_READ_TOMBSTONES | LSM_READ_EXPIRED, &it);
        if (st != ST_OK)
            return st;
        struct lsm_record rec;
        bool go = true;
        while (go && lsm_iter_next(it, &rec)) {
            if (skipping) {
                /* past the last page's key: its token, then the key itself */
                if (lsm_token(rec.key, rec.key_len) == after_token) {
                    if (rec.key_len == after_len && memcmp(rec.key, after, after_len) == 0)
                        skipping = false;
                    continue;
                }
                skipping = false;
            }
            go = fn(arg, &rec);
        }
        st = lsm_iter_status(it);
        lsm_iter_destroy(&it);
        if (st != ST_OK || !go)
            return st;
        skipping = false;
    }
    return ST_OK;
}

/* The tree of session `id`, or NULL. */
static struct served_tree *served_find(struct repair *r, uint64_t id)
{
    for (int i = 0; i < REPAIR_SERVED_TREES; i++)
        if (r->served[i].tree != NULL && r->served[i].session == id)
            return &r->served[i];
    return NULL;
}

/* A slot for a new tree: a free one, else the least recently used. */
static struct served_tree *served_slot(struct repair *r)
{
    struct served_tree *best = &r->served[0];
    for (int i = 0; i < REPAIR_SERVED_TREES; i++) {
        if (r->served[i].tree == NULL)
            return &r->served[i];
        if (r->served[i].used_ms < best->used_ms)
            best = &r->served[i];
    }
    merkle_destroy(&best->tree);
    return best;
}

uint16_t repair_serve_merkle(struct repair *r, const struct wire_merkle_req *q,
                             struct wire_buf *out, const char **msg)
{
    struct ring_range range = {q->range_start, q->range_end};
    struct served_tree *s = served_find(r, q->session);
    if (s != NULL &&
        (merkle_depth(s->tree) != q->depth || merkle_range(s->tree).start != range.start ||
         merkle_range(s->tree).end != range.end)) {
        *msg = "session reused with another range or depth";
        return WIRE_ERR_BAD_REQUEST;
    }
    if (s == NULL) {
        /* the snapshot must be taken while our clock reads <= as_of
         * (docs/REPAIR.md, "The as-of rule") */
        if ((uint64_t)clock_unix_now() > q->as_of) {
            *msg = "as_of has passed here: retry with a later one";
            return WIRE_ERR_NOT_READY;
        }
        struct lsm_snapshot *snap = NULL;
        struct merkle_tree *t = NULL;
        enum st_status st = lsm_snapshot_create(r->db, &snap);
        if (st == ST_OK)
            st = merkle_build_from_db(r->db, snap, range, q->depth, q->as_of, q->gc_grace, &t);
        lsm_snapshot_destroy(r->db, &snap);
        if (st != ST_OK) {
            *msg = st_status_name(st);
            return st == ST_NOMEM ? WIRE_ERR_OVERLOADED : WIRE_ERR_STORAGE;
        }
        s = served_slot(r);
        s->session = q->session;
        s->tree = t;
        REPAIR_COUNT(r, trees_served, 1);
    }
    s->used_ms = clock_monotonic_ms();
    size_t n = q->n << q->step;
    uint64_t *nodes = mem_alloc(MEM_OTHER, q->n * sizeof(*nodes));
    uint64_t *hashes = mem_alloc(MEM_OTHER, n * sizeof(*hashes));
    uint16_t err = 0;
    if (nodes == NULL || hashes == NULL) {
        *msg = "out of memory";
        err = WIRE_ERR_OVERLOADED;
    } else {
        for (size_t i = 0; i < q->n; i++)
            nodes[i] = wire_u64_at(q->nodes, i);
        if (merkle_subtree_hashes(s->tree, q->level, nodes, q->n, q->step, hashes, n) != ST_OK) {
            *msg = "nodes outside the tree";
            err = WIRE_ERR_BAD_REQUEST;
        } else {
            wire_compose_merkle_reply(out, hashes, n, merkle_records(s->tree));
        }
    }
    mem_free(MEM_OTHER, nodes, q->n * sizeof(*nodes));
    mem_free(MEM_OTHER, hashes, n * sizeof(*hashes));
    return err;
}

/* A range read's page being filled. */
struct page {
    struct wire_buf *records;
    size_t n, max_records, budget;
    bool more;
};

static bool page_add(void *arg, const struct lsm_record *rec)
{
    struct page *p = arg;
    if (p->n == p->max_records || (p->n > 0 && p->records->len >= p->budget)) {
        p->more = true;
        return false;
    }
    struct wire_record w = {
        .key = rec->key,
        .key_len = rec->key_len,
        .value = rec->tombstone ? NULL : rec->value,
        .value_len = rec->tombstone ? 0 : rec->value_len,
        .flags = rec->flags,
        .expiry = rec->expiry,
        .version = {rec->version.hlc, rec->version.node},
        .tombstone = rec->tombstone,
    };
    wire_put_record(p->records, &w);
    p->n++;
    return true;
}

uint16_t repair_serve_range(struct repair *r, const struct wire_range_req *q, size_t budget,
                            struct wire_buf *out, const char **msg)
{
    struct wire_buf records;
    wire_buf_init(&records);
    size_t cap = q->max_bytes < budget ? q->max_bytes : budget;
    struct page p = {.records = &records, .max_records = q->max_records, .budget = cap};
    struct ring_range range = {q->range_start, q->range_end};
    enum st_status st = repair_scan(r->db, NULL, range, q->after_len > 0 ? q->after : NULL,
                                    q->after_len, page_add, &p);
    uint16_t err = 0;
    if (st != ST_OK || records.err != ST_OK) {
        *msg = st_status_name(st != ST_OK ? st : records.err);
        err = WIRE_ERR_STORAGE;
    } else {
        wire_put_u8(out, p.more ? 1 : 0);
        wire_put_varint(out, p.n);
        wire_put_raw(out, records.data, records.len);
        REPAIR_COUNT(r, ranges_served, 1);
        REPAIR_COUNT(r, bytes_out, records.len);
    }
    wire_buf_deinit(&records);
    return err;
}
