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
