/*
 * mcwire_text.c - the memcached text protocol as strata-bench speaks it:
 * "get k1 k2 ...", "set k 0 T N", and the reply lines VALUE / END / STORED /
 * NOT_STORED / EXISTS / NOT_FOUND (wire.c handles the stream and the error
 * lines). Pure functions, connection thread.
 */
#include <string.h>

#include "common/mc_text.h"
#include "tools/strata-bench/mcwire_int.h"

size_t mcwire_text_compose_get(char *buf, const struct keys *ks, const uint64_t *ids, unsigned n)
{
    char *p = buf;
    memcpy(p, "get", 3);
    p += 3;
    for (unsigned i = 0; i < n; i++) {
        *p++ = ' ';
        p += keys_format(ks, ids[i], p);
    }
    *p++ = '\r';
    *p++ = '\n';
    return (size_t)(p - buf);
}

size_t mcwire_text_compose_set(char *buf, const struct keys *ks, uint64_t id, uint32_t vlen,
                               uint32_t exptime)
{
    char *p = buf;
    memcpy(p, "set ", 4);
    p += 4;
    p += keys_format(ks, id, p);
    memcpy(p, " 0 ", 3);
    p += 3;
    p += mc_u64_to_str(exptime, p);
    *p++ = ' ';
    p += mc_u64_to_str(vlen, p);
    *p++ = '\r';
    *p++ = '\n';
    return (size_t)(p - buf);
}

static bool line_is(const char *line, size_t n, const char *word)
{
    size_t k = strlen(word);
    return n == k && memcmp(line, word, k) == 0;
}

/* "VALUE <key> <flags> <bytes>[ <cas>]" */
static enum mcwire_line value_line(struct mcwire_parser *p, const char *line, size_t n,
                                   struct mcwire_event *ev)
{
    const char *cur = line + 6, *end = line + n, *key, *flags, *bytes, *cas, *extra;
    size_t nkey, nflags, nbytes, ncas, nextra;
    uint64_t v, vlen;
    if (!mcwire_token(&cur, end, &key, &nkey) || nkey > MCWIRE_KEY_MAX ||
        !mcwire_token(&cur, end, &flags, &nflags) || !mcwire_u64(flags, nflags, &v) ||
        v > UINT32_MAX || !mcwire_token(&cur, end, &bytes, &nbytes) ||
        !mcwire_u64(bytes, nbytes, &vlen) || vlen > INT32_MAX) {
        mcwire_event_bad(p, ev, "malformed VALUE line", line, n);
        return MCWIRE_LINE_EVENT;
    }
    if (mcwire_token(&cur, end, &cas, &ncas) &&
        (!mcwire_u64(cas, ncas, &v) || mcwire_token(&cur, end, &extra, &nextra))) {
        mcwire_event_bad(p, ev, "malformed VALUE line", line, n);
        return MCWIRE_LINE_EVENT;
    }
    memcpy(p->key, key, nkey);
    memset(&p->pending, 0, sizeof(p->pending));
    p->pending.type = MCWIRE_EV_HIT;
    p->pending.key = p->key;
    p->pending.nkey = nkey;
    p->pending.vlen = vlen;
    p->left = vlen;
    return MCWIRE_LINE_VALUE;
}

enum mcwire_line mcwire_text_line(struct mcwire_parser *p, const char *line, size_t n,
                                  struct mcwire_event *ev)
{
    if (n > 6 && memcmp(line, "VALUE ", 6) == 0)
        return value_line(p, line, n, ev);
    if (line_is(line, n, "END"))
        ev->type = MCWIRE_EV_END;
    else if (line_is(line, n, "STORED"))
        ev->type = MCWIRE_EV_STORED;
    else if (line_is(line, n, "NOT_STORED") || line_is(line, n, "EXISTS") ||
             line_is(line, n, "NOT_FOUND"))
        mcwire_event_text(p, ev, MCWIRE_EV_NOT_STORED, line, n);
    else if (!mcwire_error_line(p, line, n, ev))
        mcwire_event_bad(p, ev, "unknown reply line", line, n);
    return MCWIRE_LINE_EVENT;
}
