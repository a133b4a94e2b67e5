/*
 * mc_reply.c - parse one meta-protocol reply (see mc_reply.h).
 */
#include "common/mc_reply.h"

#include <string.h>

#include "common/numparse.h"

static const struct {
    const char *word;
    size_t n;
    enum mc_reply_code code;
    bool meta; /* flags follow; else the rest of the line is text */
} codes[] = {
    {"VA", 2, MC_REPLY_VA, true},
    {"HD", 2, MC_REPLY_HD, true},
    {"EN", 2, MC_REPLY_EN, true},
    {"NF", 2, MC_REPLY_NF, true},
    {"NS", 2, MC_REPLY_NS, true},
    {"EX", 2, MC_REPLY_EX, true},
    {"MN", 2, MC_REPLY_MN, true},
    {"OK", 2, MC_REPLY_OK, false},
    {"VERSION", 7, MC_REPLY_VERSION, false},
    {"ERROR", 5, MC_REPLY_ERROR, false},
    {"CLIENT_ERROR", 12, MC_REPLY_CLIENT_ERROR, false},
    {"SERVER_ERROR", 12, MC_REPLY_SERVER_ERROR, false},
};

/* Splits "tok tok ..." (no "\r\n") into r's flags; false when a token
 * is empty of its letter or there are too many. */
static bool split_flags(const char *p, const char *end, struct mc_reply *r)
{
    r->nflags = 0;
    while (p < end) {
        if (*p == ' ') {
            p++;
            continue;
        }
        const char *t = p;
        while (p < end && *p != ' ')
            p++;
        if (r->nflags == MC_REPLY_FLAGS_MAX)
            return false;
        r->flags[r->nflags].letter = t[0];
        r->flags[r->nflags].p = t + 1;
        r->flags[r->nflags].n = (size_t)(p - t - 1);
        r->nflags++;
    }
    return true;
}

enum mc_reply_parse mc_reply_parse(const char *buf, size_t len, size_t value_max,
                                   struct mc_reply *r)
{
    size_t scan = len < MC_REPLY_LINE_MAX ? len : MC_REPLY_LINE_MAX;
    const char *nl = memchr(buf, '\n', scan);
    if (nl == NULL)
        return len < MC_REPLY_LINE_MAX ? MC_REPLY_PARTIAL : MC_REPLY_BAD;
    if (nl == buf || nl[-1] != '\r')
        return MC_REPLY_BAD;
    const char *end = nl - 1; /* the line without "\r\n" */
    size_t line = (size_t)(nl + 1 - buf);
    memset(r, 0, sizeof(*r));
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        size_t n = codes[i].n;
        if ((size_t)(end - buf) < n || memcmp(buf, codes[i].word, n) != 0 ||
            (buf + n < end && buf[n] != ' '))
            continue;
        r->code = codes[i].code;
        const char *rest = buf + n < end ? buf + n + 1 : end;
        if (!codes[i].meta) {
            r->text = rest;
            r->ntext = (size_t)(end - rest);
            r->size = line;
            return MC_REPLY_DONE;
        }
        const char *flags = rest;
        if (r->code == MC_REPLY_VA) {
            /* "VA <len> flags...": the length first */
            const char *t = rest;
            while (t < end && *t != ' ')
                t++;
            uint64_t vlen;
            if (!numparse_u64(rest, (size_t)(t - rest), &vlen) || vlen > value_max)
                return MC_REPLY_BAD;
            r->nvalue = (size_t)vlen;
            flags = t;
        }
        if (!split_flags(flags, end, r))
            return MC_REPLY_BAD;
        if (r->code != MC_REPLY_VA) {
            r->size = line;
            return MC_REPLY_DONE;
        }
        if (len - line < r->nvalue + 2)
            return MC_REPLY_PARTIAL;
        const char *data = buf + line;
        if (data[r->nvalue] != '\r' || data[r->nvalue + 1] != '\n')
            return MC_REPLY_BAD;
        r->value = data;
        r->size = line + r->nvalue + 2;
        return MC_REPLY_DONE;
    }
    return MC_REPLY_BAD;
}

const char *mc_reply_flag(const struct mc_reply *r, char letter, size_t *n)
{
    for (unsigned i = 0; i < r->nflags; i++)
        if (r->flags[i].letter == letter) {
            *n = r->flags[i].n;
            return r->flags[i].p;
        }
    return NULL;
}

bool mc_reply_flag_u64(const struct mc_reply *r, char letter, uint64_t *out)
{
    size_t n;
    const char *p = mc_reply_flag(r, letter, &n);
    return p != NULL && numparse_u64(p, n, out);
}

bool mc_reply_has(const struct mc_reply *r, char letter)
{
    size_t n;
    return mc_reply_flag(r, letter, &n) != NULL;
}
