"""gomemcache (golang-github-bradfitz-gomemcache-dev, text protocol), run
by go/gomemcache_check.go (built offline into the build directory once per
session); every check the program reports is one test here. Debian's
snapshot of gomemcache has no stats, version, append or prepend call."""

import pytest

CHECKS = [
    "set_get", "multi_get", "add", "replace", "cas_success", "cas_conflict", "incr_decr",
    "incr_decr_missing", "delete", "touch", "expiry", "binary_value", "large_value",
    "too_large", "after_too_large",
]


@pytest.fixture(scope="module")
def gomemcache(go_program, run_client):
    return run_client("gomemcache", [go_program])


@pytest.mark.parametrize("check", CHECKS)
def test_gomemcache(gomemcache, check):
    gomemcache.check(check)


def test_gomemcache_ran_to_the_end(gomemcache):
    gomemcache.complete(CHECKS)
    assert gomemcache.stats_delta["store_too_large"] == 2, "the server did not refuse 2 values"
