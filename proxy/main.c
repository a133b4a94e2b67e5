/*
 * main.c - strata-proxy: parse flags, set up the process-wide services in
 * a fixed order, start workers and the acceptor, run the main loop (signals,
 * clock, cache maintenance) and shut down cleanly on SIGTERM/SIGINT.
 *
 * Setup order: log → clock → cache → listener (bind before dropping
 * privileges) → workers → accept. Teardown runs in reverse.
 */
#include <errno.h>
#include <event2/event.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sysexits.h>
#include <unistd.h>

#ifdef STRATA_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "cache/cache.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "frontend/call.h"
#include "frontend/listener.h"
#include "frontend/worker.h"
#include "proxy/admin.h"
#include "proxy/cmd.h"
#include "proxy/cmd_cluster.h"
#include "proxy/cmd_l2.h"
#include "proxy/detail.h"
#include "proxy/l2.h"
#include "proxy/proxy.h"
#include "proxy/settings.h"
#include "proxy/tiers.h"
#include "proxy/version.h"
#include "proxy/watch.h"

/* Cache maintenance: every 100 ms, at most this many hash buckets. */
#define MAINTAIN_INTERVAL_US 100000
#define MAINTAIN_BUDGET 4096
/* File descriptors beyond client connections: listener, eventfds, logs. */
#define RESERVED_FDS 32

struct main_loop {
    struct proxy *p;
    struct event_base *base;
    struct listener *peer; /* the peer port's; NULL: none */
    struct event *sigterm, *sigint, *sigusr1, *sighup, *clock_timer, *maintain_timer;
    int exit_code;
};

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct main_loop *m = arg;
    log_info("signal %d: shutting down", (int)sig);
    event_base_loopbreak(m->base);
}

/* SIGHUP: the options that can change while running are read again from
 * the config file (today the peers of L1 coherence); the others need a
 * restart. */
static void on_reload(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    struct main_loop *m = arg;
    char err[512], *peers;
    if (!settings_reread_peers(&m->p->settings, &peers, err, sizeof(err))) {
        log_warn("SIGHUP: nothing reloaded: %s", err);
        return;
    }
    if (m->p->l2 == NULL) {
        if (peers != NULL)
            log_warn("SIGHUP: peers needs l2_servers, which only a restart sets; not reloaded");
    } else if (!l2_set_peers(m->p->l2, peers, err, sizeof(err))) {
        log_warn("SIGHUP: the old peers stay: %s", err);
    }
    free(peers);
}

static void on_clock(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    clock_tick();
}

static void on_maintain(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct main_loop *m = arg;
    cache_maintain(m->p->cache, MAINTAIN_BUDGET);
    tiers_tick(m->p->tiers);
    admin_crawler_tick(m->p);
}

static int raise_fd_limit(unsigned max_conns, unsigned threads)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)max_conns + RESERVED_FDS + (rlim_t)threads * 2;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur >= want)
        return 0;
    rl.rlim_cur = want;
    if (rl.rlim_max < want)
        rl.rlim_max = want; /* only root may raise the hard limit */
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        fprintf(stderr,
                "strata-proxy: cannot raise the open files limit to %lu for -c %u: %s. "
                "Raise `ulimit -n` or lower -c.\n",
                (unsigned long)want, max_conns, strerror(errno));
        return EX_OSERR;
    }
    return 0;
}

/* -r, as memcached: the core limit to infinity, else to the hard limit;
 * a soft limit still 0 means no core file can be written. */
static int enable_coredumps(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_CORE, &rl) == 0) {
        struct rlimit want = {RLIM_INFINITY, RLIM_INFINITY};
        if (setrlimit(RLIMIT_CORE, &want) != 0) {
            want.rlim_cur = want.rlim_max = rl.rlim_max;
            (void)setrlimit(RLIMIT_CORE, &want);
        }
    }
    if (getrlimit(RLIMIT_CORE, &rl) != 0 || rl.rlim_cur == 0) {
        fprintf(stderr, "strata-proxy: -r: cannot raise the core file size limit above 0\n");
        return EX_OSERR;
    }
    return 0;
}

/* -k, as memcached: lock current and future pages; if the system refuses
 * (RLIMIT_MEMLOCK, no CAP_IPC_LOCK), warn and run unlocked. */
static void lock_memory(void)
{
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
        log_warn("-k: mlockall() failed: %s; running with unlocked memory", strerror(errno));
}

static int drop_privileges(const char *user)
{
    if (getuid() != 0 && geteuid() != 0)
        return 0;
    if (user == NULL) {
        log_warn("running as root; pass -u <user> to drop privileges");
        return 0;
    }
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        fprintf(stderr, "strata-proxy: unknown user '%s'\n", user);
        return EX_NOUSER;
    }
    if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
        fprintf(stderr, "strata-proxy: cannot become user '%s': %s\n", user, strerror(errno));
        return EX_OSERR;
    }
    return 0;
}

static int write_pidfile(const char *path)
{
    if (path == NULL)
        return 0;
    FILE *f = fopen(path, "w");
    if (f == NULL || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0) {
        fprintf(stderr, "strata-proxy: cannot write pid file %s: %s\n", path, strerror(errno));
        return EX_CANTCREAT;
    }
    return 0;
}

/* Tells systemd (Type=notify) about readiness and shutdown; a no-op when
 * not started by systemd or built without libsystemd. */
static void notify_systemd(const char *state)
{
#ifdef STRATA_HAVE_SYSTEMD
    sd_notify(0, state);
#else
    (void)state;
#endif
}

static struct event *add_timer(struct event_base *base, long usec, event_callback_fn fn, void *arg)
{
    struct event *ev = event_new(base, -1, EV_PERSIST, fn, arg);
    struct timeval tv = {usec / 1000000, usec % 1000000};
    if (ev != NULL && event_add(ev, &tv) != 0) {
        event_free(ev);
        ev = NULL;
    }
    return ev;
}

static void free_event(struct event **ev)
{
    if (*ev != NULL)
        event_free(*ev);
    *ev = NULL;
}

/* `watch connevents` and the cfd= of logged lines, from the front end. */
static void hook_conn_event(void *arg, bool closed, const char *peer, int fd,
                            enum fe_close_reason why)
{
    struct watch_state *ws = arg;
    if (watch_wants(ws, WATCH_CONNEVENTS))
        watch_log_conn(ws, closed, peer, fd, (enum watch_close_reason)why);
}

static void hook_conn_running(void *arg, int fd)
{
    (void)arg;
    watch_set_client_fd(fd);
}

_Static_assert((int)FE_CLOSE_ERROR == (int)WATCH_CLOSE_ERROR &&
                   (int)FE_CLOSE_NORMAL == (int)WATCH_CLOSE_NORMAL &&
                   (int)FE_CLOSE_IDLE_TIMEOUT == (int)WATCH_CLOSE_IDLE_TIMEOUT &&
                   (int)FE_CLOSE_SHUTDOWN == (int)WATCH_CLOSE_SHUTDOWN,
               "the front end's close reasons are watch's");

/* The front end runs strata-proxy's commands on the L1 executor. */
static void front_end_setup(struct proxy *p)
{
    const struct settings *s = &p->settings;
    p->fe.settings = (struct fe_settings){
        .listen_addr = s->listen_addr,
        .port = s->port,
        .backlog = s->backlog,
        .max_conns = s->max_conns,
        .threads = s->threads,
        .reqs_per_event = s->reqs_per_event,
        .out_max = s->out_max,
        .drain_timeout = s->drain_timeout,
        .shutdown_timeout = s->shutdown_timeout,
        .idle_timeout = s->idle_timeout,
        .read_buf_mem_limit = s->read_buf_mem_limit,
        .flush_enabled = s->flush_enabled,
        .shutdown_command = s->shutdown_command,
    };
    /* --test-async-reads: every lookup through the asynchronous path */
    static struct fe_exec_ops deferred, cluster, pool;
    p->fe.xo = s->test_async_reads ? fe_exec_deferred(&cmd_exec_ops, &deferred) : &cmd_exec_ops;
    /* backend = cluster: every command that can waits on the nodes */
    if (tiers_cbackend(p->tiers) != NULL)
        p->fe.xo = cmd_cluster_exec(p->fe.xo, &cluster);
    /* an L2 pool and no backend: every command that can goes to its
     * server (with backend = cluster the pool sits inside cmd_cluster.c) */
    if (p->l2 != NULL && p->tiers == NULL)
        p->fe.xo = cmd_l2_exec(p->fe.xo, &pool);
    p->fe.exec = p;
    p->fe.hooks = (struct fe_hooks){
        .arg = &p->watch,
        .conn_event = hook_conn_event,
        .conn_running = hook_conn_running,
    };
}

int main(int argc, char **argv)
{
    static struct proxy proxy; /* main's own; every thread gets a pointer */
    struct proxy *p = &proxy;
    struct main_loop m = {.p = p, .exit_code = 0};
    int rc;

    settings_init(&p->settings);
    rc = settings_parse(&p->settings, argc, argv);
    if (rc >= 0) {
        settings_deinit(&p->settings);
        return rc;
    }
    const struct settings *s = &p->settings;

    log_setup(s->verbose == 0 ? LOG_LVL_WARN : s->verbose == 1 ? LOG_LVL_INFO : LOG_LVL_DEBUG);
    settings_log_notes(s);
    clock_setup();
    signal(SIGPIPE, SIG_IGN);
    if ((rc = raise_fd_limit(s->max_conns, s->threads)) != 0)
        return rc;
    if (s->enable_coredumps && (rc = enable_coredumps()) != 0)
        return rc;
    if (s->lock_memory)
        lock_memory();
    pthread_mutex_init(&p->reset_lock, NULL);
    admin_state_init(&p->admin, &p->settings);
    watch_state_init(&p->watch, s->watcher_logbuf_size);

    struct cache_config cc = {
        .max_bytes = s->max_bytes,
        .item_size_max = s->item_size_max,
        .evictions = !s->disable_evictions,
        .hashpower_init = s->hashpower,
        .on_evict = watch_on_evict, /* `watch evictions`; checks the mask first */
        .evict_arg = &p->watch,
    };
    if (cache_create(&p->cache, &cc) != ST_OK) {
        fprintf(stderr, "strata-proxy: cannot create the cache (-m %zu bytes)\n", s->max_bytes);
        return EX_SOFTWARE;
    }
    if (detail_create(&p->detail, s->detail_delimiter, s->detail_enabled) != ST_OK)
        return EX_OSERR;
    if ((rc = tiers_open(s, p->cache, s->threads, &p->tiers)) != 0)
        return rc;
    if ((rc = l2_open(s, s->threads, &p->l2)) != 0)
        return rc;

    m.base = event_base_new();
    if (m.base == NULL)
        return EX_OSERR;
    front_end_setup(p);
    if (listener_create(&p->fe.listener, &p->fe, m.base) != ST_OK) {
        rc = EX_UNAVAILABLE;
        goto out;
    }
    /* the peer port: other proxies' L2 requests, served by L1 alone (never
     * the L2 pool, never a backend: settings refuse a peer port with one) */
    static struct fe_exec_ops peer_ops;
    if (s->peer_port != 0 &&
        listener_create_on(&m.peer, &p->fe, m.base, s->listen_addr, s->peer_port,
                           cmd_l2_peer_exec(&peer_ops)) != ST_OK) {
        rc = EX_UNAVAILABLE;
        goto out;
    }
    if ((rc = drop_privileges(s->user)) != 0 || (rc = write_pidfile(s->pidfile)) != 0)
        goto out;

    p->fe.workers = mem_calloc(MEM_OTHER, s->threads, sizeof(*p->fe.workers));
    if (p->fe.workers == NULL) {
        rc = EX_OSERR;
        goto out;
    }
    for (unsigned i = 0; i < s->threads; i++) {
        if (worker_init(&p->fe.workers[i], i, &p->fe) != ST_OK ||
            worker_start(&p->fe.workers[i]) != ST_OK) {
            fprintf(stderr, "strata-proxy: cannot start worker %u\n", i);
            p->fe.nworkers = i;
            rc = EX_OSERR;
            goto out_workers;
        }
        p->fe.nworkers = i + 1;
    }

    m.sigterm = evsignal_new(m.base, SIGTERM, on_signal, &m);
    m.sigint = evsignal_new(m.base, SIGINT, on_signal, &m);
    /* memcached stops gracefully on SIGUSR1 (`shutdown graceful` raises it) */
    m.sigusr1 = evsignal_new(m.base, SIGUSR1, on_signal, &m);
    m.sighup = evsignal_new(m.base, SIGHUP, on_reload, &m);
    m.clock_timer = add_timer(m.base, 1000000, on_clock, &m);
    m.maintain_timer = add_timer(m.base, MAINTAIN_INTERVAL_US, on_maintain, &m);
    if (m.sigterm == NULL || m.sigint == NULL || m.sigusr1 == NULL || m.sighup == NULL ||
        event_add(m.sigterm, NULL) != 0 || event_add(m.sigint, NULL) != 0 ||
        event_add(m.sigusr1, NULL) != 0 || event_add(m.sighup, NULL) != 0 ||
        m.clock_timer == NULL || m.maintain_timer == NULL ||
        listener_start(p->fe.listener) != ST_OK ||
        (m.peer != NULL && listener_start(m.peer) != ST_OK)) {
        rc = EX_OSERR;
        goto out_workers;
    }
    log_info("strata-proxy %s (memcached %s) listening on %s, %u threads, %zu MB", STRATA_VERSION,
             MC_COMPAT_VERSION, listener_addr(p->fe.listener), s->threads, s->max_bytes >> 20);

    notify_systemd("READY=1");

    event_base_dispatch(m.base);
    notify_systemd("STOPPING=1");
    rc = 0;

out_workers:
    /*
     * Stop accepting first, then let workers flush their replies. A worker
     * still draining may run `stats conns`, which reads the listener and
     * every worker's connection list: nothing is freed until all are joined.
     */
    listener_stop(p->fe.listener);
    listener_stop(m.peer);
    for (unsigned i = 0; i < p->fe.nworkers; i++)
        worker_stop(&p->fe.workers[i]);
    for (unsigned i = 0; i < p->fe.nworkers; i++)
        worker_join(&p->fe.workers[i]);
    tiers_workers_stopped(p->tiers); /* links close before the loops' bases */
    l2_close_links(p->l2);
    for (unsigned i = 0; i < p->fe.nworkers; i++)
        worker_deinit(&p->fe.workers[i]);
    mem_free(MEM_OTHER, p->fe.workers, s->threads * sizeof(*p->fe.workers));
    p->fe.workers = NULL;
out:
    listener_destroy(&p->fe.listener);
    listener_destroy(&m.peer);
    free_event(&m.sigterm);
    free_event(&m.sigint);
    free_event(&m.sigusr1);
    free_event(&m.sighup);
    free_event(&m.clock_timer);
    free_event(&m.maintain_timer);
    if (m.base != NULL)
        event_base_free(m.base);
    tiers_close(&p->tiers); /* after the workers: they used it */
    l2_close(&p->l2);
    cache_destroy(&p->cache);
    detail_destroy(&p->detail);
    if (s->pidfile != NULL && rc == 0)
        unlink(s->pidfile);
    pthread_mutex_destroy(&p->reset_lock);
    admin_state_deinit(&p->admin);
    watch_state_deinit(&p->watch);
    settings_deinit(&p->settings);
    clock_teardown();
    log_teardown();
    return rc;
}
