"""incr / decr: 64-bit unsigned arithmetic on decimal values, with
memcached 1.6.18's exact replies and its in-place length rules."""

import pytest

from helpers import gets_unique, run_script

NON_NUMERIC = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
BAD_DELTA = b"CLIENT_ERROR invalid numeric delta argument\r\n"

ARITH_CASES = [
    ("incr-decr", [
        (b"set {k} 0 0 2\r\n10\r\n", b"STORED\r\n"),
        (b"incr {k} 5\r\n", b"15\r\n"),
        (b"decr {k} 3\r\n", b"12\r\n"),
        (b"get {k}\r\n", b"VALUE {k} 0 2\r\n12\r\nEND\r\n"),
    ]),
    # A shorter result is written in place, padded with spaces to the old
    # length; a longer one makes a new item of the new length.
    ("shrink-pads-with-spaces-then-grows", [
        (b"set {k} 0 0 3\r\n100\r\n", b"STORED\r\n"),
        (b"decr {k} 1\r\n", b"99\r\n"),
        (b"get {k}\r\n", b"VALUE {k} 0 3\r\n99 \r\nEND\r\n"),
        (b"incr {k} 901\r\n", b"1000\r\n"),
        (b"get {k}\r\n", b"VALUE {k} 0 4\r\n1000\r\nEND\r\n"),
    ]),
    ("incr-wraps-at-2-64", [
        (b"set {k} 0 0 20\r\n18446744073709551615\r\n", b"STORED\r\n"),
        (b"incr {k} 1\r\n", b"0\r\n"),
        (b"get {k}\r\n", b"VALUE {k} 0 20\r\n0                   \r\nEND\r\n"),
    ]),
    ("incr-max-delta-wraps", [
        (b"set {k} 0 0 1\r\n5\r\n", b"STORED\r\n"),
        (b"decr {k} 18446744073709551615\r\n", b"0\r\n"),
        (b"incr {k} 18446744073709551615\r\n", b"18446744073709551615\r\n"),
        (b"incr {k} 1\r\n", b"0\r\n"),
    ]),
    ("decr-floors-at-zero", [
        (b"set {k} 0 0 1\r\n5\r\n", b"STORED\r\n"),
        (b"decr {k} 10\r\n", b"0\r\n"),
        (b"get {k}\r\n", b"VALUE {k} 0 1\r\n0\r\nEND\r\n"),
    ]),
    ("keeps-flags", [
        (b"set {k} 5 0 2\r\n10\r\n", b"STORED\r\n"),
        (b"incr {k} 5\r\n", b"15\r\n"),
        (b"get {k}\r\n", b"VALUE {k} 5 2\r\n15\r\nEND\r\n"),
    ]),
    ("missing-key", [
        (b"incr {k} 1\r\n", b"NOT_FOUND\r\n"),
        (b"decr {k} 1\r\n", b"NOT_FOUND\r\n"),
    ]),
    ("leading-zeros", [
        (b"set {k} 0 0 3\r\n007\r\n", b"STORED\r\n"),
        (b"incr {k} 1\r\n", b"8\r\n"),
        (b"get {k}\r\n", b"VALUE {k} 0 3\r\n8  \r\nEND\r\n"),
    ]),
    # strtoull rules: leading blanks and '+' are accepted, and the value may
    # end in whitespace.
    ("leading-space-value", [
        (b"set {k} 0 0 2\r\n 5\r\n", b"STORED\r\n"),
        (b"incr {k} 1\r\n", b"6\r\n"),
    ]),
    ("trailing-space-value", [
        (b"set {k} 0 0 2\r\n5 \r\n", b"STORED\r\n"),
        (b"incr {k} 1\r\n", b"6\r\n"),
        (b"get {k}\r\n", b"VALUE {k} 0 2\r\n6 \r\nEND\r\n"),
    ]),
    ("plus-sign-value", [
        (b"set {k} 0 0 2\r\n+5\r\n", b"STORED\r\n"),
        (b"incr {k} 1\r\n", b"6\r\n"),
    ]),
    ("plus-sign-delta", [
        (b"set {k} 0 0 1\r\n5\r\n", b"STORED\r\n"),
        (b"incr {k} +1\r\n", b"6\r\n"),
    ]),
]

NON_NUMERIC_VALUES = [b"abc", b"-5", b"5x5", b"", b"184467440737095516150",
                      b"18446744073709551616"]
BAD_DELTAS = [b"-1", b"abc", b"0x1", b"1a", b"18446744073709551616", b"1.5"]


@pytest.mark.parametrize("steps", [c[1] for c in ARITH_CASES],
                         ids=[c[0] for c in ARITH_CASES])
def test_incr_decr(conn, key, steps):
    run_script(conn, key, steps)


@pytest.mark.parametrize("value", NON_NUMERIC_VALUES, ids=lambda v: repr(v.decode()))
@pytest.mark.parametrize("verb", [b"incr", b"decr"])
def test_non_numeric_value(conn, key, verb, value):
    conn.call(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value), b"STORED\r\n")
    conn.call(b"%s %s 1\r\n" % (verb, key), NON_NUMERIC)
    conn.call(b"get %s\r\n" % key, b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key, len(value), value))


@pytest.mark.parametrize("delta", BAD_DELTAS, ids=lambda v: v.decode())
@pytest.mark.parametrize("verb", [b"incr", b"decr"])
def test_invalid_delta(conn, key, verb, delta):
    conn.call(b"set %s 0 0 1\r\n7\r\n" % key, b"STORED\r\n")
    conn.call(b"%s %s %s\r\n" % (verb, key, delta), BAD_DELTA)
    conn.call(b"get %s\r\n" % key, b"VALUE %s 0 1\r\n7\r\nEND\r\n" % key)


def test_incr_changes_cas_and_counts(conn, key):
    before = conn.stats_dict()
    conn.call(b"set %s 0 0 1\r\n1\r\n" % key, b"STORED\r\n")
    unique = gets_unique(conn, key)
    conn.call(b"incr %s 1\r\nincr %s_miss 1\r\ndecr %s 1\r\ndecr %s_miss 1\r\n"
              % (key, key, key, key), b"2\r\nNOT_FOUND\r\n1\r\nNOT_FOUND\r\n")
    assert gets_unique(conn, key) != unique
    after = conn.stats_dict()
    for name in ("incr_hits", "incr_misses", "decr_hits", "decr_misses"):
        assert int(after[name]) - int(before[name]) == 1, name
