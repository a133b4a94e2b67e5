/*
 * call.h - a command waiting for its executor (exec.h's *_async
 * operations): it holds the command's place in the connection's replies
 * (a slot, conn.h) and the protocol module's continuation, the function
 * that words the reply once the result is known, with what it needs of
 * the request copied into the call. Worker thread of the connection.
 */
#pragma once

#include <stddef.h>

#include "frontend/exec.h"

struct conn;
struct fe_call;

/* Words the reply of a lookup into conn_out(c). Takes the item reference
 * (NULL: a miss); info is set for meta lookups. */
typedef void (*fe_lookup_cont)(struct conn *c, struct fe_call *call, void *item,
                               const struct fe_meta_info *info);

/* A call for connection c with `extra` bytes for the protocol module
 * (fe_call_extra), or NULL when out of memory. */
struct fe_call *fe_call_new(struct conn *c, fe_lookup_cont cont, size_t extra);
void *fe_call_extra(struct fe_call *call);

/* The executor's answer to a lookup: runs the continuation in the
 * command's reply slot (or only releases item if the client has gone),
 * then frees the call. Later than the call's creation, on its worker. */
void fe_call_done_lookup(struct fe_call *call, void *item, const struct fe_meta_info *info);

/*
 * An executor whose lookups (get, gat, mg) complete on the worker's next
 * loop turn through the asynchronous path, the rest as `inner` does: the
 * test mode that runs the whole protocol suite through reply slots
 * (strata-proxy --test-async-reads). Fills *storage and returns it.
 */
const struct fe_exec_ops *fe_exec_deferred_lookups(const struct fe_exec_ops *inner,
                                                   struct fe_exec_ops *storage);
