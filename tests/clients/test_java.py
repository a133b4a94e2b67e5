"""spymemcached (libspymemcached-java) with its ASCII connection factory
(DefaultConnectionFactory) and its binary one (BinaryConnectionFactory),
run by java/SpyCheck.java (compiled into the build directory once per
session); every check the program reports is one test here."""

import pytest

CHECKS = [
    "set_get", "multi_get", "add", "replace", "append_prepend", "cas_success",
    "cas_conflict", "incr_decr", "incr_decr_missing", "incr_default", "delete", "touch",
    "expiry", "binary_value", "serialized_value", "large_value", "too_large",
    "after_too_large", "stats", "version",
]
BINARY_ONLY = ["gat"]   # spymemcached's getAndTouch is binary-only


def checks(mode):
    return CHECKS + (BINARY_ONLY if mode == "binary" else [])


@pytest.fixture(scope="module")
def spy_runs(need, java_classes, run_client):
    java = need.executable("java", "default-jdk-headless")
    runs = {}

    def get(mode):
        if mode not in runs:
            runs[mode] = run_client("spymemcached " + mode,
                                    [java, "-cp", java_classes, "SpyCheck", mode])
        return runs[mode]

    return get


@pytest.mark.parametrize("mode, check",
                         [("ascii", c) for c in checks("ascii")]
                         + [("binary", c) for c in checks("binary")])
def test_spymemcached(spy_runs, mode, check):
    spy_runs(mode).check(check)


@pytest.mark.parametrize("mode", ["ascii", "binary"])
def test_spymemcached_ran_to_the_end(spy_runs, mode):
    run = spy_runs(mode)
    run.complete(checks(mode))
    if mode == "ascii":   # memcached counts text-protocol refusals only
        assert run.stats_delta["store_too_large"] == 2, "the server did not refuse 2 values"
