/*
 * mc_reply.h - the client side of memcached's meta protocol: parses one
 * reply (VA with its data block, HD, EN, NF, NS, EX, MN, and the lines
 * any command may get: OK, VERSION, ERROR, CLIENT_ERROR, SERVER_ERROR)
 * from the front of a buffer, for strata-proxy's L2 client. Keeps views
 * into the caller's buffer. Pure, any thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest reply line accepted (memcached's are far shorter). */
#define MC_REPLY_LINE_MAX 2048
#define MC_REPLY_FLAGS_MAX 24

enum mc_reply_code {
    MC_REPLY_VA, /* a value follows */
    MC_REPLY_HD, /* done, no value */
    MC_REPLY_EN, /* mg: miss */
    MC_REPLY_NF, /* not found */
    MC_REPLY_NS, /* not stored */
    MC_REPLY_EX, /* exists (cas mismatch) */
    MC_REPLY_MN, /* mn */
    MC_REPLY_OK, /* flush_all, verbosity */
    MC_REPLY_VERSION,
    MC_REPLY_ERROR,        /* unknown command */
    MC_REPLY_CLIENT_ERROR, /* the request was malformed */
    MC_REPLY_SERVER_ERROR, /* the server failed it */
};

struct mc_reply {
    enum mc_reply_code code;
    /* meta codes: the return flags in order ("f5" is {'f', "5"}) */
    unsigned nflags;
    struct {
        char letter;
        const char *p; /* the token after the letter */
        size_t n;
    } flags[MC_REPLY_FLAGS_MAX];
    const char *text; /* VERSION, *ERROR: the rest of the line */
    size_t ntext;
    const char *value; /* VA: the data block (without its "\r\n") */
    size_t nvalue;
    size_t size; /* bytes the reply took, data block included */
};

enum mc_reply_parse {
    MC_REPLY_DONE,    /* *r holds a reply of r->size bytes */
    MC_REPLY_PARTIAL, /* more bytes are needed */
    MC_REPLY_BAD,     /* not a reply we know, or over a limit: the stream is lost */
};

/* Parses the reply at buf[0..len). A VA block over value_max bytes is
 * BAD. */
enum mc_reply_parse mc_reply_parse(const char *buf, size_t len, size_t value_max,
                                   struct mc_reply *r);

/* The token of flag `letter`, or NULL (and *n untouched) if absent. */
const char *mc_reply_flag(const struct mc_reply *r, char letter, size_t *n);
/* The flag's token as an unsigned number; false if absent or not one. */
bool mc_reply_flag_u64(const struct mc_reply *r, char letter, uint64_t *out);
/* True when the flag is present (W, Z, X have no token). */
bool mc_reply_has(const struct mc_reply *r, char letter);
