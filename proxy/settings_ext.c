/*
 * settings_ext.c - memcached 1.6.18's -o (extended) options for
 * strata-proxy: every name memcached accepts, its argument rules, and what
 * each means here (a strata option, nothing to do, or a start-up note that
 * it does not apply). Main thread, while settings are parsed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/settings.h"
#include "proxy/watch.h"

enum ext_arg {
    EXT_NOARG,  /* a flag; a value after '=' is ignored, as memcached does */
    EXT_OPTARG, /* slab_automove: bare means 1 */
    EXT_NEEDARG,
};

/* How a value is checked: memcached refuses these at start-up, so do we. */
enum ext_check {
    CK_ANY,      /* any text */
    CK_INT,      /* an integer within [min, max] */
    CK_POSITIVE, /* a number above 0 */
    CK_RATIO,    /* a number in (0, 1] */
    CK_NUMBER,   /* any number */
    CK_HASH,     /* jenkins, murmur3 or xxh3 */
};

struct ext_def {
    const char *name;
    enum ext_arg arg;
    enum ext_check check;
    long long min, max;
    const char *option; /* strata option the value sets, or NULL */
    const char *note;   /* start-up note when it does not apply, or NULL */
};

#define U32 4294967295LL
#define NO_LRU "strata's LRU is one list per shard, with no segments or background threads"
#define NO_SLABS "strata has no slab pages to move or size (items are allocated one by one)"
#define NO_EXT "strata has no extstore; items stay in memory (-m)"
#define NO_TLS "strata serves no TLS (-Z is refused)"
#define NO_LOGGER "strata has no watch/logger buffers"

/* memcached.c's subopts_tokens, storage.c's ext_* list (Debian builds
 * extstore and TLS in), in memcached -h order where it has one. */
static const struct ext_def exts[] = {
    {"maxconns_fast", EXT_NOARG, CK_ANY, 0, 0, NULL, NULL}, /* strata's only behaviour */
    {"no_maxconns_fast", EXT_NOARG, CK_ANY, 0, 0, NULL,
     "does not apply: over -c strata always answers ERROR Too many open connections and closes "
     "at once (maxconns_fast)"},
    {"hashpower", EXT_NEEDARG, CK_INT, 12, 32, "hashpower", NULL},
    {"no_hashexpand", EXT_NOARG, CK_ANY, 0, 0, NULL,
     "does not apply: strata's hash table always grows, a bucket range at a time"},
    {"slab_reassign", EXT_NOARG, CK_ANY, 0, 0, NULL, "does not apply: " NO_SLABS},
    {"no_slab_reassign", EXT_NOARG, CK_ANY, 0, 0, NULL, "does not apply: " NO_SLABS},
    {"slab_automove", EXT_OPTARG, CK_INT, 0, 2, NULL, "does not apply: " NO_SLABS},
    {"no_slab_automove", EXT_NOARG, CK_ANY, 0, 0, NULL, "does not apply: " NO_SLABS},
    {"slab_automove_ratio", EXT_NEEDARG, CK_RATIO, 0, 0, NULL, "does not apply: " NO_SLABS},
    {"slab_automove_window", EXT_NEEDARG, CK_INT, 3, U32, NULL, "does not apply: " NO_SLABS},
    {"slab_sizes", EXT_NEEDARG, CK_ANY, 0, 0, NULL, "does not apply: " NO_SLABS},
    {"slab_chunk_max", EXT_NEEDARG, CK_INT, 0, 0x7fffffffLL, NULL, "does not apply: " NO_SLABS},
    {"no_chunked_items", EXT_NOARG, CK_ANY, 0, 0, NULL,
     "does not apply: strata stores every item in one allocation"},
    {"tail_repair_time", EXT_NEEDARG, CK_INT, 10, 0x7fffffffLL, NULL,
     "does not apply: strata's items hold references that are always released, so there is no "
     "stuck LRU tail to repair"},
    {"hash_algorithm", EXT_NEEDARG, CK_HASH, 0, 0, NULL,
     "does not apply: strata's hash table always uses xxh3"},
    /* the crawler's four set struct settings fields (apply_runtime) */
    {"lru_crawler", EXT_NOARG, CK_ANY, 0, 0, NULL, NULL},
    {"no_lru_crawler", EXT_NOARG, CK_ANY, 0, 0, NULL, NULL},
    {"lru_crawler_sleep", EXT_NEEDARG, CK_INT, 0, 1000000, NULL, NULL},
    {"lru_crawler_tocrawl", EXT_NEEDARG, CK_INT, 0, U32, NULL, NULL},
    {"lru_maintainer", EXT_NOARG, CK_ANY, 0, 0, NULL, "does not apply: " NO_LRU},
    {"no_lru_maintainer", EXT_NOARG, CK_ANY, 0, 0, NULL, "does not apply: " NO_LRU},
    {"hot_lru_pct", EXT_NEEDARG, CK_INT, 1, 79, NULL, "does not apply: " NO_LRU},
    {"warm_lru_pct", EXT_NEEDARG, CK_INT, 1, 79, NULL, "does not apply: " NO_LRU},
    {"hot_max_factor", EXT_NEEDARG, CK_POSITIVE, 0, 0, NULL, "does not apply: " NO_LRU},
    {"warm_max_factor", EXT_NEEDARG, CK_POSITIVE, 0, 0, NULL, "does not apply: " NO_LRU},
    {"temporary_ttl", EXT_NEEDARG, CK_INT, -0x80000000LL, 0x7fffffffLL, NULL,
     "does not apply: " NO_LRU " (short-TTL items are evicted like others)"},
    /* memcached takes a negative idle_timeout and never kicks: 0 here */
    {"idle_timeout", EXT_NEEDARG, CK_INT, -0x80000000LL, 0x7fffffffLL, "idle_timeout", NULL},
    /* set by apply_runtime() */
    {"watcher_logbuf_size", EXT_NEEDARG, CK_INT, 0, U32, NULL, NULL},
    {"worker_logbuf_size", EXT_NEEDARG, CK_INT, 0, U32, NULL, "does not apply: " NO_LOGGER},
    {"track_sizes", EXT_NOARG, CK_ANY, 0, 0, NULL,
     "does not apply: stats sizes is answered the same way with or without it"},
    {"inline_ascii_resp", EXT_NOARG, CK_ANY, 0, 0, NULL, "has no effect, as in memcached 1.6.18"},
    {"no_inline_ascii_resp", EXT_NOARG, CK_ANY, 0, 0, NULL,
     "has no effect, as in memcached 1.6.18"},
    {"modern", EXT_NOARG, CK_ANY, 0, 0, NULL, "has no effect, as in memcached 1.6.18"},
    {"no_modern", EXT_NOARG, CK_ANY, 0, 0, NULL,
     "does not apply: strata has no 1.4-style slab, LRU or hash settings to return to"},
    {"drop_privileges", EXT_NOARG, CK_ANY, 0, 0, NULL,
     "does not apply: strata installs no system call filter (it drops root with -u)"},
    {"no_drop_privileges", EXT_NOARG, CK_ANY, 0, 0, NULL,
     "does not apply: strata installs no system call filter (it drops root with -u)"},
    {"resp_obj_mem_limit", EXT_NOARG, CK_ANY, 0, 0, NULL,
     "is deprecated and unused, as in memcached 1.6.18 (see read_buf_mem_limit)"},
    {"read_buf_mem_limit", EXT_NEEDARG, CK_INT, 0, 4095, "read_buf_mem_limit", NULL},
    {"sock_cookie_id", EXT_NOARG, CK_ANY, 0, 0, NULL,
     "does not apply: strata sets no socket cookie"},
    {"ssl_chain_cert", EXT_NEEDARG, CK_ANY, 0, 0, NULL, "does not apply: " NO_TLS},
    {"ssl_key", EXT_NEEDARG, CK_ANY, 0, 0, NULL, "does not apply: " NO_TLS},
    {"ssl_verify_mode", EXT_NEEDARG, CK_INT, 0, 3, NULL, "does not apply: " NO_TLS},
    {"ssl_keyformat", EXT_NEEDARG, CK_INT, -0x80000000LL, 0x7fffffffLL, NULL,
     "does not apply: " NO_TLS},
    {"ssl_ciphers", EXT_NEEDARG, CK_ANY, 0, 0, NULL, "does not apply: " NO_TLS},
    {"ssl_ca_cert", EXT_NEEDARG, CK_ANY, 0, 0, NULL, "does not apply: " NO_TLS},
    {"ssl_wbuf_size", EXT_NEEDARG, CK_INT, 0, U32, NULL, "does not apply: " NO_TLS},
    {"ssl_session_cache", EXT_NOARG, CK_ANY, 0, 0, NULL, "does not apply: " NO_TLS},
    {"ssl_kernel_tls", EXT_NOARG, CK_ANY, 0, 0, NULL, "does not apply: " NO_TLS},
    {"ssl_min_version", EXT_NEEDARG, CK_INT, 0, 3, NULL, "does not apply: " NO_TLS},
    {"ext_page_size", EXT_NEEDARG, CK_INT, 0, U32, NULL, "does not apply: " NO_EXT},
    {"ext_wbuf_size", EXT_NEEDARG, CK_INT, 0, U32, NULL, "does not apply: " NO_EXT},
    {"ext_threads", EXT_NEEDARG, CK_INT, 0, U32, NULL, "does not apply: " NO_EXT},
    {"ext_io_depth", EXT_NEEDARG, CK_INT, 0, U32, NULL, "does not apply: " NO_EXT},
    {"ext_path", EXT_NEEDARG, CK_ANY, 0, 0, NULL, "does not apply: " NO_EXT},
    {"ext_item_size", EXT_NEEDARG, CK_INT, 0, U32, NULL, "does not apply: " NO_EXT},
    {"ext_item_age", EXT_NEEDARG, CK_INT, 0, U32, NULL, "does not apply: " NO_EXT},
    {"ext_low_ttl", EXT_NEEDARG, CK_INT, 0, U32, NULL, "does not apply: " NO_EXT},
    {"ext_recache_rate", EXT_NEEDARG, CK_INT, 0, U32, NULL, "does not apply: " NO_EXT},
    {"ext_compact_under", EXT_NEEDARG, CK_INT, 0, U32, NULL, "does not apply: " NO_EXT},
    {"ext_drop_under", EXT_NEEDARG, CK_INT, 0, U32, NULL, "does not apply: " NO_EXT},
    {"ext_max_sleep", EXT_NEEDARG, CK_INT, 0, U32, NULL, "does not apply: " NO_EXT},
    {"ext_max_frag", EXT_NEEDARG, CK_NUMBER, 0, 0, NULL, "does not apply: " NO_EXT},
    {"ext_drop_unread", EXT_NOARG, CK_ANY, 0, 0, NULL, "does not apply: " NO_EXT},
    {"slab_automove_freeratio", EXT_NEEDARG, CK_NUMBER, 0, 0, NULL, "does not apply: " NO_EXT},
};
#define NEXTS (sizeof(exts) / sizeof(exts[0]))

static const struct ext_def *ext_find(const char *name, size_t n)
{
    for (size_t i = 0; i < NEXTS; i++)
        if (strlen(exts[i].name) == n && memcmp(exts[i].name, name, n) == 0)
            return &exts[i];
    return NULL;
}

static bool check_value(const struct ext_def *e, const char *v)
{
    char *end;
    errno = 0;
    switch (e->check) {
    case CK_ANY: return v[0] != '\0';
    case CK_INT: {
        long long x = strtoll(v, &end, 10);
        return errno == 0 && end != v && *end == '\0' && x >= e->min && x <= e->max;
    }
    case CK_POSITIVE:
    case CK_RATIO:
    case CK_NUMBER: {
        double x = strtod(v, &end);
        if (errno != 0 || end == v || *end != '\0')
            return false;
        if (e->check == CK_POSITIVE)
            return x > 0;
        return e->check == CK_NUMBER || (x > 0 && x <= 1);
    }
    case CK_HASH:
        return strcmp(v, "jenkins") == 0 || strcmp(v, "murmur3") == 0 || strcmp(v, "xxh3") == 0;
    }
    return false;
}

/* Options that set struct settings fields strata uses at run time (the
 * LRU crawler's and the watchers' buffer); false if e is not one of them. */
static bool apply_runtime(struct settings *s, const struct ext_def *e, const char *value)
{
    if (strcmp(e->name, "lru_crawler") == 0)
        s->lru_crawler = true;
    else if (strcmp(e->name, "no_lru_crawler") == 0)
        s->lru_crawler = false;
    else if (strcmp(e->name, "lru_crawler_sleep") == 0)
        s->lru_crawler_sleep = (unsigned)strtoul(value, NULL, 10);
    else if (strcmp(e->name, "lru_crawler_tocrawl") == 0)
        s->lru_crawler_tocrawl = (unsigned)strtoul(value, NULL, 10);
    else if (strcmp(e->name, "watcher_logbuf_size") == 0)
        s->watcher_logbuf_size = watch_logbuf_bytes(strtoull(value, NULL, 10));
    else
        return false;
    return true;
}

/* Applies one item ("name" or "name=value", NUL-terminated). */
static bool apply_one(struct settings *s, const char *item, char *err, size_t errlen)
{
    const char *eq = strchr(item, '=');
    size_t nlen = eq != NULL ? (size_t)(eq - item) : strlen(item);
    const char *value = eq != NULL ? eq + 1 : NULL;
    const struct ext_def *e = ext_find(item, nlen);
    if (e == NULL) {
        snprintf(err, errlen,
                 "unknown -o option \"%s\" (memcached 1.6.18's are listed in "
                 "strata-proxy(8))",
                 item);
        return false;
    }
    if (e->arg == EXT_NEEDARG && value == NULL) {
        snprintf(err, errlen, "-o %s needs a value (%s=...)", e->name, e->name);
        return false;
    }
    if (e->arg != EXT_NOARG && value != NULL && !check_value(e, value)) {
        if (e->check == CK_INT)
            snprintf(err, errlen, "invalid -o %s '%s' (%lld..%lld)", e->name, value, e->min,
                     e->max);
        else
            snprintf(err, errlen, "invalid -o %s '%s'", e->name, value);
        return false;
    }
    if (apply_runtime(s, e, value))
        return true;
    if (e->option != NULL)
        return settings_set(s, e->option, value[0] == '-' ? "0" : value, err, errlen);
    if (e->note != NULL) {
        char note[320];
        snprintf(note, sizeof(note), "-o %s: %s", e->name, e->note);
        if (!settings_add_note(s, note)) {
            snprintf(err, errlen, "out of memory");
            return false;
        }
    }
    return true;
}

bool settings_ext_apply(struct settings *s, const char *list, char *err, size_t errlen)
{
    char item[512];
    const char *p = list;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (n == 0 || n >= sizeof(item)) {
            snprintf(err, errlen, "invalid -o list '%s'", list);
            return false;
        }
        memcpy(item, p, n);
        item[n] = '\0';
        if (!apply_one(s, item, err, errlen))
            return false;
        p += n;
        if (*p == ',')
            p++;
    }
    return true;
}
