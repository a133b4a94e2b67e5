/*
 * main.c - strata-bench: parse options, resolve the server, start the
 * worker threads, drive the phases (connect, preload, measure) in lock step
 * with them, print a progress line every second and the summary, and turn
 * failures into the exit status (0 ok, 1 failed run, 64 usage, 68 no host).
 */

/*
 *   main ─ workers start ─► barrier (connected, preloaded) ─► deadline set
 *        ─► barrier ─► every second: collect + progress ─► join ─► summary
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sysexits.h>

#include "common/mem.h"
#include "tools/strata-bench/keys.h"
#include "tools/strata-bench/mono.h"
#include "tools/strata-bench/opts.h"
#include "tools/strata-bench/report.h"
#include "tools/strata-bench/worker.h"

/* The one flag a signal handler may touch; points into main's state. */
static atomic_bool *stop_on_signal;
static volatile sig_atomic_t signalled;

static void on_signal(int sig)
{
    (void)sig;
    signalled = 1;
    if (stop_on_signal != NULL)
        atomic_store(stop_on_signal, true);
}

static void setup_signals(atomic_bool *stop)
{
    stop_on_signal = stop;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void raise_fd_limit(const struct bench_opts *o)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)o->threads * o->conns + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = want <= rl.rlim_max ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < want)
        fprintf(stderr, "strata-bench: open-file limit %llu is below the %llu connections\n",
                (unsigned long long)rl.rlim_cur, (unsigned long long)want - 64);
}

static int resolve(const struct bench_opts *o, struct worker_shared *sh)
{
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(o->host, o->port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "strata-bench: cannot resolve %s: %s\n", o->server, gai_strerror(rc));
        return -1;
    }
    memcpy(&sh->addr, res->ai_addr, res->ai_addrlen);
    sh->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static double cpu_seconds(const struct rusage *ru, int sys)
{
    const struct timeval *tv = sys ? &ru->ru_stime : &ru->ru_utime;
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static void phase_cpu(struct report_phase *p, const struct rusage *a, const struct rusage *b)
{
    p->cpu_user = cpu_seconds(b, 0) - cpu_seconds(a, 0);
    p->cpu_sys = cpu_seconds(b, 1) - cpu_seconds(a, 1);
}

static void collect_all(struct worker **ws, unsigned n, struct tally *dst)
{
    for (unsigned i = 0; i < n; i++)
        worker_collect(ws[i], dst);
}

/* Waits until `until_ns` or until every worker is done; true if all done. */
static bool wait_done(struct worker_shared *sh, unsigned threads, uint64_t until_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(until_ns / 1000000000ull),
                          .tv_nsec = (long)(until_ns % 1000000000ull)};
    pthread_mutex_lock(&sh->done_lock);
    while (sh->done < threads &&
           pthread_cond_timedwait(&sh->done_cond, &sh->done_lock, &ts) != ETIMEDOUT)
        ;
    bool all = sh->done >= threads;
    pthread_mutex_unlock(&sh->done_lock);
    return all;
}

/* The measured phase, seen from main: a progress line per second. */
static void watch(struct worker **ws, const struct bench_opts *o, struct worker_shared *sh,
                  uint64_t t0, struct report *r)
{
    uint64_t last = t0;
    for (uint64_t tick = 1;; tick++) {
        bool all = wait_done(sh, o->threads, t0 + tick * 1000000000ull);
        uint64_t now = mono_now_ns();
        struct tally iv;
        tally_init(&iv);
        collect_all(ws, o->threads, &iv);
        tally_merge(&r->run.t, &iv);
        double secs = (double)(now - last) / 1e9;
        if (!all && iv.requests == 0)
            r->stalled_seconds++;
        if (!o->quiet && (!all || (iv.requests > 0 && secs >= 0.25)))
            report_progress(stderr, (double)(now - t0) / 1e9, secs, &iv);
        last = now;
        if (all)
            return;
    }
}

/* "ok", or every reason the run failed, into buf. */
static const char *judge(const struct report *r, const struct bench_opts *o, char *buf, size_t cap)
{
    struct tally all = r->run.t;
    if (r->preloaded)
        tally_merge(&all, &r->preload.t);
    uint64_t failed = tally_failures(&all);
    uint64_t total = all.requests + all.unexpected + all.unanswered; /* sent */
    size_t n = 0;
    buf[0] = '\0';
/* appends one reason; output past cap is dropped (snprintf size 0) */
#define WHY(...)                                                                   \
    (n += (size_t)snprintf(buf + (n < cap ? n : cap), n < cap ? cap - n : 0, "%s", \
                           n ? "; " : "FAILED: "),                                 \
     n += (size_t)snprintf(buf + (n < cap ? n : cap), n < cap ? cap - n : 0, __VA_ARGS__))
    if (r->conns_open == 0)
        WHY("no connection could be opened");
    if (all.conn_failures > 0)
        WHY("%llu connection failures", (unsigned long long)all.conn_failures);
    if (failed > 0 && (double)failed > o->max_error_rate * (double)total)
        WHY("%llu of %llu requests failed (%llu error replies, %llu unexpected, %llu "
            "unanswered), above --max-error-rate %g",
            (unsigned long long)failed, (unsigned long long)total, (unsigned long long)all.errors,
            (unsigned long long)all.unexpected, (unsigned long long)all.unanswered,
            o->max_error_rate);
    if (r->measured && r->run.t.requests == 0 && r->conns_open > 0)
        WHY("no request completed");
#undef WHY
    return n == 0 ? "ok" : buf;
}

static char *make_value(const struct bench_opts *o)
{
    char *v = mem_alloc(MEM_OTHER, (size_t)o->value_max + 1);
    if (v == NULL)
        return NULL;
    for (uint32_t i = 0; i < o->value_max; i++)
        v[i] = (char)('a' + i % 26);
    v[o->value_max] = '\0';
    return v;
}

static int run(const struct bench_opts *o, struct worker_shared *sh)
{
    struct worker **ws = mem_calloc(MEM_OTHER, o->threads, sizeof(*ws));
    if (ws == NULL) {
        fprintf(stderr, "strata-bench: out of memory\n");
        return EX_OSERR;
    }
    struct report r;
    memset(&r, 0, sizeof(r));
    r.o = o;
    tally_init(&r.preload.t);
    tally_init(&r.run.t);
    struct rusage ru0, ru1, ru2, ru3;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t t_start = mono_now_ns();
    for (unsigned i = 0; i < o->threads; i++) {
        if (worker_start(&ws[i], i, sh) != ST_OK) {
            /* the others wait at a barrier sized for all: nothing to unwind */
            fprintf(stderr, "strata-bench: cannot start worker thread %u\n", i);
            exit(EX_OSERR);
        }
    }
    pthread_barrier_wait(&sh->phase); /* connected, preloaded */
    uint64_t t_loaded = mono_now_ns();
    getrusage(RUSAGE_SELF, &ru1);
    for (unsigned i = 0; i < o->threads; i++)
        r.conns_open += ws[i]->alive; /* workers wait at the barrier */
    collect_all(ws, o->threads, &r.preload.t);
    if (o->preload) {
        r.preloaded = true;
        r.preload.seconds = (double)(t_loaded - t_start) / 1e9;
        phase_cpu(&r.preload, &ru0, &ru1);
        if (!o->quiet)
            report_preload(stderr, &r.preload);
    } else {
        tally_merge(&r.run.t, &r.preload.t); /* connection failures, if any */
    }
    if (o->preload_only || r.conns_open == 0)
        atomic_store(&sh->stop, true);
    getrusage(RUSAGE_SELF, &ru2);
    uint64_t t0 = mono_now_ns();
    atomic_store(&sh->deadline, t0 + (uint64_t)(o->duration * 1e9));
    pthread_barrier_wait(&sh->phase);
    watch(ws, o, sh, t0, &r);
    for (unsigned i = 0; i < o->threads; i++)
        worker_join(&ws[i]);
    uint64_t t_end = mono_now_ns();
    getrusage(RUSAGE_SELF, &ru3);
    mem_free(MEM_OTHER, ws, o->threads * sizeof(*ws));
    if (!o->preload_only) {
        r.measured = true;
        r.run.seconds = (double)(t_end - t0) / 1e9;
        phase_cpu(&r.run, &ru2, &ru3);
    }
    r.interrupted = signalled != 0;
    char verdict[512];
    r.verdict = judge(&r, o, verdict, sizeof(verdict));
    if (o->json)
        report_json(stdout, &r);
    else
        report_text(stdout, &r);
    fflush(stdout);
    return strcmp(r.verdict, "ok") == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct bench_opts o;
    switch (opts_parse(&o, argc, argv)) {
    case OPTS_EXIT: return 0;
    case OPTS_USAGE: return EX_USAGE;
    case OPTS_RUN: break;
    }
    struct keys ks;
    if (keys_init(&ks, o.key_prefix, o.keys, o.dist, o.skew) != ST_OK) {
        fprintf(stderr, "strata-bench: invalid key space\n");
        return EX_USAGE;
    }
    static struct worker_shared sh; /* large; lives for the whole process */
    sh.o = &o;
    sh.keys = &ks;
    if (resolve(&o, &sh) != 0)
        return EX_NOHOST;
    char *value = make_value(&o);
    if (value == NULL) {
        fprintf(stderr, "strata-bench: out of memory\n");
        return EX_OSERR;
    }
    sh.value = value;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sh.done_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&sh.done_lock, NULL);
    pthread_barrier_init(&sh.phase, NULL, o.threads + 1);
    setup_signals(&sh.stop);
    raise_fd_limit(&o);
    int rc = run(&o, &sh);
    stop_on_signal = NULL;
    pthread_barrier_destroy(&sh.phase);
    pthread_cond_destroy(&sh.done_cond);
    pthread_mutex_destroy(&sh.done_lock);
    mem_free(MEM_OTHER, value, (size_t)o.value_max + 1);
    return rc;
}
