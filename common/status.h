/*
 * status.h - the one status enum of the project.
 *
 * Failures only: outcomes such as "needs more bytes", "miss" or "not found"
 * are results that each API returns in its own enum, never an st_status.
 */
#pragma once

enum st_status {
    ST_OK = 0,
    ST_AGAIN,   /* transient: retry later (would block, queue full) */
    ST_NOMEM,   /* allocation failed or memory budget exhausted */
    ST_INVAL,   /* caller passed an invalid argument */
    ST_IO,      /* an I/O call failed; errno was captured where it failed */
    ST_CORRUPT, /* bytes from disk or a peer failed validation */
    ST_TIMEOUT,
    ST_UNAVAIL, /* a dependency (peer, backend) cannot be reached */
    ST_CLOSED,  /* the peer or the object was closed */
};

/* Short lowercase name of a status, for logs. Never NULL. */
const char *st_status_name(enum st_status s);
