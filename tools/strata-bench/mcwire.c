/*
 * mcwire.c - strata-bench's protocol layer, shared part (see mcwire.h):
 * dispatch to the text, meta, binary and RESP files, the stream machinery
 * of the line protocols (text, meta and RESP: find a CRLF-terminated line,
 * skip a value and the CRLF after it without buffering it) and the matching
 * of replies to requests.
 * Pure functions; one parser per connection, on the connection's thread.
 */
#include "tools/strata-bench/mcwire.h"

#include <stdio.h>
#include <string.h>

#include "tools/strata-bench/mcwire_int.h"

bool mcwire_proto_parse(const char *s, enum mcwire_proto *out)
{
    if (strcmp(s, "text") == 0)
        *out = MCWIRE_TEXT;
    else if (strcmp(s, "meta") == 0)
        *out = MCWIRE_META;
    else if (strcmp(s, "binary") == 0)
        *out = MCWIRE_BINARY;
    else if (strcmp(s, "resp") == 0)
        *out = MCWIRE_RESP;
    else
        return false;
    return true;
}

const char *mcwire_proto_name(enum mcwire_proto p)
{
    switch (p) {
    case MCWIRE_TEXT: return "text";
    case MCWIRE_META: return "meta";
    case MCWIRE_BINARY: return "binary";
    case MCWIRE_RESP: return "resp";
    }
    return "?";
}

size_t mcwire_get_size_max(enum mcwire_proto p, size_t key_max, unsigned n)
{
    switch (p) {
    case MCWIRE_TEXT: return 4 + (size_t)n * (key_max + 1) + 2;
    case MCWIRE_META: return (size_t)n * (3 + key_max + 6) + 4;
    case MCWIRE_BINARY: return (size_t)n * (MCWIRE_BIN_HEADER + key_max) + MCWIRE_BIN_HEADER;
    case MCWIRE_RESP: /* "*2\r\n$3\r\nGET\r\n$" u64 "\r\n" key "\r\n", one key */
        return 14 + 20 + 2 + key_max + 2;
    }
    return 0;
}

size_t mcwire_set_size_max(enum mcwire_proto p, size_t key_max)
{
    switch (p) {
    case MCWIRE_TEXT: /* "set " key " 0 " u32 " " u32 "\r\n" */
        return 4 + key_max + 3 + 10 + 1 + 10 + 2;
    case MCWIRE_META: /* "ms " key " " u32 " T" u32 "\r\n" */
        return 3 + key_max + 1 + 10 + 2 + 10 + 2;
    case MCWIRE_BINARY: return MCWIRE_BIN_HEADER + 8 + key_max;
    case MCWIRE_RESP: /* "*3\r\n$3\r\nSET\r\n$" u64 "\r\n" key "\r\n$" u32 "\r\n" */
        return 14 + 20 + 2 + key_max + 3 + 10 + 2;
    }
    return 0;
}

size_t mcwire_compose_get(enum mcwire_proto p, char *buf, const struct keys *ks,
                          const uint64_t *ids, unsigned n, uint32_t opaque)
{
    switch (p) {
    case MCWIRE_TEXT: return mcwire_text_compose_get(buf, ks, ids, n);
    case MCWIRE_META: return mcwire_meta_compose_get(buf, ks, ids, n);
    case MCWIRE_BINARY: return mcwire_bin_compose_get(buf, ks, ids, n, opaque);
    case MCWIRE_RESP: return mcwire_resp_compose_get(buf, ks, ids, n);
    }
    return 0;
}

size_t mcwire_compose_set(enum mcwire_proto p, char *buf, const struct keys *ks, uint64_t id,
                          uint32_t vlen, uint32_t exptime, uint32_t opaque)
{
    switch (p) {
    case MCWIRE_TEXT: return mcwire_text_compose_set(buf, ks, id, vlen, exptime);
    case MCWIRE_META: return mcwire_meta_compose_set(buf, ks, id, vlen, exptime);
    case MCWIRE_BINARY: return mcwire_bin_compose_set(buf, ks, id, vlen, exptime, opaque);
    case MCWIRE_RESP: return mcwire_resp_compose_set(buf, ks, id, vlen);
    }
    return 0;
}

const char *mcwire_set_trailer(enum mcwire_proto p)
{
    return p == MCWIRE_BINARY ? "" : "\r\n";
}

void mcwire_parser_init(struct mcwire_parser *p, enum mcwire_proto proto)
{
    memset(p, 0, sizeof(*p));
    p->proto = proto;
    p->state = MCWIRE_ST_HEAD;
}

bool mcwire_token(const char **cur, const char *end, const char **tok, size_t *ntok)
{
    const char *s = *cur;
    while (s < end && *s == ' ')
        s++;
    if (s == end)
        return false;
    const char *e = s;
    while (e < end && *e != ' ')
        e++;
    *tok = s;
    *ntok = (size_t)(e - s);
    *cur = e;
    return true;
}

bool mcwire_u64(const char *tok, size_t n, uint64_t *out)
{
    if (n == 0 || n > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (tok[i] < '0' || tok[i] > '9')
            return false;
        uint64_t d = (uint64_t)(tok[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

void mcwire_event_text(struct mcwire_parser *p, struct mcwire_event *ev, enum mcwire_ev type,
                       const char *text, size_t n)
{
    if (n > MCWIRE_TEXT_MAX)
        n = MCWIRE_TEXT_MAX;
    memcpy(p->text, text, n);
    p->text[n] = '\0';
    ev->type = type;
    ev->text = p->text;
    ev->ntext = n;
}

void mcwire_event_bad(struct mcwire_parser *p, struct mcwire_event *ev, const char *what,
                      const char *bytes, size_t n)
{
    /* "what: " then the first bytes, non-printable ones as \xNN */
    size_t cap = sizeof(p->text);
    int w = snprintf(p->text, cap, "%s: \"", what);
    size_t o = w < 0 ? 0 : (size_t)w;
    for (size_t i = 0; i < n && o + 6 < cap && o < MCWIRE_TEXT_MAX + 40; i++) {
        unsigned char c = (unsigned char)bytes[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            p->text[o++] = (char)c;
        else
            o += (size_t)snprintf(p->text + o, cap - o, "\\x%02x", c);
    }
    if (o + 2 <= cap) {
        p->text[o++] = '"';
        p->text[o] = '\0';
    } else {
        p->text[cap - 1] = '\0';
        o = cap - 1;
    }
    ev->type = MCWIRE_EV_BAD;
    ev->text = p->text;
    ev->ntext = o;
}

bool mcwire_error_line(struct mcwire_parser *p, const char *line, size_t n, struct mcwire_event *ev)
{
    static const char *const prefixes[] = {"ERROR", "CLIENT_ERROR", "SERVER_ERROR"};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        size_t k = strlen(prefixes[i]);
        if (n >= k && memcmp(line, prefixes[i], k) == 0 && (n == k || line[k] == ' ')) {
            mcwire_event_text(p, ev, MCWIRE_EV_ERROR, line, n);
            return true;
        }
    }
    return false;
}

/* The line protocols: text, meta and RESP. */
static size_t parse_lines(struct mcwire_parser *p, const char *buf, size_t len,
                          struct mcwire_event *ev)
{
    size_t used = 0;
    for (;;) {
        if (p->state == MCWIRE_ST_DATA) {
            size_t avail = len - used;
            size_t skip = p->left < avail ? (size_t)p->left : avail;
            used += skip;
            p->left -= skip;
            if (p->left > 0)
                return used;
            p->state = MCWIRE_ST_CRLF;
            p->crlf = 0;
        }
        if (p->state == MCWIRE_ST_CRLF) {
            while (p->crlf < 2 && used < len) {
                if (buf[used] != "\r\n"[p->crlf]) {
                    mcwire_event_bad(p, ev, "value not followed by CRLF", buf + used,
                                     len - used < 16 ? len - used : 16);
                    return used;
                }
                used++;
                p->crlf++;
            }
            if (p->crlf < 2)
                return used;
            p->state = MCWIRE_ST_HEAD;
            *ev = p->pending;
            return used;
        }
        const char *line = buf + used;
        size_t avail = len - used;
        const char *nl = memchr(line, '\n', avail < MCWIRE_HEAD_MAX ? avail : MCWIRE_HEAD_MAX);
        if (nl == NULL) {
            if (avail >= MCWIRE_HEAD_MAX)
                mcwire_event_bad(p, ev, "reply line too long", line, 32);
            return used;
        }
        size_t n = (size_t)(nl - line);
        if (n == 0 || line[n - 1] != '\r') {
            mcwire_event_bad(p, ev, "reply line not ended by CRLF", line, n + 1);
            return used;
        }
        used += n + 1;
        enum mcwire_line r = p->proto == MCWIRE_TEXT   ? mcwire_text_line(p, line, n - 1, ev)
                             : p->proto == MCWIRE_META ? mcwire_meta_line(p, line, n - 1, ev)
                                                       : mcwire_resp_line(p, line, n - 1, ev);
        if (r == MCWIRE_LINE_EVENT)
            return used;
        p->state = MCWIRE_ST_DATA; /* skip the value, then its CRLF */
    }
}

size_t mcwire_parse(struct mcwire_parser *p, const char *buf, size_t len, struct mcwire_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    if (p->proto == MCWIRE_BINARY)
        return mcwire_bin_parse(p, buf, len, ev);
    return parse_lines(p, buf, len, ev);
}

void mcwire_expect_init(struct mcwire_expect *x, enum mcwire_op op, const uint64_t *ids,
                        unsigned nkeys, uint32_t opaque)
{
    x->op = op;
    x->ids = ids;
    x->nkeys = nkeys;
    x->opaque = opaque;
    x->cursor = 0;
    x->hits = x->misses = x->errors = 0;
}

/* Text and quiet multi-key gets end with an explicit terminator; a meta,
 * binary or RESP get of one key is answered by exactly one reply. */
static bool single_reply(enum mcwire_proto p, const struct mcwire_expect *x)
{
    return x->op == MCWIRE_SET || (p != MCWIRE_TEXT && x->nkeys == 1);
}

/* A HIT (or binary GETK MISS) names key: it must be one of the keys not yet
 * answered, in request order (servers answer a multi-get in order). */
static bool take_key(const struct keys *ks, struct mcwire_expect *x, const struct mcwire_event *ev)
{
    if (ev->nkey == 0) {
        if (x->cursor >= x->nkeys)
            return false;
        x->cursor++;
        return true;
    }
    uint64_t id;
    if (!keys_parse(ks, ev->key, ev->nkey, &id))
        return false;
    for (unsigned i = x->cursor; i < x->nkeys; i++) {
        if (x->ids[i] == id) {
            x->cursor = i + 1;
            return true;
        }
    }
    return false;
}

static enum mcwire_match unexpected(const char **why, const char *text)
{
    *why = text;
    return MCWIRE_MATCH_UNEXPECTED;
}

enum mcwire_match mcwire_match(enum mcwire_proto p, const struct keys *ks, struct mcwire_expect *x,
                               const struct mcwire_event *ev, const char **why)
{
    bool single = single_reply(p, x);
    *why = NULL;
    if (ev->type == MCWIRE_EV_BAD)
        return unexpected(why, "malformed reply");
    if (p == MCWIRE_BINARY) {
        if (!ev->has_opaque || ev->opaque != x->opaque)
            return unexpected(why, "binary reply with another request's opaque");
        uint8_t want = x->op == MCWIRE_SET ? MCWIRE_BIN_SET
                       : x->nkeys == 1     ? MCWIRE_BIN_GETK
                                           : MCWIRE_BIN_GETKQ;
        if (ev->type == MCWIRE_EV_END) {
            if (single)
                return unexpected(why, "NOOP reply to a single-key request");
        } else if (ev->opcode != want) {
            return unexpected(why, "binary reply with the wrong opcode");
        }
    }
    switch (ev->type) {
    case MCWIRE_EV_ERROR:
        if (!single && p != MCWIRE_TEXT && x->hits + x->errors >= x->nkeys)
            return unexpected(why, "more replies than keys asked for");
        x->errors++;
        /* a text get ends at its error line; a quiet multi-get continues
         * to its terminator */
        return single || p == MCWIRE_TEXT ? MCWIRE_MATCH_DONE : MCWIRE_MATCH_MORE;
    case MCWIRE_EV_HIT:
        if (x->op != MCWIRE_GET)
            return unexpected(why, "item returned for a set");
        if (!single && x->hits + x->errors >= x->nkeys)
            return unexpected(why, "more replies than keys asked for");
        if (!take_key(ks, x, ev))
            return unexpected(why, "item for a key not asked for, or out of order");
        x->hits++;
        return single ? MCWIRE_MATCH_DONE : MCWIRE_MATCH_MORE;
    case MCWIRE_EV_MISS:
        if (x->op != MCWIRE_GET || !single)
            return unexpected(why, "miss reply where none is sent (set or quiet get)");
        if (ev->nkey != 0 && !take_key(ks, x, ev))
            return unexpected(why, "miss for a key not asked for");
        x->misses++;
        return MCWIRE_MATCH_DONE;
    case MCWIRE_EV_END:
        if (x->op != MCWIRE_GET || single)
            return unexpected(why, "end-of-get marker for a request that has none");
        x->misses = x->nkeys - x->hits - x->errors;
        return MCWIRE_MATCH_DONE;
    case MCWIRE_EV_STORED:
        if (x->op != MCWIRE_SET)
            return unexpected(why, "stored reply to a get");
        return MCWIRE_MATCH_DONE;
    case MCWIRE_EV_NOT_STORED:
        if (x->op != MCWIRE_SET)
            return unexpected(why, "not-stored reply to a get");
        x->errors++;
        return MCWIRE_MATCH_DONE;
    case MCWIRE_EV_NONE:
    case MCWIRE_EV_BAD: break;
    }
    return unexpected(why, "no reply");
}

const char *mcwire_ev_name(enum mcwire_ev t)
{
    static const char *const names[] = {"none",   "hit",        "miss",  "end",
                                        "stored", "not-stored", "error", "bad"};
    return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}
