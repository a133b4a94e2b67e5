/*
 * keys.c - key formatting and key distributions (see keys.h). Zipf draws use
 * rejection-inversion, which needs no harmonic-number table and costs a few
 * log/exp per draw. Any thread; the caller owns the random state.
 */
#include "tools/strata-bench/keys.h"

#include <math.h>
#include <string.h>

#include "common/mc_text.h"

/* log1p(x) / x, continuous at 0. */
static double helper1(double x)
{
    if (fabs(x) > 1e-8)
        return log1p(x) / x;
    return 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
}

/* expm1(x) / x, continuous at 0. */
static double helper2(double x)
{
    if (fabs(x) > 1e-8)
        return expm1(x) / x;
    return 1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x));
}

/* H(x) = (x^(1-s) - 1) / (1 - s), log(x) when s = 1: the integral of h. */
static double h_integral(double s, double x)
{
    double lx = log(x);
    return helper2((1.0 - s) * lx) * lx;
}

/* h(x) = x^-s */
static double h(double s, double x)
{
    return exp(-s * log(x));
}

static double h_integral_inverse(double s, double x)
{
    double t = x * (1.0 - s);
    if (t < -1.0)
        t = -1.0; /* rounding; the true value is > -1 */
    return exp(helper1(t) * x);
}

enum st_status keys_init(struct keys *k, const char *prefix, uint64_t count, enum keys_dist dist,
                         double skew)
{
    memset(k, 0, sizeof(*k));
    size_t n = strlen(prefix);
    if (n > KEYS_PREFIX_MAX || count == 0 || !(skew >= 0.0 && skew <= 10.0))
        return ST_INVAL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)prefix[i];
        if (c <= ' ' || c == 0x7f)
            return ST_INVAL;
    }
    memcpy(k->prefix, prefix, n);
    k->nprefix = n;
    k->count = count;
    k->dist = dist;
    k->skew = skew;
    if (dist == KEYS_ZIPF && skew > 0.0) {
        k->h_x1 = h_integral(skew, 1.5) - 1.0;
        k->h_n = h_integral(skew, (double)count + 0.5);
        k->squeeze = 2.0 - h_integral_inverse(skew, h_integral(skew, 2.5) - h(skew, 2.0));
    }
    return ST_OK;
}

size_t keys_format(const struct keys *k, uint64_t id, char *buf)
{
    memcpy(buf, k->prefix, k->nprefix);
    return k->nprefix + mc_u64_to_str(id, buf + k->nprefix);
}

size_t keys_max_len(const struct keys *k)
{
    char digits[20];
    return k->nprefix + mc_u64_to_str(k->count - 1, digits);
}

int keys_parse(const struct keys *k, const char *key, size_t nkey, uint64_t *id)
{
    if (nkey <= k->nprefix || nkey > k->nprefix + 20 || memcmp(key, k->prefix, k->nprefix) != 0)
        return 0;
    uint64_t v = 0;
    for (size_t i = k->nprefix; i < nkey; i++) {
        if (key[i] < '0' || key[i] > '9' || v > (UINT64_MAX - 9) / 10)
            return 0;
        v = v * 10 + (uint64_t)(key[i] - '0');
    }
    if (key[k->nprefix] == '0' && nkey > k->nprefix + 1)
        return 0; /* keys_format never writes leading zeros */
    *id = v;
    return 1;
}

uint64_t keys_zipf_rank(const struct keys *k, struct rng *r)
{
    double s = k->skew;
    double n = (double)k->count;
    for (;;) {
        double u = k->h_n + rng_unit(r) * (k->h_x1 - k->h_n);
        double x = h_integral_inverse(s, u);
        double kk = floor(x + 0.5);
        if (kk < 1.0)
            kk = 1.0;
        else if (kk > n)
            kk = n;
        if (kk - x <= k->squeeze || u >= h_integral(s, kk + 0.5) - h(s, kk))
            return (uint64_t)kk;
    }
}

uint64_t keys_pick(const struct keys *k, struct rng *r, uint64_t *cursor)
{
    switch (k->dist) {
    case KEYS_SEQUENTIAL: {
        uint64_t id = *cursor;
        *cursor = id + 1 >= k->count ? 0 : id + 1;
        return id;
    }
    case KEYS_ZIPF:
        if (k->skew > 0.0)
            return keys_zipf_rank(k, r) - 1;
        return rng_below(r, k->count);
    case KEYS_UNIFORM:
    default: return rng_below(r, k->count);
    }
}
