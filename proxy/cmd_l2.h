/*
 * cmd_l2.h - strata-proxy's executor with an L2 pool and no backend
 * (docs/L2.md): the L1 executor (proxy/cmd.c) with asynchronous
 * operations that send each command to its key's L2 server
 * (proxy/l2.h). With L1 on, hits are answered from L1 and values read
 * from L2 are kept there (a near cache); with l1 = off every command
 * goes to its server (routing mode, as twemproxy). Worker threads.
 */
#pragma once

#include "frontend/exec.h"

/* `inner` (cmd_exec_ops) with the pool's asynchronous operations. Fills
 * *storage, returns it. */
const struct fe_exec_ops *cmd_l2_exec(const struct fe_exec_ops *inner, struct fe_exec_ops *storage);

/* The peer port's executor: cmd_exec_ops (L1 alone) whose deletes also
 * stop this proxy's reads in flight (from the pool or the nodes) from
 * filling L1 (an invalidation must not be undone by an older value
 * arriving after it). Fills *storage, returns it. */
const struct fe_exec_ops *cmd_l2_peer_exec(struct fe_exec_ops *storage);
