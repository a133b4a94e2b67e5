/*
 * defer.c - a worker's queue of jobs for its next loop turn (defer.h):
 * one event, made active when the queue becomes non-empty. Worker thread.
 */
#include "frontend/defer.h"

#include <event2/event.h>

#include "common/status.h"
#include "frontend/worker.h"

/* Runs the jobs queued before this turn; jobs they queue wait for the
 * next turn, so a job that re-queues itself cannot starve the loop. */
static void on_defer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    struct defer_job *j = w->defer_head;
    w->defer_head = w->defer_tail = NULL;
    while (j != NULL) {
        struct defer_job *next = j->next;
        j->run(j, w, false);
        j = next;
    }
}

enum st_status defer_init(struct worker *w)
{
    w->defer_ev = event_new(w->base, -1, 0, on_defer, w);
    return w->defer_ev != NULL ? ST_OK : ST_NOMEM;
}

void defer_deinit(struct worker *w)
{
    while (w->defer_head != NULL) {
        struct defer_job *j = w->defer_head;
        w->defer_head = j->next;
        j->run(j, w, true);
    }
    w->defer_tail = NULL;
    if (w->defer_ev != NULL)
        event_free(w->defer_ev);
    w->defer_ev = NULL;
}

void defer_push(struct worker *w, struct defer_job *job)
{
    job->next = NULL;
    if (w->defer_tail != NULL) {
        w->defer_tail->next = job;
    } else {
        w->defer_head = job;
        event_active(w->defer_ev, 0, 0);
    }
    w->defer_tail = job;
}
