/*
 * batch.h - group commit across a worker's clients: with `sync = always`
 * (or `journal_sync = always`), the writes a worker runs in one turn of
 * its event loop are acknowledged together after one fdatasync, as a
 * database's group commit or Redis's `appendfsync always` do, instead of
 * one sync per write while every other client of the worker waits.
 *
 * The executor's writes run as before (L1 and the engine are updated at
 * once, the engine without syncing); their answers wait in the worker's
 * batch until the end of the turn, when one sync covers them all. A read
 * in the same turn may see a write whose answer is still waiting (it is
 * in L1); the writer hears STORED only once it is on disk. Worker
 * threads.
 */
#pragma once

#include "frontend/exec.h"

struct tiers;

/* `inner` (the proxy's executor) with its writes' asynchronous variants
 * answering through the batch. Fills *storage, returns it. */
const struct fe_exec_ops *batch_exec(const struct fe_exec_ops *inner, struct fe_exec_ops *storage);
