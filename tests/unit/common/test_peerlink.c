/*
 * test_peerlink.c - the cluster-protocol client links of common/peerlink.c
 * against a fake peer served on the same event base: a listening socket on
 * 127.0.0.1, frames parsed with the wire codec, answers scripted per test
 * (echo, hold, ERROR, refuse the handshake, garbage, close). Responses and
 * ERROR replies, out-of-order matching, timeouts and late answers, closes,
 * the in-flight bound, the dial retry window, bad frames and shutdown.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/peerlink.h"
#include "common/wire.h"

#define CLUSTER "test-cluster"
#define SELF_ADDR "127.0.0.1:7001"
#define SELF_SHORT_ID 42
#define SELF_GENERATION UINT64_C(0x1122334455)
#define FRAME_MAX (64u << 10)
#define MAX_REQS 64
#define BODY_MAX 128
#define HEARTBEAT_MS 2 /* wakes the loop so bounded waits see the time */
#define WAIT_MS 5000   /* generous bound for anything that should happen */
#define FAKE_ERR_MSG "disk on fire"
#define FAKE_REFUSE_MSG "wrong cluster"

/* ---- The fake peer ---------------------------------------------------------- */

enum fake_mode {
    FAKE_ECHO,  /* answer each request at once: same opcode, "re:" + its body */
    FAKE_ERROR, /* answer each request with ERROR (WIRE_ERR_STORAGE) */
    FAKE_HOLD,  /* record requests; the test answers them (or not) */
};

struct fake_req {
    uint8_t opcode;
    uint16_t flags;
    uint64_t id;
    uint8_t body[BODY_MAX];
    size_t body_len;
};

struct fake {
    struct event_base *base;
    evutil_socket_t lfd; /* -1: not listening */
    struct event *accept_ev;
    uint16_t port;
    struct bufferevent *bev; /* the current connection, NULL: none */
    enum fake_mode mode;
    bool refuse;         /* refuse handshakes (accept = false) */
    unsigned accepts;    /* connections accepted */
    unsigned handshakes; /* HANDSHAKE frames parsed */
    unsigned eofs;       /* connections closed by the client */
    unsigned conn_frames;
    bool bad_order;      /* a connection began with something else than HANDSHAKE */
    bool protocol_error; /* the client sent something the fake could not take */
    char hs_cluster[WIRE_CLUSTER_MAX + 1];
    char hs_addr[WIRE_ADDR_MAX + 1];
    uint8_t hs_version;
    uint8_t hs_node_id[WIRE_NODE_ID_LEN];
    uint16_t hs_short_id;
    uint64_t hs_generation;
    struct fake_req reqs[MAX_REQS];
    unsigned nreqs;
};

/* Sends a frame composed by the caller's body bytes on the connection. */
static void fake_send(struct fake *fk, uint8_t opcode, uint16_t flags, uint64_t id,
                      const void *body, size_t len)
{
    if (fk->bev == NULL)
        return;
    struct wire_buf b;
    wire_buf_init(&b);
    size_t mark = wire_begin_frame(&b, opcode, flags, id);
    wire_put_raw(&b, body, len);
    if (wire_end_frame(&b, mark, FRAME_MAX) == ST_OK)
        bufferevent_write(fk->bev, b.data, b.len);
    else
        fk->protocol_error = true;
    wire_buf_deinit(&b);
}

/* Answers recorded request i with `body` (opcode echoed, DIGEST kept). */
static void fake_answer(struct fake *fk, unsigned i, const void *body, size_t len)
{
    const struct fake_req *q = &fk->reqs[i];
    fake_send(fk, q->opcode, WIRE_FLAG_RESPONSE | (q->flags & WIRE_FLAG_DIGEST), q->id, body, len);
}

/* Answers recorded request i with "re:" + its body. */
static void fake_answer_echo(struct fake *fk, unsigned i)
{
    const struct fake_req *q = &fk->reqs[i];
    uint8_t body[3 + BODY_MAX];
    memcpy(body, "re:", 3);
    memcpy(body + 3, q->body, q->body_len);
    fake_answer(fk, i, body, 3 + q->body_len);
}

static void fake_answer_error(struct fake *fk, unsigned i)
{
    struct wire_buf b;
    wire_buf_init(&b);
    struct wire_error err = {
        .code = WIRE_ERR_STORAGE, .msg = FAKE_ERR_MSG, .msg_len = strlen(FAKE_ERR_MSG)};
    size_t mark = wire_begin_frame(&b, WIRE_OP_ERROR, WIRE_FLAG_RESPONSE, fk->reqs[i].id);
    wire_compose_error(&b, &err);
    if (wire_end_frame(&b, mark, FRAME_MAX) == ST_OK && fk->bev != NULL)
        bufferevent_write(fk->bev, b.data, b.len);
    else
        fk->protocol_error = true;
    wire_buf_deinit(&b);
}

static void fake_handshake(struct fake *fk, const struct wire_frame *f)
{
    struct wire_handshake h;
    fk->handshakes++;
    if (wire_parse_handshake(f->body, f->body_len, &h) != WIRE_OK) {
        fk->protocol_error = true;
        return;
    }
    snprintf(fk->hs_cluster, sizeof(fk->hs_cluster), "%.*s", (int)h.cluster_len, h.cluster);
    snprintf(fk->hs_addr, sizeof(fk->hs_addr), "%.*s", (int)h.addr_len, h.addr);
    fk->hs_version = h.version;
    memcpy(fk->hs_node_id, h.node_id, WIRE_NODE_ID_LEN);
    fk->hs_short_id = h.short_id;
    fk->hs_generation = h.generation;

    struct wire_handshake_reply r = {.accept = !fk->refuse};
    if (r.accept) {
        r.version = WIRE_VERSION_MAX;
        memset(r.node_id, 0xab, WIRE_NODE_ID_LEN);
        r.short_id = 9;
        r.generation = 77;
    } else {
        r.reason = WIRE_REFUSE_CLUSTER;
        r.msg = FAKE_REFUSE_MSG;
        r.msg_len = strlen(FAKE_REFUSE_MSG);
    }
    struct wire_buf b;
    wire_buf_init(&b);
    size_t mark = wire_begin_frame(&b, WIRE_OP_HANDSHAKE, WIRE_FLAG_RESPONSE, f->id);
    wire_compose_handshake_reply(&b, &r);
    if (wire_end_frame(&b, mark, FRAME_MAX) == ST_OK)
        bufferevent_write(fk->bev, b.data, b.len);
    else
        fk->protocol_error = true;
    wire_buf_deinit(&b);
}

static void fake_frame(struct fake *fk, const struct wire_frame *f)
{
    if (fk->conn_frames++ == 0 && f->opcode != WIRE_OP_HANDSHAKE)
        fk->bad_order = true;
    if (f->flags & WIRE_FLAG_RESPONSE) {
        fk->protocol_error = true;
        return;
    }
    if (f->opcode == WIRE_OP_HANDSHAKE) {
        fake_handshake(fk, f);
        return;
    }
    if (fk->nreqs == MAX_REQS || f->body_len > BODY_MAX) {
        fk->protocol_error = true;
        return;
    }
    unsigned i = fk->nreqs++;
    struct fake_req *q = &fk->reqs[i];
    q->opcode = f->opcode;
    q->flags = f->flags;
    q->id = f->id;
    q->body_len = f->body_len;
    if (f->body_len > 0)
        memcpy(q->body, f->body, f->body_len);
    switch (fk->mode) {
    case FAKE_ECHO: fake_answer_echo(fk, i); break;
    case FAKE_ERROR: fake_answer_error(fk, i); break;
    case FAKE_HOLD: break;
    }
}

static void fake_on_read(struct bufferevent *bev, void *arg)
{
    struct fake *fk = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        size_t len = evbuffer_get_length(in);
        if (len == 0)
            return;
        const uint8_t *p = evbuffer_pullup(in, -1);
        struct wire_frame f;
        size_t need;
        enum wire_result r = wire_parse_frame(p, len, FRAME_MAX, &f, &need);
        if (r == WIRE_NEED_MORE)
            return;
        if (r != WIRE_OK) {
            fk->protocol_error = true;
            evbuffer_drain(in, len);
            return;
        }
        fake_frame(fk, &f);
        evbuffer_drain(in, f.size);
    }
}

static void fake_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct fake *fk = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        fk->eofs++;
        if (fk->bev == bev)
            fk->bev = NULL;
        bufferevent_free(bev);
    }
}

static void fake_on_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct fake *fk = arg;
    int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0)
        return;
    if (fk->bev != NULL) /* one connection at a time: the newest wins */
        bufferevent_free(fk->bev);
    fk->bev = bufferevent_socket_new(fk->base, c, BEV_OPT_CLOSE_ON_FREE);
    if (fk->bev == NULL) {
        close(c);
        fk->protocol_error = true;
        return;
    }
    bufferevent_setcb(fk->bev, fake_on_read, NULL, fake_on_event, fk);
    bufferevent_enable(fk->bev, EV_READ | EV_WRITE);
    fk->accepts++;
    fk->conn_frames = 0;
}

/* Listens on 127.0.0.1:port (0: any free port); false on failure. */
static bool fake_start(struct fake *fk, struct event_base *base, uint16_t port)
{
    memset(fk, 0, sizeof(*fk));
    fk->base = base;
    fk->lfd = -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t slen = sizeof(sin);
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &slen) != 0) {
        close(fd);
        return false;
    }
    fk->accept_ev = event_new(base, fd, EV_READ | EV_PERSIST, fake_on_accept, fk);
    if (fk->accept_ev == NULL || event_add(fk->accept_ev, NULL) != 0) {
        if (fk->accept_ev != NULL)
            event_free(fk->accept_ev);
        fk->accept_ev = NULL;
        close(fd);
        return false;
    }
    fk->lfd = fd;
    fk->port = ntohs(sin.sin_port);
    return true;
}

/* Closes the fake's end of the connection (the client sees EOF). */
static void fake_drop(struct fake *fk)
{
    if (fk->bev != NULL) {
        bufferevent_free(fk->bev);
        fk->bev = NULL;
    }
}

/* Stops listening and drops the connection; tolerates a fake never started. */
static void fake_stop(struct fake *fk)
{
    fake_drop(fk);
    if (fk->accept_ev != NULL) {
        event_free(fk->accept_ev);
        fk->accept_ev = NULL;
    }
    if (fk->lfd >= 0) {
        close(fk->lfd);
        fk->lfd = -1;
    }
}

/* A loopback port nobody listens on (bound once, then released). */
static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t slen = sizeof(sin);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
    close(fd);
    return ntohs(sin.sin_port);
}

/* ---- The client side ---------------------------------------------------------- */

struct env;

/* What one request's completion saw. */
struct done_rec {
    struct env *e;
    unsigned calls;
    enum peer_result r;
    bool frame; /* f was non-NULL */
    uint8_t opcode;
    uint16_t flags;
    uint64_t id;
    uint8_t body[BODY_MAX + 16];
    size_t body_len;
    uint64_t sent_ms, at_ms;
    unsigned seq; /* 1 for the first completion in the test, 2 for the next... */
};

struct env {
    struct event_base *base;
    struct event *heartbeat;
    struct fake fk, fk2;
    char addr[32], addr2[32]; /* "127.0.0.1:port" of fk and fk2 */
    struct peerlinks_config cfg;
    struct peerlinks *pl;
    /* Records live here, not on a test's stack: a failed test jumps out and
     * the teardown's peerlinks_destroy still completes what is in flight. */
    struct done_rec recs[MAX_REQS + 8];
    unsigned completions;
    bool in_request;      /* peerlink_request is on the stack */
    bool done_in_request; /* a completion ran inside peerlink_request */
    bool bad_frame_arg;   /* f non-NULL for a result without a frame, or the reverse */
};

static void on_done(void *arg, enum peer_result r, const struct wire_frame *f)
{
    struct done_rec *d = arg;
    struct env *e = d->e;
    d->calls++;
    d->r = r;
    d->at_ms = clock_monotonic_ms();
    d->seq = ++e->completions;
    if (e->in_request)
        e->done_in_request = true;
    d->frame = f != NULL;
    if ((f != NULL) != (r == PEER_OK || r == PEER_ERROR))
        e->bad_frame_arg = true;
    if (f != NULL) {
        d->opcode = f->opcode;
        d->flags = f->flags;
        d->id = f->id;
        d->body_len = f->body_len < sizeof(d->body) ? f->body_len : sizeof(d->body);
        if (d->body_len > 0)
            memcpy(d->body, f->body, d->body_len);
    }
}

/* Sends request i (body "req-<i>") on l, completing into e->recs[i]. */
static enum peer_result send_req(struct env *e, struct peerlink *l, unsigned i, uint8_t opcode,
                                 uint16_t flags)
{
    char body[32];
    int n = snprintf(body, sizeof(body), "req-%u", i);
    struct done_rec *d = &e->recs[i];
    d->e = e;
    d->sent_ms = clock_monotonic_ms();
    e->in_request = true;
    enum peer_result r = peerlink_request(l, opcode, flags, body, (size_t)n, on_done, d);
    e->in_request = false;
    return r;
}

static void assert_body(const struct done_rec *d, const char *want)
{
    assert_true(d->frame);
    assert_int_equal(d->body_len, strlen(want));
    assert_memory_equal(d->body, want, d->body_len);
}

static void assert_fake_body(const struct fake_req *q, const char *want)
{
    assert_int_equal(q->body_len, strlen(want));
    assert_memory_equal(q->body, want, q->body_len);
}

static struct peerlinks_stats stats(const struct env *e)
{
    struct peerlinks_stats s;
    peerlinks_stats(e->pl, &s);
    return s;
}

/* ---- Driving the loop ------------------------------------------------------- */

typedef bool (*cond_fn)(struct env *e, unsigned n);

/* Runs the loop until cond(e, n) holds, at most max_ms; returns cond. */
static bool run_until(struct env *e, cond_fn cond, unsigned n, unsigned max_ms)
{
    uint64_t deadline = clock_monotonic_ms() + max_ms;
    for (unsigned i = 0; i < 1000000 && !cond(e, n); i++) {
        if (clock_monotonic_ms() >= deadline)
            break;
        event_base_loop(e->base, EVLOOP_ONCE);
    }
    return cond(e, n);
}

/* Runs the loop for ms milliseconds, whatever happens. */
static void run_for(struct env *e, unsigned ms)
{
    uint64_t deadline = clock_monotonic_ms() + ms;
    for (unsigned i = 0; i < 1000000 && clock_monotonic_ms() < deadline; i++)
        event_base_loop(e->base, EVLOOP_ONCE);
}

/* Runs the loop until the monotonic clock reaches t. */
static void run_to(struct env *e, uint64_t t)
{
    uint64_t now = clock_monotonic_ms();
    if (now < t)
        run_for(e, (unsigned)(t - now));
}

static bool cond_completions(struct env *e, unsigned n)
{
    return e->completions >= n;
}

static bool cond_fake_reqs(struct env *e, unsigned n)
{
    return e->fk.nreqs >= n;
}

static bool cond_fake2_reqs(struct env *e, unsigned n)
{
    return e->fk2.nreqs >= n;
}

static bool cond_fake_eofs(struct env *e, unsigned n)
{
    return e->fk.eofs >= n;
}

static bool cond_fake2_eofs(struct env *e, unsigned n)
{
    return e->fk2.eofs >= n;
}

static bool cond_late(struct env *e, unsigned n)
{
    return stats(e).late_responses >= n;
}

/* ---- Fixture ------------------------------------------------------------------ */

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

static int env_setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return -1;
    e->fk.lfd = e->fk2.lfd = -1;
    *state = e;
    e->base = event_base_new();
    if (e->base == NULL)
        return -1;
    e->heartbeat = event_new(e->base, -1, EV_PERSIST, on_heartbeat, NULL);
    struct timeval tv = {0, HEARTBEAT_MS * 1000};
    if (e->heartbeat == NULL || event_add(e->heartbeat, &tv) != 0)
        return -1;
    if (!fake_start(&e->fk, e->base, 0))
        return -1;
    snprintf(e->addr, sizeof(e->addr), "127.0.0.1:%u", (unsigned)e->fk.port);
    e->cfg = (struct peerlinks_config){
        .self =
            {
                .cluster_name = CLUSTER,
                .short_id = SELF_SHORT_ID,
                .generation = SELF_GENERATION,
                .addr = SELF_ADDR,
                .frame_max = FRAME_MAX,
            },
        .max_inflight = MAX_REQS,
        .timeout_ms = WAIT_MS,
        .retry_ms = 1000,
    };
    for (unsigned i = 0; i < WIRE_NODE_ID_LEN; i++)
        e->cfg.self.node_id[i] = (uint8_t)(0x10 + i);
    return 0;
}

static int env_teardown(void **state)
{
    struct env *e = *state;
    if (e == NULL)
        return 0;
    peerlinks_destroy(&e->pl);
    fake_stop(&e->fk);
    fake_stop(&e->fk2);
    if (e->heartbeat != NULL)
        event_free(e->heartbeat);
    if (e->base != NULL)
        event_base_free(e->base);
    bool in_request = e->done_in_request, bad_arg = e->bad_frame_arg;
    free(e);
    *state = NULL;
    /* Contract checks over every completion of the test. */
    if (in_request || bad_arg) {
        fprintf(stderr, "%s\n",
                in_request ? "a completion ran inside peerlink_request"
                           : "a completion's frame argument did not match its result");
        return -1;
    }
    return 0;
}

/* Creates the set from e->cfg (after the test adjusted it). */
static void env_open(struct env *e)
{
    assert_int_equal(peerlinks_create(&e->cfg, e->base, &e->pl), ST_OK);
    assert_non_null(e->pl);
}

/* Starts the second fake on port (0: any). */
static void env_start_fake2(struct env *e, uint16_t port)
{
    assert_true(fake_start(&e->fk2, e->base, port));
    snprintf(e->addr2, sizeof(e->addr2), "127.0.0.1:%u", (unsigned)e->fk2.port);
}

/* ---- Tests -------------------------------------------------------------------- */

static void test_names_and_get(void **state)
{
    struct env *e = *state;
    env_open(e);
    assert_string_equal(peer_result_name(PEER_OK), "ok");
    assert_string_equal(peer_result_name(PEER_TIMEOUT), "timeout");
    assert_string_equal(peer_result_name(PEER_DOWN), "down");
    struct peerlink *l = peerlinks_get(e->pl, e->addr);
    assert_non_null(l);
    assert_ptr_equal(peerlinks_get(e->pl, e->addr), l);
    assert_null(peerlinks_get(e->pl, ""));
    assert_null(peerlinks_get(e->pl, "no-port-here"));
    assert_int_equal(peerlink_inflight(l), 0);
    /* Not dialed until used. */
    run_for(e, 20);
    assert_int_equal(e->fk.accepts, 0);
    assert_int_equal(stats(e).dials, 0);
}

static void test_response_ok(void **state)
{
    struct env *e = *state;
    env_open(e);
    struct peerlink *l = peerlinks_get(e->pl, e->addr);
    assert_non_null(l);

    assert_int_equal(send_req(e, l, 0, WIRE_OP_READ, WIRE_FLAG_DIGEST), PEER_OK);
    assert_int_equal(e->recs[0].calls, 0);
    assert_int_equal(peerlink_inflight(l), 1);
    assert_true(run_until(e, cond_completions, 1, WAIT_MS));

    const struct done_rec *d = &e->recs[0];
    assert_int_equal(d->calls, 1);
    assert_int_equal(d->r, PEER_OK);
    assert_int_equal(d->opcode, WIRE_OP_READ);
    assert_int_equal(d->flags, WIRE_FLAG_RESPONSE | WIRE_FLAG_DIGEST);
    assert_int_equal(e->fk.nreqs, 1);
    assert_int_equal(d->id, e->fk.reqs[0].id);
    assert_body(d, "re:req-0");
    assert_int_equal(peerlink_inflight(l), 0);

    /* What the fake saw: HANDSHAKE first, with our identity, then the
     * request as sent. */
    assert_int_equal(e->fk.accepts, 1);
    assert_int_equal(e->fk.handshakes, 1);
    assert_false(e->fk.bad_order);
    assert_false(e->fk.protocol_error);
    assert_string_equal(e->fk.hs_cluster, CLUSTER);
    assert_string_equal(e->fk.hs_addr, SELF_ADDR);
    assert_int_equal(e->fk.hs_short_id, SELF_SHORT_ID);
    assert_int_equal(e->fk.hs_generation, SELF_GENERATION);
    assert_memory_equal(e->fk.hs_node_id, e->cfg.self.node_id, WIRE_NODE_ID_LEN);
    assert_int_equal(e->fk.reqs[0].opcode, WIRE_OP_READ);
    assert_int_equal(e->fk.reqs[0].flags, WIRE_FLAG_DIGEST);
    assert_fake_body(&e->fk.reqs[0], "req-0");

    /* A second request rides the same connection. */
    assert_int_equal(send_req(e, l, 1, WIRE_OP_PING, 0), PEER_OK);
    assert_true(run_until(e, cond_completions, 2, WAIT_MS));
    assert_int_equal(e->recs[1].r, PEER_OK);
    assert_int_equal(e->recs[1].opcode, WIRE_OP_PING);
    assert_int_equal(e->recs[1].flags, WIRE_FLAG_RESPONSE);
    assert_int_equal(e->recs[1].id, e->fk.reqs[1].id);
    assert_true(e->recs[1].id != e->recs[0].id);
    assert_body(&e->recs[1], "re:req-1");
    assert_int_equal(e->fk.accepts, 1);
    assert_int_equal(e->fk.handshakes, 1);

    struct peerlinks_stats s = stats(e);
    assert_int_equal(s.requests, 2);
    assert_int_equal(s.responses, 2);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.dials, 1);
    assert_int_equal(s.dial_failures, 0);
    assert_int_equal(s.bad_frames, 0);
}

static void test_error_reply(void **state)
{
    struct env *e = *state;
    env_open(e);
    e->fk.mode = FAKE_ERROR;
    struct peerlink *l = peerlinks_get(e->pl, e->addr);
    assert_non_null(l);
    assert_int_equal(send_req(e, l, 0, WIRE_OP_WRITE, 0), PEER_OK);
    assert_true(run_until(e, cond_completions, 1, WAIT_MS));

    const struct done_rec *d = &e->recs[0];
    assert_int_equal(d->calls, 1);
    assert_int_equal(d->r, PEER_ERROR);
    assert_true(d->frame);
    assert_int_equal(d->opcode, WIRE_OP_ERROR);
    assert_int_equal(d->flags, WIRE_FLAG_RESPONSE);
    assert_int_equal(d->id, e->fk.reqs[0].id);
    struct wire_error err;
    assert_int_equal(wire_parse_error(d->body, d->body_len, &err), WIRE_OK);
    assert_int_equal(err.code, WIRE_ERR_STORAGE);
    assert_int_equal(err.msg_len, strlen(FAKE_ERR_MSG));
    assert_memory_equal(err.msg, FAKE_ERR_MSG, err.msg_len);

    struct peerlinks_stats s = stats(e);
    assert_int_equal(s.errors, 1);
    assert_int_equal(s.responses, 0);
    assert_int_equal(peerlink_inflight(l), 0);
}

static void test_out_of_order(void **state)
{
    enum { N = 32 };
    struct env *e = *state;
    env_open(e);
    e->fk.mode = FAKE_HOLD;
    struct peerlink *l = peerlinks_get(e->pl, e->addr);
    assert_non_null(l);
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(send_req(e, l, i, WIRE_OP_READ, 0), PEER_OK);
    assert_int_equal(peerlink_inflight(l), N);
    assert_true(run_until(e, cond_fake_reqs, N, WAIT_MS));
    assert_int_equal(e->completions, 0);

    /* The fake saw them in send order, each with its own id. */
    for (unsigned i = 0; i < N; i++) {
        char want[32];
        snprintf(want, sizeof(want), "req-%u", i);
        assert_fake_body(&e->fk.reqs[i], want);
        for (unsigned j = 0; j < i; j++)
            assert_true(e->fk.reqs[i].id != e->fk.reqs[j].id);
    }
    for (unsigned i = N; i-- > 0;)
        fake_answer_echo(&e->fk, i);
    assert_true(run_until(e, cond_completions, N, WAIT_MS));

    for (unsigned i = 0; i < N; i++) {
        const struct done_rec *d = &e->recs[i];
        char want[32];
        snprintf(want, sizeof(want), "re:req-%u", i);
        assert_int_equal(d->calls, 1);
        assert_int_equal(d->r, PEER_OK);
        assert_int_equal(d->id, e->fk.reqs[i].id);
        assert_body(d, want);
        assert_int_equal(d->seq, N - i); /* answered last-first */
    }
    assert_int_equal(peerlink_inflight(l), 0);
    assert_int_equal(stats(e).responses, N);
    assert_int_equal(stats(e).late_responses, 0);
}

static void test_timeout_then_late_response(void **state)
{
    enum { TIMEOUT_MS = 150, TOLERANCE_MS = 5 };
    struct env *e = *state;
    e->cfg.timeout_ms = TIMEOUT_MS;
    env_open(e);
    e->fk.mode = FAKE_HOLD;
    struct peerlink *l = peerlinks_get(e->pl, e->addr);
    assert_non_null(l);
    assert_int_equal(send_req(e, l, 0, WIRE_OP_READ, 0), PEER_OK);
    assert_true(run_until(e, cond_fake_reqs, 1, WAIT_MS));
    assert_true(run_until(e, cond_completions, 1, TIMEOUT_MS + WAIT_MS));

    const struct done_rec *d = &e->recs[0];
    assert_int_equal(d->calls, 1);
    assert_int_equal(d->r, PEER_TIMEOUT);
    assert_false(d->frame);
    uint64_t took = d->at_ms - d->sent_ms;
    assert_true(took + TOLERANCE_MS >= TIMEOUT_MS);
    assert_true(took <= TIMEOUT_MS + 2000);
    assert_int_equal(peerlink_inflight(l), 0);
    assert_int_equal(stats(e).timeouts, 1);

    /* The answer comes after all: counted, and completes nothing. */
    fake_answer_echo(&e->fk, 0);
    assert_true(run_until(e, cond_late, 1, WAIT_MS));
    assert_int_equal(d->calls, 1);
    assert_int_equal(e->completions, 1);

    /* The connection carries on. */
    e->fk.mode = FAKE_ECHO;
    assert_int_equal(send_req(e, l, 1, WIRE_OP_READ, 0), PEER_OK);
    assert_true(run_until(e, cond_completions, 2, WAIT_MS));
    assert_int_equal(e->recs[1].calls, 1);
    assert_int_equal(e->recs[1].r, PEER_OK);
    assert_int_equal(e->recs[1].id, e->fk.reqs[1].id);
    assert_body(&e->recs[1], "re:req-1");
    assert_int_equal(d->calls, 1);
    assert_int_equal(e->fk.accepts, 1);

    struct peerlinks_stats s = stats(e);
    assert_int_equal(s.late_responses, 1);
    assert_int_equal(s.responses, 1);
    assert_int_equal(s.timeouts, 1);
    assert_int_equal(s.closed, 0);
}

static void test_peer_closes(void **state)
{
    enum { N = 3, RETRY_MS = 50 };
    struct env *e = *state;
    e->cfg.retry_ms = RETRY_MS;
    env_open(e);
    e->fk.mode = FAKE_HOLD;
    struct peerlink *l = peerlinks_get(e->pl, e->addr);
    assert_non_null(l);
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(send_req(e, l, i, WIRE_OP_WRITE, 0), PEER_OK);
    assert_true(run_until(e, cond_fake_reqs, N, WAIT_MS));
    fake_drop(&e->fk);
    assert_true(run_until(e, cond_completions, N, WAIT_MS));
    run_for(e, 30);
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(e->recs[i].calls, 1);
        assert_int_equal(e->recs[i].r, PEER_CLOSED);
        assert_false(e->recs[i].frame);
    }
    assert_int_equal(e->completions, N);
    assert_int_equal(peerlink_inflight(l), 0);
    assert_int_equal(stats(e).closed, N);
    assert_int_equal(stats(e).dial_failures, 0);

    /* Dialed again once the retry window is over. */
    run_for(e, RETRY_MS + 20);
    e->fk.mode = FAKE_ECHO;
    assert_int_equal(send_req(e, l, N, WIRE_OP_READ, 0), PEER_OK);
    assert_true(run_until(e, cond_completions, N + 1, WAIT_MS));
    assert_int_equal(e->recs[N].r, PEER_OK);
    assert_body(&e->recs[N], "re:req-3");
    assert_int_equal(e->fk.accepts, 2);
    assert_int_equal(e->fk.handshakes, 2);
    assert_false(e->fk.bad_order);
    assert_int_equal(stats(e).dials, 2);
}

static void test_max_inflight(void **state)
{
    enum { MAX = 4 };
    struct env *e = *state;
    e->cfg.max_inflight = MAX;
    env_open(e);
    e->fk.mode = FAKE_HOLD;
    struct peerlink *l = peerlinks_get(e->pl, e->addr);
    assert_non_null(l);
    for (unsigned i = 0; i < MAX; i++)
        assert_int_equal(send_req(e, l, i, WIRE_OP_READ, 0), PEER_OK);
    assert_int_equal(send_req(e, l, MAX, WIRE_OP_READ, 0), PEER_OVERLOADED);
    assert_int_equal(peerlink_inflight(l), MAX);
    assert_int_equal(stats(e).overloaded, 1);
    assert_int_equal(stats(e).requests, MAX);

    assert_true(run_until(e, cond_fake_reqs, MAX, WAIT_MS));
    run_for(e, 30);
    assert_int_equal(e->fk.nreqs, MAX); /* the refused one was not sent */
    for (unsigned i = 0; i < MAX; i++)
        fake_answer_echo(&e->fk, i);
    assert_true(run_until(e, cond_completions, MAX, WAIT_MS));
    run_for(e, 30);
    for (unsigned i = 0; i < MAX; i++) {
        assert_int_equal(e->recs[i].calls, 1);
        assert_int_equal(e->recs[i].r, PEER_OK);
    }
    assert_int_equal(e->recs[MAX].calls, 0);
    assert_int_equal(peerlink_inflight(l), 0);

    /* Room again. */
    assert_int_equal(send_req(e, l, MAX + 1, WIRE_OP_READ, 0), PEER_OK);
    assert_true(run_until(e, cond_fake_reqs, MAX + 1, WAIT_MS));
    fake_answer_echo(&e->fk, MAX);
    assert_true(run_until(e, cond_completions, MAX + 1, WAIT_MS));
    assert_int_equal(e->recs[MAX + 1].r, PEER_OK);
    assert_body(&e->recs[MAX + 1], "re:req-5");
    assert_int_equal(e->recs[MAX].calls, 0);
    assert_int_equal(e->completions, MAX + 1);
}

/*
 * Fails a dial to a port nobody listens on: either the request is refused
 * at once (PEER_DOWN) or it completes later, with PEER_DOWN too (it was
 * never sent: a caller may send it elsewhere). Returns the time
 * the failure was known, which is at or after when the link's retry window
 * began.
 */
static uint64_t fail_dial(struct env *e, struct peerlink *l, unsigned i)
{
    enum peer_result r = send_req(e, l, i, WIRE_OP_READ, 0);
    if (r == PEER_OK) {
        assert_true(run_until(e, cond_completions, e->completions + 1, WAIT_MS));
        assert_int_equal(e->recs[i].calls, 1);
        assert_int_equal(e->recs[i].r, PEER_DOWN);
        assert_false(e->recs[i].frame);
        return e->recs[i].at_ms;
    }
    assert_int_equal(r, PEER_DOWN);
    assert_int_equal(e->recs[i].calls, 0);
    return clock_monotonic_ms();
}

static void test_dial_refused_then_retry(void **state)
{
    enum { RETRY_MS = 200 };
    struct env *e = *state;
    e->cfg.retry_ms = RETRY_MS;
    env_open(e);
    uint16_t port = free_port();
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)port);
    struct peerlink *l = peerlinks_get(e->pl, addr);
    assert_non_null(l);

    fail_dial(e, l, 0);
    struct peerlinks_stats s = stats(e);
    assert_int_equal(s.dials, 1);
    assert_int_equal(s.dial_failures, 1);
    assert_int_equal(peerlink_inflight(l), 0);

    /* Within the window: refused at once, not sent, never completed. */
    uint64_t t_down = clock_monotonic_ms();
    assert_int_equal(send_req(e, l, 1, WIRE_OP_READ, 0), PEER_DOWN);
    assert_int_equal(peerlink_inflight(l), 0);
    assert_int_equal(stats(e).dials, 1);
    assert_true(stats(e).down >= 1);

    /* Someone listens there now; once the window is over (counted from the
     * refused request too, so this holds however the window is measured),
     * a request dials again and succeeds. */
    env_start_fake2(e, port);
    e->fk2.mode = FAKE_HOLD;
    run_to(e, t_down + RETRY_MS + 30);
    assert_int_equal(e->fk2.accepts, 0);
    assert_int_equal(send_req(e, l, 2, WIRE_OP_READ, 0), PEER_OK);
    assert_true(run_until(e, cond_fake2_reqs, 1, WAIT_MS));
    fake_answer_echo(&e->fk2, 0);
    unsigned before = e->completions;
    assert_true(run_until(e, cond_completions, before + 1, WAIT_MS));
    assert_int_equal(e->recs[2].calls, 1);
    assert_int_equal(e->recs[2].r, PEER_OK);
    assert_int_equal(e->recs[2].id, e->fk2.reqs[0].id);
    assert_body(&e->recs[2], "re:req-2");
    assert_int_equal(e->recs[1].calls, 0);
    assert_int_equal(e->fk2.accepts, 1);
    assert_int_equal(stats(e).dials, 2);
}

/*
 * The retry window runs retry_ms from the failed connection ("after a
 * connection fails, requests are refused this long"): a request refused
 * inside it must not push it further, or a link that is asked more often
 * than every retry_ms never dials again.
 */
static void test_retry_window_not_extended(void **state)
{
    enum { RETRY_MS = 300 };
    struct env *e = *state;
    e->cfg.retry_ms = RETRY_MS;
    env_open(e);
    uint16_t port = free_port();
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)port);
    struct peerlink *l = peerlinks_get(e->pl, addr);
    assert_non_null(l);

    uint64_t t_fail = fail_dial(e, l, 0);
    run_to(e, t_fail + RETRY_MS / 2);
    assert_int_equal(send_req(e, l, 1, WIRE_OP_READ, 0), PEER_DOWN);

    env_start_fake2(e, port);
    e->fk2.mode = FAKE_ECHO;
    run_to(e, t_fail + RETRY_MS + 30);
    assert_int_equal(send_req(e, l, 2, WIRE_OP_READ, 0), PEER_OK);
    unsigned before = e->completions;
    assert_true(run_until(e, cond_completions, before + 1, WAIT_MS));
    assert_int_equal(e->recs[2].r, PEER_OK);
    assert_body(&e->recs[2], "re:req-2");
    assert_int_equal(e->fk2.accepts, 1);
}

static void test_handshake_refused(void **state)
{
    enum { N = 2 };
    struct env *e = *state;
    env_open(e);
    e->fk.refuse = true;
    e->fk.mode = FAKE_HOLD;
    struct peerlink *l = peerlinks_get(e->pl, e->addr);
    assert_non_null(l);
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(send_req(e, l, i, WIRE_OP_READ, 0), PEER_OK);
    assert_true(run_until(e, cond_completions, N, WAIT_MS));
    run_for(e, 30);
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(e->recs[i].calls, 1);
        assert_int_equal(e->recs[i].r, PEER_CLOSED);
        assert_false(e->recs[i].frame);
    }
    assert_int_equal(e->completions, N);
    assert_int_equal(e->fk.handshakes, 1);
    assert_int_equal(peerlink_inflight(l), 0);
    assert_int_equal(stats(e).closed, N);
    /* The client hung up, and refuses requests for the retry window. */
    assert_true(run_until(e, cond_fake_eofs, 1, WAIT_MS));
    assert_int_equal(send_req(e, l, N, WIRE_OP_READ, 0), PEER_DOWN);
    assert_int_equal(e->fk.accepts, 1);
}

enum bad_kind {
    BAD_MAGIC,    /* 32 bytes that are not a frame */
    BAD_REQUEST,  /* a well-formed request (no RESPONSE flag) on a client link */
    BAD_CHECKSUM, /* the response with its body check broken */
};

/* The fake answers a pending request with something broken: the link
 * closes, the request completes once with PEER_CLOSED, the frame is
 * counted. */
static void check_bad_frame(struct env *e, enum bad_kind kind)
{
    enum { N = 2 };
    env_open(e);
    e->fk.mode = FAKE_HOLD;
    struct peerlink *l = peerlinks_get(e->pl, e->addr);
    assert_non_null(l);
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(send_req(e, l, i, WIRE_OP_READ, 0), PEER_OK);
    assert_true(run_until(e, cond_fake_reqs, N, WAIT_MS));
    assert_non_null(e->fk.bev);

    switch (kind) {
    case BAD_MAGIC: {
        uint8_t junk[WIRE_HEADER_LEN];
        memset(junk, 'X', sizeof(junk));
        bufferevent_write(e->fk.bev, junk, sizeof(junk));
        break;
    }
    case BAD_REQUEST:
        /* Same id as a pending request, so only the flag makes it wrong. */
        fake_send(&e->fk, WIRE_OP_PING, 0, e->fk.reqs[0].id, "ping", 4);
        break;
    case BAD_CHECKSUM: {
        struct wire_buf b;
        wire_buf_init(&b);
        size_t mark = wire_begin_frame(&b, WIRE_OP_READ, WIRE_FLAG_RESPONSE, e->fk.reqs[0].id);
        wire_put_raw(&b, "re:req-0", 8);
        assert_int_equal(wire_end_frame(&b, mark, FRAME_MAX), ST_OK);
        b.data[b.len - 1] ^= 0x01;
        bufferevent_write(e->fk.bev, b.data, b.len);
        wire_buf_deinit(&b);
        break;
    }
    }
    assert_true(run_until(e, cond_completions, N, WAIT_MS));
    run_for(e, 30);
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(e->recs[i].calls, 1);
        assert_int_equal(e->recs[i].r, PEER_CLOSED);
        assert_false(e->recs[i].frame);
    }
    assert_int_equal(e->completions, N);
    assert_int_equal(peerlink_inflight(l), 0);
    struct peerlinks_stats s = stats(e);
    assert_int_equal(s.bad_frames, 1);
    assert_int_equal(s.closed, N);
    assert_int_equal(s.responses, 0);
    assert_true(run_until(e, cond_fake_eofs, 1, WAIT_MS)); /* the client hung up */
}

static void test_bad_magic(void **state)
{
    check_bad_frame(*state, BAD_MAGIC);
}

static void test_request_on_client_link(void **state)
{
    check_bad_frame(*state, BAD_REQUEST);
}

static void test_bad_checksum(void **state)
{
    check_bad_frame(*state, BAD_CHECKSUM);
}

static void test_destroy_inflight(void **state)
{
    enum { NA = 3, NB = 2 };
    struct env *e = *state;
    env_open(e);
    env_start_fake2(e, 0);
    e->fk.mode = e->fk2.mode = FAKE_HOLD;
    struct peerlink *a = peerlinks_get(e->pl, e->addr);
    struct peerlink *b = peerlinks_get(e->pl, e->addr2);
    struct peerlink *idle = peerlinks_get(e->pl, "127.0.0.1:1");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(idle);
    assert_true(a != b);
    for (unsigned i = 0; i < NA; i++)
        assert_int_equal(send_req(e, a, i, WIRE_OP_WRITE, 0), PEER_OK);
    for (unsigned i = NA; i < NA + NB; i++)
        assert_int_equal(send_req(e, b, i, WIRE_OP_WRITE, 0), PEER_OK);
    assert_true(run_until(e, cond_fake_reqs, NA, WAIT_MS));
    assert_true(run_until(e, cond_fake2_reqs, NB, WAIT_MS));
    assert_int_equal(e->completions, 0);

    peerlinks_destroy(&e->pl);
    assert_null(e->pl);
    /* Completed during the destroy itself, each exactly once. */
    assert_int_equal(e->completions, NA + NB);
    for (unsigned i = 0; i < NA + NB; i++) {
        assert_int_equal(e->recs[i].calls, 1);
        assert_int_equal(e->recs[i].r, PEER_CLOSED);
        assert_false(e->recs[i].frame);
    }
    /* Nothing more arrives afterwards, and both connections were closed. */
    assert_true(run_until(e, cond_fake_eofs, 1, WAIT_MS));
    assert_true(run_until(e, cond_fake2_eofs, 1, WAIT_MS));
    run_for(e, 30);
    assert_int_equal(e->completions, NA + NB);
    for (unsigned i = 0; i < NA + NB; i++)
        assert_int_equal(e->recs[i].calls, 1);

    peerlinks_destroy(&e->pl); /* accepts NULL */
    assert_null(e->pl);
}

int main(void)
{
    log_setup(LOG_LVL_ERROR); /* refusals and closes are expected here */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_names_and_get, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_response_ok, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_error_reply, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_out_of_order, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_timeout_then_late_response, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_peer_closes, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_max_inflight, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_dial_refused_then_retry, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_retry_window_not_extended, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_handshake_refused, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_bad_magic, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_request_on_client_link, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_bad_checksum, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_destroy_inflight, env_setup, env_teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    log_teardown();
    return failed;
}
