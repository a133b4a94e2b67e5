/*
 * batch.h - the end of a worker's loop turn for the local backend: the
 * engine batch of the turn's writes (proxy/turn.c) is written, and with
 * `sync = always` (or `journal_sync = always`) the writes of the turn are
 * acknowledged together after one fdatasync, as a database's group commit
 * or Redis's `appendfsync always` do, instead of one sync per write while
 * every other client of the worker waits.
 *
 * With sync = always the executor's writes run as before (L1 updated, the
 * record in the turn's engine batch); their answers wait here until the
 * end of the turn, when the batch is written and one sync covers them
 * all. A read in the same turn may see a write whose answer is still
 * waiting (it is in L1); the writer hears STORED only once it is on disk.
 * Otherwise answers are not held here: a connection's replies leave after
 * its writes' batch is in the engine (cmd.c's before_reply), and the end
 * of the turn only writes what no reply flushed. Worker threads.
 */
#pragma once

#include "frontend/exec.h"

struct tiers;
struct worker;

/* `inner` (the proxy's executor) with its writes' asynchronous variants
 * answering through the batch. Fills *storage, returns it. */
const struct fe_exec_ops *batch_exec(const struct fe_exec_ops *inner, struct fe_exec_ops *storage);

/* Makes sure the end of w's loop turn writes its engine batch (and, with
 * sync = always, syncs): for every write that went into it, whichever
 * executor ran it (tiers.h). */
void batch_end_of_turn(struct worker *w);
