/*
 * proto_text.h - the memcached text protocol front end: turns parsed
 * command lines into calls of the shared command layer (cmd.h) and writes
 * the replies into the connection's output queue. Worker thread.
 */
#pragma once

#include <stddef.h>

#include "frontend/proto.h"

struct conn;

/* Handles one command line (without its "\r\n" / "\n"). May switch the
 * connection to CONN_NREAD or CONN_SWALLOW. */
enum proto_action proto_text_line(struct conn *c, const char *line, size_t len);

/* Called when the value of a storage command has been read into c->it. */
enum proto_action proto_text_nread_done(struct conn *c);
