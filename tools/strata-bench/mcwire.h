/*
 * mcwire.h - strata-bench's side of the memcached protocols (text, meta,
 * binary), and of the Redis protocol (RESP, GET and SET of one key) to
 * compare with redis-server: composing the requests it sends, parsing the
 * replies as a stream of events, and matching events to the request they
 * answer.
 * Pure functions over caller memory; one parser per connection.
 */
#pragma once

/*
 *   compose:  get of 1..n keys, set of one key (value bytes follow, then
 *             mcwire_set_trailer())
 *   parse:    bytes in any split → HIT / MISS / END / STORED / NOT_STORED /
 *             ERROR / BAD events; values are skipped as they stream, so a
 *             reply never needs more than MCWIRE_HEAD_MAX contiguous bytes
 *   match:    is this event a legal next reply to that request, and is
 *             the request complete?
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tools/strata-bench/keys.h"

enum mcwire_proto {
    MCWIRE_TEXT,
    MCWIRE_META,
    MCWIRE_BINARY,
    MCWIRE_RESP, /* Redis RESP2: GET / SET of one key, no multi-get, no exptime */
};

enum mcwire_op {
    MCWIRE_GET,
    MCWIRE_SET,
};

/* A reply header (text line or binary header with extras and key) is never
 * longer than this; the read buffer must hold at least as much. */
#define MCWIRE_HEAD_MAX 2048
/* Server text kept with ERROR / NOT_STORED / BAD events for reports. */
#define MCWIRE_TEXT_MAX 120
#define MCWIRE_KEY_MAX 250
/* Most keys in one get request (memcached has no limit; we keep requests
 * well under MCWIRE_HEAD_MAX per key). */
#define MCWIRE_WIDTH_MAX 100

/* Binary protocol opcodes and statuses strata-bench uses. */
#define MCWIRE_BIN_REQ 0x80
#define MCWIRE_BIN_RES 0x81
#define MCWIRE_BIN_HEADER 24
#define MCWIRE_BIN_GET 0x00
#define MCWIRE_BIN_SET 0x01
#define MCWIRE_BIN_NOOP 0x0a
#define MCWIRE_BIN_GETK 0x0c
#define MCWIRE_BIN_GETKQ 0x0d
#define MCWIRE_BIN_OK 0x0000
#define MCWIRE_BIN_ENOENT 0x0001
#define MCWIRE_BIN_EEXISTS 0x0002
#define MCWIRE_BIN_NOT_STORED 0x0005

/* Parses "text", "meta", "binary" or "resp"; false if s is none of them. */
bool mcwire_proto_parse(const char *s, enum mcwire_proto *out);
const char *mcwire_proto_name(enum mcwire_proto p);

/* Bytes mcwire_compose_get may write for n keys no longer than key_max. */
size_t mcwire_get_size_max(enum mcwire_proto p, size_t key_max, unsigned n);
/* Bytes mcwire_compose_set may write (header only, without the value). */
size_t mcwire_set_size_max(enum mcwire_proto p, size_t key_max);

/*
 * Writes a get of the n keys ids[0..n) (1 <= n <= MCWIRE_WIDTH_MAX) into buf:
 *   text    "get k1 k2 ...\r\n"
 *   meta    "mg k v\r\n"; for n > 1 "mg k v q\r\n" per key, then "mn\r\n"
 *   binary  GETK; for n > 1 GETKQ per key, then NOOP; every header carries
 *           `opaque`
 *   resp    "*2\r\n$3\r\nGET\r\n$<nkey>\r\nk\r\n" (REQUIRES: n == 1)
 * Returns the length written.
 */
size_t mcwire_compose_get(enum mcwire_proto p, char *buf, const struct keys *ks,
                          const uint64_t *ids, unsigned n, uint32_t opaque);

/*
 * Writes the part of a set of key `id` that precedes its vlen value bytes:
 *   text    "set k 0 <exptime> <vlen>\r\n"
 *   meta    "ms k <vlen>[ T<exptime>]\r\n"
 *   binary  SET header, extras (flags 0, exptime) and key
 *   resp    "*3\r\n$3\r\nSET\r\n$<nkey>\r\nk\r\n$<vlen>\r\n" (exptime
 *           ignored: opts.c refuses a non-zero --exptime with RESP)
 * The value follows, then mcwire_set_trailer(p). Returns the length written.
 */
size_t mcwire_compose_set(enum mcwire_proto p, char *buf, const struct keys *ks, uint64_t id,
                          uint32_t vlen, uint32_t exptime, uint32_t opaque);

/* Bytes that end a set after its value: "\r\n" (text, meta, resp) or "". */
const char *mcwire_set_trailer(enum mcwire_proto p);

enum mcwire_ev {
    MCWIRE_EV_NONE,       /* no complete reply in the bytes given */
    MCWIRE_EV_HIT,        /* an item, value included, has arrived (RESP $<len>) */
    MCWIRE_EV_MISS,       /* meta EN, binary "not found", RESP $-1 */
    MCWIRE_EV_END,        /* end of a get: text END, meta MN, binary NOOP */
    MCWIRE_EV_STORED,     /* text STORED, meta HD, binary SET status 0, RESP +OK */
    MCWIRE_EV_NOT_STORED, /* NOT_STORED / EXISTS / NOT_FOUND, NS / EX / NF, ... */
    MCWIRE_EV_ERROR,      /* ERROR, CLIENT_ERROR, SERVER_ERROR, binary errors,
                           * RESP -<message> (text: the message without '-') */
    MCWIRE_EV_BAD,        /* not a reply of the protocol: the stream is lost */
};

struct mcwire_event {
    enum mcwire_ev type;
    /* HIT/MISS when the reply names its key (text VALUE, binary GETK(Q)),
     * else nkey == 0 (meta without k, RESP). Valid until the next mcwire_parse() call. */
    const char *key;
    size_t nkey;
    uint64_t vlen;   /* HIT: value bytes */
    uint8_t opcode;  /* binary only */
    uint16_t status; /* binary only */
    bool has_opaque; /* binary only */
    uint32_t opaque;
    /* ERROR / NOT_STORED: the server's line or message (truncated to
     * MCWIRE_TEXT_MAX); BAD: what was wrong. Valid until the next call. */
    const char *text;
    size_t ntext;
};

struct mcwire_parser {
    enum mcwire_proto proto;
    int state;                   /* head, data, crlf (line protocols) */
    uint64_t left;               /* value / body bytes still to skip */
    unsigned crlf;               /* bytes of the CRLF after a value matched */
    struct mcwire_event pending; /* emitted once the value has been skipped */
    char key[MCWIRE_KEY_MAX + 1];
    char text[MCWIRE_TEXT_MAX + 64];
};

void mcwire_parser_init(struct mcwire_parser *p, enum mcwire_proto proto);

/*
 * Consumes bytes of buf[0, len) and stops after the first complete reply.
 * Returns the number of bytes consumed and fills *ev; ev->type is
 * MCWIRE_EV_NONE when no reply completed: then every byte before the returned
 * count was consumed and the caller keeps the rest (an incomplete header,
 * never more than MCWIRE_HEAD_MAX bytes) and calls again with more bytes
 * appended. After MCWIRE_EV_BAD the parser is unusable.
 */
size_t mcwire_parse(struct mcwire_parser *p, const char *buf, size_t len, struct mcwire_event *ev);

/* What a request expects, and its progress through its replies. */
struct mcwire_expect {
    enum mcwire_op op;
    unsigned nkeys;      /* GET: keys asked for; SET: 1 */
    const uint64_t *ids; /* the key ids, in request order (borrowed) */
    uint32_t opaque;     /* binary: the opaque the request carried */
    unsigned cursor;     /* ids before this one were answered or skipped */
    unsigned hits, misses, errors;
};

enum mcwire_match {
    MCWIRE_MATCH_MORE,       /* accepted; more replies belong to the request */
    MCWIRE_MATCH_DONE,       /* accepted; the request is complete */
    MCWIRE_MATCH_UNEXPECTED, /* not a legal reply here: the stream is lost */
};

/* Starts an expectation (ids borrowed until the request completes). */
void mcwire_expect_init(struct mcwire_expect *x, enum mcwire_op op, const uint64_t *ids,
                        unsigned nkeys, uint32_t opaque);

/*
 * Applies event ev to the request at the head of the pipeline. Counts
 * hits, misses (explicit, or the keys an END left unanswered) and errors
 * in *x. On MCWIRE_MATCH_UNEXPECTED, *why says what was wrong (static text).
 */
enum mcwire_match mcwire_match(enum mcwire_proto p, const struct keys *ks, struct mcwire_expect *x,
                               const struct mcwire_event *ev, const char **why);

/* Name of an event type, for reports. */
const char *mcwire_ev_name(enum mcwire_ev t);
