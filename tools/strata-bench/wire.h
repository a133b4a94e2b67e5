/*
 * wire.h - strata-bench's side of the memcached protocols (text, meta,
 * binary): composing the requests it sends, parsing the replies as a
 * stream of events, and matching events to the request they answer.
 * Pure functions over caller memory; one parser per connection.
 */
#pragma once

/*
 *   compose:  get of 1..n keys, set of one key (value bytes follow, then
 *             wire_set_trailer())
 *   parse:    bytes in any split → HIT / MISS / END / STORED / NOT_STORED /
 *             ERROR / BAD events; values are skipped as they stream, so a
 *             reply never needs more than WIRE_HEAD_MAX contiguous bytes
 *   match:    is this event a legal next reply to that request, and is
 *             the request complete?
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tools/strata-bench/keys.h"

enum wire_proto {
    WIRE_TEXT,
    WIRE_META,
    WIRE_BINARY,
};

enum wire_op {
    WIRE_GET,
    WIRE_SET,
};

/* A reply header (text line or binary header with extras and key) is never
 * longer than this; the read buffer must hold at least as much. */
#define WIRE_HEAD_MAX 2048
/* Server text kept with ERROR / NOT_STORED / BAD events for reports. */
#define WIRE_TEXT_MAX 120
#define WIRE_KEY_MAX 250
/* Most keys in one get request (memcached has no limit; we keep requests
 * well under WIRE_HEAD_MAX per key). */
#define WIRE_WIDTH_MAX 100

/* Binary protocol opcodes and statuses strata-bench uses. */
#define WIRE_BIN_REQ 0x80
#define WIRE_BIN_RES 0x81
#define WIRE_BIN_HEADER 24
#define WIRE_BIN_GET 0x00
#define WIRE_BIN_SET 0x01
#define WIRE_BIN_NOOP 0x0a
#define WIRE_BIN_GETK 0x0c
#define WIRE_BIN_GETKQ 0x0d
#define WIRE_BIN_OK 0x0000
#define WIRE_BIN_ENOENT 0x0001
#define WIRE_BIN_EEXISTS 0x0002
#define WIRE_BIN_NOT_STORED 0x0005

/* Parses "text", "meta" or "binary"; false if s is none of them. */
bool wire_proto_parse(const char *s, enum wire_proto *out);
const char *wire_proto_name(enum wire_proto p);

/* Bytes wire_compose_get may write for n keys no longer than key_max. */
size_t wire_get_size_max(enum wire_proto p, size_t key_max, unsigned n);
/* Bytes wire_compose_set may write (header only, without the value). */
size_t wire_set_size_max(enum wire_proto p, size_t key_max);

/*
 * Writes a get of the n keys ids[0..n) (1 <= n <= WIRE_WIDTH_MAX) into buf:
 *   text    "get k1 k2 ...\r\n"
 *   meta    "mg k v\r\n"; for n > 1 "mg k v q\r\n" per key, then "mn\r\n"
 *   binary  GETK; for n > 1 GETKQ per key, then NOOP; every header carries
 *           `opaque`
 * Returns the length written.
 */
size_t wire_compose_get(enum wire_proto p, char *buf, const struct keys *ks, const uint64_t *ids,
                        unsigned n, uint32_t opaque);

/*
 * Writes the part of a set of key `id` that precedes its vlen value bytes:
 *   text    "set k 0 <exptime> <vlen>\r\n"
 *   meta    "ms k <vlen>[ T<exptime>]\r\n"
 *   binary  SET header, extras (flags 0, exptime) and key
 * The value follows, then wire_set_trailer(p). Returns the length written.
 */
size_t wire_compose_set(enum wire_proto p, char *buf, const struct keys *ks, uint64_t id,
                        uint32_t vlen, uint32_t exptime, uint32_t opaque);

/* Bytes that end a set after its value: "\r\n" (text, meta) or "". */
const char *wire_set_trailer(enum wire_proto p);

enum wire_ev {
    WIRE_EV_NONE,       /* no complete reply in the bytes given */
    WIRE_EV_HIT,        /* an item, value included, has arrived */
    WIRE_EV_MISS,       /* meta EN, binary "not found" */
    WIRE_EV_END,        /* end of a get: text END, meta MN, binary NOOP */
    WIRE_EV_STORED,     /* text STORED, meta HD, binary SET status 0 */
    WIRE_EV_NOT_STORED, /* NOT_STORED / EXISTS / NOT_FOUND, NS / EX / NF, ... */
    WIRE_EV_ERROR,      /* ERROR, CLIENT_ERROR, SERVER_ERROR, binary errors */
    WIRE_EV_BAD,        /* not a reply of the protocol: the stream is lost */
};

struct wire_event {
    enum wire_ev type;
    /* HIT/MISS when the reply names its key (text VALUE, binary GETK(Q)),
     * else nkey == 0. Valid until the next wire_parse() call. */
    const char *key;
    size_t nkey;
    uint64_t vlen;   /* HIT: value bytes */
    uint8_t opcode;  /* binary only */
    uint16_t status; /* binary only */
    bool has_opaque; /* binary only */
    uint32_t opaque;
    /* ERROR / NOT_STORED: the server's line or message (truncated to
     * WIRE_TEXT_MAX); BAD: what was wrong. Valid until the next call. */
    const char *text;
    size_t ntext;
};

struct wire_parser {
    enum wire_proto proto;
    int state;                 /* head, data, crlf (line protocols) */
    uint64_t left;             /* value / body bytes still to skip */
    unsigned crlf;             /* bytes of the CRLF after a value matched */
    struct wire_event pending; /* emitted once the value has been skipped */
    char key[WIRE_KEY_MAX + 1];
    char text[WIRE_TEXT_MAX + 64];
};

void wire_parser_init(struct wire_parser *p, enum wire_proto proto);

/*
 * Consumes bytes of buf[0, len) and stops after the first complete reply.
 * Returns the number of bytes consumed and fills *ev; ev->type is
 * WIRE_EV_NONE when no reply completed: then every byte before the returned
 * count was consumed and the caller keeps the rest (an incomplete header,
 * never more than WIRE_HEAD_MAX bytes) and calls again with more bytes
 * appended. After WIRE_EV_BAD the parser is unusable.
 */
size_t wire_parse(struct wire_parser *p, const char *buf, size_t len, struct wire_event *ev);

/* What a request expects, and its progress through its replies. */
struct wire_expect {
    enum wire_op op;
    unsigned nkeys;      /* GET: keys asked for; SET: 1 */
    const uint64_t *ids; /* the key ids, in request order (borrowed) */
    uint32_t opaque;     /* binary: the opaque the request carried */
    unsigned cursor;     /* ids before this one were answered or skipped */
    unsigned hits, misses, errors;
};

enum wire_match {
    WIRE_MATCH_MORE,       /* accepted; more replies belong to the request */
    WIRE_MATCH_DONE,       /* accepted; the request is complete */
    WIRE_MATCH_UNEXPECTED, /* not a legal reply here: the stream is lost */
};

/* Starts an expectation (ids borrowed until the request completes). */
void wire_expect_init(struct wire_expect *x, enum wire_op op, const uint64_t *ids, unsigned nkeys,
                      uint32_t opaque);

/*
 * Applies event ev to the request at the head of the pipeline. Counts
 * hits, misses (explicit, or the keys an END left unanswered) and errors
 * in *x. On WIRE_MATCH_UNEXPECTED, *why says what was wrong (static text).
 */
enum wire_match wire_match(enum wire_proto p, const struct keys *ks, struct wire_expect *x,
                           const struct wire_event *ev, const char **why);

/* Name of an event type, for reports. */
const char *wire_ev_name(enum wire_ev t);
