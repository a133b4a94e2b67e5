/*
 * l2_link.h - the L2 pool's insides, shared by l2.c (the pool's servers,
 * the workers' connections to them, ejection) and l2_peers.c (the peers
 * of L1 coherence, replaced whole on reload). Not for other modules:
 * proxy/l2.h is the interface.
 *
 * Threads: a struct l2_server's identity (host, port, address) is fixed
 * once it is published; its state and counters are atomics any worker
 * updates. A struct link and a struct l2_worker belong to one worker's
 * loop.
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/lathist.h"
#include "proxy/l2.h"

#define L2_GATE_SLOTS 256u

enum srv_state { SRV_UP, SRV_EJECTED, SRV_RETURNING };

struct l2_server {
    char host[256];
    uint16_t port;
    uint32_t weight;
    char addr[300]; /* "host:port", for logs and stats */
    struct sockaddr_storage sa;
    socklen_t salen;

    pthread_mutex_t mu;           /* orders the state changes (rare) */
    _Atomic int state;            /* enum srv_state; read without the lock */
    _Atomic uint32_t fails;       /* in a row */
    _Atomic uint64_t until_ms;    /* SRV_EJECTED: until then */
    _Atomic uint64_t retry_ms;    /* the last ejection's interval */
    _Atomic uint64_t returned_ms; /* when it last came back; 0: never left */
    _Atomic uint64_t requests, hits, misses, errors, timeouts, resets, ejections, busy;
    _Atomic uint64_t dropped;         /* peers: invalidations not sent (the peer was out) */
    _Atomic uint64_t gutter_requests; /* gutter servers: requests for keys of servers out */
    struct lathist lat;               /* reply latencies */
};

struct pending;

/* One worker's connection to one server. */
struct link {
    struct l2_worker *lw;
    struct l2_server *srv;
    struct bufferevent *bev; /* NULL: not connected */
    bool connected;          /* the dial completed: on_flush writes its output */
    struct pending *head, *tail;
    unsigned inflight;
    uint64_t next_id;
    uint64_t resets; /* bumped by link_reset: callers' loops notice */
};

struct peer_set;

/* One worker's connections: its loop's thread only. */
struct l2_worker {
    struct l2 *l2;
    struct event_base *base;
    struct event *tick;
    bool ticking;
    struct event *flush; /* end of the loop turn: every link's output written */
    bool flush_armed;
    unsigned pending;   /* over all links */
    struct link *links; /* one per pool and gutter server */
    /* The peers this worker's peer links follow (l2_peers.c): a set the
     * worker has seen, maybe older than l2->peers. */
    const struct peer_set *peer_set;
    struct link **peer_links; /* one per server of peer_set */
};

struct l2 {
    unsigned timeout_ms, max_inflight, eject_after;
    uint64_t retry_base_ms, retry_max_ms;
    bool flush_on_return;
    size_t value_max;
    struct ketama *ketama;
    struct l2_server *servers;
    uint32_t nservers; /* the pool's, then the gutter's */
    uint32_t npool;
    uint32_t gutter_first, ngutter; /* the gutter pool: after the pool */
    struct ketama *gutter;          /* NULL: none */
    unsigned gutter_ttl;            /* seconds, the most an item set into the gutter lives */
    uint32_t self; /* this proxy's own peer port in the list; KETAMA_NONE: not in it */
    unsigned nworkers;
    struct l2_worker **workers;             /* created on each worker's first request */
    pthread_mutex_t gate_mu[L2_GATE_SLOTS]; /* the fill gate (l2_gate_lock) */
    uint64_t gate_gen[L2_GATE_SLOTS];

    /* The peers (l2_peers.c): the current set, published whole; sets and
     * servers replaced by a reload stay allocated until l2_close, as
     * workers may still be using them. */
    _Atomic(struct peer_set *) peers;
    pthread_mutex_t peers_mu; /* serialises reloads */
    struct peer_set *retired;
    struct l2_server **peer_servers; /* every peer server ever made */
    uint32_t npeer_servers, peer_servers_cap;
};

#define COUNT(s, f) atomic_fetch_add_explicit(&(s)->f, 1, memory_order_relaxed)

/* l2.c, for l2_peers.c. */
struct l2_worker *l2_worker_of(struct l2 *l, struct worker *w);
void l2_link_init(struct link *k, struct l2_worker *lw, struct l2_server *s);
/* Queues a request on k (dialing it): L2_OK, or why it was not sent. */
enum l2_result l2_link_send(struct link *k, const char *line, size_t nline, const void *data,
                            size_t ndata, bool has_data, l2_done_fn done, void *arg);
/* Closes k (the server left the configuration): its requests fail with
 * L2_CLOSED; the server counts no failure. */
void l2_link_drop(struct link *k);
/* Writes what the loop turn queued on k; resets it when its oldest
 * request is past its deadline (now_ms >= 0). */
void l2_link_flush(struct link *k);
void l2_link_check_deadline(struct link *k, uint64_t now_ms);
/* True when s takes requests; an ejected server whose time is up is
 * claimed by this caller, and serves again at once (flush false) or once
 * the flush_all sent on k answers OK. */
bool l2_server_usable(struct l2 *l, struct l2_server *s, struct link *k, bool flush);
/* Entries of a "host:port[:weight],..." list (0 for NULL or ""). */
uint32_t l2_list_count(const char *list);
/* "host:port[:weight]" into s (resolved); false if it is not one. */
bool l2_server_parse(const char *spec, struct l2_server *s);
/* stats l2's lines of one server. */
void l2_server_stats(const struct l2_server *s, const char *role,
                     void (*emit)(void *arg, const char *name, const char *value), void *arg);

/* l2_peers.c, for l2.c. */
/* The peers settings list at start; EX_CONFIG (printed) or 0. */
int l2_peers_open(struct l2 *l, const char *list);
void l2_peers_close_links(struct l2_worker *lw);
void l2_peers_free(struct l2 *l);
/* Each peer link of the worker: flushed, or checked for its deadline. */
void l2_peers_flush(struct l2_worker *lw);
void l2_peers_check_deadlines(struct l2_worker *lw, uint64_t now_ms);
void l2_peers_stats(struct l2 *l, void (*emit)(void *arg, const char *name, const char *value),
                    void *arg);
unsigned l2_peers_count(struct l2 *l);
