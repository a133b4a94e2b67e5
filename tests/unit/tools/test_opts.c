/*
 * test_opts.c - strata-bench's command line: defaults, every value form
 * (ranges, ratios, enums, host:port), bounds refused, the --requests bound,
 * and --help naming every option.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tools/strata-bench/opts.h"

static enum opts_result parse(struct bench_opts *o, const char *const *args)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)"strata-bench";
    for (; *args != NULL; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    return opts_parse(o, argc, argv);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_defaults(void **state)
{
    (void)state;
    struct bench_opts o;
    assert_int_equal(parse(&o, ((const char *const[]){NULL})), OPTS_RUN);
    assert_string_equal(o.host, "127.0.0.1");
    assert_string_equal(o.port, "11211");
    assert_int_equal(o.proto, MCWIRE_TEXT);
    assert_int_equal(o.threads, 1);
    assert_int_equal(o.conns, 4);
    assert_int_equal(o.depth, 1);
    assert_int_equal(o.keys, 100000);
    assert_string_equal(o.key_prefix, "key:");
    assert_int_equal(o.dist, KEYS_UNIFORM);
    assert_int_equal(o.value_min, 100);
    assert_int_equal(o.value_max, 100);
    assert_int_equal(o.ratio_get, 9);
    assert_int_equal(o.ratio_set, 1);
    assert_int_equal(o.width, 1);
    assert_true(o.duration == 10.0);
    assert_int_equal(o.requests, 0);
    assert_false(o.preload);
    assert_int_equal(o.preload_depth, 64);
    assert_false(o.json);
}

static void test_everything(void **state)
{
    (void)state;
    struct bench_opts o;
    assert_int_equal(
        parse(&o,
              ARGS("-s", "localhost:2000", "--protocol", "binary", "-t", "2", "-c", "100", "-d",
                   "16", "-k", "1000000", "-x", "bench_", "--key-dist", "zipf", "-z", "1.2", "-v",
                   "10-1000", "-r", "1:0", "-m", "10", "-T", "2.5", "--preload", "--preload-depth",
                   "128", "-e", "60", "-o", "1", "-E", "0.01", "-S", "42", "--json", "-q")),
        OPTS_RUN);
    assert_string_equal(o.host, "localhost");
    assert_string_equal(o.port, "2000");
    assert_int_equal(o.proto, MCWIRE_BINARY);
    assert_int_equal(o.threads, 2);
    assert_int_equal(o.conns, 100);
    assert_int_equal(o.depth, 16);
    assert_int_equal(o.keys, 1000000);
    assert_string_equal(o.key_prefix, "bench_");
    assert_int_equal(o.dist, KEYS_ZIPF);
    assert_true(o.skew == 1.2);
    assert_int_equal(o.value_min, 10);
    assert_int_equal(o.value_max, 1000);
    assert_int_equal(o.ratio_get, 1);
    assert_int_equal(o.ratio_set, 0);
    assert_int_equal(o.width, 10);
    assert_true(o.duration == 2.5);
    assert_true(o.preload);
    assert_int_equal(o.preload_depth, 128);
    assert_int_equal(o.exptime, 60);
    assert_true(o.timeout == 1.0);
    assert_true(o.max_error_rate == 0.01);
    assert_int_equal(o.seed, 42);
    assert_true(o.json);
    assert_true(o.quiet);
}

static void test_ipv6_and_seq(void **state)
{
    (void)state;
    struct bench_opts o;
    assert_int_equal(parse(&o, ARGS("--server=[::1]:11211", "--key-dist=sequential", "-P", "meta")),
                     OPTS_RUN);
    assert_string_equal(o.host, "::1");
    assert_int_equal(o.dist, KEYS_SEQUENTIAL);
    assert_int_equal(o.proto, MCWIRE_META);
}

static void test_requests_bound(void **state)
{
    (void)state;
    struct bench_opts o;
    assert_int_equal(parse(&o, ARGS("-n", "1000")), OPTS_RUN);
    assert_int_equal(o.requests, 1000);
    assert_true(o.duration == OPTS_REQUESTS_DURATION_CAP);
    assert_int_equal(parse(&o, ARGS("-n", "1000", "-T", "3")), OPTS_RUN);
    assert_true(o.duration == 3.0);
    assert_int_equal(parse(&o, ARGS("--preload-only")), OPTS_RUN);
    assert_true(o.preload);
}

static void test_refused(void **state)
{
    (void)state;
    struct bench_opts o;
    /* clang-format off */
    const char *const *bad[] = {
        ARGS("-t", "0"),        ARGS("-t", "257"),        ARGS("-c", "x"),
        ARGS("-d", "-1"),       ARGS("-k", "0"),          ARGS("-x", "a b"),
        ARGS("-D", "pareto"),   ARGS("-z", "11"),         ARGS("-v", "10-5"),
        ARGS("-v", "abc"),      ARGS("-v", "1-"),         ARGS("-r", "0:0"),
        ARGS("-r", "9"),        ARGS("-r", "a:b"),        ARGS("-m", "0"),
        ARGS("-m", "101"),      ARGS("-T", "0"),          ARGS("-T", "nan"),
        ARGS("-s", "nohost"),   ARGS("-s", "h:0"),        ARGS("-s", "h:70000"),
        ARGS("-P", "udp"),      ARGS("--bogus"),          ARGS("-t"),
        ARGS("extra"),          ARGS("-E", "2"),          ARGS("-k", "5", "-m", "6"),
        ARGS("-x", "0123456789012345678901234567890123456789012345678901234567890123456789"
                   "0123456789012345678901234567890123456789012345678901234567890123456789"
                   "0123456789012345678901234567890123456789012345678901234567890123456789"),
    };
    /* clang-format on */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(&o, bad[i]) != OPTS_USAGE)
            fail_msg("accepted: %s %s", bad[i][0], bad[i][1] ? bad[i][1] : "");
    }
}

static void test_help_names_every_option(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    opts_help(f);
    fclose(f);
    static const char *const names[] = {
        "--server",       "--protocol",      "--threads",  "--conns",     "--depth",
        "--keys",         "--key-prefix",    "--key-dist", "--zipf-skew", "--value-size",
        "--ratio",        "--multiget",      "--duration", "--requests",  "--preload",
        "--preload-only", "--preload-depth", "--exptime",  "--timeout",   "--max-error-rate",
        "--seed",         "--json",          "--quiet",    "--help",      "--version",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strstr(text, names[i]) == NULL)
            fail_msg("--help does not mention %s", names[i]);
    /* every option line has a description and the numeric ones their bounds */
    assert_non_null(strstr(text, "1..256"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),     cmocka_unit_test(test_everything),
        cmocka_unit_test(test_ipv6_and_seq), cmocka_unit_test(test_requests_bound),
        cmocka_unit_test(test_refused),      cmocka_unit_test(test_help_names_every_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
