/*
 * mc_meta.h - the memcached meta protocol codec (mg, ms, md, ma, mn, me):
 * parses one meta command line with memcached 1.6.18's acceptance rules
 * and error lines, and encodes/decodes base64 keys (the "b" flag). Does not
 * execute anything; keeps views into the caller's line. Pure, any thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/mc_text.h"

/* memcached tokenizes at most 24 tokens; longer lines fail the flag-count
 * checks anyway. */
#define MC_META_TOKENS_MAX 24
/* Longest opaque token, "O" included (memcached 1.6.18: 32). */
#define MC_META_OPAQUE_MAX 32
/* Base64 text of the longest key, and its decoded form's bound. */
#define MC_META_B64_KEY_MAX (((MC_KEY_MAX + 2) / 3) * 4)

enum mc_meta_cmd {
    MC_META_GET,    /* mg */
    MC_META_SET,    /* ms */
    MC_META_DELETE, /* md */
    MC_META_ARITH,  /* ma */
    MC_META_NOOP,   /* mn */
    MC_META_DEBUG,  /* me */
};

struct mc_meta_token {
    const char *p; /* first byte is the flag letter */
    size_t n;
};

struct mc_meta_request {
    enum mc_meta_cmd cmd;
    const char *key; /* decoded (into keybuf) when key_binary */
    size_t nkey;
    bool key_binary;
    char keybuf[MC_KEY_MAX];
    int32_t vlen; /* ms: data length without the "\r\n" */

    /* The flag tokens in request order: replies echo flags in this order. */
    unsigned nflags;
    struct mc_meta_token flags[MC_META_TOKENS_MAX];

    /* Flags understood by the parser (memcached's "preparse"). */
    bool quiet, value, no_bump, invalidate;
    bool has_cas, has_ttl, has_vivify, has_recache;
    bool opaque_too_long;                 /* an O token over MC_META_OPAQUE_MAX: each command
                             decides when that fails, as memcached does */
    int32_t ttl, vivify_ttl, recache_ttl; /* client exptimes, as sent */
    uint64_t cas, delta, initial;         /* delta defaults to 1 */
    uint32_t client_flags;
    char mode; /* M token's letter, 0 if absent (validated per command) */

    const char *error; /* MC_PARSE_CLIENT_ERROR: the reply with "\r\n" */
    bool swallow;      /* ms error: discard vlen + 2 bytes of data first */
};

/* True if the line starts a meta command ("m" + one byte, then a space or
 * the end); other "m..." lines are text commands (mostly "ERROR"). */
bool mc_meta_is_meta(const char *line, size_t len);

/*
 * Parses one meta line (without "\r\n"). Returns MC_PARSE_OK with *req
 * filled, MC_PARSE_ERROR (reply "ERROR") or MC_PARSE_CLIENT_ERROR with
 * req->error and req->swallow. Errors are never hidden by q.
 */
enum mc_parse mc_meta_parse(const char *line, size_t len, struct mc_meta_request *req);

/* Strict base64 (padded, length a multiple of 4). Returns the decoded
 * length, or 0 if the text is not valid or does not fit in `cap`. */
size_t mc_base64_decode(const char *in, size_t n, char *out, size_t cap);
/* Writes the padded base64 form of in[0..n); returns its length
 * (4 * ceil(n / 3)); out must hold that many bytes. */
size_t mc_base64_encode(const char *in, size_t n, char *out);
