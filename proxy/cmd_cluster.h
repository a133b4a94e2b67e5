/*
 * cmd_cluster.h - strata-proxy's executor with `backend = cluster`: the
 * L1 executor (proxy/cmd.c) with asynchronous operations that run each
 * command's backend part on strata-nodes (proxy/cbackend.h) before or
 * after its L1 part, per the key's policy (docs/TIERS.md). Worker threads.
 */
#pragma once

#include "frontend/exec.h"

/* `inner` (cmd_exec_ops) with the cluster's asynchronous operations.
 * Fills *storage, returns it. */
const struct fe_exec_ops *cmd_cluster_exec(const struct fe_exec_ops *inner,
                                           struct fe_exec_ops *storage);
