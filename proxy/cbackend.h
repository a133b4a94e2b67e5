/*
 * cbackend.h - `backend = cluster`: strata-proxy as a token-aware client
 * of strata-nodes over the cluster protocol. A key's request goes to a
 * replica of its key, which coordinates: reads (COORD_READ, at the
 * policy's read level) to the first up replica in the key's preference
 * order, the next one when it is down, refuses or fails; writes (RMW,
 * with the policy's levels) to the key's primary, the next replica when
 * one is down or says it is not the primary. Per worker, one multiplexed
 * connection per node (common/peerlink.c) with a bound on requests in
 * flight (over it: FE_BUSY at once) and a timeout per request. A worker
 * never blocks: answers come through callbacks on its loop.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "common/wire.h"
#include "frontend/exec.h"

struct event_base;
struct policy;
struct settings;
struct worker;
struct cbackend;

/* Starts the ring poller; waits up to the request timeout for a first
 * ring (none yet: requests answer SERVER_ERROR until one arrives). Prints
 * why on failure and returns an exit code, else 0. */
int cbackend_open(const struct settings *s, unsigned workers, struct cbackend **out);
/* After the workers have stopped. Accepts NULL. */
void cbackend_close(struct cbackend **b);

/* A read's answer: FE_OK with rec (NULL: no live record; valid during the
 * call), or the failure (FE_UNAVAILABLE, FE_TIMEOUT, FE_FAILED, FE_BUSY). */
typedef void (*cbackend_read_done)(void *arg, enum fe_result r, const struct wire_record *rec);
/* An RMW's answer: FE_OK with reply (its record, when the RMW asked for
 * it with WIRE_RMW_RETURN, valid during the call), or the failure. */
typedef void (*cbackend_rmw_done)(void *arg, enum fe_result r, const struct wire_rmw_reply *reply);

/* Both call done exactly once, later or at once (when nothing can be
 * sent), on the worker's thread. The key and q's buffers are copied. */
void cbackend_read(struct cbackend *b, struct worker *w, const struct policy *pol, const char *key,
                   size_t nkey, cbackend_read_done done, void *arg);
void cbackend_rmw(struct cbackend *b, struct worker *w, const struct policy *pol,
                  const struct wire_rmw *q, cbackend_rmw_done done, void *arg);

/* A replayed write's answer: FE_OK once the record is on its replicas at
 * the level, or the failure. */
typedef void (*cbackend_write_done)(void *arg, enum fe_result r);
/*
 * The write-behind drainer's: rec (its version chosen here, earlier) as a
 * COORD_WRITE at write_cl to the first up replica of its key, the next
 * one after any failure (a replay is idempotent). done exactly once, on
 * the thread running base (the drainer's own loop, one thread only).
 */
void cbackend_write(struct cbackend *b, struct event_base *base, uint8_t write_cl,
                    const struct wire_record *rec, cbackend_write_done done, void *arg);

/* Closes every worker's links (requests in flight fail first). After the
 * workers' loops have stopped, before their event bases are freed. */
void cbackend_close_links(struct cbackend *b);
/* The same for cbackend_write's links: on the drainer's thread, before its
 * base is freed. Accepts NULL. */
void cbackend_close_writer(struct cbackend *b);

/* `stats backend` for the cluster. */
void cbackend_stats(struct cbackend *b,
                    void (*emit)(void *arg, const char *name, const char *value), void *arg);
