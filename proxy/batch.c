/*
 * batch.c - the end of a worker's loop turn (see batch.h).
 *
 *   write ─► L1 + the turn's engine batch (or the journal) ─► reply queued
 *         ─► first of the turn: the job below, queued
 *   end of turn ─► tiers_turn_end (the engine batch written)
 *               ─► tiers_sync (one fdatasync per engine, when it must)
 *               ─► the held replies leave (or their connections close)
 */
#include "proxy/batch.h"

#include "frontend/defer.h"
#include "frontend/fe.h"
#include "frontend/worker.h"
#include "proxy/proxy.h"
#include "proxy/tiers.h"

/* A worker's end-of-turn job. */
struct batch {
    struct defer_job job; /* first: the job is the batch */
    bool queued;
};

static struct tiers *tiers_of(struct worker *w)
{
    return ((struct proxy *)w->fe->exec)->tiers;
}

static void batch_run(struct defer_job *job, struct worker *w, bool cancelled)
{
    struct batch *b = (struct batch *)job;
    b->queued = false;
    /* the turn's engine batch first (it releases the keys' locks, also
     * when cancelled); a failed write or sync leaves the engine
     * read-only: these writes may be lost, so the replies that could say
     * they were stored never leave */
    bool written = tiers_turn_end(tiers_of(w), w->id) == ST_OK;
    bool synced = written && !cancelled && tiers_sync(tiers_of(w)) == ST_OK;
    worker_release_replies(w, synced);
}

void batch_end_of_turn(struct worker *w)
{
    struct batch *b = tiers_worker_batch(tiers_of(w), w->id, sizeof(struct batch));
    if (b == NULL) {
        /* out of memory: nothing may wait for the turn */
        bool ok = tiers_turn_flush(tiers_of(w), w->id) && tiers_sync(tiers_of(w)) == ST_OK;
        tiers_turn_end(tiers_of(w), w->id);
        worker_release_replies(w, ok);
        return;
    }
    if (!b->queued) {
        b->queued = true;
        b->job.run = batch_run;
        defer_push(w, &b->job);
    }
}
