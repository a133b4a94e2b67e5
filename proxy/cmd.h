/*
 * cmd.h - strata-proxy's executor: memcached's operations against the L1
 * cache, counted with memcached's counter semantics and reported to
 * `watch`, behind the front end's executor interface (frontend/exec.h)
 * that every protocol module calls. The executor context is the proxy
 * (struct proxy *), the per-worker context the calling worker (struct
 * worker *, its counter shard). Worker threads.
 */
#pragma once

#include "frontend/exec.h"

extern const struct fe_exec_ops cmd_exec_ops;

struct worker;

/* get/gets (gat/gats when touch) on L1, counted as cmd_exec_ops.get
 * counts it when it hits; a miss returns NULL and is counted nowhere,
 * for an executor that goes below L1 first (proxy/cmd_cluster.c) and
 * then runs the whole command. */
void *cmd_get_hit(struct worker *w, const char *key, size_t nkey, bool touch, rel_time_t exptime);
