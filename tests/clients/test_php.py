"""PHP's memcached extension (php-memcached, php-cli) with compression on,
in binary mode and in text mode, run by php/memcached.php; every check the
script reports is one test here."""

import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

CHECKS = [
    "set_get", "multi_get", "set_multi", "add", "replace", "append_prepend",
    "cas_success", "cas_conflict", "incr_decr", "incr_decr_missing", "delete", "touch",
    "expiry", "binary_value", "serialized_value", "compression", "large_value",
    "too_large", "after_too_large", "stats", "version",
]
BINARY_ONLY = ["incr_initial"]   # INCREMENT with an initial value


def checks(mode):
    return CHECKS + (BINARY_ONLY if mode == "binary" else [])


@pytest.fixture(scope="module")
def php(need):
    return need.php_extension("memcached", "php-memcached")


@pytest.fixture(scope="module")
def php_runs(php, run_client):
    runs = {}

    def get(mode):
        if mode not in runs:
            runs[mode] = run_client("php-memcached " + mode,
                                    [php, os.path.join(HERE, "php", "memcached.php"), mode])
        return runs[mode]

    return get


@pytest.mark.parametrize("mode, check",
                         [("binary", c) for c in checks("binary")]
                         + [("text", c) for c in checks("text")])
def test_php_memcached(php_runs, mode, check):
    php_runs(mode).check(check)


@pytest.mark.parametrize("mode", ["binary", "text"])
def test_php_memcached_ran_to_the_end(php_runs, mode):
    run = php_runs(mode)
    run.complete(checks(mode))
    if mode == "text":   # memcached counts text-protocol refusals only
        assert run.stats_delta["store_too_large"] == 2, "the server did not refuse 2 values"
