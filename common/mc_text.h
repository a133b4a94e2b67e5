/*
 * mc_text.h - the memcached text protocol codec, shared by the proxy's
 * front end, the storage node's memcached port and (later) the L2 client.
 *
 * mc_text_parse() turns one command line into a struct mc_request with
 * memcached 1.6's exact acceptance rules (arity, number formats, key limits,
 * which error line each mistake gets). It does not execute anything and
 * keeps views into the caller's line. Reply composition helpers write the
 * fixed-format lines. Pure functions, any thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The memcached release whose behaviour strata matches, reported wherever
 * memcached reports its version (text `version`, binary VERSION, `stats`):
 * clients parse it as a number and gate features on it. */
#define MC_COMPAT_VERSION "1.6.18"

#define MC_KEY_MAX 250
/* A command line without '\n' longer than this closes the connection
 * (memcached: 2048), unless it is a get-family line, see below. */
#define MC_LINE_MAX 2048
/* Multi-key get lines may be longer; memcached has no bound, we do. */
#define MC_GET_LINE_MAX (8u << 20)
/* Longest reply header line: "VALUE " key " " u32 " " u32 " " u64 "\r\n". */
#define MC_VALUE_HEADER_MAX (6 + MC_KEY_MAX + 1 + 10 + 1 + 10 + 1 + 20 + 2)

enum mc_cmd {
    MC_CMD_GET,
    MC_CMD_GETS,
    MC_CMD_GAT,
    MC_CMD_GATS,
    MC_CMD_SET,
    MC_CMD_ADD,
    MC_CMD_REPLACE,
    MC_CMD_APPEND,
    MC_CMD_PREPEND,
    MC_CMD_CAS,
    MC_CMD_INCR,
    MC_CMD_DECR,
    MC_CMD_DELETE,
    MC_CMD_TOUCH,
    MC_CMD_FLUSH_ALL,
    MC_CMD_VERSION,
    MC_CMD_VERBOSITY,
    MC_CMD_QUIT,
    MC_CMD_STATS,
    MC_CMD_SHUTDOWN,
    /* Operator commands: the parser only recognises the verb and hands the
     * rest of the line over in args; their handlers check the arguments. */
    MC_CMD_CACHE_MEMLIMIT,
    MC_CMD_LRU_CRAWLER,
    MC_CMD_SLABS,
    MC_CMD_LRU,
    MC_CMD_WATCH,
    MC_CMD_REPAIR, /* strata-node: start an anti-entropy cycle (strata-admin repair) */
};

enum mc_parse {
    MC_PARSE_OK,
    MC_PARSE_ERROR,        /* reply "ERROR": unknown command or wrong arity */
    MC_PARSE_CLIENT_ERROR, /* reply req->error; suppressed when req->noreply */
    MC_PARSE_CLOSE,        /* close without a reply (an HTTP request line) */
};

/* A parsed command. Pointers are views into the parsed line, valid while
 * that line is. Only the fields of the parsed command are set. */
struct mc_request {
    enum mc_cmd cmd;
    bool noreply;
    const char *key; /* single-key commands */
    size_t nkey;
    const char *keys; /* get family: the keys, space separated, validated */
    size_t keys_len;
    /* get family: a key over MC_KEY_MAX bytes ends `keys` before it, and
     * this is the reply once the keys before it have been fetched
     * (memcached looks them up, counts and touches them, then fails). */
    const char *keys_error;
    uint32_t flags;
    int32_t exptime;  /* as sent; also flush_all's delay */
    int32_t nbytes;   /* storage commands: value length, 0..INT_MAX-2 */
    uint64_t cas;     /* cas */
    uint64_t delta;   /* incr/decr */
    uint32_t level;   /* verbosity */
    const char *args; /* stats and operator commands: everything after the verb */
    size_t args_len;
    const char *error; /* MC_PARSE_CLIENT_ERROR: the reply line without CRLF */
};

/*
 * Parses one command line. `line` excludes the terminating "\n" and the
 * "\r" before it, if any. Returns MC_PARSE_OK with *req filled, or how to
 * answer a bad line.
 */
enum mc_parse mc_text_parse(const char *line, size_t len, struct mc_request *req);

/* True if a line prefix (no newline seen yet) may legally grow past
 * MC_LINE_MAX: it is a "get " or "gets " line, as memcached allows. */
bool mc_text_is_long_line_ok(const char *buf, size_t len);

/*
 * Iterates the keys of a get-family request: start with *cursor = req->keys
 * and end = req->keys + req->keys_len. Returns false when no key is left.
 */
bool mc_text_next_key(const char **cursor, const char *end, const char **key, size_t *nkey);

/* True if key is a valid text-protocol key: 1..250 bytes. Like memcached
 * 1.6 we accept control bytes (protocol.txt discourages them, memcached
 * never refused them, and clients rely on that). */
bool mc_key_valid(const char *key, size_t nkey);
/* Whether the arguments of a command (e.g. `stats`'s) start with word w,
 * followed by nothing or a space. */
bool mc_text_args_are(const char *args, size_t len, const char *w);

/* Writes the decimal form of v; returns its length (at most 20). */
size_t mc_u64_to_str(uint64_t v, char *buf);
/* One `STAT name v` line through a stats emitter (exec.h's `stats`). */
void mc_emit_u64(void (*emit)(void *arg, const char *name, const char *value), void *arg,
                 const char *name, uint64_t v);
/*
 * The number in a value for incr/decr, parsed as memcached 1.6 parses item
 * data (strtoull then its checks): no digits or overflow fail; the byte
 * after the digits must be whitespace or NUL (the end of the value counts
 * as the "\r\n" after it); a '-' with a result negative as a signed number
 * fails. Pure.
 */
bool mc_delta_parse(const char *p, size_t len, uint64_t *out);

/*
 * Writes "VALUE <key> <flags> <nbytes>[ <cas>]\r\n" into buf, which must hold
 * MC_VALUE_HEADER_MAX bytes. Returns the length.
 */
size_t mc_text_value_header(char *buf, const char *key, size_t nkey, uint32_t flags, size_t nbytes,
                            bool with_cas, uint64_t cas);
