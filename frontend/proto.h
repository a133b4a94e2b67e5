/*
 * proto.h - what a protocol front end (text/meta, binary) tells the
 * connection after handling a command.
 */
#pragma once

enum proto_action {
    PROTO_NEXT,  /* go on with the next command */
    PROTO_CLOSE, /* drop the connection now, without further replies */
};
