"""Perl clients: Cache::Memcached::Fast (libcache-memcached-fast-perl) and
Cache::Memcached (libcache-memcached-perl), each run once by perl/*.pl;
every check the script reports is one test here."""

import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

FAST_CHECKS = [
    "set_get", "multi_get", "add", "replace", "append_prepend", "cas_success",
    "cas_conflict", "incr_decr", "incr_decr_missing", "delete", "touch", "gat",
    "expiry", "binary_value", "large_value", "too_large", "after_too_large", "nowait",
    "version",
]

MEMCACHED_CHECKS = [
    "set_get", "multi_get", "add", "replace", "append_prepend", "incr_decr",
    "incr_decr_missing", "delete", "expiry", "binary_value", "serialized_value",
    "compression", "large_value", "too_large", "after_too_large", "stats", "version",
]


@pytest.fixture(scope="module")
def fast(need, run_client):
    perl = need.perl_module("Cache::Memcached::Fast", "libcache-memcached-fast-perl")
    return run_client("Cache::Memcached::Fast", [perl, os.path.join(HERE, "perl", "fast.pl")])


@pytest.fixture(scope="module")
def pure(need, run_client):
    perl = need.perl_module("Cache::Memcached", "libcache-memcached-perl")
    return run_client("Cache::Memcached", [perl, os.path.join(HERE, "perl", "memcached.pl")])


@pytest.mark.parametrize("check", FAST_CHECKS)
def test_cache_memcached_fast(fast, check):
    fast.check(check)


def test_cache_memcached_fast_ran_to_the_end(fast):
    fast.complete(FAST_CHECKS)
    assert fast.stats_delta["store_too_large"] == 2, "the server did not refuse 2 values"


@pytest.mark.parametrize("check", MEMCACHED_CHECKS)
def test_cache_memcached(pure, check):
    pure.check(check)


def test_cache_memcached_ran_to_the_end(pure):
    pure.complete(MEMCACHED_CHECKS)
    assert pure.stats_delta["store_too_large"] == 2, "the server did not refuse 2 values"
