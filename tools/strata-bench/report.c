/*
 * report.c - strata-bench's progress line and summary (see report.h).
 * Latencies are printed in microseconds; percentiles come from the
 * log-bucketed histogram (bucket upper bound, at most 3.1 % high). Main
 * thread.
 */
#include "tools/strata-bench/report.h"

#include "tools/strata-bench/mcwire.h"

#ifndef STRATA_VERSION
#define STRATA_VERSION "dev"
#endif

static const double quantiles[] = {0.5, 0.9, 0.99, 0.999};
static const char *const quantile_names[] = {"p50", "p90", "p99", "p99.9"};
#define NQ (sizeof(quantiles) / sizeof(quantiles[0]))

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

double report_rate(const struct report_phase *p)
{
    return p->seconds > 0 ? (double)p->t.requests / p->seconds : 0.0;
}

double report_hit_ratio(const struct tally *t)
{
    uint64_t n = t->hits + t->misses;
    return n ? (double)t->hits / (double)n : -1.0;
}

double report_cpu_us_per_request(const struct report_phase *p)
{
    return p->t.requests ? (p->cpu_user + p->cpu_sys) * 1e6 / (double)p->t.requests : 0.0;
}

void report_progress(FILE *out, double at, double seconds, const struct tally *iv)
{
    double hr = report_hit_ratio(iv);
    char hit[16];
    if (hr < 0)
        snprintf(hit, sizeof(hit), "-");
    else
        snprintf(hit, sizeof(hit), "%.1f%%", hr * 100.0);
    fprintf(out, "[%5.1fs] %10.0f ops/s  hit %6s  p50 %8.1fus  p99 %8.1fus  fail %llu%s\n", at,
            seconds > 0 ? (double)iv->requests / seconds : 0.0, hit,
            us(hist_quantile(&iv->latency, 0.5)), us(hist_quantile(&iv->latency, 0.99)),
            (unsigned long long)(tally_failures(iv) + iv->conn_failures),
            iv->requests == 0 ? "  STALL: no request completed" : "");
    fflush(out);
}

void report_preload(FILE *out, const struct report_phase *p)
{
    fprintf(out, "preload    %llu sets in %.2f s (%.0f sets/s), %llu failed\n",
            (unsigned long long)p->t.sets, p->seconds, report_rate(p),
            (unsigned long long)tally_failures(&p->t));
}

static void text_config(FILE *out, const struct bench_opts *o, unsigned open)
{
    static const char *const dists[] = {"uniform", "zipf", "sequential"};
    fprintf(out,
            "strata-bench %s  %s  %s  %u threads x %u conns (%u open)  depth %u  multiget %u\n",
            STRATA_VERSION, o->server, mcwire_proto_name(o->proto), o->threads, o->conns, open,
            o->depth, o->width);
    fprintf(out, "config     %llu keys \"%s\" %s", (unsigned long long)o->keys, o->key_prefix,
            dists[o->dist]);
    if (o->dist == KEYS_ZIPF)
        fprintf(out, " (skew %.2f)", o->skew);
    if (o->value_min == o->value_max)
        fprintf(out, "  values %u B", o->value_min);
    else
        fprintf(out, "  values %u-%u B", o->value_min, o->value_max);
    fprintf(out, "  get:set %u:%u\n", o->ratio_get, o->ratio_set);
}

void report_text(FILE *out, const struct report *r)
{
    const struct bench_opts *o = r->o;
    text_config(out, o, r->conns_open);
    if (r->preloaded)
        report_preload(out, &r->preload);
    if (r->measured) {
        const struct report_phase *p = &r->run;
        const struct tally *t = &p->t;
        double s = p->seconds > 0 ? p->seconds : 1;
        fprintf(out,
                "requests   %llu in %.2f s = %.0f ops/s  (gets %.0f/s, sets %.0f/s, get keys "
                "%.0f/s)%s\n",
                (unsigned long long)t->requests, p->seconds, report_rate(p), (double)t->gets / s,
                (double)t->sets / s, (double)t->get_keys / s,
                r->interrupted ? "  [interrupted]" : "");
        double hr = report_hit_ratio(t);
        if (hr >= 0)
            fprintf(out, "hit ratio  %.2f %%  (%llu hits, %llu misses)\n", hr * 100.0,
                    (unsigned long long)t->hits, (unsigned long long)t->misses);
        else
            fprintf(out, "hit ratio  -  (no gets)\n");
        fprintf(out, "latency   ");
        for (size_t i = 0; i < NQ; i++)
            fprintf(out, " %s %.1f", quantile_names[i],
                    us(hist_quantile(&t->latency, quantiles[i])));
        fprintf(out, "  max %.1f  mean %.1f  (us)\n", us(t->latency.max),
                hist_mean(&t->latency) / 1000.0);
        fprintf(out, "client cpu %.2f us/request  (user %.2f s, sys %.2f s)\n",
                report_cpu_us_per_request(p), p->cpu_user, p->cpu_sys);
        fprintf(out, "traffic    out %.1f MB, in %.1f MB\n", (double)t->bytes_out / 1e6,
                (double)t->bytes_in / 1e6);
    }
    struct tally all = r->run.t;
    if (r->preloaded)
        tally_merge(&all, &r->preload.t);
    fprintf(out,
            "failures   %llu error replies, %llu unexpected replies, %llu unanswered, %llu "
            "connection failures, %llu stalled seconds\n",
            (unsigned long long)all.errors, (unsigned long long)all.unexpected,
            (unsigned long long)all.unanswered, (unsigned long long)all.conn_failures,
            (unsigned long long)r->stalled_seconds);
    fprintf(out, "result     %s\n", r->verdict);
}

/* A JSON string: quotes, backslashes and control bytes escaped. */
static void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void json_phase(FILE *out, const struct report_phase *p)
{
    const struct tally *t = &p->t;
    double s = p->seconds > 0 ? p->seconds : 1;
    double hr = report_hit_ratio(t);
    fprintf(out,
            "{\"seconds\": %.6f, \"requests\": %llu, \"ops_per_sec\": %.1f, \"gets\": %llu, "
            "\"sets\": %llu, \"get_keys\": %llu, \"get_keys_per_sec\": %.1f, \"hits\": %llu, "
            "\"misses\": %llu, ",
            p->seconds, (unsigned long long)t->requests, report_rate(p),
            (unsigned long long)t->gets, (unsigned long long)t->sets,
            (unsigned long long)t->get_keys, (double)t->get_keys / s, (unsigned long long)t->hits,
            (unsigned long long)t->misses);
    if (hr >= 0)
        fprintf(out, "\"hit_ratio\": %.6f, ", hr);
    else
        fprintf(out, "\"hit_ratio\": null, ");
    fprintf(out, "\"latency_us\": {");
    for (size_t i = 0; i < NQ; i++)
        fprintf(out, "\"%s\": %.3f, ", quantile_names[i],
                us(hist_quantile(&t->latency, quantiles[i])));
    fprintf(out, "\"max\": %.3f, \"mean\": %.3f}, ", us(t->latency.max),
            hist_mean(&t->latency) / 1000.0);
    fprintf(out,
            "\"errors\": %llu, \"unexpected\": %llu, \"unanswered\": %llu, "
            "\"conn_failures\": %llu, \"bytes_out\": %llu, \"bytes_in\": %llu, "
            "\"cpu_user_sec\": %.6f, \"cpu_sys_sec\": %.6f, \"cpu_us_per_request\": %.4f}",
            (unsigned long long)t->errors, (unsigned long long)t->unexpected,
            (unsigned long long)t->unanswered, (unsigned long long)t->conn_failures,
            (unsigned long long)t->bytes_out, (unsigned long long)t->bytes_in, p->cpu_user,
            p->cpu_sys, report_cpu_us_per_request(p));
}

void report_json(FILE *out, const struct report *r)
{
    const struct bench_opts *o = r->o;
    static const char *const dists[] = {"uniform", "zipf", "sequential"};
    fprintf(out, "{\"version\": \"%s\", \"server\": ", STRATA_VERSION);
    json_str(out, o->server);
    fprintf(out,
            ", \"protocol\": \"%s\", \"threads\": %u, \"conns_per_thread\": %u, "
            "\"conns_open\": %u, \"depth\": %u, \"multiget\": %u, \"keys\": %llu, "
            "\"key_prefix\": ",
            mcwire_proto_name(o->proto), o->threads, o->conns, r->conns_open, o->depth, o->width,
            (unsigned long long)o->keys);
    json_str(out, o->key_prefix);
    fprintf(out,
            ", \"key_dist\": \"%s\", \"zipf_skew\": %.4f, \"value_min\": %u, \"value_max\": %u, "
            "\"ratio_get\": %u, \"ratio_set\": %u, ",
            dists[o->dist], o->skew, o->value_min, o->value_max, o->ratio_get, o->ratio_set);
    fprintf(out, "\"preload\": ");
    if (r->preloaded)
        json_phase(out, &r->preload);
    else
        fprintf(out, "null");
    fprintf(out, ", \"run\": ");
    if (r->measured)
        json_phase(out, &r->run);
    else
        fprintf(out, "null");
    fprintf(out, ", \"stalled_seconds\": %llu, \"interrupted\": %s, \"result\": ",
            (unsigned long long)r->stalled_seconds, r->interrupted ? "true" : "false");
    json_str(out, r->verdict);
    fprintf(out, "}\n");
}
