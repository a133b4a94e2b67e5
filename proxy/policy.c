/*
 * policy.c - per-prefix policies (see policy.h): built from "PREFIX<TAB>
 * name=value" lines, matched longest prefix first. Matching is a scan of
 * the prefixes from the longest down: deployments name a handful.
 */
#include "proxy/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wire.h"

struct policies {
    struct policy *v; /* sorted by prefix length, longest first; the default last */
    size_t n;
    bool cache_only;
};

static const char *const mode_names[] = {
    [MODE_CACHE_ONLY] = "cache-only",       [MODE_READ_THROUGH] = "read-through",
    [MODE_WRITE_THROUGH] = "write-through", [MODE_WRITE_BEHIND] = "write-behind",
    [MODE_WRITE_AROUND] = "write-around",
};

const char *policy_mode_name(enum tier_mode m)
{
    return (size_t)m < sizeof(mode_names) / sizeof(mode_names[0]) ? mode_names[m] : "?";
}

bool policy_mode_parse(const char *s, enum tier_mode *m)
{
    for (size_t i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++) {
        if (strcmp(s, mode_names[i]) == 0) {
            *m = (enum tier_mode)i;
            return true;
        }
    }
    return false;
}

static bool parse_seconds(const char *s, unsigned *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || v > 30u * 24 * 3600)
        return false;
    *out = (unsigned)v;
    return true;
}

/* Applies name=value to p. */
static bool policy_set(struct policy *p, const char *name, const char *value, char *err,
                       size_t errlen)
{
    enum wire_cl cl;
    bool ok = true;
    if (strcmp(name, "mode") == 0) {
        ok = policy_mode_parse(value, &p->mode);
    } else if (strcmp(name, "read_consistency") == 0) {
        ok = wire_cl_parse(value, &cl) && cl != WIRE_CL_ANY;
        p->read_cl = (uint8_t)cl;
    } else if (strcmp(name, "write_consistency") == 0) {
        ok = wire_cl_parse(value, &cl);
        p->write_cl = (uint8_t)cl;
    } else if (strcmp(name, "l1_ttl_cap") == 0) {
        ok = parse_seconds(value, &p->l1_ttl_cap);
    } else if (strcmp(name, "negative_ttl") == 0) {
        ok = parse_seconds(value, &p->negative_ttl);
    } else if (strcmp(name, "l2") == 0) {
        p->l2 = strcmp(value, "on") == 0;
        ok = p->l2 || strcmp(value, "off") == 0;
    } else if (strcmp(name, "l2_on_write") == 0) {
        if (strcmp(value, "update") == 0)
            p->l2_on_write = L2_ON_WRITE_UPDATE;
        else if (strcmp(value, "invalidate") == 0)
            p->l2_on_write = L2_ON_WRITE_INVALIDATE;
        else
            ok = false;
    } else if (strcmp(name, "l2_ttl_cap") == 0) {
        ok = parse_seconds(value, &p->l2_ttl_cap);
    } else if (strcmp(name, "overflow") == 0) {
        if (strcmp(value, "write-through") == 0)
            p->overflow = OVERFLOW_WRITE_THROUGH;
        else if (strcmp(value, "error") == 0)
            p->overflow = OVERFLOW_ERROR;
        else
            ok = false;
    } else {
        snprintf(err, errlen, "policy \"%s\": unknown setting '%s'", p->prefix, name);
        return false;
    }
    if (!ok)
        snprintf(err, errlen, "policy \"%s\": bad value '%s' for %s", p->prefix, value, name);
    return ok;
}

static struct policy *find_or_add(struct policies *ps, const char *prefix, size_t nprefix,
                                  enum tier_mode default_mode)
{
    for (size_t i = 0; i < ps->n; i++)
        if (ps->v[i].nprefix == nprefix && memcmp(ps->v[i].prefix, prefix, nprefix) == 0)
            return &ps->v[i];
    struct policy *v = realloc(ps->v, (ps->n + 1) * sizeof(*v));
    if (v == NULL)
        return NULL;
    ps->v = v;
    struct policy *p = &v[ps->n];
    *p = (struct policy){
        .prefix = strndup(prefix, nprefix),
        .nprefix = nprefix,
        .mode = default_mode,
        .read_cl = WIRE_CL_QUORUM,
        .write_cl = WIRE_CL_QUORUM,
        .overflow = OVERFLOW_WRITE_THROUGH,
        .l2 = true,
        .l2_on_write = L2_ON_WRITE_UPDATE,
    };
    if (p->prefix == NULL)
        return NULL;
    ps->n++;
    return p;
}

static int by_length_desc(const void *a, const void *b)
{
    const struct policy *x = a, *y = b;
    return x->nprefix < y->nprefix ? 1 : x->nprefix > y->nprefix ? -1 : 0;
}

bool policies_build(const char *spec, enum tier_mode default_mode, struct policies **out, char *err,
                    size_t errlen)
{
    *out = NULL;
    struct policies *ps = calloc(1, sizeof(*ps));
    if (ps == NULL || find_or_add(ps, "", 0, default_mode) == NULL)
        goto nomem;
    for (const char *line = spec; line != NULL && *line != '\0';) {
        const char *eol = strchr(line, '\n');
        size_t len = eol != NULL ? (size_t)(eol - line) : strlen(line);
        const char *tab = memchr(line, '\t', len);
        const char *eq = tab != NULL ? memchr(tab, '=', len - (size_t)(tab - line)) : NULL;
        if (eq == NULL) {
            snprintf(err, errlen, "malformed policy line '%.*s'", (int)len, line);
            policies_free(&ps);
            return false;
        }
        char name[64], value[128];
        snprintf(name, sizeof(name), "%.*s", (int)(eq - tab - 1), tab + 1);
        snprintf(value, sizeof(value), "%.*s", (int)(line + len - eq - 1), eq + 1);
        struct policy *p = find_or_add(ps, line, (size_t)(tab - line), default_mode);
        if (p == NULL)
            goto nomem;
        if (!policy_set(p, name, value, err, errlen)) {
            policies_free(&ps);
            return false;
        }
        line = eol != NULL ? eol + 1 : NULL;
    }
    for (size_t i = 0; i < ps->n; i++)
        ps->v[i].index = (unsigned)i; /* the order they were named in */
    qsort(ps->v, ps->n, sizeof(*ps->v), by_length_desc);
    ps->cache_only = true;
    for (size_t i = 0; i < ps->n; i++)
        ps->cache_only &= ps->v[i].mode == MODE_CACHE_ONLY;
    *out = ps;
    return true;
nomem:
    snprintf(err, errlen, "out of memory");
    policies_free(&ps);
    return false;
}

void policies_free(struct policies **psp)
{
    struct policies *ps = *psp;
    if (ps == NULL)
        return;
    *psp = NULL;
    for (size_t i = 0; i < ps->n; i++)
        free(ps->v[i].prefix);
    free(ps->v);
    free(ps);
}

const struct policy *policies_match(const struct policies *ps, const char *key, size_t nkey)
{
    for (size_t i = 0; i + 1 < ps->n; i++) {
        const struct policy *p = &ps->v[i];
        if (p->nprefix <= nkey && memcmp(p->prefix, key, p->nprefix) == 0)
            return p;
    }
    return &ps->v[ps->n - 1]; /* the default: the only empty prefix, sorted last */
}

bool policies_cache_only(const struct policies *ps)
{
    return ps->cache_only;
}

bool policies_any(const struct policies *ps, enum tier_mode m)
{
    for (size_t i = 0; i < ps->n; i++)
        if (ps->v[i].mode == m)
            return true;
    return false;
}

size_t policies_count(const struct policies *ps)
{
    return ps->n;
}

const struct policy *policies_at(const struct policies *ps, size_t i)
{
    return &ps->v[i];
}

const struct policy *policies_in_order(const struct policies *ps, size_t i)
{
    for (size_t k = 0; k < ps->n; k++)
        if (ps->v[k].index == i)
            return &ps->v[k];
    return &ps->v[i];
}

bool policy_spec_add(char **spec, const char *prefix, const char *name, const char *value)
{
    size_t old = *spec != NULL ? strlen(*spec) : 0;
    size_t add = strlen(prefix) + strlen(name) + strlen(value) + 3;
    char *s = realloc(*spec, old + add + 1);
    if (s == NULL)
        return false;
    snprintf(s + old, add + 1, "%s\t%s=%s\n", prefix, name, value);
    *spec = s;
    return true;
}

bool policy_spec_add_flag(char **spec, const char *flag, char *err, size_t errlen)
{
    const char *eq = strchr(flag, '=');
    if (eq == NULL || strchr(flag, '\t') != NULL || strchr(flag, '\n') != NULL) {
        snprintf(err, errlen, "--policy wants PREFIX=MODE[,name=value...], got '%s'", flag);
        return false;
    }
    char prefix[256];
    if ((size_t)(eq - flag) >= sizeof(prefix)) {
        snprintf(err, errlen, "--policy: prefix too long");
        return false;
    }
    snprintf(prefix, sizeof(prefix), "%.*s", (int)(eq - flag), flag);
    char *rest = strdup(eq + 1);
    if (rest == NULL)
        return false;
    bool ok = true;
    bool first = true;
    char *save = NULL;
    for (char *tok = strtok_r(rest, ",", &save); ok && tok != NULL;
         tok = strtok_r(NULL, ",", &save), first = false) {
        char *teq = strchr(tok, '=');
        if (first && teq == NULL) {
            ok = policy_spec_add(spec, prefix, "mode", tok);
        } else if (teq == NULL) {
            snprintf(err, errlen, "--policy: '%s' is not name=value", tok);
            ok = false;
        } else {
            *teq = '\0';
            ok = policy_spec_add(spec, prefix, tok, teq + 1);
        }
    }
    free(rest);
    return ok;
}
