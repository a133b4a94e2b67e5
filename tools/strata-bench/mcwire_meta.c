/*
 * mcwire_meta.c - the memcached meta protocol as strata-bench speaks it:
 * "mg k v" (with "q" and a closing "mn" for multi-key gets), "ms k N T",
 * and the reply lines VA / EN / HD / NS / EX / NF / MN (mcwire.c handles the
 * stream and the error lines). Pure functions, connection thread.
 */
#include <string.h>

#include "common/mc_text.h"
#include "tools/strata-bench/mcwire_int.h"

size_t mcwire_meta_compose_get(char *buf, const struct keys *ks, const uint64_t *ids, unsigned n)
{
    char *p = buf;
    for (unsigned i = 0; i < n; i++) {
        memcpy(p, "mg ", 3);
        p += 3;
        p += keys_format(ks, ids[i], p);
        if (n == 1) {
            memcpy(p, " v\r\n", 4);
            p += 4;
        } else {
            memcpy(p, " v q\r\n", 6);
            p += 6;
        }
    }
    if (n > 1) {
        memcpy(p, "mn\r\n", 4);
        p += 4;
    }
    return (size_t)(p - buf);
}

size_t mcwire_meta_compose_set(char *buf, const struct keys *ks, uint64_t id, uint32_t vlen,
                               uint32_t exptime)
{
    char *p = buf;
    memcpy(p, "ms ", 3);
    p += 3;
    p += keys_format(ks, id, p);
    *p++ = ' ';
    p += mc_u64_to_str(vlen, p);
    if (exptime != 0) {
        memcpy(p, " T", 2);
        p += 2;
        p += mc_u64_to_str(exptime, p);
    }
    *p++ = '\r';
    *p++ = '\n';
    return (size_t)(p - buf);
}

/* A two-letter code alone or followed by return flags. */
static bool code_is(const char *line, size_t n, const char *code)
{
    return n >= 2 && line[0] == code[0] && line[1] == code[1] && (n == 2 || line[2] == ' ');
}

/* Return flags after the code: remembers a key (k) and an opaque (O). */
static void scan_flags(struct mcwire_parser *p, const char *cur, const char *end,
                       struct mcwire_event *out)
{
    const char *tok;
    size_t ntok;
    uint64_t v;
    while (mcwire_token(&cur, end, &tok, &ntok)) {
        if (tok[0] == 'k' && ntok > 1 && ntok - 1 <= MCWIRE_KEY_MAX) {
            memcpy(p->key, tok + 1, ntok - 1);
            out->key = p->key;
            out->nkey = ntok - 1;
        } else if (tok[0] == 'O' && mcwire_u64(tok + 1, ntok - 1, &v) && v <= UINT32_MAX) {
            out->has_opaque = true;
            out->opaque = (uint32_t)v;
        }
    }
}

enum mcwire_line mcwire_meta_line(struct mcwire_parser *p, const char *line, size_t n,
                                  struct mcwire_event *ev)
{
    const char *end = line + n;
    if (code_is(line, n, "VA")) {
        const char *cur = line + 2, *size;
        size_t nsize;
        uint64_t vlen;
        if (!mcwire_token(&cur, end, &size, &nsize) || !mcwire_u64(size, nsize, &vlen) ||
            vlen > INT32_MAX) {
            mcwire_event_bad(p, ev, "malformed VA line", line, n);
            return MCWIRE_LINE_EVENT;
        }
        memset(&p->pending, 0, sizeof(p->pending));
        p->pending.type = MCWIRE_EV_HIT;
        p->pending.vlen = vlen;
        scan_flags(p, cur, end, &p->pending);
        p->left = vlen;
        return MCWIRE_LINE_VALUE;
    }
    if (code_is(line, n, "EN"))
        ev->type = MCWIRE_EV_MISS;
    else if (code_is(line, n, "HD"))
        ev->type = MCWIRE_EV_STORED;
    else if (code_is(line, n, "MN"))
        ev->type = MCWIRE_EV_END;
    else if (code_is(line, n, "NS") || code_is(line, n, "EX") || code_is(line, n, "NF"))
        mcwire_event_text(p, ev, MCWIRE_EV_NOT_STORED, line, n);
    else if (!mcwire_error_line(p, line, n, ev))
        mcwire_event_bad(p, ev, "unknown reply line", line, n);
    if (ev->type == MCWIRE_EV_MISS || ev->type == MCWIRE_EV_STORED)
        scan_flags(p, line + 2, end, ev);
    return MCWIRE_LINE_EVENT;
}
