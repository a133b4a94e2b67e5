/* numparse.c - memcached-compatible token number parsing (see numparse.h). */
#include "common/numparse.h"

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/*
 * Parses [ws][+-]digits followed by end-of-token or a whitespace byte.
 * *mag is the magnitude (saturating flag in *overflow), *neg the sign.
 */
static bool parse_digits(const char *p, size_t len, uint64_t *mag, bool *neg, bool *overflow)
{
    size_t i = 0;
    while (i < len && is_space(p[i]))
        i++;
    *neg = false;
    if (i < len && (p[i] == '+' || p[i] == '-')) {
        *neg = p[i] == '-';
        i++;
    }
    size_t first = i;
    uint64_t v = 0;
    *overflow = false;
    while (i < len && p[i] >= '0' && p[i] <= '9') {
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            *overflow = true;
        v = v * 10 + d;
        i++;
    }
    if (i == first)
        return false;
    if (i < len && !is_space(p[i]))
        return false;
    *mag = v;
    return true;
}

bool numparse_u64(const char *p, size_t len, uint64_t *out)
{
    uint64_t mag;
    bool neg, overflow;
    if (!parse_digits(p, len, &mag, &neg, &overflow) || overflow)
        return false;
    /* strtoull negates in unsigned arithmetic; memcached then refuses a
     * result that is negative as a signed number if a '-' was present. */
    uint64_t v = neg ? (uint64_t)0 - mag : mag;
    if (neg && (int64_t)v < 0)
        return false;
    *out = v;
    return true;
}

bool numparse_u32_trunc(const char *p, size_t len, uint32_t *out)
{
    uint64_t v;
    if (!numparse_u64(p, len, &v))
        return false;
    *out = (uint32_t)v;
    return true;
}

bool numparse_i32_trunc(const char *p, size_t len, int32_t *out)
{
    uint64_t mag;
    bool neg, overflow;
    if (!parse_digits(p, len, &mag, &neg, &overflow) || overflow)
        return false;
    /* strtol's range: [-2^63, 2^63 - 1]. */
    if ((!neg && mag > (uint64_t)INT64_MAX) || (neg && mag > (uint64_t)INT64_MAX + 1))
        return false;
    uint64_t v = neg ? (uint64_t)0 - mag : mag;
    *out = (int32_t)(uint32_t)v;
    return true;
}
