/*
 * handoff.c - hinted handoff (see handoff.h).
 *
 *   coordinator (any thread) ─► handoff_store ─► the target's hintlog
 *   tick (main loop, HANDOFF_TICK_MS):
 *     sync the logs every sync_interval; drop hints past the window
 *     per target up in gossip's view, one batch at a time:
 *       cursor ─► up to HANDOFF_BATCH hints ─► one WRITE ─► ack ─► commit
 *       ─► next batch at once; a failure ends the cursor (the hints stay
 *       pending) and the target is tried again after HANDOFF_RETRY_MS
 */
#include "server/handoff.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mc_text.h"
#include "common/mem.h"
#include "common/peerlink.h"
#include "common/phi.h"
#include "common/ring.h"
#include "server/hintlog.h"
#include "server/members.h"

#define HANDOFF_TICK_MS 100
#define HANDOFF_RETRY_MS 1000
#define HANDOFF_BATCH 64
#define HANDOFF_BATCH_BYTES (256u << 10)
#define HANDOFF_MAX_TARGETS 256

struct target {
    struct handoff *h;
    uint8_t id[WIRE_NODE_ID_LEN];
    struct hintlog *log;
    struct hintlog_cursor *cur; /* replay under way (main loop only) */
    bool inflight;              /* a batch is at the target */
    struct hintlog_mark mark;   /* the in-flight batch's last hint */
    uint64_t retry_at_ms;
    _Atomic uint64_t batches, batch_failures;
};

struct handoff {
    struct handoff_config cfg;
    char dir[4096];
    struct event_base *base;
    struct event *tick;
    struct peerlinks *links;
    struct members *members;
    struct wire_buf records, body; /* a batch's records, then its WRITE body */
    uint64_t last_sync_ms, last_drop_ms;
    pthread_mutex_t mu; /* targets: appended under it, never removed */
    struct target *targets[HANDOFF_MAX_TARGETS];
    _Atomic size_t ntargets;
    _Atomic uint64_t stored, store_failures;
};

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The target's store, opened (and listed) if new. REQUIRES: h->mu. */
static struct target *target_locked(struct handoff *h, const uint8_t id[WIRE_NODE_ID_LEN])
{
    size_t n = atomic_load(&h->ntargets);
    for (size_t i = 0; i < n; i++)
        if (memcmp(h->targets[i]->id, id, WIRE_NODE_ID_LEN) == 0)
            return h->targets[i];
    if (n == HANDOFF_MAX_TARGETS)
        return NULL;
    struct target *t = mem_calloc(MEM_OTHER, 1, sizeof(*t));
    if (t == NULL)
        return NULL;
    struct hintlog_options o;
    hintlog_options_default(&o);
    o.max_bytes = h->cfg.max_bytes;
    if (hintlog_open(h->dir, id, &o, &t->log) != ST_OK) {
        log_warn("hints: cannot open the store for a target under %s", h->dir);
        mem_free(MEM_OTHER, t, sizeof(*t));
        return NULL;
    }
    t->h = h;
    memcpy(t->id, id, WIRE_NODE_ID_LEN);
    h->targets[n] = t;
    atomic_store(&h->ntargets, n + 1);
    return t;
}

static struct target *target_get(struct handoff *h, const uint8_t id[WIRE_NODE_ID_LEN])
{
    pthread_mutex_lock(&h->mu);
    struct target *t = target_locked(h, id);
    pthread_mutex_unlock(&h->mu);
    return t;
}

enum st_status handoff_store(struct handoff *h, const uint8_t target[WIRE_NODE_ID_LEN],
                             const struct wire_record *rec, bool sync)
{
    struct target *t = target_get(h, target);
    enum st_status st = t == NULL ? ST_NOMEM : hintlog_append(t->log, rec, wall_ms(), NULL);
    if (st == ST_OK && sync)
        st = hintlog_sync(t->log);
    if (st == ST_OK)
        atomic_fetch_add_explicit(&h->stored, 1, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&h->store_failures, 1, memory_order_relaxed);
    return st;
}

/* ------------------------------------------------------------ replay */

static void replay(struct target *t, const char *addr, uint64_t now);

/* Where target t is reachable, if gossip sees it up: its cluster address
 * in *addr (false: down, unknown, or ourselves). */
static bool target_up(struct handoff *h, const struct target *t, char *addr, size_t cap)
{
    struct members_view *v = members_view_acquire(h->members);
    bool up = false;
    if (v != NULL) {
        uint32_t node = ring_find(v->ring, t->id);
        up = node != RING_NONE && node != v->self && v->addrs[node][0] != '\0' &&
             atomic_load_explicit(&v->state[node], memory_order_relaxed) == PHI_UP;
        if (up)
            snprintf(addr, cap, "%s", v->addrs[node]);
    }
    members_view_release(&v);
    return up;
}

static void replay_stop(struct target *t, uint64_t now)
{
    hintlog_replay_end(&t->cur);
    t->retry_at_ms = now + HANDOFF_RETRY_MS;
}

static void on_batch_done(void *arg, enum peer_result r, const struct wire_frame *f)
{
    struct target *t = arg;
    struct handoff *h = t->h;
    t->inflight = false;
    uint64_t now = wall_ms();
    if (r != PEER_OK || f->opcode != WIRE_OP_WRITE || t->cur == NULL) {
        atomic_fetch_add_explicit(&t->batch_failures, 1, memory_order_relaxed);
        replay_stop(t, now);
        return;
    }
    atomic_fetch_add_explicit(&t->batches, 1, memory_order_relaxed);
    if (hintlog_replay_commit(t->cur, &t->mark) != ST_OK)
        log_warn("hints: cannot record the replay position; those hints will be sent again");
    char addr[WIRE_ADDR_MAX + 1];
    if (h->tick != NULL && target_up(h, t, addr, sizeof(addr)))
        replay(t, addr, now); /* the next batch at once */
}

/* Sends t's next batch to addr, if there is one and nothing is in flight. */
static void replay(struct target *t, const char *addr, uint64_t now)
{
    struct handoff *h = t->h;
    if (t->inflight || now < t->retry_at_ms)
        return;
    if (t->cur == NULL) {
        struct hintlog_replay_options ro = {
            .gc_grace_ms = h->cfg.gc_grace_ms,
            .rate_bytes_per_sec = h->cfg.rate_bytes,
        };
        if (hintlog_replay_begin(t->log, &ro, now, &t->cur) != ST_OK)
            return;
    }
    wire_buf_clear(&h->records);
    size_t n = 0;
    struct hintlog_mark last = {0};
    while (n < HANDOFF_BATCH && h->records.len < HANDOFF_BATCH_BYTES) {
        struct hintlog_hint hint;
        uint64_t wait_ms = 0;
        enum st_status st = ST_OK;
        enum hintlog_next next = hintlog_replay_next(t->cur, now, &hint, &wait_ms, &st);
        if (next != HINTLOG_HINT) {
            if (st != ST_OK) {
                log_warn("hints: reading a hint store failed: %s", st_status_name(st));
                replay_stop(t, now);
                return;
            }
            if (next == HINTLOG_WAIT)
                t->retry_at_ms = now + wait_ms;
            break;
        }
        wire_put_record(&h->records, &hint.rec);
        last = hint.mark;
        n++;
    }
    if (n == 0) {
        hintlog_replay_commit_all(t->cur); /* what was skipped (corrupt, too old) */
        return;
    }
    wire_buf_clear(&h->body);
    wire_put_varint(&h->body, n);
    wire_put_raw(&h->body, h->records.data, h->records.len);
    struct peerlink *l = peerlinks_get(h->links, addr);
    if (h->body.err != ST_OK || l == NULL ||
        peerlink_request(l, WIRE_OP_WRITE, 0, h->body.data, h->body.len, on_batch_done, t) !=
            PEER_OK) {
        replay_stop(t, now);
        return;
    }
    t->mark = last;
    t->inflight = true;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct handoff *h = arg;
    uint64_t now = wall_ms();
    size_t n = atomic_load(&h->ntargets);
    bool sync = now - h->last_sync_ms >= h->cfg.sync_interval_ms;
    bool drop = now - h->last_drop_ms >= 1000;
    for (size_t i = 0; i < n; i++) {
        struct target *t = h->targets[i];
        if (sync && hintlog_sync(t->log) != ST_OK)
            log_warn("hints: syncing a hint store failed");
        uint64_t dropped = 0;
        if (drop && now > h->cfg.window_ms && t->cur == NULL)
            hintlog_drop_older(t->log, now - h->cfg.window_ms, &dropped);
        struct hintlog_stats s;
        hintlog_get_stats(t->log, now, &s);
        char addr[WIRE_ADDR_MAX + 1];
        if (s.pending_count == 0 && t->cur == NULL)
            continue;
        if (target_up(h, t, addr, sizeof(addr)))
            replay(t, addr, now);
        else if (t->cur != NULL && !t->inflight)
            replay_stop(t, now); /* down again: start over when it is back */
    }
    if (sync)
        h->last_sync_ms = now;
    if (drop)
        h->last_drop_ms = now;
}

/* ---------------------------------------------------------- lifecycle */

static void on_found(void *arg, const uint8_t id[WIRE_NODE_ID_LEN])
{
    struct handoff *h = arg;
    pthread_mutex_lock(&h->mu);
    target_locked(h, id);
    pthread_mutex_unlock(&h->mu);
}

enum st_status handoff_start(const struct handoff_config *cfg, struct event_base *base,
                             struct members *members, struct handoff **out)
{
    struct handoff *h = mem_calloc(MEM_OTHER, 1, sizeof(*h));
    if (h == NULL)
        return ST_NOMEM;
    h->cfg = *cfg;
    snprintf(h->dir, sizeof(h->dir), "%s", cfg->dir);
    h->cfg.dir = h->dir;
    h->cfg.self.cluster_name = NULL; /* peerlinks keeps its own copies */
    h->cfg.self.addr = NULL;
    h->base = base;
    h->members = members;
    pthread_mutex_init(&h->mu, NULL);
    wire_buf_init(&h->records);
    wire_buf_init(&h->body);
    if (mkdir(h->dir, 0700) != 0 && errno != EEXIST) {
        log_error("hints: cannot create %s: %s", h->dir, strerror(errno));
        handoff_stop(&h);
        return ST_IO;
    }
    if (hintlog_list_targets(h->dir, on_found, h) != ST_OK) {
        handoff_stop(&h);
        return ST_IO;
    }
    struct peerlinks_config pc = {
        .self = cfg->self,
        .max_inflight = 16,
        .timeout_ms = cfg->timeout_ms,
        .retry_ms = HANDOFF_RETRY_MS,
    };
    struct timeval tv = {0, HANDOFF_TICK_MS * 1000};
    if (peerlinks_create(&pc, base, &h->links) != ST_OK ||
        (h->tick = event_new(base, -1, EV_PERSIST, on_tick, h)) == NULL ||
        event_add(h->tick, &tv) != 0) {
        handoff_stop(&h);
        return ST_NOMEM;
    }
    *out = h;
    return ST_OK;
}

void handoff_stop(struct handoff **hp)
{
    struct handoff *h = *hp;
    if (h == NULL)
        return;
    *hp = NULL;
    if (h->tick != NULL)
        event_free(h->tick);
    h->tick = NULL;
    peerlinks_destroy(&h->links); /* batches in flight fail: their hints stay */
    size_t n = atomic_load(&h->ntargets);
    for (size_t i = 0; i < n; i++) {
        struct target *t = h->targets[i];
        hintlog_replay_end(&t->cur);
        hintlog_sync(t->log);
        hintlog_close(&t->log);
        mem_free(MEM_OTHER, t, sizeof(*t));
    }
    wire_buf_deinit(&h->records);
    wire_buf_deinit(&h->body);
    pthread_mutex_destroy(&h->mu);
    mem_free(MEM_OTHER, h, sizeof(*h));
}

/* -------------------------------------------------------------- stats */

/* One target's figures as memcached words per-class stats
 * ("target:<id hex>:<field> <value>"). */
struct target_emit {
    const char *prefix;
    void (*emit)(void *arg, const char *name, const char *value);
    void *arg;
};

static void emit_field(void *arg, const char *name, uint64_t value)
{
    struct target_emit *te = arg;
    char full[96], buf[24];
    snprintf(full, sizeof(full), "%s:%s", te->prefix, name);
    buf[mc_u64_to_str(value, buf)] = '\0';
    te->emit(te->arg, full, buf);
}

void handoff_stats(struct handoff *h, void (*emit)(void *arg, const char *name, const char *value),
                   void *arg)
{
    uint64_t now = wall_ms();
    size_t n = atomic_load(&h->ntargets);
    uint64_t pending = 0, bytes = 0, oldest = 0, batches = 0, failures = 0;
    for (size_t i = 0; i < n; i++) {
        struct target *t = h->targets[i];
        struct hintlog_stats s;
        hintlog_get_stats(t->log, now, &s);
        pending += s.pending_count;
        bytes += s.pending_bytes;
        if (s.oldest_age_ms > oldest)
            oldest = s.oldest_age_ms;
        batches += atomic_load_explicit(&t->batches, memory_order_relaxed);
        failures += atomic_load_explicit(&t->batch_failures, memory_order_relaxed);
    }
    char buf[24];
#define EMIT(name, v)                        \
    do {                                     \
        buf[mc_u64_to_str((v), buf)] = '\0'; \
        emit(arg, name, buf);                \
    } while (0)
    EMIT("targets", n);
    EMIT("hints_stored", atomic_load(&h->stored));
    EMIT("hints_store_failures", atomic_load(&h->store_failures));
    EMIT("hints_pending", pending);
    EMIT("hints_pending_bytes", bytes);
    EMIT("hints_oldest_age_ms", oldest);
    EMIT("replay_batches", batches);
    EMIT("replay_failures", failures);
#undef EMIT
    for (size_t i = 0; i < n; i++) {
        struct target *t = h->targets[i];
        char prefix[48] = "target:";
        for (size_t k = 0; k < WIRE_NODE_ID_LEN; k++)
            snprintf(prefix + 7 + 2 * k, 3, "%02x", t->id[k]);
        struct target_emit te = {.prefix = prefix, .emit = emit, .arg = arg};
        struct hintlog_stats s;
        hintlog_get_stats(t->log, now, &s);
        hintlog_stats_emit(&s, emit_field, &te);
        emit_field(&te, "replay_batches", atomic_load_explicit(&t->batches, memory_order_relaxed));
        emit_field(&te, "replay_failures",
                   atomic_load_explicit(&t->batch_failures, memory_order_relaxed));
    }
}
