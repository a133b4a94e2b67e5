"""Meta protocol (mg, ms, md, ma, mn, me) on a single connection: every flag
memcached 1.6.18 documents, reply flag order, quiet mode, modes, CAS and
stale items, win/stale flags (W, Z, X) seen sequentially, base64 keys,
error lines, counters. Concurrent stampede behaviour is in
test_meta_stampede.py. Every expected reply was probed on memcached 1.6.18.

Replies are exact bytes, except where memcached itself does not fix them:
CAS uniques (`c<n>`) and TTLs that may tick by one second while the test
runs; those steps use a regular expression over the whole reply (`M`).
"""

import base64
import re
import time

import pytest

from helpers import CRLF, assert_healthy, expected_version_line, fill, read_meta_reply

ITEM_SIZE_MAX = 1024 * 1024  # memcached's default -I 1m
BAD_FORMAT = b"CLIENT_ERROR bad command line format\r\n"
INVALID_FLAG = b"CLIENT_ERROR invalid flag\r\n"
MD_MA_BAD_FLAG = b"CLIENT_ERROR invalid or duplicate flag\r\n"
BAD_TOKEN = b"CLIENT_ERROR bad token in command line format\r\n"
NON_NUMERIC = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
TOO_LARGE = b"SERVER_ERROR object too large for cache\r\n"


class M:
    """An expected reply given as a regular expression matched against one
    whole meta reply (line, plus data block for VA). {k} is the key."""

    def __init__(self, pattern):
        self.pattern = pattern

    def regex(self, key):
        return re.compile(self.pattern.replace(b"{k}", re.escape(key)), re.S)

    def __repr__(self):
        return "M(%r)" % self.pattern


def ttl(n):
    """Regex for a TTL reported n seconds after it was set, give or take
    memcached's clock: it ticks once a second and catches up in jumps on a
    loaded machine."""
    return b"(?:" + b"|".join(b"%d" % (n - i) for i in range(6)) + b")"


def check(conn, key, request, expected):
    request = fill(request, key)
    if isinstance(expected, M):
        conn.send(request)
        got = read_meta_reply(conn)
        assert expected.regex(key).fullmatch(got), \
            "request %r: got %r, expected %r" % (request[:200], got, expected)
        return got
    return conn.call(request, fill(expected, key))


def run_meta(conn, key, steps):
    for request, expected in steps:
        check(conn, key, request, expected)


def meta_cas(conn, key):
    """The CAS unique of key as `mg <key> c` reports it (a fetch: it may take
    a win flag)."""
    conn.send(b"mg %s c\r\n" % key)
    line = conn.read_line()
    m = re.fullmatch(rb"HD c(\d+)(?: [WZX])*\r\n", line)
    assert m, "unexpected mg c reply %r" % line
    return int(m.group(1))


def run_cases(cases):
    return pytest.mark.parametrize("steps", [c[1] for c in cases], ids=[c[0] for c in cases])


# --- mn ------------------------------------------------------------------------

def test_mn(conn):
    conn.call(b"mn\r\n", b"MN\r\n")
    conn.call(b"mn x y\r\n", b"MN\r\n")  # arguments are ignored


# --- mg: hits, misses, return flags ----------------------------------------------

MG_CASES = [
    ("miss", [
        (b"mg {k}\r\n", b"EN\r\n"),
        (b"mg {k} v\r\n", b"EN\r\n"),
        (b"mg {k} s t v f c h l\r\n", b"EN\r\n"),  # no value flags on a miss
    ]),
    ("miss-echoes-only-opaque-and-key", [
        (b"mg {k} k O99\r\n", b"EN k{k} O99\r\n"),
        (b"mg {k} O99 v s k\r\n", b"EN O99 k{k}\r\n"),
    ]),
    ("hit-without-flags-is-HD", [
        (b"ms {k} 2 F5\r\nhi\r\n", b"HD\r\n"),
        (b"mg {k}\r\n", b"HD\r\n"),
        (b"mg {k} v\r\n", b"VA 2\r\nhi\r\n"),
    ]),
    ("hit-return-flags", [
        (b"ms {k} 2 F5\r\nhi\r\n", b"HD\r\n"),
        (b"mg {k} s v\r\n", b"VA 2 s2\r\nhi\r\n"),
        (b"mg {k} f\r\n", b"HD f5\r\n"),
        (b"mg {k} k\r\n", b"HD k{k}\r\n"),
        (b"mg {k} O123\r\n", b"HD O123\r\n"),
        (b"mg {k} O\r\n", b"HD O\r\n"),  # an empty opaque is echoed as "O"
        (b"mg {k} t\r\n", b"HD t-1\r\n"),
        (b"mg {k} v O1 k s f t\r\n", b"VA 2 O1 k{k} s2 f5 t-1\r\nhi\r\n"),
        (b"mg {k} t f s k O1 v\r\n", b"VA 2 t-1 f5 s2 k{k} O1\r\nhi\r\n"),
    ]),
    ("flag-tokens-of-return-flags-are-ignored", [
        (b"ms {k} 2 F5\r\nhi\r\n", b"HD\r\n"),
        (b"mg {k} k5 s5 f5 v5\r\n", b"VA 2 k{k} s2 f5\r\nhi\r\n"),
    ]),
    ("P-and-L-are-ignored", [
        (b"ms {k} 2\r\nhi\r\n", b"HD\r\n"),
        (b"mg {k} P L v\r\n", b"VA 2\r\nhi\r\n"),
        (b"mg {k} Pfoo/bar Lpath/ s\r\n", b"HD s2\r\n"),
    ]),
    ("flags-accepted-and-ignored-by-mg", [
        (b"ms {k} 2\r\nhi\r\n", b"HD\r\n"),
        (b"mg {k} F5 C5 D5 J5 M5 I u\r\n", b"HD\r\n"),
    ]),
    ("empty-value", [
        (b"ms {k} 0\r\n\r\n", b"HD\r\n"),
        (b"mg {k} v s\r\n", b"VA 0 s0\r\n\r\n"),
    ]),
    ("binary-value", [
        (b"ms {k} 6\r\n\r\n\x00\xff\r\n\r\n", b"HD\r\n"),
        (b"mg {k} v\r\n", b"VA 6\r\n\r\n\x00\xff\r\n\r\n"),
    ]),
    ("whitespace-and-line-endings", [
        (b"ms {k} 1\r\nx\r\n", b"HD\r\n"),
        (b"mg  {k}   v  \r\n", b"VA 1\r\nx\r\n"),
        (b"mg {k} v\n", b"VA 1\r\nx\r\n"),
        (b"mg {k} v\r\r\n", b"VA 1\r\nx\r\n"),  # the token "v\r" is flag v
    ]),
    ("hit-flag-h-and-l", [
        (b"ms {k} 1\r\nx\r\n", b"HD\r\n"),
        (b"mg {k} h\r\n", b"HD h0\r\n"),
        (b"mg {k} h\r\n", b"HD h1\r\n"),
    ]),
    ("u-does-not-mark-fetched", [
        (b"ms {k} 1\r\nx\r\n", b"HD\r\n"),
        (b"mg {k} u h\r\n", b"HD h0\r\n"),
        (b"mg {k} h\r\n", b"HD h0\r\n"),
        (b"mg {k} h\r\n", b"HD h1\r\n"),
    ]),
    ("any-hit-marks-fetched", [
        (b"ms {k} 1\r\nx\r\n", b"HD\r\n"),
        (b"mg {k} s\r\n", b"HD s1\r\n"),
        (b"mg {k} h\r\n", b"HD h1\r\n"),
    ]),
    ("text-and-meta-share-items", [
        (b"set {k} 7 0 2\r\nab\r\n", b"STORED\r\n"),
        (b"mg {k} v f\r\n", b"VA 2 f7\r\nab\r\n"),
        (b"ms {k} 2 F9\r\ncd\r\n", b"HD\r\n"),
        (b"get {k}\r\n", b"VALUE {k} 9 2\r\ncd\r\nEND\r\n"),
    ]),
]


@run_cases(MG_CASES)
def test_mg(conn, key, steps):
    run_meta(conn, key, steps)


def test_mg_c_and_l_values(conn, key):
    conn.call(b"ms %s 1\r\nx\r\n" % key, b"HD\r\n")
    cas = meta_cas(conn, key)
    check(conn, key, b"mg {k} c h l v\r\n", M(b"VA 1 c%d h1 l\\d+\r\nx\r\n" % cas))
    conn.send(b"gets %s\r\n" % key)  # the same unique as the text protocol's
    assert conn.read_until(b"END\r\n") == b"VALUE %s 0 1 %d\r\nx\r\nEND\r\n" % (key, cas)


# Return flags come back in the order they were requested (W/Z/X last).
ORDERS = [b"k O7 s f t c", b"c t f s O7 k", b"s k c O7 t f", b"t c k f O7 s"]
FLAG_PATTERN = {b"k": b" k{k}", b"O7": b" O7", b"s": b" s2", b"f": b" f3", b"t": b" t-1",
                b"c": b" c\\d+"}


@pytest.mark.parametrize("order", ORDERS, ids=lambda o: o.decode().replace(" ", ""))
def test_mg_return_flags_in_request_order(conn, key, order):
    conn.call(b"ms %s 2 F3\r\nhi\r\n" % key, b"HD\r\n")
    pattern = b"VA 2" + b"".join(FLAG_PATTERN[f] for f in order.split()) + b"\r\nhi\r\n"
    check(conn, key, b"mg {k} v %s\r\n" % order, M(pattern))


# --- quiet mode ------------------------------------------------------------------
# q hides the "nominal" reply only: EN for mg (a hit is still answered), HD
# for ms/md/ma. Every other code and every error is sent. mn ends the batch.

QUIET_CASES = [
    ("mg-miss-hidden", [(b"mg {k} v q\r\nmg {k} k O1 q\r\nmn\r\n", b"MN\r\n")]),
    ("mg-hit-still-answered", [
        (b"ms {k} 2\r\nhi\r\n", b"HD\r\n"),
        (b"mg {k} q\r\nmg {k} v q\r\nmg {k} k q\r\nmn\r\n",
         b"HD\r\nVA 2\r\nhi\r\nHD k{k}\r\nMN\r\n"),
    ]),
    ("ms-HD-hidden-others-sent", [
        (b"ms {k} 2 q\r\nhi\r\nms {k} 2 q k O5 c\r\nhi\r\nmn\r\n", b"MN\r\n"),
        (b"ms {k} 2 q ME O4\r\nhi\r\nmn\r\n", b"NS O4\r\nMN\r\n"),
        (b"ms {k} 2 q C1\r\nhi\r\nmn\r\n", b"EX\r\nMN\r\n"),
        (b"ms {k}_miss 2 q C1\r\nhi\r\nmn\r\n", b"NF\r\nMN\r\n"),
        (b"ms {k}_miss 2 q MA\r\nhi\r\nmn\r\n", b"NS\r\nMN\r\n"),
    ]),
    ("md-HD-hidden-others-sent", [
        (b"ms {k} 2\r\nhi\r\n", b"HD\r\n"),
        (b"md {k} q C1\r\nmn\r\n", b"EX\r\nMN\r\n"),
        (b"md {k} q I\r\nmd {k} q\r\nmn\r\n", b"MN\r\n"),
        (b"md {k} q k O1\r\nmn\r\n", b"NF k{k} O1\r\nMN\r\n"),
    ]),
    ("ma-HD-and-VA-hidden-others-sent", [
        (b"ma {k} q O1\r\nmn\r\n", b"NF O1\r\nMN\r\n"),
        (b"ms {k} 1\r\n5\r\n", b"HD\r\n"),
        (b"ma {k} q\r\nma {k} q v\r\nma {k} q c t\r\nmn\r\n", b"MN\r\n"),
        (b"mg {k} v\r\n", b"VA 1\r\n8\r\n"),
        (b"ma {k} q C1\r\nmn\r\n", b"EX\r\nMN\r\n"),
    ]),
    ("ma-q-does-not-hide-auto-create", [  # bug? HD after N on a miss is sent
        (b"ma {k} q N0\r\nmn\r\n", b"HD\r\nMN\r\n"),
        (b"ma {k} q N0\r\nmn\r\n", b"MN\r\n"),
        (b"mg {k} v\r\n", b"VA 1\r\n1\r\n"),
    ]),
    ("errors-always-sent", [
        (b"mg {k} q x\r\nmn\r\n", INVALID_FLAG + b"MN\r\n"),
        (b"ms {k} 2 q\r\nhiX\r\nmn\r\n", b"CLIENT_ERROR bad data chunk\r\nERROR\r\nMN\r\n"),
        (b"ms {k} 1 q\r\nx\r\nma {k} q\r\nmn\r\n", NON_NUMERIC + b"MN\r\n"),
    ]),
]


@run_cases(QUIET_CASES)
def test_quiet_mode(conn, key, steps):
    run_meta(conn, key, steps)


# --- ms: modes, flags, TTL ------------------------------------------------------------

# (mode, key exists before, reply, value after or None); the old value is
# "old", the new data "new".
MS_MODES = [
    (b"", True, b"HD", b"new"), (b"", False, b"HD", b"new"),
    (b"MS", True, b"HD", b"new"), (b"MS", False, b"HD", b"new"),
    (b"ME", True, b"NS", b"old"), (b"ME", False, b"HD", b"new"),
    (b"MA", True, b"HD", b"oldnew"), (b"MA", False, b"NS", None),
    (b"MP", True, b"HD", b"newold"), (b"MP", False, b"NS", None),
    (b"MR", True, b"HD", b"new"), (b"MR", False, b"NS", None),
]


@pytest.mark.parametrize("mode, exists, reply, after", MS_MODES,
                         ids=["%s-%s" % (m[0].decode() or "none", "hit" if m[1] else "miss")
                              for m in MS_MODES])
def test_ms_mode(conn, key, mode, exists, reply, after):
    if exists:
        conn.call(b"ms %s 3\r\nold\r\n" % key, b"HD\r\n")
    conn.call(b"ms %s 3 %s\r\nnew\r\n" % (key, mode), reply + CRLF)
    if after is None:
        conn.call(b"mg %s v\r\n" % key, b"EN\r\n")
    else:
        conn.call(b"mg %s v\r\n" % key, b"VA %d\r\n%s\r\n" % (len(after), after))


# memcached 1.6.18 parses N on ms and ignores it: append/prepend on a miss
# stay NS and create nothing, and N never sets a TTL.
MS_N_IGNORED_CASES = [
    ("MA-miss", [
        (b"ms {k} 1 MA N100\r\nx\r\n", b"NS\r\n"),
        (b"mg {k} v t\r\n", b"EN\r\n"),
    ]),
    ("MP-miss", [
        (b"ms {k} 1 MP N100\r\nx\r\n", b"NS\r\n"),
        (b"mg {k} v t\r\n", b"EN\r\n"),
    ]),
    ("MA-miss-return-flags", [
        (b"ms {k} 1 MA N100 c k O9\r\nx\r\n", b"NS c0 k{k} O9\r\n"),
        (b"mg {k} v\r\n", b"EN\r\n"),
    ]),
    ("MP-miss-quiet", [
        (b"ms {k} 1 MP N100 q\r\nx\r\nmn\r\n", b"NS\r\nMN\r\n"),
        (b"mg {k} v\r\n", b"EN\r\n"),
    ]),
    ("MA-hit-keeps-ttl", [
        (b"ms {k} 1\r\ny\r\n", b"HD\r\n"),
        (b"ms {k} 1 MA N100\r\nx\r\n", b"HD\r\n"),
        (b"mg {k} v t\r\n", b"VA 2 t-1\r\nyx\r\n"),
    ]),
    ("set-with-N", [
        (b"ms {k} 1 N100\r\nx\r\n", b"HD\r\n"),
        (b"mg {k} v t\r\n", b"VA 1 t-1\r\nx\r\n"),
    ]),
]


@run_cases(MS_N_IGNORED_CASES)
def test_ms_N_is_ignored(conn, key, steps):
    run_meta(conn, key, steps)


MS_CASES = [
    ("append-prepend-add-keep-flags-and-ttl", [
        (b"ms {k} 1 F7 T100\r\na\r\n", b"HD\r\n"),
        (b"ms {k} 1 MA F9 T5\r\nb\r\n", b"HD\r\n"),
        (b"ms {k} 1 MP F9 T5\r\nc\r\n", b"HD\r\n"),
        (b"ms {k} 1 ME F9 T5\r\nd\r\n", b"NS\r\n"),
        (b"mg {k} f t v\r\n", M(b"VA 3 f7 t" + ttl(100) + b"\r\ncab\r\n")),
    ]),
    ("replace-sets-flags-and-ttl", [
        (b"ms {k} 1 F7 T100\r\na\r\n", b"HD\r\n"),
        (b"ms {k} 1 MR F9\r\nb\r\n", b"HD\r\n"),
        (b"mg {k} f t v\r\n", b"VA 1 f9 t-1\r\nb\r\n"),
    ]),
    ("return-flags-k-O-c", [
        (b"ms {k} 2 k O5\r\nhi\r\n", b"HD k{k} O5\r\n"),
        (b"ms {k} 2 O5 k\r\nhi\r\n", b"HD O5 k{k}\r\n"),
        (b"ms {k} 2 ME c k O3\r\nhi\r\n", b"NS c0 k{k} O3\r\n"),  # c0 when not stored
        (b"ms {k}_miss 2 C1 c k O3\r\nhi\r\n", b"NF c0 k{k}_miss O3\r\n"),
    ]),
    ("flags-accepted-and-ignored-by-ms", [
        (b"ms {k} 2 f h l s t u v P L N5 R5 D5 J5 I\r\nhi\r\n", b"HD\r\n"),
        (b"mg {k} v f t\r\n", b"VA 2 f0 t-1\r\nhi\r\n"),
    ]),
    ("client-flags-range", [
        (b"ms {k} 1 F4294967295\r\nx\r\n", b"HD\r\n"),
        (b"mg {k} f\r\n", b"HD f4294967295\r\n"),
        (b"ms {k} 1 F0\r\nx\r\n", b"HD\r\n"),
        (b"mg {k} f\r\n", b"HD f0\r\n"),
    ]),
    ("client-flags-truncated-to-32-bits", [  # bug? as in the text protocol
        (b"ms {k} 1 F4294967296\r\nx\r\n", b"HD\r\n"),
        (b"mg {k} f\r\n", b"HD f0\r\n"),
        (b"ms {k} 1 F18446744073709551615\r\nx\r\n", b"HD\r\n"),
        (b"mg {k} f\r\n", b"HD f4294967295\r\n"),
    ]),
    ("bad-client-flags-swallow-the-data", [
        (b"ms {k} 1 F18446744073709551616\r\nx\r\n", BAD_FORMAT),
        (b"ms {k} 1 F-1\r\nx\r\n", BAD_FORMAT),
        (b"ms {k} 1 Fabc\r\nx\r\n", BAD_FORMAT),
        (b"mg {k}\r\n", b"EN\r\n"),
    ]),
    ("ttl", [
        (b"ms {k} 1 T0\r\nx\r\n", b"HD\r\n"),
        (b"mg {k} t\r\n", b"HD t-1\r\n"),
        (b"ms {k} 1 T2592000\r\nx\r\n", b"HD\r\n"),
        (b"mg {k} t\r\n", M(b"HD t" + ttl(2592000) + b"\r\n")),
        (b"ms {k} 1 T2592001\r\nx\r\n", b"HD\r\n"),  # absolute time in 1970: expired
        (b"mg {k} t\r\n", b"EN\r\n"),
        (b"ms {k} 1 T-1\r\nx\r\n", b"HD\r\n"),
        (b"mg {k} t\r\n", b"EN\r\n"),
    ]),
    ("ms-replaces-flags-and-ttl", [
        (b"ms {k} 1 F7 T100\r\na\r\n", b"HD\r\n"),
        (b"ms {k} 1\r\nb\r\n", b"HD\r\n"),
        (b"mg {k} f t v\r\n", b"VA 1 f0 t-1\r\nb\r\n"),
    ]),
    ("bad-data-chunk-keeps-old-value", [
        (b"ms {k} 3\r\nold\r\n", b"HD\r\n"),
        (b"ms {k} 2\r\nhiX\r\n", b"CLIENT_ERROR bad data chunk\r\nERROR\r\n"),
        (b"mg {k} v\r\n", b"VA 3\r\nold\r\n"),
    ]),
]


@run_cases(MS_CASES)
def test_ms(conn, key, steps):
    run_meta(conn, key, steps)


def test_ms_c_returns_the_new_cas(conn, key):
    got = check(conn, key, b"ms {k} 2 c\r\nhi\r\n", M(b"HD c\\d+\r\n"))
    assert int(got[4:-2]) == meta_cas(conn, key)


# --- ms C (compare CAS) and I (invalidate) -----------------------------------------

def test_ms_compare_cas(conn, key):
    conn.call(b"ms %s 1\r\na\r\n" % key, b"HD\r\n")
    cas = meta_cas(conn, key)
    conn.call(b"ms %s 1 C%d\r\nb\r\n" % (key, cas + 1), b"EX\r\n")
    conn.call(b"ms %s 1 C0\r\nb\r\n" % key, b"EX\r\n")
    conn.call(b"ms %s 1 C%d\r\nb\r\n" % (key, cas), b"HD\r\n")
    conn.call(b"ms %s 1 C%d\r\nc\r\n" % (key, cas), b"EX\r\n")  # the CAS changed
    assert meta_cas(conn, key) != cas
    conn.call(b"mg %s v\r\n" % key, b"VA 1\r\nb\r\n")
    conn.call(b"ms %s_miss 1 C%d\r\nb\r\n" % (key, cas), b"NF\r\n")


# (mode, reply with the right CAS, reply with a wrong CAS, reply on a miss)
CAS_MODES = [
    (b"MS", b"HD", b"EX", b"NF"),
    (b"MR", b"HD", b"EX", b"NF"),
    (b"MA", b"HD", b"EX", b"NS"),
    (b"MP", b"HD", b"EX", b"NS"),
    (b"ME", b"NS", b"NS", b"HD"),  # add ignores C
]


@pytest.mark.parametrize("mode, right, wrong, miss", CAS_MODES,
                         ids=[m[0].decode() for m in CAS_MODES])
def test_ms_compare_cas_in_each_mode(conn, key, mode, right, wrong, miss):
    conn.call(b"ms %s 1\r\na\r\n" % key, b"HD\r\n")
    cas = meta_cas(conn, key)
    conn.call(b"ms %s 1 %s C%d\r\nb\r\n" % (key, mode, cas + 1), wrong + CRLF)
    conn.call(b"ms %s 1 %s C%d\r\nb\r\n" % (key, mode, cas), right + CRLF)
    conn.call(b"ms %s_miss 1 %s C%d\r\nb\r\n" % (key, mode, cas), miss + CRLF)


def test_ms_invalidate_with_older_cas_stores_a_stale_item(conn, key):
    conn.call(b"ms %s 1\r\na\r\n" % key, b"HD\r\n")
    old = meta_cas(conn, key)
    conn.call(b"ms %s 1\r\nb\r\n" % key, b"HD\r\n")
    new = meta_cas(conn, key)
    # An older CAS with I is accepted, and the item is marked stale.
    conn.call(b"ms %s 1 C%d I\r\nz\r\n" % (key, old), b"HD\r\n")
    stale = meta_cas(conn, key)  # this fetch gets the win flag...
    assert stale > new
    conn.call(b"mg %s v c\r\n" % key, b"VA 1 c%d Z X\r\nz\r\n" % stale)  # ...others Z
    # A newer CAS is still refused (c0), the matching one stores a fresh item.
    conn.call(b"ms %s 1 C%d I c\r\nw\r\n" % (key, stale + 1), b"EX c0\r\n")
    got = check(conn, key, b"ms {k} 1 C%d I c\r\nw\r\n" % stale, M(b"HD c\\d+\r\n"))
    conn.call(b"mg %s v c\r\n" % key, b"VA 1 c%s\r\nw\r\n" % got[4:-2])
    # I without C is a plain set.
    conn.call(b"ms %s 1 I\r\ny\r\n" % key, b"HD\r\n")
    conn.call(b"mg %s v\r\n" % key, b"VA 1\r\ny\r\n")


def test_ms_invalidate_first_fetch_wins(conn, key):
    conn.call(b"ms %s 1\r\na\r\n" % key, b"HD\r\n")
    old = meta_cas(conn, key)
    conn.call(b"ms %s 1\r\nb\r\n" % key, b"HD\r\n")
    conn.call(b"ms %s 1 C%d I\r\nz\r\n" % (key, old), b"HD\r\n")
    conn.call(b"mg %s v\r\n" % key, b"VA 1 X W\r\nz\r\n")
    conn.call(b"mg %s v\r\n" % key, b"VA 1 Z X\r\nz\r\n")


def test_ms_invalidate_with_cas_zero_is_refused(conn, key):
    """C0 is "no CAS" to memcached, never an older one: with I it is EX
    (counted in cas_badval) and the item stays as it was."""
    conn.call(b"ms %s 1 T100\r\na\r\n" % key, b"HD\r\n")
    before = conn.stats_dict()
    conn.call(b"ms %s 1 I C0\r\nz\r\n" % key, b"EX\r\n")
    conn.call(b"ms %s 1 I C0 c k\r\nz\r\n" % key, b"EX c0 k%s\r\n" % key)
    after = conn.stats_dict()
    assert int(after["cas_badval"]) - int(before["cas_badval"]) == 2
    assert after["cas_hits"] == before["cas_hits"]
    check(conn, key, b"mg {k} v t\r\n", M(b"VA 1 t" + ttl(100) + b"\r\na\r\n"))


def test_ms_invalidate_stale_store_counts_a_cas_hit(conn, key):
    conn.call(b"ms %s 1\r\na\r\n" % key, b"HD\r\n")
    old = meta_cas(conn, key)
    conn.call(b"ms %s 1\r\nb\r\n" % key, b"HD\r\n")
    before = conn.stats_dict()
    conn.call(b"ms %s 1 C%d I\r\nz\r\n" % (key, old), b"HD\r\n")
    after = conn.stats_dict()
    assert int(after["cas_hits"]) - int(before["cas_hits"]) == 1
    assert after["cas_badval"] == before["cas_badval"]


# --- ms errors ---------------------------------------------------------------------

def flags(n, first=0):
    return b" ".join(b"O%d" % i for i in range(first, first + n))


SIXTEEN_MS_FLAGS = b"c f h k l O1 P L s t u v T0 F0 I N0"
SEVENTEEN_MG_FLAGS = b"c f h k l O1 P L s t u v T0 F0 I N0 R0"

# (id, request, reply): the data block is swallowed unless noted.
MS_ERRORS = [
    ("no-datalen", b"ms {k}\r\n", BAD_FORMAT),
    ("bad-datalen-not-swallowed", b"ms {k} x\r\nhi\r\n", BAD_FORMAT + b"ERROR\r\n"),
    ("negative-datalen", b"ms {k} -1\r\n", BAD_FORMAT),
    ("datalen-over-int-max-minus-2", b"ms {k} 2147483646\r\n", BAD_FORMAT),
    ("datalen-int-max", b"ms {k} 2147483647\r\n", BAD_FORMAT),
    ("key-too-long-not-swallowed", b"ms " + b"k" * 251 + b" 1\r\nx\r\n",
     BAD_FORMAT + b"ERROR\r\n"),
    ("unknown-flag", b"ms {k} 2 x\r\nhi\r\n", INVALID_FLAG),
    ("unsupported-flag-E", b"ms {k} 2 E5\r\nhi\r\n", INVALID_FLAG),
    ("size-flag-S-is-not-a-flag", b"ms {k} 2 S2\r\nhi\r\n", INVALID_FLAG),
    ("duplicate-flag", b"ms {k} 2 T1 T1\r\nhi\r\n", b"CLIENT_ERROR duplicate flag\r\n"),
    ("bad-ttl", b"ms {k} 2 Tabc\r\nhi\r\n", BAD_TOKEN),
    ("empty-ttl", b"ms {k} 2 T\r\nhi\r\n", BAD_TOKEN),
    ("bad-cas", b"ms {k} 2 Cabc\r\nhi\r\n", BAD_TOKEN),
    ("bad-mode", b"ms {k} 2 MX\r\nhi\r\n", b"CLIENT_ERROR invalid mode for ms M token\r\n"),
    ("lowercase-mode", b"ms {k} 2 Ms\r\nhi\r\n",
     b"CLIENT_ERROR invalid mode for ms M token\r\n"),
    ("long-mode", b"ms {k} 2 MSS\r\nhi\r\n", b"CLIENT_ERROR incorrect length for M token\r\n"),
    ("empty-mode", b"ms {k} 2 M\r\nhi\r\n", b"CLIENT_ERROR incorrect length for M token\r\n"),
    ("bad-delta", b"ms {k} 2 Dx\r\nhi\r\n", b"CLIENT_ERROR invalid numeric delta value\r\n"),
    ("bad-initial", b"ms {k} 2 Jx\r\nhi\r\n",
     b"CLIENT_ERROR invalid numeric initial value\r\n"),
    ("bad-base64-key", b"ms !!!! 2 b\r\nhi\r\n", b"CLIENT_ERROR error decoding key\r\n"),
    ("opaque-too-long", b"ms {k} 2 O" + b"x" * 32 + b"\r\nhi\r\n",
     b"CLIENT_ERROR opaque token too long\r\n"),
    ("17-flags-not-swallowed", b"ms {k} 2 " + SIXTEEN_MS_FLAGS + b" R0\r\nhi\r\n",
     b"CLIENT_ERROR options flags too long\r\nERROR\r\n"),
    ("bad-data-chunk", b"ms {k} 2\r\nhiX\r\n", b"CLIENT_ERROR bad data chunk\r\nERROR\r\n"),
    ("no-key", b"ms\r\n", b"ERROR\r\n"),
]


@pytest.mark.parametrize("request_, reply", [e[1:] for e in MS_ERRORS],
                         ids=[e[0] for e in MS_ERRORS])
def test_ms_error(conn, key, request_, reply):
    conn.call(fill(request_, key), reply)
    conn.call(b"mg %s v\r\n" % key, b"EN\r\n")  # nothing was stored


def test_ms_sixteen_flags_are_accepted(conn, key):
    check(conn, key, b"ms {k} 2 %s\r\nhi\r\n" % SIXTEEN_MS_FLAGS, M(b"HD c\\d+ k{k} O1\r\n"))


def test_ms_too_large_is_refused_swallowed_and_deletes(conn, bystander, server, key):
    for mode in (b"", b" q", b" MA"):  # even append mode removes the old value
        conn.call(b"ms %s 3\r\nold\r\n" % key, b"HD\r\n")
        conn.send_in_background(b"ms %s %d%s\r\n" % (key, ITEM_SIZE_MAX, mode)
                                + b"v" * ITEM_SIZE_MAX + CRLF).join(30)
        conn.call(b"mg %s v\r\n" % key, TOO_LARGE + b"EN\r\n", timeout=30)
    assert_healthy(server, bystander)


def test_ms_out_of_memory(server_factory, key):
    """With -M (no evictions) a full cache refuses stores; q does not hide
    the error."""
    srv = server_factory("-M", memory_mb=2)
    value = b"v" * 100000
    with srv.connect() as c:
        for i in range(200):
            c.send(b"ms %s_%d %d\r\n%s\r\n" % (key, i, len(value), value))
            reply = c.read_line()
            if reply != b"HD\r\n":
                break
        assert i > 3 and reply == b"SERVER_ERROR out of memory storing object\r\n"
        c.call(b"ms %s_q %d q\r\n%s\r\nmn\r\n" % (key, len(value), value),
               b"SERVER_ERROR out of memory storing object\r\nMN\r\n")
        c.call(b"ms %s_small 1\r\nx\r\n" % key, b"HD\r\n")


def test_ms_item_size_max_minus_1k_is_accepted(conn, key):
    size = ITEM_SIZE_MAX - 1024
    value = bytes(range(256)) * (size // 256)
    conn.send_in_background(b"ms %s %d\r\n%s\r\n" % (key, size, value)).join(30)
    conn.call(b"mg %s s v\r\n" % key, b"HD\r\nVA %d s%d\r\n%s\r\n" % (size, size, value),
              timeout=30)


# --- mg/md/ma/me errors ------------------------------------------------------------------

LONG_KEY = b"k" * 251
COMMON_ERRORS = [
    ("mg-no-key", b"mg\r\n", b"ERROR\r\n"),
    ("mg-blank-key", b"mg \r\n", b"ERROR\r\n"),
    ("mg-key-too-long", b"mg " + LONG_KEY + b" v\r\n", BAD_FORMAT),
    ("mg-unknown-flag", b"mg {k} x\r\n", INVALID_FLAG),
    ("mg-unsupported-flag-E", b"mg {k} E5\r\n", INVALID_FLAG),
    ("mg-punctuation-flag", b"mg {k} !\r\n", INVALID_FLAG),
    ("mg-duplicate-flag", b"mg {k} v v\r\n", b"CLIENT_ERROR duplicate flag\r\n"),
    ("mg-duplicate-opaque", b"mg {k} O1 O2\r\n", b"CLIENT_ERROR duplicate flag\r\n"),
    ("mg-18-flags", b"mg {k} " + SEVENTEEN_MG_FLAGS + b" D0\r\n",
     b"CLIENT_ERROR options flags are too long\r\n"),
    ("mg-opaque-too-long", b"mg {k} O" + b"x" * 32 + b"\r\n",
     b"CLIENT_ERROR opaque token too long\r\n"),
    ("mg-opaque-too-long-with-k", b"mg {k} k O" + b"x" * 32 + b"\r\n",
     b"CLIENT_ERROR opaque token too long\r\n"),
    ("mg-bad-N", b"mg {k} Nabc\r\n", BAD_TOKEN),
    ("mg-empty-N", b"mg {k} N\r\n", BAD_TOKEN),
    ("mg-bad-T", b"mg {k} Tabc\r\n", BAD_TOKEN),
    ("mg-bad-R", b"mg {k} R\r\n", BAD_TOKEN),
    ("mg-bad-C", b"mg {k} C\r\n", BAD_TOKEN),
    ("mg-bad-F", b"mg {k} F\r\n", BAD_FORMAT),
    ("mg-bad-D", b"mg {k} D\r\n", b"CLIENT_ERROR invalid numeric delta value\r\n"),
    ("mg-bad-J", b"mg {k} J\r\n", b"CLIENT_ERROR invalid numeric initial value\r\n"),
    ("mg-bad-M", b"mg {k} M\r\n", b"CLIENT_ERROR incorrect length for M token\r\n"),
    ("mg-bad-base64", b"mg !!!! b\r\n", b"CLIENT_ERROR error decoding key\r\n"),
    ("mg-uppercase-command", b"MG {k} v\r\n", b"ERROR\r\n"),
    ("mg-tab-separator", b"mg\t{k} v\r\n", b"ERROR\r\n"),
    ("md-no-key", b"md\r\n", b"ERROR\r\n"),
    ("md-key-too-long", b"md " + LONG_KEY + b"\r\n", BAD_FORMAT),
    ("md-unknown-flag", b"md {k} x\r\n", MD_MA_BAD_FLAG),
    ("md-unsupported-flag-E", b"md {k} E5\r\n", MD_MA_BAD_FLAG),
    ("md-duplicate-flag", b"md {k} q q\r\n", MD_MA_BAD_FLAG),
    ("md-bad-C", b"md {k} Cabc\r\n", MD_MA_BAD_FLAG),
    ("md-bad-T", b"md {k} T\r\n", MD_MA_BAD_FLAG),
    ("md-bad-base64", b"md !!!! b\r\n", MD_MA_BAD_FLAG),
    ("md-18-flags", b"md {k} " + flags(18) + b"\r\n",
     b"CLIENT_ERROR options flags too long\r\n"),
    ("md-opaque-too-long", b"md {k} O" + b"x" * 32 + b"\r\n",
     b"CLIENT_ERROR opaque token too long\r\n"),
    ("ma-no-key", b"ma\r\n", b"ERROR\r\n"),
    ("ma-key-too-long", b"ma " + LONG_KEY + b"\r\n", BAD_FORMAT),
    ("ma-unknown-flag", b"ma {k} x\r\n", MD_MA_BAD_FLAG),
    ("ma-unsupported-flag-E", b"ma {k} E5\r\n", MD_MA_BAD_FLAG),
    ("ma-duplicate-flag", b"ma {k} v v\r\n", MD_MA_BAD_FLAG),
    ("ma-bad-delta", b"ma {k} Dabc\r\n", MD_MA_BAD_FLAG),
    ("ma-negative-delta", b"ma {k} D-1\r\n", MD_MA_BAD_FLAG),
    ("ma-delta-2-64", b"ma {k} D18446744073709551616\r\n", MD_MA_BAD_FLAG),
    ("ma-bad-initial", b"ma {k} N0 Jabc\r\n", MD_MA_BAD_FLAG),
    ("ma-bad-N", b"ma {k} Nabc\r\n", MD_MA_BAD_FLAG),
    ("ma-long-mode", b"ma {k} MII\r\n", MD_MA_BAD_FLAG),
    ("ma-bad-mode", b"ma {k} MX\r\n", b"CLIENT_ERROR invalid mode for ma M token\r\n"),
    ("ma-lowercase-mode", b"ma {k} Mi\r\n", b"CLIENT_ERROR invalid mode for ma M token\r\n"),
    ("ma-18-flags", b"ma {k} " + flags(18) + b"\r\n",
     b"CLIENT_ERROR options flags too long\r\n"),
    ("ma-opaque-too-long", b"ma {k} O" + b"x" * 32 + b"\r\n",
     b"CLIENT_ERROR opaque token too long\r\n"),
    ("me-no-key", b"me\r\n", BAD_FORMAT),
    ("me-key-too-long", b"me " + LONG_KEY + b"\r\n", BAD_FORMAT),
    ("me-bad-base64", b"me !!!! b\r\n", BAD_FORMAT),
    ("unknown-meta-command", b"mx {k}\r\n", b"ERROR\r\n"),
    ("mn-with-suffix", b"mnx\r\n", b"ERROR\r\n"),
]


@pytest.mark.parametrize("request_, reply", [e[1:] for e in COMMON_ERRORS],
                         ids=[e[0] for e in COMMON_ERRORS])
def test_meta_error(conn, key, request_, reply):
    conn.call(fill(request_, key), reply)


def test_meta_errors_on_an_existing_item(conn, bystander, server, key):
    """The same errors with the key present: same replies, and only one of
    them touches the item: bug? ma checks the opaque's length while building
    its reply, after the increment was done."""
    conn.call(b"ms %s 1\r\n5\r\n" % key, b"HD\r\n")
    for request_, reply in [e[1:] for e in COMMON_ERRORS]:
        conn.call(fill(request_, key), reply)
    conn.call(b"mg %s v\r\n" % key, b"VA 1\r\n6\r\n")
    assert_healthy(server, bystander)


def test_opaque_of_31_bytes_is_the_longest(conn, key):
    opaque = b"O" + b"x" * 31
    conn.call(b"mg %s %s\r\n" % (key, opaque), b"EN %s\r\n" % opaque)
    conn.call(b"ms %s 1 %s\r\nx\r\n" % (key, opaque), b"HD %s\r\n" % opaque)
    conn.call(b"ma %s %s N0\r\n" % (key, opaque), NON_NUMERIC)
    conn.call(b"md %s %s\r\n" % (key, opaque), b"HD %s\r\n" % opaque)


def test_mg_seventeen_flags_are_accepted(conn, key):
    conn.call(b"ms %s 2\r\nhi\r\n" % key, b"HD\r\n")
    check(conn, key, b"mg {k} %s\r\n" % SEVENTEEN_MG_FLAGS,
          M(b"VA 2 c\\d+ f0 h0 k{k} l\\d+ O1 s2 t-1\r\nhi\r\n"))


def test_ma_with_N_creates_the_item_before_a_late_error(conn, key):
    """bug? the opaque length is checked while building the reply, after
    the miss has already created the item."""
    conn.call(b"ma %s N0 J5 O%s\r\n" % (key, b"x" * 32), b"CLIENT_ERROR opaque token too long\r\n")
    conn.call(b"mg %s v\r\n" % key, b"VA 1\r\n5\r\n")


LONG_OPAQUE = b"O" + b"9" * 32

# An mg whose opaque is too long: memcached finds out while wording the
# reply, so what came before has been done. (id, value stored first or None,
# failing request, check request, check reply, counters the failing request
# moves). Its "locked" flags (N T R l h) delay the bump past the error.
MG_LATE_ERROR_CASES = [
    ("N-before-creates-with-ttl-no-win", None, b"mg {k} N100 {O}\r\n",
     b"mg {k} v t h\r\n", M(b"VA 0 t" + ttl(100) + b" h0\r\n\r\n"), {}),
    ("N-after-creates-without-ttl", None, b"mg {k} {O} N100\r\n",
     b"mg {k} v t h\r\n", b"VA 0 t-1 h0\r\n\r\n", {}),
    ("T-before-touches", b"x", b"mg {k} T100 {O}\r\n",
     b"mg {k} v t h\r\n", M(b"VA 1 t" + ttl(100) + b" h0\r\nx\r\n"), {}),
    ("T-after-does-not", b"x", b"mg {k} {O} T100\r\n",
     b"mg {k} v t h\r\n", b"VA 1 t-1 h0\r\nx\r\n", {}),
    ("plain-hit-is-fetched", b"x", b"mg {k} v {O}\r\n",
     b"mg {k} v t h\r\n", b"VA 1 t-1 h1\r\nx\r\n", {}),
    ("h-hit-is-not", b"x", b"mg {k} h {O}\r\n",
     b"mg {k} v t h\r\n", b"VA 1 t-1 h0\r\nx\r\n", {}),
    ("miss-is-counted", None, b"mg {k} v {O}\r\n",
     b"mg {k} v\r\n", b"EN\r\n", {"cmd_get": 1, "get_misses": 1}),
    ("stale-keeps-its-token", b"x", b"md {k} I\r\nmg {k} {O}\r\n",
     b"mg {k} v\r\n", b"VA 1 X W\r\nx\r\n", {}),
]


@pytest.mark.parametrize("value, request_, probe, reply, moved",
                         [c[1:] for c in MG_LATE_ERROR_CASES],
                         ids=[c[0] for c in MG_LATE_ERROR_CASES])
def test_mg_with_long_opaque_acts_before_failing(private_server, key, value, request_, probe,
                                                 reply, moved):
    with private_server.connect() as c:
        if value is not None:
            c.call(b"ms %s %d\r\n%s\r\n" % (key, len(value), value), b"HD\r\n")
        request_ = request_.replace(b"{O}", LONG_OPAQUE)
        if request_.startswith(b"md "):  # mark it stale first
            first, request_ = request_.split(b"\r\n", 1)
            c.call(fill(first + b"\r\n", key), b"HD\r\n")
        before = c.stats_dict()
        c.call(fill(request_, key), b"CLIENT_ERROR opaque token too long\r\n")
        after = c.stats_dict()
        changed = {n: int(after[n]) - int(before[n]) for n in COUNTER_NAMES
                   if after[n] != before[n]}
        assert changed == moved
        check(c, key, probe, reply)


def test_ma_on_empty_value_is_non_numeric_before_the_cas(conn, key):
    """memcached refuses a 0-byte value before it compares the CAS; other
    non-numbers are compared first."""
    conn.call(b"ms %s 0\r\n\r\n" % key, b"HD\r\n")
    cas = meta_cas(conn, key)
    conn.call(b"ma %s C%d\r\n" % (key, cas + 1), NON_NUMERIC)
    conn.call(b"ma %s C%d q\r\nmn\r\n" % (key, cas + 1), NON_NUMERIC + b"MN\r\n")
    conn.call(b"ma %s C%d N0 MD\r\n" % (key, cas), NON_NUMERIC)
    conn.call(b"incr %s 1\r\n" % key, NON_NUMERIC)
    conn.call(b"ms %s 3\r\nabc\r\n" % key, b"HD\r\n")
    cas = meta_cas(conn, key)
    conn.call(b"ma %s C%d\r\n" % (key, cas + 1), b"EX\r\n")
    conn.call(b"ma %s C%d\r\n" % (key, cas), NON_NUMERIC)


# --- ma -------------------------------------------------------------------------------

MA_CASES = [
    ("miss", [
        (b"ma {k}\r\n", b"NF\r\n"),
        (b"ma {k} v\r\n", b"NF\r\n"),
        (b"ma {k} O1 k\r\n", b"NF O1 k{k}\r\n"),
        (b"ma {k} J7 v\r\n", b"NF\r\n"),  # J without N does not create
    ]),
    ("incr-decr-modes", [
        (b"ms {k} 1\r\n5\r\n", b"HD\r\n"),
        (b"ma {k}\r\n", b"HD\r\n"),
        (b"ma {k} v\r\n", b"VA 1\r\n7\r\n"),
        (b"ma {k} v D10\r\n", b"VA 2\r\n17\r\n"),
        (b"ma {k} v MD D3\r\n", b"VA 2\r\n14\r\n"),
        (b"ma {k} v M- D100\r\n", b"VA 1\r\n0\r\n"),  # decr stops at 0
        (b"ma {k} v M+\r\n", b"VA 1\r\n1\r\n"),
        (b"ma {k} v MI D0\r\n", b"VA 1\r\n1\r\n"),
        (b"mg {k} v\r\n", b"VA 2\r\n1 \r\n"),  # shrunk in place, space-padded
    ]),
    ("return-flags", [
        (b"ms {k} 2 T100\r\n10\r\n", b"HD\r\n"),
        (b"ma {k} v O9 k\r\n", b"VA 2 O9 k{k}\r\n11\r\n"),
        (b"ma {k} t\r\n", M(b"HD t" + ttl(100) + b"\r\n")),
        (b"ma {k} k O9 v\r\n", b"VA 2 k{k} O9\r\n13\r\n"),
        (b"ma {k} f h l s u P L\r\n", b"HD\r\n"),  # accepted, nothing returned
    ]),
    ("T-then-t-and-t-then-T", [  # flags act in request order
        (b"ms {k} 2\r\n10\r\n", b"HD\r\n"),
        (b"ma {k} T100 t v\r\n", b"VA 2 t100\r\n11\r\n"),
        (b"ma {k} t T50 v\r\n", M(b"VA 2 t" + ttl(100) + b"\r\n12\r\n")),
        (b"ma {k} t\r\n", M(b"HD t" + ttl(50) + b"\r\n")),
        (b"ma {k} T0 t\r\n", b"HD t-1\r\n"),
        (b"ma {k} T-1\r\n", b"HD\r\n"),
        (b"mg {k}\r\n", b"EN\r\n"),
    ]),
    ("T-is-lost-when-the-value-grows", [  # bug? the new, longer item keeps the old TTL
        (b"ms {k} 1\r\n9\r\n", b"HD\r\n"),
        (b"ma {k} T100 t v\r\n", b"VA 2 t100\r\n10\r\n"),
        (b"mg {k} t v\r\n", b"VA 2 t-1\r\n10\r\n"),
    ]),
    ("auto-create", [
        (b"ma {k} N0 v\r\n", b"VA 1\r\n0\r\n"),
        (b"ma {k} N0 J9 v\r\n", b"VA 1\r\n1\r\n"),  # J only applies to a miss
    ]),
    ("auto-create-returns-initial-not-delta", [
        (b"ma {k} N0 J7 D5 v\r\n", b"VA 1\r\n7\r\n"),
        (b"mg {k} v f t\r\n", b"VA 1 f0 t-1\r\n7\r\n"),
    ]),
    ("auto-create-in-decr-mode", [
        (b"ma {k} N0 J7 MD v\r\n", b"VA 1\r\n7\r\n"),
        (b"ma {k} N0 J7 MD v\r\n", b"VA 1\r\n6\r\n"),
    ]),
    ("auto-create-ttl", [
        (b"ma {k} N100 J7 t v\r\n", b"VA 1 t100\r\n7\r\n"),
        (b"ma {k} N100 t\r\n", M(b"HD t" + ttl(100) + b"\r\n")),
    ]),
    ("auto-create-largest-initial", [
        (b"ma {k} N0 J18446744073709551615 v\r\n", b"VA 20\r\n18446744073709551615\r\n"),
        (b"ma {k} v\r\n", b"VA 1\r\n0\r\n"),
        (b"mg {k} v\r\n", b"VA 20\r\n0                   \r\n"),  # kept its length
    ]),
    ("shorter-result-is-space-padded", [
        (b"ms {k} 3\r\n100\r\n", b"HD\r\n"),
        (b"ma {k} v MD\r\n", b"VA 2\r\n99\r\n"),
        (b"mg {k} v s\r\n", b"VA 3 s3\r\n99 \r\n"),
        (b"ma {k} v D901\r\n", b"VA 4\r\n1000\r\n"),
    ]),
    ("largest-delta", [
        (b"ms {k} 1\r\n0\r\n", b"HD\r\n"),
        (b"ma {k} v D18446744073709551615\r\n", b"VA 20\r\n18446744073709551615\r\n"),
    ]),
    ("non-numeric", [
        (b"ms {k} 3\r\nabc\r\n", b"HD\r\n"),
        (b"ma {k}\r\n", NON_NUMERIC),
        (b"ma {k} q N0\r\n", NON_NUMERIC),
        (b"mg {k} v\r\n", b"VA 3\r\nabc\r\n"),
    ]),
]


@run_cases(MA_CASES)
def test_ma(conn, key, steps):
    run_meta(conn, key, steps)


def test_ma_cas(conn, key):
    conn.call(b"ms %s 1\r\n5\r\n" % key, b"HD\r\n")
    cas = meta_cas(conn, key)
    conn.call(b"ma %s C%d v\r\n" % (key, cas + 1), b"EX\r\n")
    got = check(conn, key, b"ma {k} C%d c v\r\n" % cas, M(b"VA 1 c\\d+\r\n6\r\n"))
    new = int(got.split(b"\r\n")[0][6:])
    assert new != cas and new == meta_cas(conn, key)
    conn.call(b"ma %s C%d\r\n" % (key, cas), b"EX\r\n")
    conn.call(b"ma %s_miss C%d\r\n" % (key, cas), b"NF\r\n")
    check(conn, key, b"ma {k}_miss N0 c v\r\n", M(b"VA 1 c\\d+\r\n0\r\n"))


# --- md ------------------------------------------------------------------------------

MD_CASES = [
    ("delete", [
        (b"ms {k} 1\r\nx\r\n", b"HD\r\n"),
        (b"md {k}\r\n", b"HD\r\n"),
        (b"md {k}\r\n", b"NF\r\n"),
        (b"mg {k}\r\n", b"EN\r\n"),
    ]),
    ("return-flags", [
        (b"ms {k} 1\r\nx\r\n", b"HD\r\n"),
        (b"md {k} k O1\r\n", b"HD k{k} O1\r\n"),
        (b"md {k} O1 k\r\n", b"NF O1 k{k}\r\n"),
    ]),
    ("flags-accepted-and-ignored-by-md", [
        (b"ms {k} 1\r\nx\r\n", b"HD\r\n"),
        (b"md {k} c f h l s t u v P L N5 R5 D5 J5 F5 M5\r\n", b"HD\r\n"),
        (b"mg {k}\r\n", b"EN\r\n"),
    ]),
    ("T-without-I-is-a-plain-delete", [
        (b"ms {k} 1\r\nx\r\n", b"HD\r\n"),
        (b"md {k} T30\r\n", b"HD\r\n"),
        (b"mg {k}\r\n", b"EN\r\n"),
    ]),
    ("invalidate-marks-stale", [
        (b"ms {k} 3\r\nold\r\n", b"HD\r\n"),
        (b"md {k} I\r\n", b"HD\r\n"),
        (b"mg {k} v\r\n", b"VA 3 X W\r\nold\r\n"),
        (b"mg {k} v\r\n", b"VA 3 Z X\r\nold\r\n"),
        (b"mg {k}\r\n", b"HD Z X\r\n"),
        (b"mg {k} q\r\nmn\r\n", b"HD Z X\r\nMN\r\n"),
        (b"ms {k} 3\r\nnew\r\n", b"HD\r\n"),
        (b"mg {k} v\r\n", b"VA 3\r\nnew\r\n"),
    ]),
    ("invalidate-again-rearms-the-win", [
        (b"ms {k} 1\r\nx\r\n", b"HD\r\n"),
        (b"md {k} I\r\nmd {k} I\r\n", b"HD\r\nHD\r\n"),
        (b"mg {k}\r\nmg {k}\r\n", b"HD X W\r\nHD Z X\r\n"),
        (b"md {k} I q\r\nmn\r\n", b"MN\r\n"),
        (b"mg {k}\r\n", b"HD X W\r\n"),
    ]),
    ("invalidate-with-ttl", [
        (b"ms {k} 1 T100\r\nx\r\n", b"HD\r\n"),
        (b"md {k} I T30\r\n", b"HD\r\n"),
        (b"mg {k} t v\r\n", M(b"VA 1 t" + ttl(30) + b" X W\r\nx\r\n")),
    ]),
    ("invalidate-miss", [
        (b"md {k} I\r\n", b"NF\r\n"),
        (b"md {k} I q\r\n", b"NF\r\n"),
    ]),
    ("stale-item-keeps-stale-through-ma", [
        (b"ms {k} 1\r\n5\r\n", b"HD\r\n"),
        (b"md {k} I\r\n", b"HD\r\n"),
        (b"ma {k} v\r\n", b"VA 1\r\n6\r\n"),
        (b"mg {k} v\r\n", b"VA 1 X W\r\n6\r\n"),
    ]),
    ("append-to-stale-item-makes-a-fresh-one", [
        (b"ms {k} 2\r\nhi\r\n", b"HD\r\n"),
        (b"md {k} I\r\n", b"HD\r\n"),
        (b"ms {k} 2 MA\r\nyo\r\n", b"HD\r\n"),
        (b"mg {k} v\r\n", b"VA 4\r\nhiyo\r\n"),
    ]),
]


@run_cases(MD_CASES)
def test_md(conn, key, steps):
    run_meta(conn, key, steps)


def test_md_cas(conn, key):
    conn.call(b"ms %s 1\r\nx\r\n" % key, b"HD\r\n")
    cas = meta_cas(conn, key)
    conn.call(b"md %s C%d\r\n" % (key, cas + 1), b"EX\r\n")
    conn.call(b"md %s C%d q\r\n" % (key, cas + 1), b"EX\r\n")
    conn.call(b"md %s C%d I\r\n" % (key, cas + 1), b"EX\r\n")
    conn.call(b"md %s C%d I\r\n" % (key, cas), b"HD\r\n")  # mark stale, bump CAS
    bumped = meta_cas(conn, key)
    assert bumped > cas
    conn.call(b"md %s C%d\r\n" % (key, cas), b"EX\r\n")
    conn.call(b"md %s C%d\r\n" % (key, bumped), b"HD\r\n")
    conn.call(b"md %s C%d\r\n" % (key, bumped), b"NF\r\n")


# --- mg N (vivify), R (recache), T (touch) on one connection ------------------------------

MG_WIN_CASES = [
    ("vivify-on-miss", [
        (b"mg {k} N30 v c t\r\n", M(b"VA 0 c\\d+ t30 W\r\n\r\n")),
        (b"mg {k} N30 v t\r\n", M(b"VA 0 t" + ttl(30) + b" Z\r\n\r\n")),
        (b"mg {k} v\r\n", b"VA 0 Z\r\n\r\n"),
        (b"mg {k} q N30\r\nmn\r\n", b"HD Z\r\nMN\r\n"),
        (b"mg {k} s f v\r\n", b"VA 0 s0 f0 Z\r\n\r\n"),
        (b"ms {k} 3 T30\r\nnew\r\n", b"HD\r\n"),
        (b"mg {k} N30 v\r\n", b"VA 3\r\nnew\r\n"),
    ]),
    ("vivify-echoes-k-and-O", [
        (b"mg {k} N30 k O1\r\n", b"HD k{k} O1 W\r\n"),
        (b"mg {k} q N30 k O1\r\n", b"HD k{k} O1 Z\r\n"),
    ]),
    ("vivify-t-before-N-sees-no-ttl", [  # flags act in request order
        (b"mg {k} t N30\r\n", b"HD t-1 W\r\n"),
        (b"mg {k} t\r\n", M(b"HD t" + ttl(30) + b" Z\r\n")),
    ]),
    ("vivify-with-no-ttl", [
        (b"mg {k} N0 t\r\n", b"HD t-1 W\r\n"),
        (b"mg {k} t\r\n", b"HD t-1 Z\r\n"),
    ]),
    ("vivified-item-then-add-and-append", [
        (b"mg {k} N30\r\n", b"HD W\r\n"),
        (b"ms {k} 1 ME\r\nx\r\n", b"NS\r\n"),
        (b"ms {k} 1 MA\r\nx\r\n", b"HD\r\n"),
        (b"mg {k} v\r\n", b"VA 1\r\nx\r\n"),
    ]),
    ("vivified-item-is-not-a-number", [
        (b"mg {k} N30\r\n", b"HD W\r\n"),
        (b"ma {k}\r\n", NON_NUMERIC),
    ]),
    ("vivified-then-invalidated", [
        (b"mg {k} N30\r\n", b"HD W\r\n"),
        (b"md {k} I\r\n", b"HD\r\n"),
        (b"mg {k} v\r\n", b"VA 0 X W\r\n\r\n"),
        (b"mg {k} v\r\n", b"VA 0 Z X\r\n\r\n"),
    ]),
    ("N-on-a-hit-does-nothing", [
        (b"ms {k} 1\r\n5\r\n", b"HD\r\n"),
        (b"mg {k} N30 t\r\n", b"HD t-1\r\n"),
    ]),
    ("recache-when-ttl-below-R", [
        (b"ms {k} 1 T100\r\nx\r\n", b"HD\r\n"),
        (b"mg {k} R30 t\r\n", M(b"HD t" + ttl(100) + b"\r\n")),
        (b"mg {k} R200 t\r\n", M(b"HD t" + ttl(100) + b" W\r\n")),
        (b"mg {k} R200 t\r\n", M(b"HD t" + ttl(100) + b" Z\r\n")),
        (b"mg {k} t\r\n", M(b"HD t" + ttl(100) + b" Z\r\n")),
        (b"ms {k} 1 T100\r\ny\r\n", b"HD\r\n"),
        (b"mg {k} R30 v\r\n", b"VA 1\r\ny\r\n"),
    ]),
    ("recache-never-for-items-without-ttl", [
        (b"ms {k} 1\r\nx\r\n", b"HD\r\n"),
        (b"mg {k} R2592000 t\r\n", b"HD t-1\r\n"),
    ]),
    ("recache-R-and-N-together", [
        (b"ms {k} 1 T10\r\nx\r\n", b"HD\r\n"),
        (b"mg {k} R30 N30 t\r\n", M(b"HD t" + ttl(10) + b" W\r\n")),
        (b"mg {k} R30 N30 t\r\n", M(b"HD t" + ttl(10) + b" Z\r\n")),
    ]),
    ("recache-R-before-T-compares-the-old-ttl", [
        (b"ms {k} 1 T10\r\nx\r\n", b"HD\r\n"),
        (b"mg {k} R30 T100 t\r\n", b"HD t100 W\r\n"),
        (b"mg {k} R30 t\r\n", M(b"HD t" + ttl(100) + b" Z\r\n")),
    ]),
    ("recache-T-before-R-compares-the-new-ttl", [
        (b"ms {k} 1 T10\r\nx\r\n", b"HD\r\n"),
        (b"mg {k} T100 R30 t\r\n", b"HD t100\r\n"),
    ]),
    ("touch", [
        (b"ms {k} 1 T100\r\nx\r\n", b"HD\r\n"),
        (b"mg {k} T60 t\r\n", b"HD t60\r\n"),
        (b"mg {k} t T30\r\n", M(b"HD t" + ttl(60) + b"\r\n")),  # t reports before T acts
        (b"mg {k} t\r\n", M(b"HD t" + ttl(30) + b"\r\n")),
        (b"mg {k} T0 t v\r\n", b"VA 1 t-1\r\nx\r\n"),
        (b"mg {k} T-1\r\n", b"HD\r\n"),
        (b"mg {k}\r\n", b"EN\r\n"),
    ]),
    ("touch-miss", [
        (b"mg {k} T30 v\r\n", b"EN\r\n"),
    ]),
]


@run_cases(MG_WIN_CASES)
def test_mg_win_flags(conn, key, steps):
    run_meta(conn, key, steps)


# --- the clock behind TTLs ---------------------------------------------------------------
# memcached's clock starts at 62 (2 s plus its 60 s update interval) while
# its `uptime` starts at 2: an item created already expired (exptime 1)
# reports the TTL 1 - clock, modulo 2^32, i.e. 2^32 - 59 - uptime.

def test_ttl_of_items_created_already_expired(conn, key):
    def uptime():
        return int(conn.stats_dict()["uptime"])

    conn.call(b"ms %s_t 1\r\nx\r\n" % key, b"HD\r\n")
    low = uptime()
    replies = []
    for request_ in (b"mg {k}_n N-1 t v\r\n", b"mg {k}_t T-1 t\r\n", b"ma {k}_a N-1 t\r\n",
                     b"mg {k}_m N2592001 t\r\n"):
        conn.send(fill(request_, key))
        replies.append(read_meta_reply(conn))
    high = uptime()
    for reply in replies:
        m = re.match(rb"(?:HD|VA 0) t(\d+)(?: W)?\r\n", reply)
        assert m, reply
        assert 2 ** 32 - 59 - high <= int(m.group(1)) <= 2 ** 32 - 59 - low, (reply, low, high)


def test_uptime_starts_at_two(server_factory):
    started = time.monotonic()
    srv = server_factory()
    with srv.connect() as c:
        up = int(c.stats_dict()["uptime"])
    assert 2 <= up <= 3 + (time.monotonic() - started)


# --- base64 keys (b) -----------------------------------------------------------------

def b64(raw):
    return base64.b64encode(raw)


def test_base64_keys(conn, key):
    raw = key + b"\x00\x01 \r\n\xff"
    k = b64(raw)
    run_meta(conn, k, [
        (b"mg {k} b k O1\r\n", b"EN k{k} b O1\r\n"),
        (b"ms {k} 2 b k O1\r\nhi\r\n", b"HD k{k} b O1\r\n"),
        # the echoed key is base64 and is followed by a "b" flag, wherever b was
        (b"mg {k} b k v\r\n", b"VA 2 k{k} b\r\nhi\r\n"),
        (b"mg {k} k v b\r\n", b"VA 2 k{k} b\r\nhi\r\n"),
        (b"mg {k} v\r\n", b"EN\r\n"),  # without b, the base64 text is the key
        (b"md {k} b k O2\r\n", b"HD k{k} b O2\r\n"),
        (b"md {k} b k O2\r\n", b"NF k{k} b O2\r\n"),
        (b"ma {k} b k N0 J5 v\r\n", b"VA 1 k{k} b\r\n5\r\n"),
        (b"md {k} b q\r\nmn\r\n", b"MN\r\n"),
    ])


def test_base64_key_of_text_stored_item_echoes_plain(conn, key):
    """On a hit the echo follows how the item was stored, not the request."""
    conn.call(b"set %s 0 0 1\r\nx\r\n" % key, b"STORED\r\n")
    conn.call(b"mg %s b k v\r\n" % b64(key), b"VA 1 k%s\r\nx\r\n" % key)
    conn.call(b"ms %s 1 b\r\ny\r\n" % b64(key), b"HD\r\n")
    conn.call(b"mg %s k v\r\n" % key, b"VA 1 k%s b\r\ny\r\n" % b64(key))
    conn.call(b"get %s\r\n" % key, b"VALUE %s 0 1\r\ny\r\nEND\r\n" % key)


@pytest.mark.parametrize("encoded", [b"Zm9v==", b"Zm9vYg", b"Ym", b"Y===", b"!!!!"])
def test_base64_invalid(conn, encoded):
    conn.call(b"mg %s b\r\n" % encoded, b"CLIENT_ERROR error decoding key\r\n")


def test_base64_valid_padding(conn, key):
    conn.call(b"mg %s b\r\n" % b64(key + b"x"), b"EN\r\n")


# --- me -------------------------------------------------------------------------------
# memcached's `me` fields: exp (seconds; -1 = no TTL; for a TTL memcached
# prints minus the remaining time, a sign bug), la (seconds since last
# access), cas, fetch (yes/no), cls (slab class), size (item bytes).
# cls, size and la are implementation-specific: format only.

ME_LINE = re.compile(rb"ME (\S+) exp=(-?\d+) la=(\d+) cas=(\d+) fetch=(yes|no) "
                     rb"cls=(\d+) size=(\d+)\r\n")


def me(conn, key, suffix=b""):
    conn.send(b"me %s%s\r\n" % (key, suffix))
    line = conn.read_line()
    m = ME_LINE.fullmatch(line)
    assert m, "malformed me reply %r" % line
    return m


def test_me(conn, key):
    conn.call(b"me %s\r\n" % key, b"EN\r\n")
    conn.call(b"ms %s 2\r\nhi\r\n" % key, b"HD\r\n")
    m = me(conn, key)
    assert m.group(1) == key and m.group(2) == b"-1" and m.group(5) == b"no"
    assert int(m.group(4)) == meta_cas(conn, key)  # mg marks it fetched
    assert me(conn, key).group(5) == b"yes"
    assert me(conn, key, b" x y").group(1) == key  # other arguments are ignored


def test_me_with_ttl(conn, key):
    conn.call(b"ms %s 2 T100\r\nhi\r\n" % key, b"HD\r\n")
    assert me(conn, key).group(2) in (b"-100", b"-99")


def test_me_base64_key(conn, key):
    raw = key + b"\x01\x02"
    conn.call(b"ms %s 1 b\r\nx\r\n" % b64(raw), b"HD\r\n")
    assert me(conn, b64(raw), b" b").group(1) == b64(raw)
    conn.call(b"me %s\r\n" % b64(raw), b"EN\r\n")  # without b: another key


@pytest.mark.parametrize("create", [b"mg {k} b N30\r\n", b"ma {k} b N30\r\n"],
                         ids=["mg-N", "ma-N"])
def test_base64_key_of_auto_created_item_echoes_raw_bytes(conn, key, create):
    """bug? an item created by mg/ma N from a base64 key is not marked as
    having a binary key, so k and me print the decoded bytes, without "b"."""
    raw = key + b"\x01\x02"
    k = b64(raw)
    check(conn, k, create, M(b"HD(?: W)?\r\n"))
    check(conn, k, b"mg {k} b k\r\n", M(re.escape(b"HD k" + raw) + b"(?: Z)?\r\n"))
    assert me(conn, k, b" b").group(1) == raw


# --- counters -----------------------------------------------------------------------
# Which `stats` counters each meta command moves (cmd_meta counts `me` only).

COUNTER_NAMES = ["cmd_meta", "cmd_get", "get_hits", "get_misses", "cmd_set", "cmd_touch",
                 "touch_hits", "touch_misses", "delete_hits", "delete_misses",
                 "incr_hits", "incr_misses", "decr_hits", "decr_misses"]

COUNTER_CASES = [
    ("mn", None, b"mn\r\n", {}),
    ("mg-miss", None, b"mg {k} v\r\n", {"cmd_get": 1, "get_misses": 1}),
    ("mg-hit", b"x", b"mg {k} v\r\n", {"cmd_get": 1, "get_hits": 1}),
    ("mg-touch-hit", b"x", b"mg {k} T30\r\n", {"cmd_touch": 1, "touch_hits": 1}),
    ("mg-touch-miss", None, b"mg {k} T30\r\n", {"cmd_get": 1, "get_misses": 1}),
    ("mg-vivify", None, b"mg {k} N30\r\n", {"cmd_get": 1, "get_hits": 1}),
    ("ms", None, b"ms {k} 1\r\nx\r\n", {"cmd_set": 1}),
    ("md-hit", b"x", b"md {k}\r\n", {"delete_hits": 1}),
    ("md-miss", None, b"md {k}\r\n", {"delete_misses": 1}),
    ("md-invalidate", b"x", b"md {k} I\r\n", {}),
    ("ma-incr-hit", b"1", b"ma {k}\r\n", {"incr_hits": 1}),
    ("ma-decr-hit", b"1", b"ma {k} MD\r\n", {"decr_hits": 1}),
    ("ma-miss", None, b"ma {k}\r\n", {"incr_misses": 1}),
    ("ma-auto-create", None, b"ma {k} N0\r\n", {}),
    ("me", b"x", b"me {k}\r\n", {"cmd_meta": 1}),
    ("me-miss", None, b"me {k}\r\n", {"cmd_meta": 1}),
]


@pytest.mark.parametrize("value, request_, moved", [c[1:] for c in COUNTER_CASES],
                         ids=[c[0] for c in COUNTER_CASES])
def test_counters(private_server, key, value, request_, moved):
    with private_server.connect() as c:
        if value is not None:
            c.call(b"ms %s %d\r\n%s\r\n" % (key, len(value), value), b"HD\r\n")
        before = c.stats_dict()
        c.send(fill(request_, key))
        reply = read_meta_reply(c)
        assert reply and not reply.startswith((b"CLIENT_ERROR", b"ERROR")), reply
        after = c.stats_dict()
        changed = {n: int(after[n]) - int(before[n]) for n in COUNTER_NAMES
                   if after[n] != before[n]}
        assert changed == moved


# --- pipelines -------------------------------------------------------------------------

def meta_pipeline(key):
    request = fill(
        b"ms {k} 1 q\r\nx\r\nmd {k} q\r\nms {k}_n 1 q\r\nx\r\nmd {k}_n q\r\n"
        b"mg {k} v q\r\n"
        b"ms {k} 5 T0 F3 k\r\nhello\r\n"
        b"mg {k} k v f O1 q\r\n"
        b"ma {k}_n N0 J10 v\r\n"
        b"ma {k}_n MD D3 q\r\n"
        b"ms {k} 1 MA q\r\n!\r\n"
        b"mg {k} s v\r\n"
        b"mg {k} x\r\n"
        b"ms {k} 2 q\r\nxyz\r\n"
        b"md {k} I\r\n"
        b"mg {k} v\r\nmg {k}\n"
        b"md {k}_n k O2\r\n"
        b"mn\r\n", key)
    reply = fill(
        b"HD k{k}\r\n"
        b"VA 5 k{k} f3 O1\r\nhello\r\n"
        b"VA 2\r\n10\r\n"
        b"VA 6 s6\r\nhello!\r\n"
        + INVALID_FLAG
        + b"CLIENT_ERROR bad data chunk\r\nERROR\r\n"
        b"HD\r\n"
        b"VA 6 X W\r\nhello!\r\nHD Z X\r\n"
        b"HD k{k}_n O2\r\n"
        b"MN\r\n", key)
    return request, reply


def test_meta_pipeline_in_one_write(conn, key):
    request, reply = meta_pipeline(key)
    conn.call(request, reply)


def test_meta_pipeline_split_at_every_byte(server, key):
    request, reply = meta_pipeline(key)
    with server.connect() as c:
        for i in range(1, len(request)):
            c.send(request[:i])
            time.sleep(0.001)  # let the server see the first part alone
            c.send(request[i:])
            assert c.read_exact(len(reply)) == reply, "split at byte %d" % i
        assert c.version() == expected_version_line()
