/*
 * exec.h - what a daemon plugs into the memcached front end: an executor.
 *
 * The protocol modules (text, meta, binary) parse a command, call the
 * executor's operation, and word the reply from what it returns, so every
 * protocol gets the same semantics from one implementation per daemon:
 * strata-proxy's L1 executor (proxy/cmd.c), strata-node's coordinator.
 * Values cross this interface as opaque references (`void *item`) the
 * executor owns: the front end reads them through view() and gives them
 * back with release(), also from the reply queue once written, so an L1
 * hit is sent straight from the cache item. Results and meta options are
 * memcached's (protocol.txt), not any store's.
 *
 * Every operation runs on the worker thread of the calling connection and
 * gets that worker's executor context (`wctx`: the front end's struct
 * worker). An operation answers at once, or, for those with an _async
 * variant, later through a call (frontend/call.h) that keeps the
 * command's place in the connection's replies.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"
#include "common/status.h"
#include "common/wire.h"
#include "frontend/proto.h"

/* Outcomes of operations (not failures of the server). */
enum fe_result {
    FE_OK = 0, /* found / done */
    FE_STORED,
    FE_NOT_STORED,  /* add on existing, replace/append/prepend on missing */
    FE_EXISTS,      /* cas mismatch */
    FE_NOT_FOUND,   /* miss (cas, delete, touch, delta) */
    FE_NON_NUMERIC, /* incr/decr on a value that is not a decimal number */
    FE_TOO_LARGE,   /* value over the item size limit */
    FE_NO_MEMORY,   /* could not be stored */
    FE_FAILED,      /* the store failed (I/O, corruption): SERVER_ERROR */
    FE_UNAVAILABLE, /* too few replicas up for the consistency level (strata-node) */
    FE_TIMEOUT,     /* replicas did not answer in time: the write may have been applied */
    FE_BUSY,        /* the backend's bound on requests in flight: refused, nothing sent */
};

/* The reply line of a result that is the server's failure (FE_FAILED,
 * FE_UNAVAILABLE, FE_TIMEOUT, FE_BUSY), the same words in the text and
 * meta protocols; NULL for any other result. */
static inline const char *fe_server_error(enum fe_result r)
{
    switch (r) {
    case FE_FAILED: return "SERVER_ERROR storage error\r\n";
    case FE_UNAVAILABLE: return "SERVER_ERROR not enough replicas available\r\n";
    case FE_TIMEOUT: return "SERVER_ERROR timeout waiting for replicas\r\n";
    case FE_BUSY: return "SERVER_ERROR backend busy\r\n";
    default: return NULL;
    }
}

/* A read-modify-write's outcome (common/wire.h, what kvstore and a
 * node's primary answer) as a front-end result: STORED for every done
 * RMW; delete, touch and incr/decr callers read it as FE_OK. */
static inline enum fe_result fe_result_of_rmw(uint8_t result)
{
    switch ((enum wire_rmw_result)result) {
    case WIRE_RMW_STORED: return FE_STORED;
    case WIRE_RMW_NOT_STORED: return FE_NOT_STORED;
    case WIRE_RMW_EXISTS: return FE_EXISTS;
    case WIRE_RMW_NOT_FOUND: return FE_NOT_FOUND;
    case WIRE_RMW_NON_NUMERIC: return FE_NON_NUMERIC;
    case WIRE_RMW_TOO_LARGE: return FE_TOO_LARGE;
    }
    return FE_FAILED;
}

enum fe_store_mode {
    FE_SET,
    FE_ADD,
    FE_REPLACE,
    FE_APPEND,  /* keeps the stored item's flags and exptime */
    FE_PREPEND, /* keeps the stored item's flags and exptime */
    FE_CAS,
};

/* Flags of a meta set (store()'s mflags). */
#define FE_META_INVALIDATE \
    0x1u                        /* FE_CAS: an older, non-zero cas_in stores the
                                   item marked stale (ms I) */
#define FE_META_KEY_BINARY 0x2u /* the key came base64-encoded (echoed so) */

/* A value as the protocol modules read it (valid while the reference is
 * held). `value` may be written only for an item from reserve(), until
 * store(); other items are read only. */
struct fe_item_view {
    const char *key;
    size_t nkey;
    char *value;
    size_t nvalue; /* no terminator stored: replies add "\r\n" */
    uint32_t flags;
    uint64_t cas;
    unsigned clsid; /* size class (me: cls=), 0 if the store has none */
    size_t bytes;   /* stored size (me: size=) */
};

/*
 * The TTL-related flags of a meta request, by position on the line (-1:
 * absent): memcached acts on them left to right, so "t T30" reports the
 * old TTL and "T30 t" the new one.
 */
struct fe_meta_ttl {
    int t_pos;       /* t: report the TTL here */
    int touch_pos;   /* T: set the exptime to touch_exptime */
    int vivify_pos;  /* N: a miss creates an empty item (exptime
                        vivify_exptime) and this request wins */
    int recache_pos; /* R: win if the exptime is set, below recache_time,
                        and no token was sent */
    int fail_pos;    /* the request fails at this flag (mg's too-long
                        opaque): flags before it are acted on, none after */
    rel_time_t touch_exptime, vivify_exptime, recache_time;
};

#define FE_META_TTL_NONE            \
    {                               \
        -1, -1, -1, -1, -1, 0, 0, 0 \
    }

/* What a meta lookup saw (the state before this request unless noted). */
struct fe_meta_info {
    bool created;    /* created by vivify (N) */
    bool won;        /* this request won the token (W) */
    bool token_sent; /* another request holds the token (Z) */
    bool stale;      /* X */
    bool fetched;    /* h: fetched before */
    bool key_binary; /* stored with a base64 key */
    int64_t ttl;     /* t: -1 for no TTL, else the remaining seconds */
    rel_time_t idle; /* l: seconds since the last access */
};

/* ma: incr/decr with autovivify and TTL flags. */
struct fe_meta_arith {
    bool incr;
    uint64_t delta;
    uint64_t cas_in;        /* 0: no compare */
    bool vivify;            /* N: a miss creates the item holding `initial` */
    uint64_t initial;       /* J */
    struct fe_meta_ttl ttl; /* t, T, N (recache_pos unused) */
    uint64_t value;         /* out on FE_OK: the result, or `initial` */
    uint64_t cas;           /* out */
    bool created;           /* out */
    int64_t ttl_reported;   /* out: t, as fe_meta_info.ttl */
};

/* What `stats detail` records per key prefix (memcached -D), and the
 * commands that steer it. */
enum fe_note { FE_NOTE_GET, FE_NOTE_SET, FE_NOTE_DELETE };
enum fe_detail { FE_DETAIL_ON, FE_DETAIL_OFF, FE_DETAIL_DUMP };

struct conn;
struct fe_call;
struct mc_request;

/* What before_reply says of a connection's queued replies. */
enum fe_reply_gate { FE_REPLY_NOW, FE_REPLY_LATER, FE_REPLY_FAILED };

/*
 * The operations. Signatures follow memcached's commands; `wctx` is the
 * calling worker's context. Items returned are references the caller
 * releases (or hands to the reply queue).
 */
struct fe_exec_ops {
    /* A connection's next command may start while earlier ones are still
     * waiting on their _async calls: the executor gives every key the
     * effects of one connection's commands in the order they started
     * (false: each command waits for the one before it). */
    bool pipelined;

    void (*view)(void *exec, void *item, struct fe_item_view *v);
    void (*release)(void *exec, void *item);

    /* get/gets (touch false) or gat/gats (touch, new exptime); NULL: miss */
    void *(*get)(void *wctx, const char *key, size_t nkey, bool touch, rel_time_t exptime);
    /*
     * Optional: operations that complete later. The executor answers with
     * fe_call_done(call, answer) (frontend/call.h) on the calling worker,
     * after returning; the protocol modules then use these instead of the
     * synchronous ones (NULL: the synchronous one is used).
     */
    void (*get_async)(void *wctx, const char *key, size_t nkey, bool touch, rel_time_t exptime,
                      struct fe_call *call);
    void (*meta_get_async)(void *wctx, const char *key, size_t nkey, const struct fe_meta_ttl *ttl,
                           bool no_bump, struct fe_call *call);
    /* The writes' asynchronous variants (answer fields: result, cas, value,
     * arith), used instead of store, delete, touch, delta, meta_delete and
     * meta_delta when present. store_async takes the item. */
    void (*store_async)(void *wctx, void *item, enum fe_store_mode mode, uint64_t cas_in,
                        unsigned mflags, struct fe_call *call);
    void (*remove_async)(void *wctx, const char *key, size_t nkey, uint64_t cas_in,
                         struct fe_call *call);
    void (*touch_async)(void *wctx, const char *key, size_t nkey, rel_time_t exptime,
                        struct fe_call *call);
    void (*delta_async)(void *wctx, const char *key, size_t nkey, bool incr, uint64_t delta,
                        uint64_t cas_in, struct fe_call *call);
    void (*meta_delete_async)(void *wctx, const char *key, size_t nkey, bool has_cas,
                              uint64_t cas_in, bool invalidate, bool new_ttl, rel_time_t exptime,
                              struct fe_call *call);
    void (*meta_delta_async)(void *wctx, const char *key, size_t nkey,
                             const struct fe_meta_arith *a, struct fe_call *call);
    /* First half of a storage command: an item whose view().value takes
     * nbytes. NULL with *res FE_TOO_LARGE / FE_NO_MEMORY when it cannot be
     * stored (a refused set also drops the key's old value). */
    void *(*reserve)(void *wctx, const char *key, size_t nkey, uint32_t flags, rel_time_t exptime,
                     size_t nbytes, enum fe_store_mode mode, enum fe_result *res);
    /* Second half: the value arrived whole. Takes the item. mflags: meta
     * set flags (0 for the classic commands). */
    enum fe_result (*store)(void *wctx, void *item, enum fe_store_mode mode, uint64_t cas_in,
                            unsigned mflags, uint64_t *cas_out);
    /* A value arrived with a bad terminator: count it, drop the item. */
    void (*store_aborted)(void *wctx, void *item);
    enum fe_result (*remove)(void *wctx, const char *key, size_t nkey, uint64_t cas_in);
    enum fe_result (*touch)(void *wctx, const char *key, size_t nkey, rel_time_t exptime);
    enum fe_result (*delta)(void *wctx, const char *key, size_t nkey, bool incr, uint64_t delta,
                            uint64_t cas_in, uint64_t *value, uint64_t *cas_out);
    /* flush_all with memcached's delay semantics; `allowed` false (-F):
     * count the refused command, do nothing. */
    void (*flush_all)(void *wctx, int64_t delay, bool allowed);

    void *(*meta_get)(void *wctx, const char *key, size_t nkey, const struct fe_meta_ttl *ttl,
                      bool no_bump, struct fe_meta_info *info);
    enum fe_result (*meta_delete)(void *wctx, const char *key, size_t nkey, bool has_cas,
                                  uint64_t cas_in, bool invalidate, bool new_ttl,
                                  rel_time_t exptime);
    enum fe_result (*meta_delta)(void *wctx, const char *key, size_t nkey, struct fe_meta_arith *a);
    /* me: a look without bumping; NULL if absent. */
    void *(*meta_debug)(void *wctx, const char *key, size_t nkey, struct fe_meta_info *info);

    /* stats detail, per key prefix; both NULL if the daemon keeps none.
     * detail(): on, off, or dump (emit(arg, text, len) once, memcached's
     * text); ST_NOMEM. */
    void (*note)(void *wctx, enum fe_note what, const char *key, size_t nkey, bool hit);
    enum st_status (*detail)(void *exec, enum fe_detail what,
                             void (*emit)(void *arg, const char *text, size_t len), void *arg);

    /*
     * `stats [args]`: emit(arg, name, value) per line; *special set to a
     * whole reply line (e.g. "RESET") instead. False: unknown subcommand
     * (memcached answers ERROR).
     */
    bool (*stats)(void *exec, const char *args, size_t len,
                  void (*emit)(void *arg, const char *name, const char *value), void *arg,
                  const char **special);
    /* Optional: runs before a connection's queued replies are written,
     * so that the writes they report have happened as the executor
     * promises (the proxy writes its engine batch here). FE_REPLY_LATER:
     * not yet (a sync to come); the replies wait until the executor calls
     * worker_release_replies. FE_REPLY_FAILED: some may never happen; the
     * connection is closed instead of answered. */
    enum fe_reply_gate (*before_reply)(void *wctx);
    /* Text commands the front end leaves to the daemon (operator commands:
     * lru_crawler, slabs, lru, cache_memlimit, watch, stats cachedump):
     * queues the reply on c itself. NULL: they answer ERROR. */
    enum proto_action (*text_command)(struct conn *c, const struct mc_request *req,
                                      const char *line, size_t len);
};
