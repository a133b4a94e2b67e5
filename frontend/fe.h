/*
 * fe.h - the memcached front end as a daemon holds it: its settings, the
 * executor commands run on (exec.h), the hooks connection events are
 * reported to, the workers and the listener, and the process-wide
 * connection counters `stats` reads. One per daemon, filled in by main
 * before the workers start and passed by pointer (never a global).
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frontend/exec.h"

struct worker;
struct listener;

/* What the front end needs of the daemon's settings (fixed once workers
 * run). */
struct fe_settings {
    const char *listen_addr;   /* interface to bind */
    unsigned port;             /* TCP port; 0: any (tests) */
    unsigned backlog;          /* listen backlog */
    unsigned max_conns;        /* client connections */
    unsigned threads;          /* worker threads */
    unsigned reqs_per_event;   /* commands per connection per wakeup */
    size_t out_max;            /* unsent reply bytes before reading pauses */
    unsigned drain_timeout;    /* seconds a paused connection may make no progress */
    unsigned shutdown_timeout; /* seconds shutdown lets replies drain */
    unsigned idle_timeout;     /* close clients idle longer; 0: never */
    size_t read_buf_mem_limit; /* input buffer bytes, all workers; 0: no pool */
    bool flush_enabled;        /* flush_all allowed (memcached -F: no) */
    bool shutdown_command;     /* the text `shutdown` command is enabled (-A) */
};

/* Why a connection closed, as memcached's `watch connevents` says it. */
enum fe_close_reason {
    FE_CLOSE_ERROR,        /* read/write error, protocol error */
    FE_CLOSE_NORMAL,       /* the client closed, or quit */
    FE_CLOSE_IDLE_TIMEOUT, /* idle_timeout */
    FE_CLOSE_SHUTDOWN,     /* the server is shutting down */
};

/* Reports to the daemon; any may be NULL. Worker threads. */
struct fe_hooks {
    void *arg;
    /* A connection opened (closed false) or closed for `why`. */
    void (*conn_event)(void *arg, bool closed, const char *peer, int fd, enum fe_close_reason why);
    /* The commands of connection fd run now (what they log names it). */
    void (*conn_running)(void *arg, int fd);
};

struct fe {
    struct fe_settings settings;
    const struct fe_exec_ops *xo; /* the executor */
    void *exec;                   /* its context (the daemon) */
    struct fe_hooks hooks;

    struct worker *workers;
    unsigned nworkers;
    struct listener *listener;

    _Atomic unsigned curr_conns;
    _Atomic uint64_t total_conns;
    _Atomic uint64_t rejected_conns;
    _Atomic uint64_t listen_disabled_num;
    _Atomic bool accepting;
};
