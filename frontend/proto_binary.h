/*
 * proto_binary.h - the memcached binary protocol front end: validates
 * request headers before reading or allocating anything, calls the shared
 * command layer (cmd.h) and queues binary responses. Worker thread.
 */
#pragma once

#include <stdbool.h>

#include "frontend/proto.h"

struct conn;

/* True when the next request can be handled: its header, extras and key
 * are buffered (or the header alone already tells it is malformed). */
bool proto_binary_ready(const struct conn *c);

/* Handles the next request. REQUIRES: proto_binary_ready(c). */
enum proto_action proto_binary_command(struct conn *c);

/* Called when the value of a binary storage request is in c->it. */
enum proto_action proto_binary_nread_done(struct conn *c);
