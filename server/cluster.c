/*
 * cluster.c - the cluster port (see cluster.h). Main-loop thread for every
 * callback; the counters are atomics read by `stats cluster` on workers.
 *
 *   accept ─► conn (bufferevent) ─► frames (wire_parse_frame, no copy) ─►
 *   HANDSHAKE first; then PING / READ / WRITE; anything else: ERROR
 */
#include "server/cluster.h"
#include "kvstore/kvstore.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mc_text.h"
#include "common/mem.h"
#include "common/ring.h"
#include "server/coord.h"
#include "server/members.h"
#include "server/repair.h"
#include "server/replica.h"
#include "storage/include/lsm.h"

/* clang-format off */
#define CLUSTER_COUNTERS(X)                                                  \
    X(conns_accepted) X(conns_refused) X(handshakes) X(handshakes_refused)   \
    X(frames_in) X(frames_out) X(bad_frames) X(pings) X(reads) X(writes)     \
    X(records_written) X(rmws) X(clock_refusals) X(storage_errors) \
    X(coord_reads) X(coord_writes) X(rings)
/* clang-format on */

struct cluster {
    struct cluster_config cfg;
    char cluster_name[WIRE_CLUSTER_MAX + 1];
    struct event_base *base;
    struct lsm_db *db;
    struct hlc *clock;
    int fd;
    struct event *accept_ev;
    char addr[NI_MAXHOST + NI_MAXSERV + 8];
    struct cluster_conn *conns;
    _Atomic unsigned nconns;
    struct members *members; /* gossip rounds peers start here; NULL: none */
    struct coord *coord;     /* RMWs peers forward here; NULL: none */
    struct repair *repair;   /* Merkle trees and range reads; NULL: none */
#define X(name) _Atomic uint64_t name;
    CLUSTER_COUNTERS(X)
#undef X
};

struct cluster_conn {
    struct cluster_conn *prev, *next;
    struct cluster *c;
    struct bufferevent *bev;
    char peer[NI_MAXHOST + NI_MAXSERV + 2];
    bool handshaken;
    bool closing;     /* answer written, then close */
    unsigned waiting; /* RMWs the coordinator has not answered yet */
    bool dead;        /* closed while RMWs were waiting: freed by the last */
    struct wire_buf out;
};

/* How far behind our clock a FRESH version may be (docs/CLOCKS.md). */
#define CLUSTER_FRESH_BEHIND_MS 5000

#define COUNT(c, name) atomic_fetch_add_explicit(&(c)->name, 1, memory_order_relaxed)

/* Closes k; its memory goes when no RMW of it is waiting any more. */
static void conn_free(struct cluster_conn *k)
{
    struct cluster *c = k->c;
    if (!k->dead) {
        if (k->prev != NULL)
            k->prev->next = k->next;
        else
            c->conns = k->next;
        if (k->next != NULL)
            k->next->prev = k->prev;
        atomic_fetch_sub(&c->nconns, 1);
        bufferevent_free(k->bev);
        k->bev = NULL;
        k->dead = true;
    }
    if (k->waiting > 0)
        return;
    wire_buf_deinit(&k->out);
    mem_free(MEM_CONN, k, sizeof(*k));
}

/* Queues the frames composed in k->out. */
static void flush_out(struct cluster_conn *k)
{
    if (k->out.len > 0)
        bufferevent_write(k->bev, k->out.data, k->out.len);
    wire_buf_clear(&k->out);
}

/* Composes an ERROR response to request id; false if it could not be
 * composed. */
static bool respond_error(struct cluster_conn *k, uint64_t id, uint16_t code, const char *msg)
{
    size_t mark = wire_begin_frame(&k->out, WIRE_OP_ERROR, WIRE_FLAG_RESPONSE, id);
    struct wire_error e = {.code = code, .msg = msg, .msg_len = strlen(msg)};
    wire_compose_error(&k->out, &e);
    if (wire_end_frame(&k->out, mark, k->c->cfg.frame_max) != ST_OK)
        return false;
    COUNT(k->c, frames_out);
    return true;
}

/* A protocol violation: answer it if the id is known, then close. */
static void refuse_and_close(struct cluster_conn *k, uint64_t id, uint16_t code, const char *msg)
{
    COUNT(k->c, bad_frames);
    log_info("cluster: %s: %s; closing", k->peer, msg);
    respond_error(k, id, code, msg);
    k->closing = true;
}

static void on_handshake(struct cluster_conn *k, const struct wire_frame *f)
{
    struct cluster *c = k->c;
    struct wire_handshake h;
    if (wire_parse_handshake(f->body, f->body_len, &h) != WIRE_OK) {
        refuse_and_close(k, f->id, WIRE_ERR_BAD_REQUEST, "malformed handshake");
        return;
    }
    struct wire_handshake_reply r = {.accept = true};
    const char *why = NULL;
    if (h.cluster_len != strlen(c->cluster_name) ||
        memcmp(h.cluster, c->cluster_name, h.cluster_len) != 0) {
        r = (struct wire_handshake_reply){.reason = WIRE_REFUSE_CLUSTER};
        why = "cluster name differs";
    } else if (h.version < WIRE_VERSION_MIN) {
        r = (struct wire_handshake_reply){.reason = WIRE_REFUSE_VERSION};
        why = "no protocol version in common";
    } else if (memcmp(h.node_id, c->cfg.node_id, WIRE_NODE_ID_LEN) == 0) {
        r = (struct wire_handshake_reply){.reason = WIRE_REFUSE_SELF};
        why = "the dialer is this node";
    }
    if (why != NULL) {
        r.msg = why;
        r.msg_len = strlen(why);
        COUNT(c, handshakes_refused);
        log_warn("cluster: handshake from %s (cluster \"%.*s\") refused: %s", k->peer,
                 (int)h.cluster_len, h.cluster, why);
        k->closing = true;
    } else {
        r.version = h.version < WIRE_VERSION_MAX ? h.version : WIRE_VERSION_MAX;
        memcpy(r.node_id, c->cfg.node_id, WIRE_NODE_ID_LEN);
        r.short_id = c->cfg.short_id;
        r.generation = c->cfg.generation;
        k->handshaken = true;
        COUNT(c, handshakes);
        log_info("cluster: %s (short id %u, %.*s) connected", k->peer, (unsigned)h.short_id,
                 (int)h.addr_len, h.addr);
    }
    size_t mark = wire_begin_frame(&k->out, WIRE_OP_HANDSHAKE, WIRE_FLAG_RESPONSE, f->id);
    wire_compose_handshake_reply(&k->out, &r);
    if (wire_end_frame(&k->out, mark, c->cfg.frame_max) == ST_OK)
        COUNT(c, frames_out);
    else
        k->closing = true;
}

static void on_ping(struct cluster_conn *k, const struct wire_frame *f)
{
    struct cluster *c = k->c;
    uint64_t hlc;
    if (wire_parse_ping(f->body, f->body_len, &hlc) != WIRE_OK) {
        refuse_and_close(k, f->id, WIRE_ERR_BAD_REQUEST, "malformed ping");
        return;
    }
    COUNT(c, pings);
    if (hlc_observe(c->clock, hlc) != ST_OK) {
        COUNT(c, clock_refusals);
        log_warn("cluster: %s: its clock is ahead of ours by more than the skew bound", k->peer);
    }
    size_t mark = wire_begin_frame(&k->out, WIRE_OP_PING, WIRE_FLAG_RESPONSE, f->id);
    wire_compose_ping(&k->out, hlc_now(c->clock));
    if (wire_end_frame(&k->out, mark, c->cfg.frame_max) == ST_OK)
        COUNT(c, frames_out);
}

/* READ: the newest version held, tombstones and expired records included
 * (the coordinator resolves them), as data or as a digest. */
static void on_read(struct cluster_conn *k, const struct wire_frame *f)
{
    struct cluster *c = k->c;
    const uint8_t *key;
    size_t nkey;
    if (wire_parse_read(f->body, f->body_len, &key, &nkey) != WIRE_OK) {
        refuse_and_close(k, f->id, WIRE_ERR_BAD_REQUEST, "malformed read");
        return;
    }
    COUNT(c, reads);
    struct lsm_record *rec = NULL;
    enum st_status st = replica_read(c->db, key, nkey, &rec);
    if (st != ST_OK) {
        COUNT(c, storage_errors);
        respond_error(k, f->id, WIRE_ERR_STORAGE, st_status_name(st));
        return;
    }
    struct wire_record w;
    if (rec != NULL)
        kvstore_wire_of(rec, &w);
    bool digest = (f->flags & WIRE_FLAG_DIGEST) != 0;
    size_t mark = wire_begin_frame(&k->out, WIRE_OP_READ,
                                   WIRE_FLAG_RESPONSE | (digest ? WIRE_FLAG_DIGEST : 0), f->id);
    if (digest)
        wire_compose_digest_reply(&k->out, rec != NULL ? &w : NULL);
    else
        wire_compose_read_reply(&k->out, rec != NULL ? &w : NULL);
    if (wire_end_frame(&k->out, mark, c->cfg.frame_max) == ST_OK)
        COUNT(c, frames_out);
    else
        respond_error(k, f->id, WIRE_ERR_TOO_LARGE, "the record does not fit a frame");
    lsm_record_free(&rec);
}

/* WRITE: the records at their own versions, in one atomic batch. The
 * engine keeps the highest version of each key, so applying a record is a
 * version-compare merge, and replaying one is harmless. */
static void on_write(struct cluster_conn *k, const struct wire_frame *f)
{
    struct cluster *c = k->c;
    struct wire_reader r;
    size_t n;
    if (wire_parse_write(f->body, f->body_len, &r, &n) != WIRE_OK) {
        refuse_and_close(k, f->id, WIRE_ERR_BAD_REQUEST, "malformed write");
        return;
    }
    COUNT(c, writes);
    bool fresh = (f->flags & WIRE_FLAG_FRESH) != 0;
    struct lsm_batch *batch = NULL;
    if (lsm_batch_create(&batch) != ST_OK) {
        respond_error(k, f->id, WIRE_ERR_INTERNAL, "out of memory");
        return;
    }
    enum st_status st = ST_OK;
    for (size_t i = 0; i < n && st == ST_OK; i++) {
        struct wire_record w;
        wire_get_record(&r, &w);
        if (fresh &&
            hlc_physical(w.version.hlc) + CLUSTER_FRESH_BEHIND_MS < hlc_wall_ms(c->clock)) {
            /* stamped "now" by a coordinator whose clock is far behind
             * ours: it would lose to writes already acknowledged
             * (docs/CLOCKS.md). The bound is wider than the skew bound: a
             * write may wait in queues for a while on a loaded node. */
            COUNT(c, clock_refusals);
            lsm_batch_destroy(&batch);
            log_warn("cluster: %s: a write stamped beyond the skew bound behind this node's clock",
                     k->peer);
            respond_error(k, f->id, WIRE_ERR_CLOCK,
                          "version behind this node's clock beyond the skew bound");
            return;
        }
        if (hlc_observe(c->clock, w.version.hlc) != ST_OK) {
            /* a version this far ahead would win over every later write */
            COUNT(c, clock_refusals);
            lsm_batch_destroy(&batch);
            refuse_and_close(k, f->id, WIRE_ERR_BAD_REQUEST,
                             "record version ahead of this node's clock beyond the skew bound");
            return;
        }
        st = replica_batch_add(batch, &w);
    }
    if (st == ST_OK)
        st = lsm_write(c->db, batch);
    lsm_batch_destroy(&batch);
    if (st != ST_OK) {
        COUNT(c, storage_errors);
        respond_error(k, f->id, st == ST_INVAL ? WIRE_ERR_TOO_LARGE : WIRE_ERR_STORAGE,
                      st_status_name(st));
        return;
    }
    atomic_fetch_add_explicit(&c->records_written, n, memory_order_relaxed);
    size_t mark = wire_begin_frame(&k->out, WIRE_OP_WRITE, WIRE_FLAG_RESPONSE, f->id);
    if (wire_end_frame(&k->out, mark, c->cfg.frame_max) == ST_OK)
        COUNT(c, frames_out);
}

/* An RMW the coordinator finished: its reply to the waiting request. */
struct rmw_wait {
    struct cluster_conn *k;
    uint64_t id;
};

/* A request the coordinator will answer later: k waits for it (NULL
 * when out of memory: answered so). */
static struct rmw_wait *wait_begin(struct cluster_conn *k, const struct wire_frame *f)
{
    struct rmw_wait *wt = mem_alloc(MEM_CONN, sizeof(*wt));
    if (wt == NULL) {
        respond_error(k, f->id, WIRE_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    wt->k = k;
    wt->id = f->id;
    k->waiting++;
    return wt;
}

/* Its answer came: the connection, or NULL when it closed meanwhile (and
 * is freed once the last answer is back). *id: the request's. */
static struct cluster_conn *wait_end(struct rmw_wait *wt, uint64_t *id)
{
    struct cluster_conn *k = wt->k;
    *id = wt->id;
    mem_free(MEM_CONN, wt, sizeof(*wt));
    k->waiting--;
    if (k->dead) {
        conn_free(k);
        return NULL;
    }
    return k;
}

/* The answer to a request that waited (wt): an ERROR, or a response of
 * opcode whose body compose(buf, body) writes (none when NULL). */
static void answer_wait(struct rmw_wait *wt, uint8_t opcode, uint16_t err, const char *msg,
                        void (*compose)(struct wire_buf *b, const void *body), const void *body)
{
    uint64_t id;
    struct cluster_conn *k = wait_end(wt, &id);
    if (k == NULL)
        return;
    if (err != 0) {
        respond_error(k, id, err, msg);
    } else {
        size_t mark = wire_begin_frame(&k->out, opcode, WIRE_FLAG_RESPONSE, id);
        if (compose != NULL)
            compose(&k->out, body);
        if (wire_end_frame(&k->out, mark, k->c->cfg.frame_max) == ST_OK)
            COUNT(k->c, frames_out);
        else
            respond_error(k, id, WIRE_ERR_TOO_LARGE, "the record does not fit a frame");
    }
    if (!k->closing)
        flush_out(k);
}

static void compose_rmw_reply(struct wire_buf *b, const void *r)
{
    wire_compose_rmw_reply(b, r);
}

static void on_rmw_done(void *arg, uint16_t err, const char *msg, const struct wire_rmw_reply *r)
{
    answer_wait(arg, WIRE_OP_RMW, err, msg, compose_rmw_reply, r);
}

/* RMW: run by the coordinator as the key's primary; answered later. */
static void on_rmw(struct cluster_conn *k, const struct wire_frame *f)
{
    struct cluster *c = k->c;
    struct wire_rmw q;
    if (c->coord == NULL) {
        respond_error(k, f->id, WIRE_ERR_NOT_READY, "no coordinator");
        return;
    }
    if (wire_parse_rmw(f->body, f->body_len, &q) != WIRE_OK) {
        refuse_and_close(k, f->id, WIRE_ERR_BAD_REQUEST, "malformed rmw");
        return;
    }
    struct rmw_wait *wt = wait_begin(k, f);
    if (wt == NULL)
        return;
    COUNT(c, rmws);
    coord_serve_rmw(c->coord, &q, on_rmw_done, wt);
}

/* COORD_READ: a read a client (strata-proxy) asks us to coordinate. */
static void compose_coord_read_reply(struct wire_buf *b, const void *rec)
{
    struct wire_record wr;
    if (rec != NULL)
        kvstore_wire_of(rec, &wr);
    wire_compose_read_reply(b, rec != NULL ? &wr : NULL);
}

static void on_coord_read_done(void *arg, uint16_t err, const char *msg,
                               const struct lsm_record *rec)
{
    answer_wait(arg, WIRE_OP_COORD_READ, err, msg, compose_coord_read_reply, rec);
}

static void on_coord_read(struct cluster_conn *k, const struct wire_frame *f)
{
    struct cluster *c = k->c;
    uint8_t cl;
    const uint8_t *key;
    size_t nkey;
    if (c->coord == NULL) {
        respond_error(k, f->id, WIRE_ERR_NOT_READY, "no coordinator");
        return;
    }
    if (wire_parse_coord_read(f->body, f->body_len, &cl, &key, &nkey) != WIRE_OK) {
        refuse_and_close(k, f->id, WIRE_ERR_BAD_REQUEST, "malformed coord read");
        return;
    }
    struct rmw_wait *wt = wait_begin(k, f);
    if (wt == NULL)
        return;
    COUNT(c, coord_reads);
    coord_serve_read(c->coord, key, nkey, (enum wire_cl)cl, on_coord_read_done, wt);
}

static void on_coord_write_done(void *arg, uint16_t err, const char *msg)
{
    answer_wait(arg, WIRE_OP_COORD_WRITE, err, msg, NULL, NULL);
}

/* COORD_WRITE: a record a client (a proxy's write-behind drainer) wants
 * on its key's replicas at a level, at the version it carries. */
static void on_coord_write(struct cluster_conn *k, const struct wire_frame *f)
{
    struct cluster *c = k->c;
    uint8_t cl;
    struct wire_record rec;
    if (c->coord == NULL) {
        respond_error(k, f->id, WIRE_ERR_NOT_READY, "no coordinator");
        return;
    }
    if (wire_parse_coord_write(f->body, f->body_len, &cl, &rec) != WIRE_OK) {
        refuse_and_close(k, f->id, WIRE_ERR_BAD_REQUEST, "malformed coord write");
        return;
    }
    if (hlc_observe(c->clock, rec.version.hlc) != ST_OK) {
        /* a version this far ahead would win over every later write */
        COUNT(c, clock_refusals);
        refuse_and_close(k, f->id, WIRE_ERR_BAD_REQUEST,
                         "record version ahead of this node's clock beyond the skew bound");
        return;
    }
    struct rmw_wait *wt = wait_begin(k, f);
    if (wt == NULL)
        return;
    COUNT(c, coord_writes);
    coord_serve_write(c->coord, &rec, (enum wire_cl)cl, on_coord_write_done, wt);
}

/* RING: the ring as our membership view has it, for a client's placement. */
static void on_ring(struct cluster_conn *k, const struct wire_frame *f)
{
    struct cluster *c = k->c;
    if (c->members == NULL || c->coord == NULL) {
        respond_error(k, f->id, WIRE_ERR_NOT_READY, "membership not started");
        return;
    }
    COUNT(c, rings);
    struct members_view *v = members_view_acquire(c->members);
    uint32_t n = ring_node_count(v->ring);
    size_t mark = wire_begin_frame(&k->out, WIRE_OP_RING, WIRE_FLAG_RESPONSE, f->id);
    struct wire_ring_head h = {
        .version = v->version, .replicas = (uint8_t)coord_replicas(c->coord), .count = n};
    wire_put_ring_head(&k->out, &h);
    for (uint32_t i = 0; i < n; i++) {
        const struct ring_node *rn = ring_node(v->ring, i);
        struct wire_ring_node wn = {
            .short_id = rn->short_id,
            .addr = v->addrs[i],
            .addr_len = strlen(v->addrs[i]),
            .rack = rn->rack != NULL ? rn->rack : "",
            .rack_len = rn->rack != NULL ? strlen(rn->rack) : 0,
            .state = i == v->self ? 0 : atomic_load(&v->state[i]),
            .ntokens = rn->ntokens,
            .put_tokens = rn->tokens,
        };
        memcpy(wn.id, rn->id, WIRE_NODE_ID_LEN);
        wire_put_ring_node(&k->out, &wn);
    }
    members_view_release(&v);
    if (wire_end_frame(&k->out, mark, c->cfg.frame_max) == ST_OK) {
        COUNT(c, frames_out);
    } else {
        wire_abort_frame(&k->out, mark);
        respond_error(k, f->id, WIRE_ERR_TOO_LARGE, "the ring does not fit a frame");
    }
}

/* MERKLE_TREE and RANGE_READ: a peer's anti-entropy session (repair.h). */
static void on_repair(struct cluster_conn *k, const struct wire_frame *f)
{
    struct cluster *c = k->c;
    if (c->repair == NULL) {
        respond_error(k, f->id, WIRE_ERR_NOT_READY, "no repair service");
        return;
    }
    bool tree = f->opcode == WIRE_OP_MERKLE_TREE;
    struct wire_merkle_req mq;
    struct wire_range_req rq;
    if (tree ? wire_parse_merkle_req(f->body, f->body_len, &mq) != WIRE_OK
             : wire_parse_range_req(f->body, f->body_len, &rq) != WIRE_OK) {
        refuse_and_close(k, f->id, WIRE_ERR_BAD_REQUEST,
                         tree ? "malformed merkle request" : "malformed range read");
        return;
    }
    size_t mark = wire_begin_frame(&k->out, f->opcode, WIRE_FLAG_RESPONSE, f->id);
    const char *msg = NULL;
    size_t budget = c->cfg.frame_max > (128u << 10) ? c->cfg.frame_max - (64u << 10) : 4096;
    uint16_t err = tree ? repair_serve_merkle(c->repair, &mq, &k->out, &msg)
                        : repair_serve_range(c->repair, &rq, budget, &k->out, &msg);
    if (err != 0) {
        wire_abort_frame(&k->out, mark);
        respond_error(k, f->id, err, msg);
        return;
    }
    if (wire_end_frame(&k->out, mark, c->cfg.frame_max) == ST_OK)
        COUNT(c, frames_out);
    else
        respond_error(k, f->id, WIRE_ERR_TOO_LARGE, "the answer does not fit a frame");
}

/* A peer's gossip round: its SYN (answered with our ACK) or its ACK2. */
static void on_gossip(struct cluster_conn *k, const struct wire_frame *f)
{
    struct cluster *c = k->c;
    if (c->members == NULL) {
        respond_error(k, f->id, WIRE_ERR_NOT_READY, "membership not started");
        return;
    }
    bool syn = f->opcode == WIRE_OP_GOSSIP_SYN;
    size_t mark = wire_begin_frame(&k->out, syn ? WIRE_OP_GOSSIP_ACK : WIRE_OP_GOSSIP_ACK2,
                                   WIRE_FLAG_RESPONSE, f->id);
    enum gossip_result r = syn ? members_handle_syn(c->members, f->body, f->body_len, &k->out)
                               : members_handle_ack2(c->members, f->body, f->body_len);
    if (r != GOSSIP_OK) {
        wire_abort_frame(&k->out, mark);
        refuse_and_close(k, f->id, WIRE_ERR_BAD_REQUEST, gossip_result_name(r));
        return;
    }
    if (wire_end_frame(&k->out, mark, c->cfg.frame_max) == ST_OK)
        COUNT(c, frames_out);
}

static void dispatch(struct cluster_conn *k, const struct wire_frame *f)
{
    COUNT(k->c, frames_in);
    if ((f->flags & WIRE_FLAG_RESPONSE) != 0) {
        /* this port only answers: a response here is a confused peer */
        refuse_and_close(k, f->id, WIRE_ERR_BAD_REQUEST, "unexpected response frame");
        return;
    }
    if (!k->handshaken) {
        if (f->opcode == WIRE_OP_HANDSHAKE)
            on_handshake(k, f);
        else
            refuse_and_close(k, f->id, WIRE_ERR_NOT_READY, "no handshake yet");
        return;
    }
    switch (f->opcode) {
    case WIRE_OP_PING: on_ping(k, f); break;
    case WIRE_OP_READ: on_read(k, f); break;
    case WIRE_OP_WRITE: on_write(k, f); break;
    case WIRE_OP_RMW: on_rmw(k, f); break;
    case WIRE_OP_COORD_READ: on_coord_read(k, f); break;
    case WIRE_OP_COORD_WRITE: on_coord_write(k, f); break;
    case WIRE_OP_RING: on_ring(k, f); break;
    case WIRE_OP_MERKLE_TREE:
    case WIRE_OP_RANGE_READ: on_repair(k, f); break;
    case WIRE_OP_GOSSIP_SYN:
    case WIRE_OP_GOSSIP_ACK2: on_gossip(k, f); break;
    case WIRE_OP_HANDSHAKE:
        refuse_and_close(k, f->id, WIRE_ERR_BAD_REQUEST, "second handshake");
        break;
    default: respond_error(k, f->id, WIRE_ERR_UNKNOWN_OPCODE, wire_opcode_name(f->opcode)); break;
    }
}

static void on_read_cb(struct bufferevent *bev, void *arg)
{
    struct cluster_conn *k = arg;
    struct cluster *c = k->c;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (!k->closing) {
        size_t len = evbuffer_get_length(in);
        if (len == 0)
            break;
        const uint8_t *p = evbuffer_pullup(in, -1);
        struct wire_frame f;
        size_t need = 0;
        enum wire_result r = wire_parse_frame(p, len, c->cfg.frame_max, &f, &need);
        if (r == WIRE_NEED_MORE)
            break;
        if (r == WIRE_OK) {
            dispatch(k, &f);
            evbuffer_drain(in, f.size);
            continue;
        }
        if (r == WIRE_OVERSIZED) {
            refuse_and_close(k, f.id, WIRE_ERR_TOO_LARGE, "frame over the size limit");
        } else if (r == WIRE_MALFORMED) {
            refuse_and_close(k, f.id, WIRE_ERR_BAD_REQUEST, "undefined flag bits");
        } else {
            /* no verified header: nothing to answer to */
            COUNT(c, bad_frames);
            log_info("cluster: %s: %s; closing", k->peer, wire_result_name(r));
            conn_free(k);
            return;
        }
    }
    flush_out(k);
    if (k->closing) {
        bufferevent_disable(bev, EV_READ);
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            conn_free(k);
    }
}

static void on_write_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct cluster_conn *k = arg;
    if (k->closing)
        conn_free(k);
}

static void on_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct cluster_conn *k = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        log_debug("cluster: %s closed", k->peer);
        conn_free(k);
    }
}

static void format_peer(char *buf, size_t n, const struct sockaddr_storage *ss, socklen_t len)
{
    char host[NI_MAXHOST], port[NI_MAXSERV];
    if (getnameinfo((const struct sockaddr *)ss, len, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        snprintf(buf, n, "%s:%s", host, port);
    else
        snprintf(buf, n, "?");
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct cluster *c = arg;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int cfd = accept4((int)fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_warn("cluster: accept: %s", strerror(errno));
            return;
        }
        if (atomic_load(&c->nconns) >= c->cfg.max_conns) {
            COUNT(c, conns_refused);
            close(cfd);
            continue;
        }
        struct cluster_conn *k = mem_calloc(MEM_CONN, 1, sizeof(*k));
        struct bufferevent *bev =
            k != NULL ? bufferevent_socket_new(c->base, cfd, BEV_OPT_CLOSE_ON_FREE) : NULL;
        if (bev == NULL) {
            if (k != NULL)
                mem_free(MEM_CONN, k, sizeof(*k));
            close(cfd);
            continue;
        }
        k->c = c;
        k->bev = bev;
        wire_buf_init(&k->out);
        format_peer(k->peer, sizeof(k->peer), &ss, len);
        k->next = c->conns;
        if (c->conns != NULL)
            c->conns->prev = k;
        c->conns = k;
        atomic_fetch_add(&c->nconns, 1);
        COUNT(c, conns_accepted);
        bufferevent_setcb(bev, on_read_cb, on_write_cb, on_event_cb, k);
        bufferevent_enable(bev, EV_READ | EV_WRITE);
    }
}

static enum st_status bind_listener(struct cluster *c)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE},
                    *res = NULL;
    char port[16];
    snprintf(port, sizeof(port), "%u", c->cfg.port);
    int rc = getaddrinfo(c->cfg.listen_addr, port, &hints, &res);
    if (rc != 0) {
        log_error("cluster: cannot resolve %s: %s", c->cfg.listen_addr, gai_strerror(rc));
        return ST_IO;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 128) != 0) {
        log_error("cluster: cannot listen on %s:%u: %s", c->cfg.listen_addr, c->cfg.port,
                  strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return ST_IO;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char where[NI_MAXHOST + NI_MAXSERV + 2] = "?";
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        format_peer(where, sizeof(where), &ss, len);
    snprintf(c->addr, sizeof(c->addr), "tcp:%s", where);
    c->fd = fd;
    return ST_OK;
}

enum st_status cluster_start(const struct cluster_config *cfg, struct event_base *base,
                             struct lsm_db *db, struct hlc *clock, struct cluster **out)
{
    struct cluster *c = mem_calloc(MEM_OTHER, 1, sizeof(*c));
    if (c == NULL)
        return ST_NOMEM;
    c->cfg = *cfg;
    snprintf(c->cluster_name, sizeof(c->cluster_name), "%s", cfg->cluster_name);
    c->cfg.cluster_name = c->cluster_name;
    c->base = base;
    c->db = db;
    c->clock = clock;
    c->fd = -1;
    enum st_status st = bind_listener(c);
    c->cfg.listen_addr = NULL; /* the caller's string: needed for the bind only */
    if (st == ST_OK) {
        c->accept_ev = event_new(base, c->fd, EV_READ | EV_PERSIST, on_accept, c);
        if (c->accept_ev == NULL || event_add(c->accept_ev, NULL) != 0)
            st = ST_NOMEM;
    }
    if (st != ST_OK) {
        cluster_stop(&c);
        return st;
    }
    *out = c;
    return ST_OK;
}

void cluster_stop(struct cluster **cp)
{
    struct cluster *c = *cp;
    if (c == NULL)
        return;
    *cp = NULL;
    while (c->conns != NULL)
        conn_free(c->conns);
    if (c->accept_ev != NULL)
        event_free(c->accept_ev);
    if (c->fd >= 0)
        close(c->fd);
    mem_free(MEM_OTHER, c, sizeof(*c));
}

void cluster_attach_members(struct cluster *c, struct members *m)
{
    c->members = m;
}

void cluster_attach_coord(struct cluster *c, struct coord *co)
{
    c->coord = co;
}

void cluster_attach_repair(struct cluster *c, struct repair *r)
{
    c->repair = r;
}

const char *cluster_addr(const struct cluster *c)
{
    return c->addr;
}

void cluster_stats(struct cluster *c, void (*emit)(void *arg, const char *name, const char *value),
                   void *arg)
{
    char buf[24];
    buf[mc_u64_to_str(atomic_load(&c->nconns), buf)] = '\0';
    emit(arg, "conns", buf);
#define X(name)                                                                           \
    buf[mc_u64_to_str(atomic_load_explicit(&c->name, memory_order_relaxed), buf)] = '\0'; \
    emit(arg, #name, buf);
    CLUSTER_COUNTERS(X)
#undef X
}
