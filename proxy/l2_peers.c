/*
 * l2_peers.c - the peers of L1 coherence (see l2.h): other proxies' peer
 * ports, sent `md <key>` for every write through this proxy.
 *
 * The list is a set published whole (l2->peers) and never changed in
 * place: a reload (l2_set_peers, SIGHUP) builds a new set that shares the
 * servers it keeps with the old one (their counters and ejection state go
 * on) and makes new ones for the rest. Each worker notices the new set on
 * its next invalidation and moves its connections over on its own
 * thread: kept peers keep their connection, removed ones are closed.
 * Replaced sets and servers stay allocated until l2_close, so a worker or
 * `stats l2` still reading an older set reads valid memory.
 */
#include "proxy/l2_link.h"

#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "common/ketama.h"
#include "common/log.h"
#include "common/mem.h"
#include "frontend/worker.h"

/* How many peers one list may name. */
#define PEERS_MAX 256

struct peer_set {
    struct peer_set *older; /* l2->retired's list */
    uint32_t n;
    struct l2_server *srv[]; /* shared with other sets */
};

static size_t set_size(uint32_t n)
{
    return sizeof(struct peer_set) + n * sizeof(struct l2_server *);
}

/* The server of `cur` with spec's address, or a new one (recorded in
 * l->peer_servers). NULL with *bad when spec is not host:port. */
static struct l2_server *server_for(struct l2 *l, const struct peer_set *cur, const char *spec,
                                    bool *bad)
{
    struct l2_server probe;
    memset(&probe, 0, sizeof(probe));
    if (!l2_server_parse(spec, &probe)) {
        *bad = true;
        return NULL;
    }
    for (uint32_t i = 0; cur != NULL && i < cur->n; i++)
        if (strcmp(cur->srv[i]->addr, probe.addr) == 0)
            return cur->srv[i];
    if (l->npeer_servers == l->peer_servers_cap) {
        uint32_t cap = l->peer_servers_cap ? 2 * l->peer_servers_cap : 8;
        struct l2_server **grown = mem_realloc(
            MEM_OTHER, l->peer_servers, l->peer_servers_cap * sizeof(*grown), cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        l->peer_servers = grown;
        l->peer_servers_cap = cap;
    }
    struct l2_server *s = mem_alloc(MEM_OTHER, sizeof(*s));
    if (s == NULL)
        return NULL;
    *s = probe;
    pthread_mutex_init(&s->mu, NULL);
    l->peer_servers[l->npeer_servers++] = s;
    return s;
}

/* A set of the peers `list` names; NULL with a message in err. */
static struct peer_set *set_build(struct l2 *l, const char *list, char *err, size_t errlen)
{
    uint32_t n = l2_list_count(list);
    if (n > PEERS_MAX) {
        snprintf(err, errlen, "peers: %u listed, at most %u", n, PEERS_MAX);
        return NULL;
    }
    struct peer_set *set = mem_calloc(MEM_OTHER, 1, set_size(n));
    if (set == NULL) {
        snprintf(err, errlen, "peers: out of memory");
        return NULL;
    }
    const struct peer_set *cur = atomic_load(&l->peers);
    uint32_t made = l->npeer_servers; /* servers made from here on go if the list is bad */
    const char *p = list;
    for (uint32_t i = 0; i < n; i++) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        char spec[300];
        bool bad = len >= sizeof(spec);
        struct l2_server *s = NULL;
        if (!bad) {
            snprintf(spec, sizeof(spec), "%.*s", (int)len, p);
            s = server_for(l, cur, spec, &bad);
        }
        if (s == NULL) {
            if (bad)
                snprintf(err, errlen, "peers: \"%.*s\" is not host:port with a host that resolves",
                         (int)(len < 300 ? len : 300), p);
            else
                snprintf(err, errlen, "peers: out of memory");
            while (l->npeer_servers > made) {
                struct l2_server *gone = l->peer_servers[--l->npeer_servers];
                pthread_mutex_destroy(&gone->mu);
                mem_free(MEM_OTHER, gone, sizeof(*gone));
            }
            mem_free(MEM_OTHER, set, set_size(n));
            return NULL;
        }
        bool dup = false;
        for (uint32_t j = 0; j < set->n; j++)
            dup |= set->srv[j] == s;
        if (!dup)
            set->srv[set->n++] = s;
        p = comma != NULL ? comma + 1 : p + len;
    }
    return set;
}

/* Publishes set; the one it replaces is kept for workers still on it. */
static void set_publish(struct l2 *l, struct peer_set *set)
{
    struct peer_set *old = atomic_exchange(&l->peers, set);
    if (old != NULL) {
        old->older = l->retired;
        l->retired = old;
    }
}

int l2_peers_open(struct l2 *l, const char *list)
{
    char err[400];
    struct peer_set *set = set_build(l, list, err, sizeof(err));
    if (set == NULL) {
        fprintf(stderr, "strata-proxy: %s\n", err);
        return EX_CONFIG;
    }
    set_publish(l, set);
    return 0;
}

bool l2_set_peers(struct l2 *l, const char *list, char *err, size_t errlen)
{
    pthread_mutex_lock(&l->peers_mu);
    const struct peer_set *cur = atomic_load(&l->peers);
    struct peer_set *set = set_build(l, list != NULL ? list : "", err, errlen);
    if (set != NULL) {
        unsigned kept = 0;
        for (uint32_t i = 0; i < set->n; i++)
            for (uint32_t j = 0; cur != NULL && j < cur->n; j++)
                kept += set->srv[i] == cur->srv[j];
        log_warn("peers reloaded: %u (%u kept, %u added, %u removed)", set->n, kept, set->n - kept,
                 (cur != NULL ? cur->n : 0) - kept);
        set_publish(l, set);
    }
    pthread_mutex_unlock(&l->peers_mu);
    return set != NULL;
}

unsigned l2_peers_count(struct l2 *l)
{
    const struct peer_set *set = atomic_load(&l->peers);
    return set != NULL ? set->n : 0;
}

/* ------------------------------------------------- a worker's links */

static void links_free(struct l2_worker *lw)
{
    for (uint32_t i = 0; lw->peer_set != NULL && i < lw->peer_set->n; i++) {
        if (lw->peer_links[i] == NULL)
            continue;
        l2_link_drop(lw->peer_links[i]);
        mem_free(MEM_OTHER, lw->peer_links[i], sizeof(struct link));
    }
    if (lw->peer_links != NULL)
        mem_free(MEM_OTHER, lw->peer_links, lw->peer_set->n * sizeof(*lw->peer_links));
    lw->peer_links = NULL;
    lw->peer_set = NULL;
}

/*
 * Moves lw's peer links to `set`: a link to a server both sets hold moves
 * as it is (same struct: its bufferevent's callbacks still point at it),
 * the others are closed or made. False when out of memory (lw stays on
 * its set, and tries again on the next invalidation).
 */
static bool links_follow(struct l2_worker *lw, const struct peer_set *set)
{
    struct link **links = set->n > 0 ? mem_calloc(MEM_OTHER, set->n, sizeof(*links)) : NULL;
    if (set->n > 0 && links == NULL)
        return false;
    const struct peer_set *old = lw->peer_set;
    uint32_t *from = set->n > 0 ? mem_alloc(MEM_OTHER, set->n * sizeof(*from)) : NULL;
    bool ok = set->n == 0 || from != NULL;
    /* first what can fail: the new peers' links */
    for (uint32_t i = 0; ok && i < set->n; i++) {
        from[i] = UINT32_MAX;
        for (uint32_t j = 0; old != NULL && j < old->n; j++)
            if (old->srv[j] == set->srv[i])
                from[i] = j;
        if (from[i] != UINT32_MAX)
            continue;
        links[i] = mem_alloc(MEM_OTHER, sizeof(struct link));
        if (links[i] != NULL)
            l2_link_init(links[i], lw, set->srv[i]);
        ok = links[i] != NULL;
    }
    if (ok) {
        for (uint32_t i = 0; i < set->n; i++) {
            if (from[i] != UINT32_MAX) {
                links[i] = lw->peer_links[from[i]];
                lw->peer_links[from[i]] = NULL;
            }
        }
        links_free(lw); /* what was not moved: the removed peers' */
        lw->peer_set = set;
        lw->peer_links = links;
    } else {
        for (uint32_t i = 0; i < set->n; i++)
            if (links[i] != NULL && (from == NULL || from[i] == UINT32_MAX))
                mem_free(MEM_OTHER, links[i], sizeof(struct link));
        if (links != NULL)
            mem_free(MEM_OTHER, links, set->n * sizeof(*links));
    }
    if (from != NULL)
        mem_free(MEM_OTHER, from, set->n * sizeof(*from));
    return ok;
}

void l2_peers_close_links(struct l2_worker *lw)
{
    links_free(lw);
}

void l2_peers_flush(struct l2_worker *lw)
{
    for (uint32_t i = 0; lw->peer_set != NULL && i < lw->peer_set->n; i++)
        l2_link_flush(lw->peer_links[i]);
}

void l2_peers_check_deadlines(struct l2_worker *lw, uint64_t now_ms)
{
    for (uint32_t i = 0; lw->peer_set != NULL && i < lw->peer_set->n; i++)
        l2_link_check_deadline(lw->peer_links[i], now_ms);
}

/* ------------------------------------------------------ invalidation */

static bool same_address(const struct l2_server *a, const struct l2_server *b)
{
    return a->salen == b->salen && memcmp(&a->sa, &b->sa, a->salen) == 0;
}

void l2_invalidate(struct l2 *l, struct worker *w, const char *key, size_t nkey)
{
    const struct peer_set *set = atomic_load_explicit(&l->peers, memory_order_acquire);
    struct l2_worker *lw = l2_worker_of(l, w);
    if (lw == NULL || set == NULL)
        return;
    if (lw->peer_set != set && !links_follow(lw, set))
        set = lw->peer_set; /* out of memory: the old set's peers still hear */
    if (set == NULL || set->n == 0)
        return;
    struct l2_line ln;
    l2_line_start(&ln, "md", key, nkey);
    l2_line_end(&ln);
    uint32_t owner = ketama_pick(l->ketama, key, nkey, NULL, NULL);
    const struct l2_server *o = owner != KETAMA_NONE ? &l->servers[owner] : NULL;
    for (uint32_t i = 0; i < set->n; i++) {
        struct l2_server *s = set->srv[i];
        if (o != NULL && same_address(o, s))
            continue; /* the owner: the write itself changed its copy */
        struct link *k = lw->peer_links[i];
        if (atomic_load_explicit(&s->state, memory_order_relaxed) != SRV_UP &&
            !l2_server_usable(l, s, k, false)) { /* a peer keeps its pool copies */
            COUNT(s, dropped);                   /* the peer's l1_ttl_cap bounds its copy */
            continue;
        }
        if (l2_link_send(k, ln.buf, ln.n, NULL, 0, false, NULL, NULL) != L2_OK)
            COUNT(s, dropped);
    }
}

/* ------------------------------------------------------------ stats */

void l2_peers_stats(struct l2 *l, void (*emit)(void *arg, const char *name, const char *value),
                    void *arg)
{
    const struct peer_set *set = atomic_load_explicit(&l->peers, memory_order_acquire);
    for (uint32_t i = 0; set != NULL && i < set->n; i++)
        l2_server_stats(set->srv[i], "peer", emit, arg);
}

void l2_peers_free(struct l2 *l)
{
    struct peer_set *set = atomic_exchange(&l->peers, NULL);
    if (set != NULL) {
        set->older = l->retired;
        l->retired = set;
    }
    while (l->retired != NULL) {
        struct peer_set *s = l->retired;
        l->retired = s->older;
        mem_free(MEM_OTHER, s, set_size(s->n));
    }
    for (uint32_t i = 0; i < l->npeer_servers; i++) {
        pthread_mutex_destroy(&l->peer_servers[i]->mu);
        mem_free(MEM_OTHER, l->peer_servers[i], sizeof(struct l2_server));
    }
    if (l->peer_servers != NULL)
        mem_free(MEM_OTHER, l->peer_servers, l->peer_servers_cap * sizeof(*l->peer_servers));
    l->peer_servers = NULL;
    l->npeer_servers = l->peer_servers_cap = 0;
}
