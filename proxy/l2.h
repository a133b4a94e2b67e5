/*
 * l2.h - strata-proxy's L2 pool: memcached-protocol servers (stock
 * memcached, or strata-proxies on their peer port) over which keys are
 * spread by libmemcached's weighted ketama (common/ketama.h), spoken to
 * in the meta protocol.
 *
 * Per worker, one pipelined connection per server, dialed on first use;
 * each request carries an opaque token (O) that its reply must echo, and
 * replies come in request order, so a reply that does not parse, or
 * answers another request, resets the connection (its requests fail, no
 * answer reaches the wrong caller). Bounded requests in flight per
 * connection, a timeout per request.
 *
 * Ejection, shared by the workers: a server that fails l2_eject_after
 * times in a row (timeouts, resets, refused dials) is ejected for
 * l2_retry_ms, doubled each time it fails again soon after returning (up
 * to l2_retry_max_ms), so a flapping server stays out longer. Its keys
 * go to the next server on the continuum meanwhile. A returning server
 * is sent flush_all before it serves again (l2_flush_on_return): entries
 * it kept from before it left may be stale.
 *
 * Worker threads; callbacks on the calling worker's loop.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/mc_meta.h"
#include "common/mc_reply.h"

struct settings;
struct worker;
struct l2;

enum l2_result {
    L2_OK,      /* the server answered (reply is it: VA, HD, EN, ..., or an error line) */
    L2_TIMEOUT, /* no answer in time: the request may have been applied */
    L2_CLOSED,  /* the connection was reset with it in flight: may have been applied */
    L2_DOWN,    /* not sent: every server that could take the key is ejected or unreachable */
    L2_BUSY,    /* not sent: the connection's bound on requests in flight */
};

const char *l2_result_name(enum l2_result r);

/* reply: for L2_OK, valid during the call; else NULL. Once per request,
 * on the worker's thread; never from inside l2_request. A NULL done:
 * nothing waits for the answer (the link still counts it). */
typedef void (*l2_done_fn)(void *arg, enum l2_result r, const struct mc_reply *reply);

/* From settings' l2_servers; *out NULL when there are none. Prints why on
 * failure and returns an exit code, else 0. */
int l2_open(const struct settings *s, unsigned workers, struct l2 **out);
/* After l2_close_links. Accepts NULL. */
void l2_close(struct l2 **l);
/* Closes every worker's connections (requests in flight fail first):
 * after the workers' loops have stopped, before their bases are freed. */
void l2_close_links(struct l2 *l);

/*
 * One meta request for key: `line` is the command without its opaque
 * token and "\r\n" ("mg <key> v f c", "ms <key> 5 T0"); data (ms: ndata
 * bytes, "\r\n" added) may be NULL. Sent to the key's server, or the
 * next one up. done gets the outcome later, always (also L2_DOWN and
 * L2_BUSY).
 */
void l2_request(struct l2 *l, struct worker *w, const char *key, size_t nkey, const char *line,
                size_t nline, const void *data, size_t ndata, l2_done_fn done, void *arg);

/*
 * True when key's server is this proxy's own peer port (an entry of
 * l2_servers with the peer_port on a local address): its L1 is then the
 * pool's copy, and the command runs on it, not over the network.
 */
bool l2_local(struct l2 *l, struct worker *w, const char *key, size_t nkey);

/*
 * L1 coherence between proxies: `md <key>` to every peer (settings'
 * `peers`, other proxies' peer ports) except the key's owner in the pool,
 * whose copy the write itself changed. On the peers, the key's L1 entry
 * is a near-cache copy, and deleting it is idempotent. Requests on one
 * worker's loop turn leave together (one write per peer connection). A
 * peer that is out misses the invalidation: its l1_ttl_cap bounds how
 * long it serves the old value.
 */
void l2_invalidate(struct l2 *l, struct worker *w, const char *key, size_t nkey);

/* `md <key>` to the key's server; nothing waits for the answer. */
void l2_delete(struct l2 *l, struct worker *w, const char *key, size_t nkey);

/*
 * Replaces the peers with `list` ("host:port,...", NULL or "" for none;
 * the reload of settings' `peers`, SIGHUP). Peers in both lists keep
 * their connections and counters; each worker moves to the new list on
 * its next write. False with a message in err (the old list stays) when
 * an entry is not host:port or does not resolve. Any thread.
 */
bool l2_set_peers(struct l2 *l, const char *list, char *err, size_t errlen);

/* `line` (a command without a key: "flush_all 10") to every pool server
 * that is up but this proxy's own peer port; nothing waits for the
 * answers (counted per server). */
void l2_broadcast(struct l2 *l, struct worker *w, const char *line, size_t nline);

/* A meta request line being composed for l2_request: "<cmd> <key>", then
 * flags (l2_line_add); l2_line_end adds `b` when the key went base64 (it
 * holds bytes a text line cannot carry: the binary protocol allows them),
 * after everything else, as ms wants its length right after the key. */
struct l2_line {
    char buf[MC_META_B64_KEY_MAX + 256];
    size_t n;
    bool b64;
};
void l2_line_start(struct l2_line *ln, const char *cmd, const char *key, size_t nkey);
void l2_line_add(struct l2_line *ln, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The common flags without printf (every request has a few): text as is,
 * and " <letter><number>" (no letter when it is 0). */
void l2_line_text(struct l2_line *ln, const char *text);
void l2_line_u64(struct l2_line *ln, char letter, uint64_t v);
void l2_line_i64(struct l2_line *ln, char letter, int64_t v);
void l2_line_end(struct l2_line *ln);

/*
 * The fill gate of the pool's readers (proxy/cmd_l2.c): per slot of keys,
 * a generation that every completed write bumps; a read remembers it when
 * sent and fills L1 only if it is unchanged. l2_gate_lock returns the
 * key's slot generation with the slot's lock held, until l2_gate_unlock.
 * Accepts a NULL pool (no reads to order): returns NULL.
 */
uint64_t *l2_gate_lock(struct l2 *l, const char *key, size_t nkey);
void l2_gate_unlock(struct l2 *l, const char *key, size_t nkey);

/* Largest value a reply may carry (the proxy's item size limit). */
size_t l2_value_max(const struct l2 *l);

/* `stats l2`: the pool's settings, then per server: state, requests,
 * hits, misses, errors, timeouts, ejections, latency percentiles. */
void l2_stats(struct l2 *l, void (*emit)(void *arg, const char *name, const char *value),
              void *arg);
