/*
 * policy.h - what strata-proxy does with a key below its L1, per key
 * prefix (docs/TIERS.md): the mode, the consistency levels asked of a
 * cluster backend, how long an L1 copy may be served before it is read
 * again from below, and what a full write-behind journal does.
 *
 * Policies come from config sections ([policy] is the default, [policy
 * "user:"] names a prefix) and from --mode / --policy flags; the longest
 * matching prefix wins. Built once at start-up, read-only afterwards:
 * any thread may match keys.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tier_mode {
    MODE_CACHE_ONLY,    /* L1 only: memcached */
    MODE_READ_THROUGH,  /* misses read the backend; writes change L1 only */
    MODE_WRITE_THROUGH, /* writes acknowledged once the backend has them */
    MODE_WRITE_BEHIND,  /* writes journaled locally, applied to the backend later */
    MODE_WRITE_AROUND,  /* writes go to the backend and drop the L1 copy */
};

enum tier_overflow {
    OVERFLOW_WRITE_THROUGH, /* a write that finds the journal full goes through */
    OVERFLOW_ERROR,         /* ... is refused with SERVER_ERROR */
};

enum l2_on_write {
    L2_ON_WRITE_UPDATE,     /* a write sets the pool's entry to the written record */
    L2_ON_WRITE_INVALIDATE, /* ... deletes it */
};

struct policy {
    char *prefix; /* "" for the default */
    size_t nprefix;
    enum tier_mode mode;
    uint8_t read_cl, write_cl; /* enum wire_cl: the cluster backend's levels */
    unsigned l1_ttl_cap;       /* seconds an L1 copy lives at most; 0: its own TTL */
    unsigned negative_ttl;     /* seconds a backend miss is remembered; 0: not */
    enum tier_overflow overflow;
    bool l2;                      /* keys go through the L2 pool (when there is one) */
    enum l2_on_write l2_on_write; /* what a write does to the pool's entry */
    unsigned l2_ttl_cap;          /* seconds a pool entry lives at most; 0: its own TTL */
    unsigned index;               /* position in `stats policies` */
};

struct policies;

/*
 * Builds the policies from `spec`: lines "PREFIX<TAB>name=value" (an
 * empty PREFIX is the default policy), in the order given; a later line
 * for the same prefix and name wins. default_mode: the mode of policies
 * that name none. NULL spec: only the default. False with a message in
 * err for an unknown name or a bad value.
 */
bool policies_build(const char *spec, enum tier_mode default_mode, struct policies **out, char *err,
                    size_t errlen);
void policies_free(struct policies **ps);

/* The policy of key: the longest prefix that matches, else the default. */
const struct policy *policies_match(const struct policies *ps, const char *key, size_t nkey);
/* True when every policy is cache-only (nothing below L1 is used). */
bool policies_cache_only(const struct policies *ps);
/* True when some policy's mode is m. */
bool policies_any(const struct policies *ps, enum tier_mode m);
size_t policies_count(const struct policies *ps);
const struct policy *policies_at(const struct policies *ps, size_t i);
/* The i-th policy in the order configured (the default first). */
const struct policy *policies_in_order(const struct policies *ps, size_t i);

const char *policy_mode_name(enum tier_mode m);
bool policy_mode_parse(const char *s, enum tier_mode *m);

/* Appends the lines of one --policy flag ("PREFIX=MODE[,name=value...]")
 * or of one config key in a [policy "PREFIX"] section to *spec (a
 * malloc'd string, NULL at first). False when out of memory or malformed
 * (err says why). */
bool policy_spec_add_flag(char **spec, const char *flag, char *err, size_t errlen);
bool policy_spec_add(char **spec, const char *prefix, const char *name, const char *value);
