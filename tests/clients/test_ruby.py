"""Dalli 3.0.6 (ruby-dalli), which speaks the binary protocol only (its
meta protocol came in Dalli 3.1), run by ruby/dalli_check.rb; every check
the script reports is one test here."""

import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

CHECKS = [
    "set_get", "multi_get", "multi_block", "add", "replace", "append_prepend",
    "cas_success", "cas_conflict", "incr_decr", "incr_decr_missing", "incr_default",
    "delete", "touch", "gat", "expiry", "binary_value", "serialized_value", "compression",
    "large_value", "too_large", "after_too_large", "stats", "version",
]


@pytest.fixture(scope="module")
def dalli(need, run_client):
    ruby = need.ruby_library("dalli", "ruby-dalli")
    return run_client("Dalli", [ruby, os.path.join(HERE, "ruby", "dalli_check.rb")])


@pytest.mark.parametrize("check", CHECKS)
def test_dalli(dalli, check):
    dalli.check(check)


def test_dalli_ran_to_the_end(dalli):
    dalli.complete(CHECKS)
