/*
 * call.h - a command waiting for its executor (exec.h's *_async
 * operations): it holds the command's place in the connection's replies
 * (a slot, conn.h) and the protocol module's continuation, the function
 * that words the reply once the result is known, with what it needs of
 * the request copied into the call. Worker thread of the connection.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "frontend/exec.h"

struct conn;
struct fe_call;

/* What an operation produced; each operation sets the fields it has. */
struct fe_answer {
    enum fe_result result;
    void *item;                 /* lookups: a reference the answer passes on (NULL: miss) */
    struct fe_meta_info info;   /* meta lookups */
    uint64_t cas;               /* stores and incr/decr: the new CAS */
    uint64_t value;             /* incr/decr: the new number */
    struct fe_meta_arith arith; /* ma: its outputs */
};

/* Words the reply into conn_out(c). Takes a->item. */
typedef void (*fe_cont)(struct conn *c, struct fe_call *call, const struct fe_answer *a);

/* A call for connection c with `extra` bytes for the protocol module
 * (fe_call_extra), or NULL when out of memory. */
struct fe_call *fe_call_new(struct conn *c, fe_cont cont, size_t extra);
void *fe_call_extra(struct fe_call *call);

/* The executor's answer: runs the continuation in the command's reply slot
 * (or only releases a->item if the client has gone), then frees the call.
 * Later than the call's creation, on its worker. */
void fe_call_done(struct fe_call *call, const struct fe_answer *a);

/*
 * An executor whose operations with an asynchronous variant complete on
 * the worker's next loop turn through that path, the rest as `inner`
 * does: the test mode that runs the whole protocol suite through reply
 * slots (strata-proxy --test-async-reads). Fills *storage, returns it.
 * REQUIRES: inner's context per worker is the front end's worker (as
 * every executor's is).
 */
const struct fe_exec_ops *fe_exec_deferred(const struct fe_exec_ops *inner,
                                           struct fe_exec_ops *storage);
