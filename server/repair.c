/*
 * repair.c - the initiator's half of anti-entropy (repair.h), on the
 * service's own thread and event loop.
 *
 *   cycle ─► tasks: (range we replicate, another live replica of it)
 *   task  ─► our tree of the range as of now + lead
 *         ─► MERKLE_TREE descent, REPAIR_STEP levels a round, from the
 *            root: only differing nodes are asked about
 *         ─► per differing leaf range: RANGE_READ pages from the peer,
 *            our own scan, merge by version: theirs newer → stored here,
 *            ours newer → WRITE there
 *         ─► next task (after a pause that keeps to rate_bytes)
 */
#include "server/repair.h"
#include "kvstore/kvstore.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mc_text.h"
#include "common/mem.h"
#include "common/peerlink.h"
#include "common/phi.h"
#include "server/members.h"
#include "server/merkle.h"
#include "server/repair_int.h"
#include "server/replica.h"
#include "storage/include/lsm.h"

#define REPAIR_TICK_MS 100
#define REPAIR_STEP 5 /* levels per MERKLE_TREE round */
#define REPAIR_PAGE_RECORDS 1024
#define REPAIR_PAGE_BYTES (1u << 20)
#define REPAIR_PUSH_BYTES (256u << 10) /* a WRITE of our newer records */
#define REPAIR_MAX_TASKS 4096

struct task {
    struct ring_range range;
    char addr[WIRE_ADDR_MAX + 1];
};

/* One record of a side, owned. */
struct side {
    struct lsm_record **recs;
    size_t n, cap;
};

struct session {
    struct repair *r;
    struct task task;
    struct peerlink *link;
    uint64_t id;
    uint64_t as_of;
    bool retried; /* as_of had passed at the peer once */
    struct merkle_tree *tree;
    unsigned level;
    uint64_t *nodes; /* the differing nodes of `level` */
    size_t n;
    struct ring_range *diff; /* differing leaf ranges */
    size_t ndiff, idiff;
    uint8_t after[WIRE_REC_KEY_MAX];
    size_t after_len;
    struct side theirs, mine;
    struct wire_buf body;
};

static void step(struct repair *r);

/* ------------------------------------------------------------- sides */

static bool side_add(struct side *s, const struct lsm_record *rec)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        struct lsm_record **recs = mem_alloc(MEM_OTHER, cap * sizeof(*recs));
        if (recs == NULL)
            return false;
        if (s->n > 0)
            memcpy(recs, s->recs, s->n * sizeof(*recs));
        mem_free(MEM_OTHER, s->recs, s->cap * sizeof(*recs));
        s->recs = recs;
        s->cap = cap;
    }
    if (lsm_record_copy(rec, &s->recs[s->n]) != ST_OK)
        return false;
    s->n++;
    return true;
}

static void side_clear(struct side *s)
{
    for (size_t i = 0; i < s->n; i++)
        lsm_record_free(&s->recs[i]);
    mem_free(MEM_OTHER, s->recs, s->cap * sizeof(*s->recs));
    *s = (struct side){0};
}

static int by_key(const void *a, const void *b)
{
    const struct lsm_record *x = *(struct lsm_record *const *)a;
    const struct lsm_record *y = *(struct lsm_record *const *)b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    return c != 0 ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

static bool mine_add(void *arg, const struct lsm_record *rec)
{
    return side_add(arg, rec);
}

/* ---------------------------------------------------------- sessions */

static void session_end(struct session *s, bool ok)
{
    struct repair *r = s->r;
    if (!ok)
        REPAIR_COUNT(r, sessions_failed, 1);
    merkle_destroy(&s->tree);
    mem_free(MEM_OTHER, s->nodes, s->n * sizeof(*s->nodes));
    mem_free(MEM_OTHER, s->diff, s->ndiff * sizeof(*s->diff));
    side_clear(&s->theirs);
    side_clear(&s->mine);
    wire_buf_deinit(&s->body);
    mem_free(MEM_OTHER, s, sizeof(*s));
    r->s = NULL;
    r->next++;
    step(r);
}

/* A peer that did not answer (or could not be reached) is skipped for
 * the rest of the cycle: each of its ranges would wait out the timeout. */
static void note_unreachable(struct session *s, enum peer_result res)
{
    struct repair *r = s->r;
    if (res == PEER_OK || res == PEER_ERROR || r->nunreachable == REPAIR_UNREACHABLE_MAX)
        return;
    snprintf(r->unreachable[r->nunreachable++], WIRE_ADDR_MAX + 1, "%s", s->task.addr);
}

static bool unreachable(const struct repair *r, const char *addr)
{
    for (size_t i = 0; i < r->nunreachable; i++)
        if (strcmp(r->unreachable[i], addr) == 0)
            return true;
    return false;
}

/* True when gossip sees the node at addr up now. */
static bool peer_up(struct repair *r, const char *addr)
{
    struct members_view *v = members_view_acquire(r->members);
    bool up = false;
    for (uint32_t i = 0; v != NULL && i < ring_node_count(v->ring) && !up; i++)
        up = strcmp(v->addrs[i], addr) == 0 &&
             atomic_load_explicit(&v->state[i], memory_order_relaxed) == PHI_UP;
    members_view_release(&v);
    return up;
}

static void send_descend(struct session *s);
static void read_page(struct session *s);

/* Our tree, and the first round of the descent. */
static void session_open(struct session *s)
{
    struct repair *r = s->r;
    s->id = ((uint64_t)random() << 32) ^ (uint64_t)random() ^ clock_monotonic_ms();
    s->as_of = (uint64_t)clock_unix_now() + (r->cfg.lead_ms + 999) / 1000;
    merkle_destroy(&s->tree);
    struct lsm_snapshot *snap = NULL;
    enum st_status st = lsm_snapshot_create(r->db, &snap);
    if (st == ST_OK)
        st = merkle_build_from_db(r->db, snap, s->task.range, r->cfg.depth, s->as_of,
                                  r->cfg.gc_grace_s, &s->tree);
    lsm_snapshot_destroy(r->db, &snap);
    if (st != ST_OK) {
        log_warn("repair: cannot build a tree: %s", st_status_name(st));
        session_end(s, false);
        return;
    }
    mem_free(MEM_OTHER, s->nodes, s->n * sizeof(*s->nodes));
    s->nodes = mem_alloc(MEM_OTHER, sizeof(*s->nodes));
    if (s->nodes == NULL) {
        session_end(s, false);
        return;
    }
    s->nodes[0] = 0;
    s->n = 1;
    s->level = 0;
    send_descend(s);
}

static void merge_and_push(struct session *s);

static void on_descend(void *arg, enum peer_result res, const struct wire_frame *f)
{
    struct session *s = arg;
    note_unreachable(s, res);
    struct repair *r = s->r;
    if (atomic_load(&r->stopping)) {
        session_end(s, false);
        return;
    }
    if (res == PEER_ERROR) {
        struct wire_error e = {.code = WIRE_ERR_INTERNAL};
        wire_parse_error(f->body, f->body_len, &e);
        if (e.code == WIRE_ERR_NOT_READY && !s->retried) {
            s->retried = true; /* as_of passed there: once more, later */
            session_open(s);
            return;
        }
        log_info("repair: %s answered error %u: %.*s", s->task.addr, (unsigned)e.code,
                 (int)e.msg_len, e.msg);
        session_end(s, false);
        return;
    }
    const uint8_t *hashes;
    size_t nh;
    uint64_t records;
    unsigned step_levels =
        r->cfg.depth - s->level < REPAIR_STEP ? r->cfg.depth - s->level : REPAIR_STEP;
    if (res != PEER_OK || f->opcode != WIRE_OP_MERKLE_TREE ||
        wire_parse_merkle_reply(f->body, f->body_len, &hashes, &nh, &records) != WIRE_OK ||
        nh != s->n << step_levels) {
        session_end(s, false);
        return;
    }
    uint64_t *peer = mem_alloc(MEM_OTHER, nh * sizeof(*peer));
    uint64_t *next = mem_alloc(MEM_OTHER, nh * sizeof(*next));
    size_t count = 0;
    bool ok = peer != NULL && next != NULL;
    if (ok) {
        for (size_t i = 0; i < nh; i++)
            peer[i] = wire_u64_at(hashes, i);
        ok = merkle_descend(s->tree, s->level, s->nodes, s->n, step_levels, peer, next, nh,
                            &count) == ST_OK;
    }
    mem_free(MEM_OTHER, peer, nh * sizeof(*peer));
    mem_free(MEM_OTHER, s->nodes, s->n * sizeof(*s->nodes));
    s->nodes = NULL;
    s->n = 0;
    if (!ok) {
        mem_free(MEM_OTHER, next, nh * sizeof(*next));
        session_end(s, false);
        return;
    }
    /* keep exactly `count` nodes */
    if (count > 0) {
        s->nodes = mem_alloc(MEM_OTHER, count * sizeof(*s->nodes));
        if (s->nodes != NULL)
            memcpy(s->nodes, next, count * sizeof(*next));
        s->n = s->nodes != NULL ? count : 0;
    }
    mem_free(MEM_OTHER, next, nh * sizeof(*next));
    if (count > 0 && s->nodes == NULL) {
        session_end(s, false);
        return;
    }
    s->level += step_levels;
    if (s->n == 0) {
        REPAIR_COUNT(r, ranges_equal, 1); /* nothing differs: nothing moves */
        session_end(s, true);
        return;
    }
    if (s->level < r->cfg.depth) {
        send_descend(s);
        return;
    }
    REPAIR_COUNT(r, ranges_differing, 1);
    REPAIR_COUNT(r, leaves_differing, s->n);
    s->diff = mem_alloc(MEM_OTHER, s->n * sizeof(*s->diff));
    if (s->diff == NULL ||
        merkle_leaf_ranges(s->tree, s->nodes, s->n, s->diff, s->n, &s->ndiff) != ST_OK) {
        mem_free(MEM_OTHER, s->diff, s->n * sizeof(*s->diff));
        s->diff = NULL;
        session_end(s, false);
        return;
    }
    /* ndiff <= n: keep the allocation's size for the free */
    s->ndiff = s->ndiff;
    s->idiff = 0;
    s->after_len = 0;
    read_page(s);
}

static void send_descend(struct session *s)
{
    struct repair *r = s->r;
    unsigned step_levels =
        r->cfg.depth - s->level < REPAIR_STEP ? r->cfg.depth - s->level : REPAIR_STEP;
    struct wire_merkle_req q = {
        .session = s->id,
        .range_start = s->task.range.start,
        .range_end = s->task.range.end,
        .depth = (uint8_t)r->cfg.depth,
        .as_of = s->as_of,
        .gc_grace = r->cfg.gc_grace_s,
        .level = (uint8_t)s->level,
        .step = (uint8_t)step_levels,
        .n = s->n,
    };
    wire_buf_clear(&s->body);
    wire_compose_merkle_req(&s->body, &q, s->nodes);
    if (s->body.err != ST_OK || peerlink_request(s->link, WIRE_OP_MERKLE_TREE, 0, s->body.data,
                                                 s->body.len, on_descend, s) != PEER_OK)
        session_end(s, false);
}

/* Accounts n bytes moved against rate_bytes. */
static void pace_account(struct repair *r, size_t n)
{
    if (r->cfg.rate_bytes == 0)
        return;
    uint64_t now = clock_monotonic_ms();
    if (r->paced_until_ms < now)
        r->paced_until_ms = now;
    r->paced_until_ms += (uint64_t)n * 1000 / r->cfg.rate_bytes;
}

static void on_page(void *arg, enum peer_result res, const struct wire_frame *f)
{
    struct session *s = arg;
    note_unreachable(s, res);
    struct repair *r = s->r;
    bool more;
    struct wire_reader rd;
    size_t n;
    if (atomic_load(&r->stopping) || res != PEER_OK || f->opcode != WIRE_OP_RANGE_READ ||
        wire_parse_range_reply(f->body, f->body_len, &more, &rd, &n) != WIRE_OK) {
        session_end(s, false);
        return;
    }
    REPAIR_COUNT(r, bytes_in, f->body_len);
    pace_account(r, f->body_len);
    for (size_t i = 0; i < n; i++) {
        struct wire_record w;
        wire_get_record(&rd, &w);
        struct lsm_record rec = {
            .key = w.key,
            .key_len = w.key_len,
            .value = w.value,
            .value_len = w.value_len,
            .flags = w.flags,
            .expiry = w.expiry,
            .version = {w.version.hlc, w.version.node},
            .tombstone = w.tombstone,
        };
        if (!side_add(&s->theirs, &rec)) {
            session_end(s, false);
            return;
        }
        if (i + 1 == n) {
            memcpy(s->after, w.key, w.key_len);
            s->after_len = w.key_len;
        }
    }
    if (more && n > 0) {
        read_page(s);
        return;
    }
    merge_and_push(s);
}

static void send_page(struct session *s);

static void on_paced(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    send_page(arg);
}

/* The next page of the current differing range from the peer, once the
 * rate allows. */
static void read_page(struct session *s)
{
    struct repair *r = s->r;
    uint64_t now = clock_monotonic_ms();
    if (r->paced_until_ms > now) {
        uint64_t ms = r->paced_until_ms - now;
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
        if (event_base_once(r->base, -1, EV_TIMEOUT, on_paced, s, &tv) == 0)
            return;
    }
    send_page(s);
}

static void send_page(struct session *s)
{
    struct ring_range range = s->diff[s->idiff];
    struct wire_range_req q = {
        .range_start = range.start,
        .range_end = range.end,
        .after = s->after,
        .after_len = s->after_len,
        .max_records = REPAIR_PAGE_RECORDS,
        .max_bytes = REPAIR_PAGE_BYTES,
    };
    wire_buf_clear(&s->body);
    wire_compose_range_req(&s->body, &q);
    if (s->body.err != ST_OK || peerlink_request(s->link, WIRE_OP_RANGE_READ, 0, s->body.data,
                                                 s->body.len, on_page, s) != PEER_OK)
        session_end(s, false);
}

static void next_range(struct session *s)
{
    side_clear(&s->theirs);
    side_clear(&s->mine);
    s->after_len = 0;
    if (++s->idiff < s->ndiff)
        read_page(s);
    else
        session_end(s, true);
}

static void on_pushed(void *arg, enum peer_result res, const struct wire_frame *f)
{
    struct session *s = arg;
    note_unreachable(s, res);
    if (atomic_load(&s->r->stopping) || res != PEER_OK || f->opcode != WIRE_OP_WRITE) {
        session_end(s, false);
        return;
    }
    next_range(s);
}

/* True when rec is one the as-of rule leaves out (not sent to a replica
 * that holds no version of its key: it reads the key the same way). */
static bool left_out(const struct session *s, const struct lsm_record *rec)
{
    return !merkle_record_counts(rec->tombstone, rec->expiry, s->as_of, s->r->cfg.gc_grace_s);
}

/* Both sides of the range in hand: store their newer records here, send
 * ours that are newer there (one WRITE). */
static void merge_and_push(struct session *s)
{
    struct repair *r = s->r;
    if (repair_scan(r->db, NULL, s->diff[s->idiff], NULL, 0, mine_add, &s->mine) != ST_OK) {
        session_end(s, false);
        return;
    }
    if (s->theirs.n > 1)
        qsort(s->theirs.recs, s->theirs.n, sizeof(*s->theirs.recs), by_key);
    if (s->mine.n > 1)
        qsort(s->mine.recs, s->mine.n, sizeof(*s->mine.recs), by_key);
    wire_buf_clear(&s->body);
    struct wire_buf recs;
    wire_buf_init(&recs);
    size_t pushed = 0, pulled = 0, i = 0, j = 0;
    while (i < s->theirs.n || j < s->mine.n) {
        const struct lsm_record *t = i < s->theirs.n ? s->theirs.recs[i] : NULL;
        const struct lsm_record *m = j < s->mine.n ? s->mine.recs[j] : NULL;
        int c = t == NULL ? 1 : m == NULL ? -1 : by_key(&t, &m);
        const struct lsm_record *pull = NULL, *push = NULL;
        if (c < 0) {
            pull = left_out(s, t) ? NULL : t;
            i++;
        } else if (c > 0) {
            push = left_out(s, m) ? NULL : m;
            j++;
        } else {
            struct wire_version tv = {t->version.hlc, t->version.node};
            struct wire_version mv = {m->version.hlc, m->version.node};
            if (replica_newer(tv, mv))
                pull = t;
            else if (replica_newer(mv, tv))
                push = m;
            i++, j++;
        }
        if (pull != NULL) {
            struct wire_record w;
            kvstore_wire_of(pull, &w);
            if (replica_apply(r->db, &w) == ST_OK)
                pulled++;
        }
        if (push != NULL && recs.len < REPAIR_PUSH_BYTES * 64) {
            struct wire_record w;
            kvstore_wire_of(push, &w);
            wire_put_record(&recs, &w);
            pushed++;
        }
    }
    REPAIR_COUNT(r, keys_pulled, pulled);
    REPAIR_COUNT(r, keys_pushed, pushed);
    if (pushed == 0 || recs.err != ST_OK) {
        wire_buf_deinit(&recs);
        next_range(s);
        return;
    }
    wire_put_varint(&s->body, pushed);
    wire_put_raw(&s->body, recs.data, recs.len);
    REPAIR_COUNT(r, bytes_out, recs.len);
    pace_account(r, recs.len);
    wire_buf_deinit(&recs);
    if (s->body.err != ST_OK || peerlink_request(s->link, WIRE_OP_WRITE, 0, s->body.data,
                                                 s->body.len, on_pushed, s) != PEER_OK)
        session_end(s, false);
}

/* ------------------------------------------------------------- cycles */

/* The tasks of a full cycle: each range we replicate, with each other
 * live replica of it. */
static void cycle_plan(struct repair *r)
{
    mem_free(MEM_OTHER, r->tasks, REPAIR_MAX_TASKS * sizeof(*r->tasks));
    r->tasks = mem_calloc(MEM_OTHER, REPAIR_MAX_TASKS, sizeof(*r->tasks));
    r->ntasks = r->next = 0;
    struct members_view *v = members_view_acquire(r->members);
    if (r->tasks == NULL || v == NULL || v->self == RING_NONE) {
        members_view_release(&v);
        return;
    }
    size_t cap = ring_vnode_count(v->ring);
    struct ring_range *ranges = mem_alloc(MEM_OTHER, (cap ? cap : 1) * sizeof(*ranges));
    size_t nranges =
        ranges != NULL ? ring_ranges(v->ring, v->self, r->cfg.replicas, ranges, cap) : 0;
    for (size_t i = 0; i < nranges && i < cap; i++) {
        uint32_t pref[RING_MAX_REPLICAS];
        size_t np = ring_preference(v->ring, ranges[i].end, r->cfg.replicas, pref);
        for (size_t k = 0; k < np && r->ntasks < REPAIR_MAX_TASKS; k++) {
            uint32_t node = pref[k];
            if (node == v->self || v->addrs[node][0] == '\0' ||
                atomic_load_explicit(&v->state[node], memory_order_relaxed) != PHI_UP)
                continue; /* down: hints cover it; the next cycle repairs it */
            struct task *t = &r->tasks[r->ntasks++];
            t->range = ranges[i];
            snprintf(t->addr, sizeof(t->addr), "%s", v->addrs[node]);
        }
    }
    mem_free(MEM_OTHER, ranges, (cap ? cap : 1) * sizeof(*ranges));
    members_view_release(&v);
}

/* The next task of the cycle, or its end. */
static void step(struct repair *r)
{
    while (!atomic_load(&r->stopping) && r->next < r->ntasks &&
           (unreachable(r, r->tasks[r->next].addr) || !peer_up(r, r->tasks[r->next].addr))) {
        REPAIR_COUNT(r, sessions_skipped, 1); /* down since the plan: hints cover it */
        r->next++;
    }
    if (atomic_load(&r->stopping) || r->next >= r->ntasks) {
        if (atomic_load(&r->phase) == REPAIR_RUNNING) {
            atomic_store(&r->last_cycle_end, (uint64_t)clock_unix_now());
            atomic_store(&r->phase, REPAIR_IDLE);
            log_info("repair: cycle done (%zu sessions planned)", r->ntasks);
        }
        return;
    }
    struct session *s = mem_calloc(MEM_OTHER, 1, sizeof(*s));
    if (s == NULL) {
        r->next = r->ntasks;
        step(r);
        return;
    }
    s->r = r;
    s->task = r->tasks[r->next];
    wire_buf_init(&s->body);
    s->link = peerlinks_get(r->links, s->task.addr);
    r->s = s;
    REPAIR_COUNT(r, sessions, 1);
    if (s->link == NULL) {
        session_end(s, false);
        return;
    }
    session_open(s);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct repair *r = arg;
    if (atomic_load(&r->stopping)) {
        event_base_loopbreak(r->base);
        return;
    }
    uint64_t now = clock_monotonic_ms();
    bool due = r->cfg.interval_s > 0 && now >= r->next_cycle_ms;
    int want = REPAIR_REQUESTED;
    if (!atomic_compare_exchange_strong(&r->phase, &want, REPAIR_RUNNING)) {
        want = REPAIR_IDLE;
        if (!due || !atomic_compare_exchange_strong(&r->phase, &want, REPAIR_RUNNING))
            return;
    }
    r->next_cycle_ms = now + (uint64_t)r->cfg.interval_s * 1000;
    r->nunreachable = 0;
    REPAIR_COUNT(r, cycles, 1);
    cycle_plan(r);
    step(r);
}

static void *repair_main(void *arg)
{
    struct repair *r = arg;
    event_base_dispatch(r->base);
    return NULL;
}

/* ---------------------------------------------------------- lifecycle */

enum st_status repair_start(const struct repair_config *cfg, struct lsm_db *db,
                            struct members *members, struct repair **out)
{
    struct repair *r = mem_calloc(MEM_OTHER, 1, sizeof(*r));
    if (r == NULL)
        return ST_NOMEM;
    r->cfg = *cfg;
    r->cfg.self.cluster_name = NULL; /* peerlinks keeps its own copies */
    r->cfg.self.addr = NULL;
    if (r->cfg.depth < 1 || r->cfg.depth > MERKLE_MAX_DEPTH)
        r->cfg.depth = 10;
    r->db = db;
    r->members = members;
    r->next_cycle_ms = clock_monotonic_ms() + (uint64_t)cfg->interval_s * 1000;
    struct peerlinks_config pc = {
        .self = cfg->self,
        .max_inflight = 4,
        .timeout_ms = cfg->timeout_ms,
        .retry_ms = 1000,
    };
    struct timeval tv = {0, REPAIR_TICK_MS * 1000};
    r->base = event_base_new();
    if (r->base == NULL || peerlinks_create(&pc, r->base, &r->links) != ST_OK ||
        (r->tick = event_new(r->base, -1, EV_PERSIST, on_tick, r)) == NULL ||
        event_add(r->tick, &tv) != 0 || pthread_create(&r->thread, NULL, repair_main, r) != 0) {
        repair_stop(&r);
        return ST_NOMEM;
    }
    r->thread_started = true;
    *out = r;
    return ST_OK;
}

void repair_stop(struct repair **rp)
{
    struct repair *r = *rp;
    if (r == NULL)
        return;
    *rp = NULL;
    atomic_store(&r->stopping, true);
    if (r->thread_started)
        pthread_join(r->thread, NULL);
    /* the session under way ends as its requests fail */
    peerlinks_destroy(&r->links);
    if (r->s != NULL)
        session_end(r->s, false);
    mem_free(MEM_OTHER, r->tasks, REPAIR_MAX_TASKS * sizeof(*r->tasks));
    if (r->tick != NULL)
        event_free(r->tick);
    if (r->base != NULL)
        event_base_free(r->base);
    for (int i = 0; i < REPAIR_SERVED_TREES; i++)
        merkle_destroy(&r->served[i].tree);
    mem_free(MEM_OTHER, r, sizeof(*r));
}

bool repair_request(struct repair *r)
{
    int idle = REPAIR_IDLE;
    return atomic_compare_exchange_strong(&r->phase, &idle, REPAIR_REQUESTED);
}

void repair_stats(struct repair *r, void (*emit)(void *arg, const char *name, const char *value),
                  void *arg)
{
    char buf[24];
#define EMIT(name, v)                        \
    do {                                     \
        buf[mc_u64_to_str((v), buf)] = '\0'; \
        emit(arg, name, buf);                \
    } while (0)
    EMIT("running", atomic_load(&r->phase) != REPAIR_IDLE ? 1 : 0);
    uint64_t last = atomic_load(&r->last_cycle_end);
    EMIT("last_cycle_age_s", last == 0 ? 0 : (uint64_t)clock_unix_now() - last);
    EMIT("interval_s", r->cfg.interval_s);
    EMIT("depth", r->cfg.depth);
#define X(name) EMIT(#name, atomic_load_explicit(&r->name, memory_order_relaxed));
    REPAIR_COUNTERS(X)
#undef X
#undef EMIT
}
