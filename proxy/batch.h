/*
 * batch.h - the end of a worker's loop turn for the local backend: the
 * engine batch of the turn's writes (proxy/turn.c) is written, and with
 * `sync = always` (or `journal_sync = always`) one fdatasync makes every
 * write of the turn durable before any reply that could report one
 * leaves, as a database's group commit or Redis's `appendfsync always`
 * (one fsync per event loop, replies written after it) do, instead of one
 * sync per write while every other client of the worker waits.
 *
 * Commands run and queue their replies as usual; a connection's replies
 * leave once its writes' batch is in the engine (cmd.c's before_reply),
 * and, while the worker's writes wait for a sync, are held by the front
 * end until the job below has synced (worker_release_replies). A read in
 * the same turn may see a write whose reply is still held (it is in L1);
 * the writer hears STORED only once it is on disk. Worker threads.
 */
#pragma once

struct worker;

/* Makes sure the end of w's loop turn writes its engine batch, syncs what
 * must be synced and lets the held replies go: for every write that went
 * into the batch or the journal (tiers.h). */
void batch_end_of_turn(struct worker *w);
