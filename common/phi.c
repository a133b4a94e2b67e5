/*
 * phi.c - phi-accrual failure detector (see phi.h and docs/CLOCKS.md).
 * Called by the thread that owns the detector (the node's gossip loop).
 *
 * The window is a ring of intervals with exact integer sums, so the mean
 * and variance cost O(1) per heartbeat and never drift: every interval is
 * at most PHI_MAX_INTERVAL_LIMIT_MS (2^22), its square at most 2^44, and a
 * window of at most 2^16 of them sums to at most 2^60.
 */
#include "common/phi.h"

#include <math.h>

#include "common/mem.h"

struct phi_detector {
    struct phi_options opt;
    uint32_t *ring;  /* opt.window intervals (ms) */
    uint32_t head;   /* slot the next interval goes to */
    uint32_t count;  /* intervals held, <= opt.window */
    uint64_t sum;    /* of the intervals held */
    uint64_t sum_sq; /* of their squares */
    uint64_t last_ms;
    bool started; /* a heartbeat was seen since create/reset */
};

/* Coefficients of the logistic approximation of the standard normal CDF,
 * Phi(y) ~= 1 / (1 + exp(-y (1.5976 + 0.070566 y^2))), absolute error below
 * 1.4e-4 (Bowling, Khasawneh et al., 2009). */
#define PHI_LOGISTIC_A 1.5976
#define PHI_LOGISTIC_B 0.070566
#define PHI_LN10 2.302585092994045684

void phi_options_default(struct phi_options *opt)
{
    opt->window = PHI_DEFAULT_WINDOW;
    opt->threshold = PHI_DEFAULT_THRESHOLD;
    opt->suspect_threshold = PHI_DEFAULT_THRESHOLD / 2;
    opt->min_std_ms = PHI_DEFAULT_MIN_STD_MS;
    opt->acceptable_pause_ms = PHI_DEFAULT_ACCEPTABLE_PAUSE_MS;
    opt->first_interval_ms = PHI_DEFAULT_FIRST_INTERVAL_MS;
    opt->max_interval_ms = PHI_DEFAULT_MAX_INTERVAL_MS;
}

static bool phi_options_valid(const struct phi_options *o)
{
    if (o->window < 2 || o->window > PHI_MAX_WINDOW)
        return false;
    if (!(o->threshold > 0) || !isfinite(o->threshold))
        return false;
    if (!(o->suspect_threshold > 0) || o->suspect_threshold > o->threshold)
        return false;
    if (o->min_std_ms < 1 || o->first_interval_ms < 4)
        return false;
    if (o->max_interval_ms > PHI_MAX_INTERVAL_LIMIT_MS ||
        (uint64_t)o->max_interval_ms < (uint64_t)o->first_interval_ms + o->first_interval_ms / 4)
        return false;
    return true;
}

enum st_status phi_create(struct phi_detector **out, const struct phi_options *opt)
{
    struct phi_options def;
    *out = NULL;
    if (opt == NULL) {
        phi_options_default(&def);
        opt = &def;
    }
    if (!phi_options_valid(opt))
        return ST_INVAL;
    struct phi_detector *d = mem_calloc(MEM_OTHER, 1, sizeof(*d));
    if (d == NULL)
        return ST_NOMEM;
    d->opt = *opt;
    d->ring = mem_calloc(MEM_OTHER, opt->window, sizeof(*d->ring));
    if (d->ring == NULL)
        goto err;
    *out = d;
    return ST_OK;
err:
    phi_destroy(&d);
    return ST_NOMEM;
}

void phi_destroy(struct phi_detector **d)
{
    if (d == NULL || *d == NULL)
        return;
    struct phi_detector *p = *d;
    if (p->ring != NULL)
        mem_free(MEM_OTHER, p->ring, (size_t)p->opt.window * sizeof(*p->ring));
    mem_free(MEM_OTHER, p, sizeof(*p));
    *d = NULL;
}

void phi_reset(struct phi_detector *d)
{
    d->head = 0;
    d->count = 0;
    d->sum = 0;
    d->sum_sq = 0;
    d->last_ms = 0;
    d->started = false;
}

static void phi_push(struct phi_detector *d, uint32_t interval)
{
    if (d->count == d->opt.window) {
        uint64_t old = d->ring[d->head];
        d->sum -= old;
        d->sum_sq -= old * old;
    } else {
        d->count++;
    }
    d->ring[d->head] = interval;
    d->sum += interval;
    d->sum_sq += (uint64_t)interval * interval;
    d->head = d->head + 1 == d->opt.window ? 0 : d->head + 1;
}

void phi_heartbeat(struct phi_detector *d, uint64_t now_ms)
{
    if (!d->started) {
        /* Two seeds with mean first_interval_ms and standard deviation a
         * quarter of it: the first measured intervals join a plausible
         * distribution instead of defining it alone (one sample has no
         * deviation; two equal ones would make any delay look fatal). */
        uint32_t q = d->opt.first_interval_ms / 4;
        phi_push(d, d->opt.first_interval_ms - q);
        phi_push(d, d->opt.first_interval_ms + q);
        d->started = true;
        d->last_ms = now_ms;
        return;
    }
    if (now_ms < d->last_ms)
        return;
    uint64_t interval = now_ms - d->last_ms;
    if (interval > d->opt.max_interval_ms)
        interval = d->opt.max_interval_ms;
    phi_push(d, (uint32_t)interval);
    d->last_ms = now_ms;
}

size_t phi_samples(const struct phi_detector *d)
{
    return d->count;
}

bool phi_started(const struct phi_detector *d)
{
    return d->started;
}

double phi_mean_ms(const struct phi_detector *d)
{
    return d->count ? (double)d->sum / d->count : 0.0;
}

double phi_std_ms(const struct phi_detector *d)
{
    if (d->count == 0)
        return 0.0;
    double mean = (double)d->sum / d->count;
    double var = (double)d->sum_sq / d->count - mean * mean;
    return var > 0 ? sqrt(var) : 0.0;
}

double phi_value(const struct phi_detector *d, uint64_t now_ms)
{
    if (!d->started || now_ms <= d->last_ms)
        return 0.0;
    double elapsed = (double)(now_ms - d->last_ms);
    double mean = phi_mean_ms(d) + d->opt.acceptable_pause_ms;
    double std = phi_std_ms(d);
    if (std < d->opt.min_std_ms)
        std = d->opt.min_std_ms;
    double y = (elapsed - mean) / std;
    /* P(next interval > elapsed) = 1 - Phi(y) ~= 1 / (1 + e^z), so
     * phi = log10(1 + e^z). Written as a softplus it never overflows or
     * underflows to infinity: for large z it is z / ln 10. */
    double z = y * (PHI_LOGISTIC_A + PHI_LOGISTIC_B * y * y);
    double softplus = z > 0 ? z + log1p(exp(-z)) : log1p(exp(z));
    return softplus / PHI_LN10;
}

enum phi_state phi_check(const struct phi_detector *d, uint64_t now_ms)
{
    double phi = phi_value(d, now_ms);
    if (phi >= d->opt.threshold)
        return PHI_DOWN;
    if (phi >= d->opt.suspect_threshold)
        return PHI_SUSPECT;
    return PHI_UP;
}

const char *phi_state_name(enum phi_state s)
{
    switch (s) {
    case PHI_UP: return "up";
    case PHI_SUSPECT: return "suspect";
    case PHI_DOWN: return "down";
    }
    return "unknown";
}
