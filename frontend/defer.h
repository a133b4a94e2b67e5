/*
 * defer.h - work a worker runs on its next event-loop turn, after the
 * handler that queued it has returned. Commands whose executor answers at
 * once use it to complete through the asynchronous reply path
 * (call.h's deferred-lookup executor, strata-proxy --test-async-reads);
 * executors that wait on the network complete from their own events
 * instead. Worker thread.
 */
#pragma once

#include <stdbool.h>

#include "common/status.h"

struct worker;

struct defer_job {
    struct defer_job *next;
    /* Runs the job and frees it; `cancelled` when the worker is shutting
     * down and the job must only release what it holds. */
    void (*run)(struct defer_job *job, struct worker *w, bool cancelled);
};

/* Sets up w's queue (in worker_init). ST_NOMEM. */
enum st_status defer_init(struct worker *w);
/* Runs what is left, cancelled (in worker_deinit, connections closed). */
void defer_deinit(struct worker *w);
/* Queues job to run on w's next loop turn, in queue order. */
void defer_push(struct worker *w, struct defer_job *job);
