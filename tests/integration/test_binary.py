"""memcached binary protocol on the text port: detection by the first byte
of a connection, every opcode memcached 1.6.18 answers, status codes, CAS
and opaque in headers, quiet commands and NOOP fences, STAT groups, SASL
and unknown opcodes, malformed headers, oversized bodies, and input split
at every byte. Every expected response was probed on memcached 1.6.18.

Responses are compared field by field (binproto.Response); CAS uniques are
not fixed by memcached, so they are checked as "zero", "non-zero" or equal
to another response's.
"""

import os
import re
import struct
import subprocess
import time

import pytest

import binproto as bp
from binproto import (ADD, ADDQ, APPEND, APPENDQ, DECREMENT, DECREMENTQ, DELETE, DELETEQ,
                      DONT_CREATE, E2BIG, EINVAL, FLUSH, FLUSHQ, GAT, GATK, GATKQ, GATQ, GET,
                      GETK, GETKQ, GETQ, INCREMENT, INCREMENTQ, KEY_EEXISTS, KEY_ENOENT,
                      NOOP, NOT_STORED, DELTA_BADVAL, PREPEND, PREPENDQ, QUIT, QUITQ,
                      REPLACE, REPLACEQ, SET, SETQ, STAT, SUCCESS, TOUCH, UNKNOWN_COMMAND,
                      VERSION, arith_extras, error_response, expiry_extras, read_response,
                      request, response, storage_extras)
from helpers import (CRLF, IS_MEMCACHED, QUIET_PERIOD, assert_healthy, expected_version_line,
                     parse_stats, process_rss_kb, repo_path)

ITEM_SIZE_MAX = 1024 * 1024  # memcached's default -I 1m
ANY = "any non-zero"         # expected CAS: whatever the server assigned, but not 0
FENCE = 0x0badcafe           # opaque of the NOOP that ends a quiet batch


@pytest.fixture
def bconn(server):
    """A binary connection, checked at teardown to be still in sync (a NOOP
    gets exactly its own response next)."""
    c = server.connect()
    yield c
    try:
        c.send(request(NOOP, opaque=0xfeedf00d))
        assert c.read_exact(bp.HEADER_LEN) == response(NOOP, opaque=0xfeedf00d), \
            "binary connection out of sync at the end of the test"
    finally:
        c.close()


def expect(conn, opcode, status=SUCCESS, key=b"", value=b"", extras=b"", opaque=0, cas=0):
    """Read one response and check every field; cas is an int or ANY."""
    r = read_response(conn)
    assert r is not None, "no response (expected opcode 0x%02x status 0x%04x), got %r" % (
        opcode, status, conn.buf[:100])
    got = (r.magic, r.opcode, r.status, r.datatype, r.extras, r.key, r.value, r.opaque)
    want = (bp.RES_MAGIC, opcode, status, 0, extras, key, value, opaque)
    assert got == want, "got %s" % r.brief()
    if cas is ANY:
        assert r.cas != 0, "CAS 0 in %s" % r.brief()
    else:
        assert r.cas == cas, "CAS %d, expected %d" % (r.cas, cas)
    return r


def expect_error(conn, opcode, status, opaque=0):
    """memcached's error response: the status text as value, CAS 0."""
    return expect(conn, opcode, status, value=bp.ERROR_TEXT[status], opaque=opaque)


def fence(conn):
    """End a batch of quiet commands: the next response must be this NOOP's."""
    conn.send(request(NOOP, opaque=FENCE))
    expect(conn, NOOP, opaque=FENCE)


def flags_of(value):
    return struct.pack(">I", value)


def set_item(conn, key, value, flags=0, exptime=0):
    conn.send(request(SET, key, value, storage_extras(flags, exptime)))
    return expect(conn, SET, cas=ANY).cas


def expect_value(conn, key, value, flags=0, cas=ANY):
    conn.send(request(GET, key))
    return expect(conn, GET, value=value, extras=flags_of(flags), cas=cas)


def expect_missing(conn, key):
    conn.send(request(GET, key))
    expect_error(conn, GET, KEY_ENOENT)


def expect_closed(conn):
    data, how = conn.read_to_eof()
    assert (data, how in ("eof", "reset")) == (b"", True), (data[:200], how)


# --- detection --------------------------------------------------------------------

def test_first_byte_0x80_selects_binary(bconn):
    bconn.send(request(NOOP, opaque=7))
    expect(bconn, NOOP, opaque=7)


def test_other_first_byte_is_text(server):
    with server.connect() as c:
        # 0x81 (a response magic) starts a text command line; the NUL in the
        # header ends the line for memcached's parser.
        c.call(request(GET, b"k", magic=bp.RES_MAGIC) + CRLF, b"ERROR\r\n")
        assert c.version() == expected_version_line()


def test_text_connection_stays_text(conn):
    conn.call(b"version\r\n" + request(GET, b"k") + CRLF,
              expected_version_line() + b"ERROR\r\n")


def test_text_on_binary_connection_closes_it(server, bystander):
    with server.connect() as c:
        c.send(request(NOOP, opaque=1))
        expect(c, NOOP, opaque=1)
        c.send(b"version\r\n" * 3)  # a full header's worth with a bad magic
        expect_closed(c)
    assert_healthy(server, bystander)


def test_both_protocols_on_separate_connections(bconn, conn, key):
    conn.call(b"set %s 7 0 2\r\nhi\r\n" % key, b"STORED\r\n")
    expect_value(bconn, key, b"hi", flags=7)
    bconn.send(request(SET, key, b"bin", storage_extras(9, 0)))
    cas = expect(bconn, SET, cas=ANY).cas
    conn.call(b"gets %s\r\n" % key, b"VALUE %s 9 3 %d\r\nbin\r\nEND\r\n" % (key, cas))
    conn.call(b"mg %s c f v\r\n" % key, b"VA 3 c%d f9\r\nbin\r\n" % cas)


def test_binary_key_readable_with_meta_base64(bconn, conn, key):
    import base64
    raw = key + b"\x00 \r\n\xff"
    set_item(bconn, raw, b"v", flags=3)
    conn.call(b"mg %s b v f\r\n" % base64.b64encode(raw), b"VA 1 f3\r\nv\r\n")
    bconn.send(request(GETK, raw))
    expect(bconn, GETK, key=raw, value=b"v", extras=flags_of(3), cas=ANY)


# --- simple opcodes ------------------------------------------------------------------

def test_noop_echoes_opaque(bconn):
    bconn.send(request(NOOP, opaque=0xffffffff) + request(NOOP, opaque=0))
    expect(bconn, NOOP, opaque=0xffffffff)
    expect(bconn, NOOP)


def test_version(bconn):
    bconn.send(request(VERSION, opaque=0x01020304))
    version = expected_version_line()[len(b"VERSION "):-2]
    expect(bconn, VERSION, value=version, opaque=0x01020304)


def test_request_datatype_and_vbucket_are_ignored(bconn, key):
    set_item(bconn, key, b"v")
    bconn.send(request(GET, key, datatype=1, vbucket=5, opaque=3))
    expect(bconn, GET, value=b"v", extras=flags_of(0), opaque=3, cas=ANY)


@pytest.mark.parametrize("opcode", [QUIT, QUITQ], ids=["QUIT", "QUITQ"])
def test_quit_answers_earlier_commands_then_closes(server, key, opcode):
    with server.connect() as c:
        c.send(request(SET, key, b"v", storage_extras()) + request(GET, key, opaque=1)
               + request(opcode, opaque=2) + request(NOOP, opaque=3))
        expect(c, SET, cas=ANY)
        expect(c, GET, value=b"v", extras=flags_of(0), opaque=1, cas=ANY)
        if opcode == QUIT:
            expect(c, QUIT, opaque=2)
        expect_closed(c)  # the NOOP after it is never answered


# --- get family -----------------------------------------------------------------------

def test_get_miss(bconn, key):
    bconn.send(request(GET, key, opaque=5) + request(GETK, key, opaque=6))
    expect_error(bconn, GET, KEY_ENOENT, opaque=5)
    expect(bconn, GETK, KEY_ENOENT, key=key, opaque=6)  # key echoed, no text
    bconn.send(request(GETQ, key, opaque=7) + request(GETKQ, key, opaque=8))
    fence(bconn)


def test_get_hit(bconn, key):
    cas = set_item(bconn, key, b"hello", flags=42)
    bconn.send(request(GET, key, opaque=1) + request(GETK, key, opaque=2)
               + request(GETQ, key, opaque=3) + request(GETKQ, key, opaque=4))
    extras = flags_of(42)
    expect(bconn, GET, value=b"hello", extras=extras, opaque=1, cas=cas)
    expect(bconn, GETK, key=key, value=b"hello", extras=extras, opaque=2, cas=cas)
    # Quiet gets answer hits, under their own opcode.
    expect(bconn, GETQ, value=b"hello", extras=extras, opaque=3, cas=cas)
    expect(bconn, GETKQ, key=key, value=b"hello", extras=extras, opaque=4, cas=cas)


def test_values_and_flags(bconn, key):
    for value, flags in [(b"", 0), (b"\x00\r\n\xff", 0xffffffff), (b"x" * 100000, 1)]:
        cas = set_item(bconn, key, value, flags)
        expect_value(bconn, key, value, flags, cas)


def test_multiget_with_getkq_and_noop(bconn, key):
    keys = [key + b"_%d" % i for i in range(10)]
    for k in keys[::2]:
        set_item(bconn, k, b"v" + k)
    bconn.send(b"".join(request(GETKQ, k, opaque=i) for i, k in enumerate(keys))
               + request(NOOP, opaque=FENCE))
    for i, k in list(enumerate(keys))[::2]:
        expect(bconn, GETKQ, key=k, value=b"v" + k, extras=flags_of(0), opaque=i, cas=ANY)
    expect(bconn, NOOP, opaque=FENCE)


def test_key_of_250_bytes(bconn):
    k = b"L" * 250
    set_item(bconn, k, b"v")
    bconn.send(request(GETK, k))
    expect(bconn, GETK, key=k, value=b"v", extras=flags_of(0), cas=ANY)
    bconn.send(request(DELETE, k))
    expect(bconn, DELETE)


# --- storage commands --------------------------------------------------------------------

# (opcode, key exists, status, value afterwards or None); old value "old"
# with flags 1, new "new" with flags 2.
STORE_CASES = [
    (SET, True, SUCCESS, b"new"), (SET, False, SUCCESS, b"new"),
    (ADD, True, KEY_EEXISTS, b"old"), (ADD, False, SUCCESS, b"new"),
    (REPLACE, True, SUCCESS, b"new"), (REPLACE, False, KEY_ENOENT, None),
    (APPEND, True, SUCCESS, b"oldnew"), (APPEND, False, NOT_STORED, None),
    (PREPEND, True, SUCCESS, b"newold"), (PREPEND, False, NOT_STORED, None),
]
QUIET = {SET: SETQ, ADD: ADDQ, REPLACE: REPLACEQ, APPEND: APPENDQ, PREPEND: PREPENDQ,
         DELETE: DELETEQ, INCREMENT: INCREMENTQ, DECREMENT: DECREMENTQ, GET: GETQ,
         GETK: GETKQ, GAT: GATQ, GATK: GATKQ, FLUSH: FLUSHQ, QUIT: QUITQ}
NAMES = {SET: "SET", ADD: "ADD", REPLACE: "REPLACE", APPEND: "APPEND", PREPEND: "PREPEND"}


def store_request(opcode, key, value, flags=0, opaque=0, cas=0):
    base = opcode if opcode in NAMES else next(k for k, v in QUIET.items() if v == opcode)
    extras = b"" if base in (APPEND, PREPEND) else storage_extras(flags, 0)
    return request(opcode, key, value, extras, opaque=opaque, cas=cas)


@pytest.mark.parametrize("quiet", [False, True], ids=["loud", "quiet"])
@pytest.mark.parametrize("opcode, exists, status, after", STORE_CASES,
                         ids=["%s-%s" % (NAMES[c[0]], "hit" if c[1] else "miss")
                              for c in STORE_CASES])
def test_storage_command(bconn, key, opcode, exists, status, after, quiet):
    if exists:
        set_item(bconn, key, b"old", flags=1)
    op = QUIET[opcode] if quiet else opcode
    bconn.send(store_request(op, key, b"new", flags=2, opaque=77))
    if status != SUCCESS:
        expect_error(bconn, op, status, opaque=77)
    elif not quiet:
        expect(bconn, op, opaque=77, cas=ANY)
    fence(bconn)  # quiet success: nothing before the fence
    if after is None:
        expect_missing(bconn, key)
    else:
        # append/prepend keep the old flags; the others set them
        flags = 1 if opcode in (APPEND, PREPEND) or status != SUCCESS else 2
        expect_value(bconn, key, after, flags)


def test_set_returns_the_new_cas(bconn, key):
    cas1 = set_item(bconn, key, b"a")
    cas2 = set_item(bconn, key, b"b")
    assert cas2 != cas1
    expect_value(bconn, key, b"b", cas=cas2)
    bconn.send(request(APPEND, key, b"c"))
    cas3 = expect(bconn, APPEND, cas=ANY).cas
    assert cas3 not in (cas1, cas2)
    expect_value(bconn, key, b"bc", cas=cas3)


def test_expiration_in_set(bconn, conn, key):
    set_item(bconn, key, b"v", exptime=2592001)  # absolute time in 1970: expired
    expect_missing(bconn, key)
    set_item(bconn, key, b"v", exptime=0xffffffff)  # unsigned: year 2106, kept
    expect_value(bconn, key, b"v")
    assert remaining_ttl(conn, key) > 10**9
    set_item(bconn, key, b"v", exptime=100)
    assert 90 < remaining_ttl(conn, key) <= 100


# --- CAS in headers -------------------------------------------------------------------

def test_cas_in_set_replace_append_prepend_delete(bconn, key):
    cas = set_item(bconn, key, b"v1")
    for opcode in (SET, SETQ, REPLACE, REPLACEQ, APPEND, APPENDQ, PREPEND, PREPENDQ):
        bconn.send(store_request(opcode, key, b"x", cas=cas + 1000, opaque=opcode))
        expect_error(bconn, opcode, KEY_EEXISTS, opaque=opcode)
    bconn.send(request(DELETE, key, cas=cas + 1000))
    expect_error(bconn, DELETE, KEY_EEXISTS)
    bconn.send(request(INCREMENT, key, extras=arith_extras(1, 0, 0), cas=cas + 1000))
    expect_error(bconn, INCREMENT, KEY_EEXISTS)
    expect_value(bconn, key, b"v1", cas=cas)

    bconn.send(store_request(APPEND, key, b"+a", cas=cas))
    cas = expect(bconn, APPEND, cas=ANY).cas
    bconn.send(store_request(PREPEND, key, b"p+", cas=cas))
    cas = expect(bconn, PREPEND, cas=ANY).cas
    bconn.send(store_request(REPLACE, key, b"r", flags=4, cas=cas))
    cas = expect(bconn, REPLACE, cas=ANY).cas
    bconn.send(store_request(SETQ, key, b"s", flags=5, cas=cas))
    fence(bconn)
    cas = expect_value(bconn, key, b"s", flags=5).cas
    bconn.send(request(DELETE, key, cas=cas))
    expect(bconn, DELETE)
    expect_missing(bconn, key)


def test_cas_on_missing_key(bconn, key):
    for opcode in (SET, REPLACE):
        bconn.send(store_request(opcode, key, b"x", cas=12345))
        expect_error(bconn, opcode, KEY_ENOENT)
    # add with a CAS is a compare-and-swap too (bug?): not found on a miss
    bconn.send(store_request(ADD, key, b"x", cas=12345))
    expect_error(bconn, ADD, KEY_ENOENT)
    for opcode in (APPEND, PREPEND):
        bconn.send(store_request(opcode, key, b"x", cas=12345))
        expect_error(bconn, opcode, NOT_STORED)
    bconn.send(request(DELETE, key, cas=12345))
    expect_error(bconn, DELETE, KEY_ENOENT)
    expect_missing(bconn, key)


def test_add_with_matching_cas_replaces(bconn, key):
    """bug? ADD with a CAS behaves as a CAS store: it succeeds on an existing
    item whose CAS matches."""
    cas = set_item(bconn, key, b"old")
    bconn.send(store_request(ADD, key, b"new", flags=3, cas=cas))
    expect(bconn, ADD, cas=ANY)
    expect_value(bconn, key, b"new", flags=3)


def test_incr_with_matching_cas(bconn, key):
    cas = set_item(bconn, key, b"5")
    bconn.send(request(INCREMENT, key, extras=arith_extras(1, 0, 0), cas=cas))
    new = expect(bconn, INCREMENT, value=struct.pack(">Q", 6), cas=ANY).cas
    assert new != cas
    expect_value(bconn, key, b"6", cas=new)
    # a CAS is ignored when the miss creates the item
    bconn.send(request(INCREMENT, key + b"_new", extras=arith_extras(1, 7, 0), cas=12345))
    expect(bconn, INCREMENT, value=struct.pack(">Q", 7), cas=ANY)


@pytest.mark.parametrize("opcode", [INCREMENT, DECREMENT], ids=["INCREMENT", "DECREMENT"])
def test_incr_on_empty_value_is_non_numeric_before_the_cas(bconn, key, opcode):
    """memcached refuses a 0-byte value before it compares the CAS; any
    other non-number only after it."""
    cas = set_item(bconn, key, b"")
    for cas_in in (cas + 1, cas):
        bconn.send(request(opcode, key, extras=arith_extras(1, 0, 0), cas=cas_in, opaque=3))
        expect_error(bconn, opcode, DELTA_BADVAL, opaque=3)
    cas = set_item(bconn, key, b"abc")
    bconn.send(request(opcode, key, extras=arith_extras(1, 0, 0), cas=cas + 1, opaque=4)
               + request(opcode, key, extras=arith_extras(1, 0, 0), cas=cas, opaque=5))
    expect_error(bconn, opcode, KEY_EEXISTS, opaque=4)
    expect_error(bconn, opcode, DELTA_BADVAL, opaque=5)


# --- delete -------------------------------------------------------------------------

def test_delete(bconn, key):
    set_item(bconn, key, b"v")
    bconn.send(request(DELETE, key, opaque=1) + request(DELETE, key, opaque=2))
    expect(bconn, DELETE, opaque=1)  # CAS 0 on a delete
    expect_error(bconn, DELETE, KEY_ENOENT, opaque=2)
    set_item(bconn, key, b"v")
    bconn.send(request(DELETEQ, key, opaque=3) + request(DELETEQ, key, opaque=4))
    expect_error(bconn, DELETEQ, KEY_ENOENT, opaque=4)
    fence(bconn)


# --- increment / decrement -------------------------------------------------------------

def counter(n):
    return struct.pack(">Q", n)


# (initial stored value or None, opcode, delta, initial, expiration,
#  status, returned number, stored value afterwards)
ARITH_CASES = [
    ("incr", b"10", INCREMENT, 5, 0, 0, SUCCESS, 15, b"15"),
    ("decr", b"10", DECREMENT, 3, 0, 0, SUCCESS, 7, b"7 "),
    ("decr-floor", b"10", DECREMENT, 100, 0, 0, SUCCESS, 0, b"0 "),
    ("incr-wraps", b"18446744073709551615", INCREMENT, 2, 0, 0, SUCCESS, 1,
     b"1" + b" " * 19),
    ("incr-grows", b"99", INCREMENT, 1, 0, 0, SUCCESS, 100, b"100"),
    ("incr-non-numeric", b"abc", INCREMENT, 1, 0, 0, DELTA_BADVAL, None, b"abc"),
    ("decr-non-numeric", b"-5", DECREMENT, 1, 0, 0, DELTA_BADVAL, None, b"-5"),
    ("incr-miss-creates", None, INCREMENT, 5, 10, 0, SUCCESS, 10, b"10"),
    ("decr-miss-creates", None, DECREMENT, 5, 10, 0, SUCCESS, 10, b"10"),
    ("incr-miss-creates-largest", None, INCREMENT, 1, 2**64 - 1, 0, SUCCESS, 2**64 - 1,
     b"18446744073709551615"),
    ("incr-miss-with-ttl", None, INCREMENT, 1, 7, 100, SUCCESS, 7, b"7"),
    ("incr-miss-dont-create", None, INCREMENT, 1, 7, DONT_CREATE, KEY_ENOENT, None, None),
    ("decr-miss-dont-create", None, DECREMENT, 1, 7, DONT_CREATE, KEY_ENOENT, None, None),
    ("incr-hit-ignores-initial", b"3", INCREMENT, 1, 100, DONT_CREATE, SUCCESS, 4, b"4"),
]


@pytest.mark.parametrize("quiet", [False, True], ids=["loud", "quiet"])
@pytest.mark.parametrize("stored, opcode, delta, initial, exptime, status, number, after",
                         [c[1:] for c in ARITH_CASES], ids=[c[0] for c in ARITH_CASES])
def test_incr_decr(bconn, key, stored, opcode, delta, initial, exptime, status, number,
                   after, quiet):
    if stored is not None:
        set_item(bconn, key, stored)
    op = QUIET[opcode] if quiet else opcode
    bconn.send(request(op, key, extras=arith_extras(delta, initial, exptime), opaque=9))
    if status != SUCCESS:
        expect_error(bconn, op, status, opaque=9)
    elif not quiet:
        r = expect(bconn, op, value=counter(number), opaque=9, cas=ANY)
    fence(bconn)
    if after is None:
        expect_missing(bconn, key)
    else:
        got = expect_value(bconn, key, after)
        if status == SUCCESS and not quiet:
            assert got.cas == r.cas


def test_incr_created_item_expires(bconn, key):
    bconn.send(request(INCREMENT, key, extras=arith_extras(1, 7, 2592001)))
    expect(bconn, INCREMENT, value=counter(7), cas=ANY)  # created already expired
    expect_missing(bconn, key)


# --- touch and get-and-touch ---------------------------------------------------------------

@pytest.mark.parametrize("opcode", [TOUCH, GAT, GATQ, GATK, GATKQ],
                         ids=["TOUCH", "GAT", "GATQ", "GATK", "GATKQ"])
def test_touch_family_hit(bconn, key, opcode):
    cas = set_item(bconn, key, b"val", flags=5, exptime=100)
    bconn.send(request(opcode, key, extras=expiry_extras(0), opaque=8))
    value = b"" if opcode == TOUCH else b"val"
    k = key if opcode in (GATK, GATKQ) else b""
    # the item's flags and (unchanged) CAS come back
    expect(bconn, opcode, key=k, value=value, extras=flags_of(5), opaque=8, cas=cas)
    expect_value(bconn, key, b"val", flags=5, cas=cas)


def test_touch_family_miss(bconn, key):
    bconn.send(request(TOUCH, key, extras=expiry_extras(0), opaque=1)
               + request(GAT, key, extras=expiry_extras(0), opaque=2)
               + request(GATK, key, extras=expiry_extras(0), opaque=3)
               + request(GATQ, key, extras=expiry_extras(0), opaque=4)
               + request(GATKQ, key, extras=expiry_extras(0), opaque=5))
    expect_error(bconn, TOUCH, KEY_ENOENT, opaque=1)
    expect_error(bconn, GAT, KEY_ENOENT, opaque=2)
    expect(bconn, GATK, KEY_ENOENT, key=key, opaque=3)
    fence(bconn)


@pytest.mark.parametrize("opcode", [TOUCH, GAT, GATK], ids=["TOUCH", "GAT", "GATK"])
def test_touch_family_sets_expiration(bconn, conn, key, opcode):
    set_item(bconn, key, b"v")
    bconn.send(request(opcode, key, extras=expiry_extras(2592001)))  # absolute, in 1970
    expect(bconn, opcode, key=key if opcode == GATK else b"",
           value=b"" if opcode == TOUCH else b"v", extras=flags_of(0), cas=ANY)
    expect_missing(bconn, key)
    set_item(bconn, key, b"v", exptime=100)
    bconn.send(request(opcode, key, extras=expiry_extras(0xffffffff)))  # year 2106
    expect(bconn, opcode, key=key if opcode == GATK else b"",
           value=b"" if opcode == TOUCH else b"v", extras=flags_of(0), cas=ANY)
    assert remaining_ttl(conn, key) > 10**9


def remaining_ttl(conn, key):
    conn.send(b"mg %s t\r\n" % key)
    line = conn.read_line()
    m = re.fullmatch(rb"HD t(-?\d+)\r\n", line)
    assert m, line
    return int(m.group(1))


# --- quiet commands in a pipeline ------------------------------------------------------------

def test_quiet_pipeline_answers_only_failures_and_hits(bconn, key):
    k1, k2, k3 = key + b"_1", key + b"_2", key + b"_3"
    bconn.send(
        request(SETQ, k1, b"a", storage_extras(), opaque=1)
        + request(ADDQ, k2, b"a", storage_extras(), opaque=2)
        + request(REPLACEQ, k1, b"b", storage_extras(), opaque=3)
        + request(APPENDQ, k1, b"c", opaque=4)
        + request(PREPENDQ, k1, b"d", opaque=5)
        + request(SETQ, k3, b"5", storage_extras(), opaque=6)
        + request(INCREMENTQ, k3, extras=arith_extras(1, 0, 0), opaque=7)
        + request(DECREMENTQ, k3, extras=arith_extras(2, 0, 0), opaque=8)
        + request(DELETEQ, k2, opaque=9)
        + request(GETKQ, k1, opaque=10) + request(GETKQ, k2, opaque=11)
        + request(GETKQ, k3, opaque=12)
        + request(ADDQ, k1, b"x", storage_extras(), opaque=13)
        + request(REPLACEQ, k2, b"x", storage_extras(), opaque=14)
        + request(APPENDQ, k2, b"x", opaque=15)
        + request(INCREMENTQ, k1, extras=arith_extras(1, 0, 0), opaque=16)
        + request(DECREMENTQ, k2, extras=arith_extras(1, 0, DONT_CREATE), opaque=17)
        + request(DELETEQ, k2, opaque=18)
        + request(SETQ, k1, b"x", storage_extras(), cas=1, opaque=19)
        + request(NOOP, opaque=20))
    expect(bconn, GETKQ, key=k1, value=b"dbc", extras=flags_of(0), opaque=10, cas=ANY)
    expect(bconn, GETKQ, key=k3, value=b"4", extras=flags_of(0), opaque=12, cas=ANY)
    expect_error(bconn, ADDQ, KEY_EEXISTS, opaque=13)
    expect_error(bconn, REPLACEQ, KEY_ENOENT, opaque=14)
    expect_error(bconn, APPENDQ, NOT_STORED, opaque=15)
    expect_error(bconn, INCREMENTQ, DELTA_BADVAL, opaque=16)
    expect_error(bconn, DECREMENTQ, KEY_ENOENT, opaque=17)
    expect_error(bconn, DELETEQ, KEY_ENOENT, opaque=18)
    expect_error(bconn, SETQ, KEY_EEXISTS, opaque=19)
    expect(bconn, NOOP, opaque=20)


# --- flush -------------------------------------------------------------------------------

def test_flush(private_server, key):
    with private_server.connect() as c:
        for opcode in (FLUSH, FLUSHQ):
            set_item(c, key, b"v")
            c.send(request(opcode, opaque=5))
            if opcode == FLUSH:
                expect(c, FLUSH, opaque=5)
            fence(c)
            expect_missing(c, key)
            set_item(c, key, b"after")  # items stored after an immediate flush live
            expect_value(c, key, b"after")


def test_flush_with_delay(private_server, key):
    with private_server.connect() as c:
        set_item(c, key + b"_1", b"v")
        set_item(c, key + b"_2", b"v")
        c.send(request(FLUSH, extras=expiry_extras(3), opaque=6)
               + request(FLUSHQ, extras=expiry_extras(3), opaque=7))
        expect(c, FLUSH, opaque=6)
        fence(c)
        expect_value(c, key + b"_1", b"v")
        time.sleep(3.1)
        expect_missing(c, key + b"_1")
        expect_missing(c, key + b"_2")


LONG_AGO = 1000000000  # an absolute exptime (2001), before any server started


def flush(conn, delay=None, opaque=6):
    conn.send(request(FLUSH, extras=b"" if delay is None else expiry_extras(delay),
                      opaque=opaque))
    expect(conn, FLUSH, opaque=opaque)


def test_flush_never_brings_flushed_items_back(server_factory, key):
    """memcached keeps a single cutoff that each flush overwrites: a delayed
    flush, or one at a time before its start, after an immediate one brings
    the items the first hid back (until the delayed one comes). strata keeps
    them flushed (docs/COMPATIBILITY.md)."""
    srv = server_factory()  # a pending flush must not reach other tests
    with srv.connect() as c:
        set_item(c, key + b"_a", b"v")
        flush(c)
        flush(c, 100)
        if IS_MEMCACHED:
            expect_value(c, key + b"_a", b"v")
        else:
            expect_missing(c, key + b"_a")
        set_item(c, key + b"_b", b"v")
        flush(c)
        flush(c, LONG_AGO)
        if IS_MEMCACHED:
            expect_value(c, key + b"_b", b"v")
        else:
            expect_missing(c, key + b"_b")


def test_flush_at_a_time_before_the_start(server_factory, key):
    """Nothing was stored before the server started, so nothing is flushed;
    a pending delayed flush is dropped, as by any later flush."""
    srv = server_factory()
    with srv.connect() as c:
        set_item(c, key + b"_a", b"v")
        flush(c, LONG_AGO)
        expect_value(c, key + b"_a", b"v")
        started = time.monotonic()
        flush(c, 2)
        flush(c, LONG_AGO)
        time.sleep(max(0.0, 2.5 - (time.monotonic() - started)))
        expect_value(c, key + b"_a", b"v")


def test_flush_in_one_second(server_factory, key):
    """A flush delayed by 1 s: memcached acts a clock tick early, so at
    once, and hides what is stored until its clock ticks too (here: while
    its `time` stat has not changed). strata flushes when its clock reaches
    the time, and keeps what is stored after that (docs/COMPATIBILITY.md)."""
    srv = server_factory()
    with srv.connect() as c, srv.connect() as text:
        for _ in range(5):  # until one attempt falls within one memcached second
            set_item(c, key, b"old")
            before = text.stats_dict()["time"]
            flush(c, 1)
            set_item(c, key, b"new")
            c.send(request(GET, key))
            r = read_response(c)
            if text.stats_dict()["time"] == before:
                break
        assert r is not None
        if IS_MEMCACHED:
            assert (r.opcode, r.status) == (GET, KEY_ENOENT), r.brief()
        else:
            assert (r.opcode, r.status, r.value) == (GET, SUCCESS, b"new"), r.brief()


# --- stat ---------------------------------------------------------------------------------

def read_stats(conn, group, opaque):
    """STAT group -> [(name, value)] up to the terminating empty packet,
    checking every packet's header."""
    conn.send(request(STAT, group, opaque=opaque))
    out = []
    for _ in range(10000):
        r = read_response(conn)
        assert r is not None, "STAT %r reply ended early" % group
        assert (r.magic, r.opcode, r.status, r.extras, r.opaque, r.cas) == \
            (bp.RES_MAGIC, STAT, SUCCESS, b"", opaque, 0), r.brief()
        if r.key == b"":
            assert r.value == b""
            return out
        out.append((r.key.decode(), r.value.decode()))
    raise AssertionError("no terminating packet")


def test_stat_general_matches_text_stats(bconn, conn):
    pairs = read_stats(bconn, b"", opaque=42)
    text = parse_stats(conn.stats())
    assert [n for n, _ in pairs] == list(text)  # same names, same order
    stats = dict(pairs)
    assert stats["pid"] == text["pid"] and stats["version"] == text["version"]
    assert all(re.fullmatch(r"\S+", v) for v in stats.values())


@pytest.mark.parametrize("group", [b"settings", b"items", b"slabs", b"sizes"])
def test_stat_groups_match_text(bconn, conn, key, group):
    set_item(bconn, key, b"v")
    pairs = read_stats(bconn, group, opaque=7)
    text = parse_stats(conn.stats(group))
    assert pairs and [n for n, _ in pairs] == list(text)
    if group == b"sizes":
        assert pairs == [("sizes_status", "disabled")]


def test_stat_settings_prefix(bconn):
    """bug? memcached compares only the group's length: "settingsX" is
    "settings"."""
    assert [n for n, _ in read_stats(bconn, b"settingsX", 1)] == \
        [n for n, _ in read_stats(bconn, b"settings", 1)]


@pytest.mark.parametrize("group", [b"conns", b"detail", b"foo", b"itemsx", b"cachedump 1 1",
                                   b"Settings"])
def test_stat_unknown_group_is_not_found(bconn, group):
    bconn.send(request(STAT, group, opaque=3))
    expect_error(bconn, STAT, KEY_ENOENT, opaque=3)


@pytest.mark.parametrize("group", [b"reset", b"resetx"], ids=["reset", "reset-prefix"])
def test_stat_reset(private_server, key, group):
    with private_server.connect() as c:
        set_item(c, key, b"v")
        expect_value(c, key, b"v")
        assert read_stats(c, group, opaque=9) == []  # just the terminator
        stats = dict(read_stats(c, b"", opaque=1))
        assert (stats["get_hits"], stats["cmd_set"], stats["total_items"]) == ("0", "0", "0")
        assert stats["curr_items"] != "0"  # gauges are kept


# --- SASL and unknown opcodes ---------------------------------------------------------------

def test_sasl_opcodes_are_unknown_commands(bconn):
    bconn.send(request(bp.SASL_LIST_MECHS, opaque=1)
               + request(bp.SASL_AUTH, b"PLAIN", b"\x00user\x00pass", opaque=2)
               + request(bp.SASL_STEP, b"PLAIN", b"\x00user\x00pass", opaque=3))
    expect_error(bconn, bp.SASL_LIST_MECHS, UNKNOWN_COMMAND, opaque=1)
    expect_error(bconn, bp.SASL_AUTH, UNKNOWN_COMMAND, opaque=2)
    expect_error(bconn, bp.SASL_STEP, UNKNOWN_COMMAND, opaque=3)
    fence(bconn)  # the SASL data was skipped exactly


# 0x1b VERBOSITY, 0x1f..0x22 SASL/RGET, 0x25.. and up are not implemented
UNKNOWN_OPCODES = [0x1b, 0x1f, 0x25, 0x30, 0x3d, 0x50, 0xfe, 0xff]


@pytest.mark.parametrize("opcode", UNKNOWN_OPCODES, ids=lambda o: "0x%02x" % o)
def test_unknown_opcode(bconn, opcode):
    bconn.send(request(opcode, opaque=4) + request(opcode, value=b"body", opaque=5))
    expect_error(bconn, opcode, UNKNOWN_COMMAND, opaque=4)
    expect_error(bconn, opcode, UNKNOWN_COMMAND, opaque=5)
    fence(bconn)


def test_unknown_opcode_with_key_skips_too_much(bconn):
    """bug? memcached skips the whole body length *after* the key and
    extras: an unknown packet with a key and extras eats that many bytes of
    what follows."""
    bconn.send(request(0x50, b"abc", b"defg", b"ex", opaque=4) + b"P" * 5)
    expect_error(bconn, 0x50, UNKNOWN_COMMAND, opaque=4)
    fence(bconn)


# --- malformed headers ------------------------------------------------------------------------

OPQ = 0x11223344
# (id, packet, status): memcached answers with the error (opcode and opaque
# echoed) and closes the connection.
MALFORMED = [
    ("set-without-extras", request(SET, b"k", b"v", opaque=OPQ), EINVAL),
    ("set-extras-4", request(SET, b"k", b"v", b"\0" * 4, opaque=OPQ), EINVAL),
    ("set-without-key", request(SET, b"", b"v", storage_extras(), opaque=OPQ), EINVAL),
    ("setq-without-extras", request(SETQ, b"k", b"v", opaque=OPQ), EINVAL),
    ("add-extras-12", request(ADD, b"k", b"v", b"\0" * 12, opaque=OPQ), EINVAL),
    ("get-with-extras", request(GET, b"k", extras=b"\0" * 4, opaque=OPQ), EINVAL),
    ("get-without-key", request(GET, opaque=OPQ), EINVAL),
    ("get-with-value", request(GET, b"k", b"v", opaque=OPQ), EINVAL),
    ("get-bodylen-huge", request(GET, b"k", bodylen=0xfffffff0, opaque=OPQ), EINVAL),
    ("delete-bodylen-huge", request(DELETE, b"k", bodylen=0x80000001, opaque=OPQ), EINVAL),
    ("getq-with-value", request(GETQ, b"k", b"v", opaque=OPQ), EINVAL),
    ("getk-without-key", request(GETK, opaque=OPQ), EINVAL),
    ("delete-with-extras", request(DELETE, b"k", extras=b"\0" * 4, opaque=OPQ), EINVAL),
    ("delete-with-value", request(DELETE, b"k", b"v", opaque=OPQ), EINVAL),
    ("delete-without-key", request(DELETE, opaque=OPQ), EINVAL),
    ("incr-without-extras", request(INCREMENT, b"k", opaque=OPQ), EINVAL),
    ("incr-extras-8", request(INCREMENT, b"k", extras=b"\0" * 8, opaque=OPQ), EINVAL),
    ("incr-with-value", request(INCREMENT, b"k", b"1", arith_extras(), opaque=OPQ), EINVAL),
    ("decrq-without-key", request(DECREMENTQ, extras=arith_extras(), opaque=OPQ), EINVAL),
    ("append-with-extras", request(APPEND, b"k", b"v", b"\0" * 8, opaque=OPQ), EINVAL),
    ("append-without-key", request(APPEND, b"", b"v", opaque=OPQ), EINVAL),
    ("noop-with-value", request(NOOP, value=b"v", opaque=OPQ), EINVAL),
    ("noop-with-key", request(NOOP, b"k", opaque=OPQ), EINVAL),
    ("version-with-value", request(VERSION, value=b"v", opaque=OPQ), EINVAL),
    ("quit-with-value", request(QUIT, value=b"v", opaque=OPQ), EINVAL),
    ("flush-extras-5", request(FLUSH, extras=b"\0" * 5, opaque=OPQ), EINVAL),
    ("flush-with-key", request(FLUSH, b"k", opaque=OPQ), EINVAL),
    ("stat-with-extras", request(STAT, extras=b"\0" * 4, opaque=OPQ), EINVAL),
    ("touch-without-extras", request(TOUCH, b"k", opaque=OPQ), EINVAL),
    ("touch-without-key", request(TOUCH, extras=expiry_extras(0), opaque=OPQ), EINVAL),
    ("gat-extras-8", request(GAT, b"k", extras=b"\0" * 8, opaque=OPQ), EINVAL),
    ("gatkq-without-extras", request(GATKQ, b"k", opaque=OPQ), EINVAL),
    ("get-key-251", request(GET, b"k" * 251, opaque=OPQ), EINVAL),
    ("set-key-251", request(SET, b"k" * 251, b"v", storage_extras(), opaque=OPQ), EINVAL),
    ("sasl-list-with-key", request(bp.SASL_LIST_MECHS, b"k", opaque=OPQ), EINVAL),
    ("sasl-auth-without-key", request(bp.SASL_AUTH, value=b"v", opaque=OPQ), EINVAL),
    # body length smaller than key + extras (all of key and extras are sent)
    ("get-body-shorter-than-key", request(GET, b"k" * 10, bodylen=5, opaque=OPQ),
     UNKNOWN_COMMAND),
    ("set-body-shorter-than-key-and-extras",
     request(SET, b"k", b"", storage_extras(), bodylen=8, opaque=OPQ), UNKNOWN_COMMAND),
    ("unknown-body-shorter-than-key", request(0x50, b"abc", bodylen=1, opaque=OPQ),
     UNKNOWN_COMMAND),
]


@pytest.mark.parametrize("packet, status", [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_malformed_header_gets_error_and_close(server, bystander, packet, status):
    with server.connect() as c:
        c.send(packet + request(NOOP, opaque=1))
        expect_error(c, packet[1], status, opaque=OPQ)
        expect_closed(c)
    assert_healthy(server, bystander)


def test_malformed_header_after_good_ones(server, bystander, key):
    """Replies to the packets before it were sent; then the error, then EOF."""
    with server.connect() as c:
        c.send(request(SET, key, b"v", storage_extras(), opaque=1)
               + request(GET, key, opaque=2) + request(GET, b"", opaque=3))
        expect(c, SET, opaque=1, cas=ANY)
        expect(c, GET, value=b"v", extras=flags_of(0), opaque=2, cas=ANY)
        expect_error(c, GET, EINVAL, opaque=3)
        expect_closed(c)
    assert_healthy(server, bystander)


@pytest.mark.parametrize("magic", [0x00, 0x81, 0x7f, 0xff], ids=lambda m: "0x%02x" % m)
def test_bad_magic_after_first_packet_closes_silently(server, bystander, magic):
    with server.connect() as c:
        c.send(request(NOOP, opaque=1))
        expect(c, NOOP, opaque=1)
        c.send(request(NOOP, magic=magic, opaque=2))
        expect_closed(c)
    with server.connect() as c:  # the NOOP's reply is flushed before the bad packet is read
        c.send(request(NOOP, opaque=1) + request(VERSION, magic=magic, opaque=2))
        expect(c, NOOP, opaque=1)
        expect_closed(c)
    assert_healthy(server, bystander)


def test_extra_body_bytes_after_touch_are_the_next_header(server, bystander, key):
    """bug? TOUCH does not check for a value: its extra body bytes are read
    as the next packet ("v" is a bad magic: connection closed)."""
    with server.connect() as c:
        c.send(request(TOUCH, key, b"v", expiry_extras(0), opaque=1) + request(NOOP))
        expect_error(c, TOUCH, KEY_ENOENT, opaque=1)
        expect_closed(c)
    assert_healthy(server, bystander)


def test_truncated_header_then_close(server, bystander):
    with server.connect() as c:
        c.send(request(NOOP)[:10])
        assert c.read_available() == b""
    assert_healthy(server, bystander)


# --- oversized bodies ---------------------------------------------------------------------

def store_packet(opcode, key, size, opaque=5):
    return store_request(opcode, key, b"v" * size, opaque=opaque)


def test_value_over_item_size_is_refused_after_the_body(server, bystander, key):
    with server.connect() as c:
        set_item(c, key, b"old")
        packet = store_packet(SET, key, ITEM_SIZE_MAX)
        c.send_in_background(packet[:-1]).join(30)
        assert c.read_available() == b""  # nothing until the whole body is in
        c.send(packet[-1:])
        expect_error(c, SET, E2BIG, opaque=5)
        fence(c)
        expect_missing(c, key)  # a refused SET removes the old value
    assert_healthy(server, bystander)


def test_value_over_item_size_is_counted(server_factory, key):
    """strata counts a binary store refused as too large in store_too_large,
    as it counts a text one; memcached 1.6.18 counts only text ones
    (docs/COMPATIBILITY.md item 3)."""
    srv = server_factory()
    with srv.connect() as c:
        c.send(store_packet(SET, key, ITEM_SIZE_MAX))
        expect_error(c, SET, E2BIG, opaque=5)
    with srv.connect() as c:
        assert c.stats_dict()["store_too_large"] == ("0" if IS_MEMCACHED else "1")


@pytest.mark.parametrize("opcode", [ADD, REPLACE, APPEND, PREPEND, SETQ, APPENDQ],
                         ids=["ADD", "REPLACE", "APPEND", "PREPEND", "SETQ", "APPENDQ"])
def test_value_over_item_size(bconn, key, opcode):
    set_item(bconn, key, b"old")
    bconn.send_in_background(store_packet(opcode, key, ITEM_SIZE_MAX + 1)).join(30)
    expect_error(bconn, opcode, E2BIG, opaque=5)
    if opcode == SETQ:
        expect_missing(bconn, key)
    else:
        expect_value(bconn, key, b"old")  # the others keep it


@pytest.mark.parametrize("opcode, kept", [(SET, False), (SETQ, False), (ADD, True),
                                           (REPLACE, True)],
                         ids=["SET", "SETQ", "ADD", "REPLACE"])
def test_value_over_item_size_with_cas(bconn, key, opcode, kept):
    """memcached decides by opcode whether a refused value drops the old
    one, before it looks at the CAS: a SET with a CAS drops it too."""
    cas = set_item(bconn, key, b"old")
    packet = request(opcode, key, b"v" * (ITEM_SIZE_MAX + 1), storage_extras(), opaque=5,
                     cas=cas)
    bconn.send_in_background(packet).join(30)
    expect_error(bconn, opcode, E2BIG, opaque=5)
    if kept:
        expect_value(bconn, key, b"old", cas=cas)
    else:
        expect_missing(bconn, key)


def test_out_of_memory(server_factory, key):
    """With -M (no evictions) a full cache refuses stores with status 0x0082
    and a specific text; quiet stores report it too."""
    srv = server_factory("-M", memory_mb=2)
    value = b"v" * 100000
    oom = b"Out of memory allocating item"
    with srv.connect() as c:
        for i in range(200):
            c.send(request(SET, key + b"_%d" % i, value, storage_extras(), opaque=i))
            r = read_response(c)
            assert r is not None
            if r.status != SUCCESS:
                break
        assert i > 3
        assert (r.opcode, r.status, r.value, r.opaque, r.cas) == (SET, bp.ENOMEM, oom, i, 0)
        c.send(request(SETQ, key + b"_q", value, storage_extras(), opaque=1)
               + request(APPEND, key + b"_0", value, opaque=2))
        expect(c, SETQ, bp.ENOMEM, value=oom, opaque=1)
        expect(c, APPEND, bp.ENOMEM, value=oom, opaque=2)
        fence(c)
        set_item(c, key + b"_small", b"x")


def test_value_of_item_size_max_minus_1k_is_accepted(bconn, key):
    size = ITEM_SIZE_MAX - 1024
    value = bytes(range(256)) * (size // 256)
    bconn.send_in_background(store_request(SET, key, value, flags=3)).join(30)
    cas = expect(bconn, SET, cas=ANY).cas
    expect_value(bconn, key, value, flags=3, cas=cas)


def header_only(opcode, key, extras, bodylen, opaque=5):
    return bp.HEADER.pack(bp.REQ_MAGIC, opcode, len(key), len(extras), 0, 0, bodylen,
                          opaque, 0) + extras + key


@pytest.mark.parametrize("opcode, extras", [(SET, storage_extras()), (APPEND, b""),
                                            (0x50, b""), (bp.SASL_AUTH, b"")],
                         ids=["SET", "APPEND", "unknown", "SASL_AUTH"])
def test_two_gigabyte_body_is_not_buffered(private_server, opcode, extras):
    """A header claiming a body of INT_MAX bytes: memcached neither answers
    nor allocates; it reads and drops what comes (here 16 MB), waiting for
    the rest. Other connections are served meanwhile."""
    srv = private_server
    bystander = srv.connect()
    assert bystander.version() == expected_version_line()
    with srv.connect() as c:
        rss_before = process_rss_kb(srv.proc.pid)
        c.send(header_only(opcode, b"k" if opcode != bp.SASL_AUTH else b"PLAIN", extras,
                           0x7fffffff))
        c.send_in_background(b"\x80" * (16 << 20)).join(30)
        data, how = c.read_to_eof(timeout=QUIET_PERIOD)
        assert (data, how) == (b"", "open")
        assert_healthy(srv, bystander)
        rss_after = process_rss_kb(srv.proc.pid)
        assert rss_after - rss_before < 8 * 1024, (rss_before, rss_after)
    bystander.close()


@pytest.mark.parametrize("bodylen", [0xffffffff, 0xfffffffa, 0x80000009],
                         ids=lambda n: "0x%08x" % n)
@pytest.mark.parametrize("opcode", [SET, APPEND], ids=["SET", "APPEND"])
def test_body_length_over_int_max(private_server, opcode, bodylen):
    """memcached 1.6.18 computes the value length in an int, where these
    are negative: it answers "Too large." at once (test_huge_body_length_
    is_answered_at_once), unless the connection's file descriptor last
    served a connection that closed mid-swallow (as test_two_gigabyte_body
    ... leaves one on this module's server): memcached does not reset that
    swallow count, and stays silent. strata always answers. Neither may
    answer anything else, crash or stall other clients."""
    extras = storage_extras() if opcode == SET else b""
    with private_server.connect() as bystander:
        assert bystander.version() == expected_version_line()
        with private_server.connect() as c:
            c.send(header_only(opcode, b"k", extras, bodylen))
            data, how = c.read_to_eof(timeout=QUIET_PERIOD)
            allowed = [error_response(opcode, E2BIG, opaque=5)] + ([b""] if IS_MEMCACHED else [])
            assert data in allowed, data[:100]
        assert_healthy(private_server, bystander)


# A value or body length of 2^31 or more is negative in the int memcached
# keeps it in: the error comes at once, nothing is skipped, and what follows
# the key is read as the next request. (memcached answers so only on a
# connection whose file descriptor never served an unfinished swallow: it
# does not reset that counter between connections, hence a fresh server.)
HUGE_BODY = [
    # (id, opcode, key, extras, length as memcached computes it, status, old
    # value kept): the value length for stores, the body length after key
    # and extras for an unknown opcode, body minus key for SASL
    ("SET", SET, b"k", storage_extras(), 0xfffff000, E2BIG, False),
    ("SET-CAS", SET, b"k", storage_extras(), 0xffff0000, E2BIG, False),
    ("SETQ", SETQ, b"k", storage_extras(), 0x80000000, E2BIG, False),
    ("ADD", ADD, b"k", storage_extras(), 0xffffff00, E2BIG, True),
    ("REPLACE", REPLACE, b"k", storage_extras(), 0x80000001, E2BIG, True),
    ("APPEND", APPEND, b"k", b"", 0xfffff000, E2BIG, True),
    ("PREPENDQ", PREPENDQ, b"k", b"", 0x80000000, E2BIG, True),
    ("unknown", 0x50, b"k", b"", 0xfffffff0, UNKNOWN_COMMAND, True),
    ("unknown-extras", 0x50, b"k", b"xx", 0x80000000, UNKNOWN_COMMAND, True),
    ("unknown-no-key", 0x50, b"", b"", 0x80000000, UNKNOWN_COMMAND, True),
    ("SASL_AUTH", bp.SASL_AUTH, b"PLAIN", b"", 0xfffffff0, UNKNOWN_COMMAND, True),
]


@pytest.mark.parametrize("opcode, key_, extras, length, status, kept",
                         [h[1:] for h in HUGE_BODY], ids=[h[0] for h in HUGE_BODY])
def test_huge_body_length_is_answered_at_once(server_factory, key, opcode, key_, extras,
                                              length, status, kept):
    srv = server_factory()
    with srv.connect() as c:
        if key_ == b"k":
            key_ = key
        set_item(c, key, b"old")
        if opcode == 0x50:
            bodylen = length  # skipped after key and extras
        elif opcode == bp.SASL_AUTH:
            bodylen = length + len(key_)
        else:
            bodylen = length + len(key_) + len(extras)
        assert bodylen <= 0xffffffff
        cas = 12345 if opcode == SET and length == 0xffff0000 else 0
        c.send(bp.HEADER.pack(bp.REQ_MAGIC, opcode, len(key_), len(extras), 0, 0, bodylen, 5,
                              cas) + extras + key_)
        started = time.monotonic()
        expect_error(c, opcode, status, opaque=5)
        assert time.monotonic() - started < 1.0
        fence(c)  # the next bytes are the next request
        if kept:
            expect_value(c, key, b"old")
        else:
            expect_missing(c, key)


def test_unknown_opcode_with_key_over_250_bytes(server, bystander):
    """The key length is checked before the opcode, once the whole key is
    in: EINVAL, then the connection is closed."""
    packet = request(0x50, b"k" * 251, opaque=OPQ)
    with server.connect() as c:
        c.send(packet[:bp.HEADER_LEN + 100])
        assert c.read_available() == b""
        c.send(packet[bp.HEADER_LEN + 100:] + request(NOOP))
        expect_error(c, 0x50, EINVAL, opaque=OPQ)
        expect_closed(c)
    assert_healthy(server, bystander)


@pytest.mark.parametrize("opcode", [GET, 0x50], ids=["GET", "unknown"])
def test_body_shorter_than_key_waits_for_the_key(server, bystander, opcode):
    """Nothing is decided before header, extras and key are in, whatever
    the body length says."""
    packet = request(opcode, b"k" * 10, bodylen=5, opaque=OPQ)
    with server.connect() as c:
        c.send(packet[:bp.HEADER_LEN + 5])
        assert c.read_available() == b""
        c.send(packet[bp.HEADER_LEN + 5:])
        expect_error(c, opcode, UNKNOWN_COMMAND, opaque=OPQ)
        expect_closed(c)
    assert_healthy(server, bystander)


@pytest.mark.parametrize("opcode", [GET, 0x50], ids=["GET", "unknown"])
def test_request_head_over_16k_closes_without_reply(server, bystander, opcode):
    """memcached reads header, extras and key into a 16 KB buffer: a key
    that fills it exactly gets EINVAL; one byte more and the connection is
    closed without a reply once 16 KB have arrived (not before)."""
    with server.connect() as c:
        c.send(request(opcode, b"k" * (16384 - bp.HEADER_LEN), opaque=OPQ))
        expect_error(c, opcode, EINVAL, opaque=OPQ)
        expect_closed(c)
    packet = request(opcode, b"k" * (16384 - bp.HEADER_LEN + 1), opaque=OPQ)
    with server.connect() as c:
        c.send(packet[:16000])
        assert c.read_available() == b""
        try:
            c.send(packet[16000:])
        except OSError:
            pass  # already closed
        expect_closed(c)
    assert_healthy(server, bystander)


# --- trailing body bytes that memcached does not check ---------------------------------------

@pytest.mark.parametrize("opcode, key_, extras", [
    (STAT, b"", b""), (STAT, b"settings", b""), (GAT, b"k", expiry_extras(0)),
    (GATK, b"k", expiry_extras(0)), (GATQ, b"k", expiry_extras(0)),
], ids=["STAT", "STAT-settings", "GAT", "GATK", "GATQ"])
def test_body_bytes_after_the_key_are_the_next_request(bconn, key, opcode, key_, extras):
    """bug? STAT, TOUCH and GAT* never look at the body length: the bytes
    after the key are read as the next request (here a NOOP)."""
    if key_ == b"k":
        key_ = key + b"_missing"
    bconn.send(request(opcode, key_, request(NOOP, opaque=7), extras, opaque=6))
    if opcode == STAT:
        while True:  # the stats, up to the empty packet that ends them
            r = read_response(bconn)
            assert r is not None and (r.opcode, r.status, r.opaque) == (STAT, SUCCESS, 6)
            if r.key == b"":
                break
    elif opcode != GATQ:
        expect(bconn, opcode, KEY_ENOENT, key=key_ if opcode == GATK else b"",
               value=b"" if opcode == GATK else bp.ERROR_TEXT[KEY_ENOENT], opaque=6)
    expect(bconn, NOOP, opaque=7)
    fence(bconn)


def test_stat_with_bad_trailing_bytes(server, bystander):
    """STAT's trailing bytes are a bad header: the connection is closed.
    memcached drops the STAT answers it had queued; strata sends the
    answers of every request before the bad bytes (docs/COMPATIBILITY.md,
    pipelined replies before a fatal error)."""
    with server.connect() as c:
        c.send(request(STAT, b"settings", b"x" * bp.HEADER_LEN, opaque=6))
        data, how = c.read_to_eof()
        assert how in ("eof", "reset")
        if IS_MEMCACHED:
            assert data == b""
        else:
            replies = bp.parse_all(data)
            assert len(replies) > 10
            assert all((r.opcode, r.status, r.opaque) == (STAT, SUCCESS, 6) for r in replies)
            assert replies[-1].key == b"" and replies[-2].key != b""
    assert_healthy(server, bystander)


# --- input split at every byte -----------------------------------------------------------

def pipeline(key):
    """A self-contained binary pipeline (it resets its own keys) and the
    responses it must produce, as (opcode, status, key, value, extras,
    opaque, cas is non-zero)."""
    k1, k2 = key + b"_1", key + b"_2"
    packets = [
        request(SETQ, k1, b"x", storage_extras()), request(DELETEQ, k1),
        request(SETQ, k2, b"x", storage_extras()), request(DELETEQ, k2),
        request(GETQ, k1, opaque=1),
        request(GETK, k1, opaque=2),
        request(SET, k1, b"hello", storage_extras(5, 0), opaque=3),
        request(GETQ, k1, opaque=4),
        request(APPENDQ, k1, b"!", opaque=5),
        request(INCREMENT, k2, extras=arith_extras(1, 10, 0), opaque=6),
        request(INCREMENTQ, k2, extras=arith_extras(5, 0, 0), opaque=7),
        request(DECREMENT, k2, extras=arith_extras(3, 0, 0), opaque=8),
        request(ADD, k1, b"no", storage_extras(), opaque=9),
        request(TOUCH, k1, extras=expiry_extras(0), opaque=10),
        request(GATK, k1, extras=expiry_extras(0), opaque=11),
        request(0x50, value=b"junk", opaque=12),
        request(VERSION, opaque=13),
        request(DELETE, k1, opaque=14),
        request(NOOP, opaque=15),
    ]
    version = expected_version_line()[len(b"VERSION "):-2]
    f5 = flags_of(5)
    replies = [
        (GETK, KEY_ENOENT, k1, b"", b"", 2, False),
        (SET, SUCCESS, b"", b"", b"", 3, True),
        (GETQ, SUCCESS, b"", b"hello", f5, 4, True),
        (INCREMENT, SUCCESS, b"", counter(10), b"", 6, True),
        (DECREMENT, SUCCESS, b"", counter(12), b"", 8, True),
        (ADD, KEY_EEXISTS, b"", bp.ERROR_TEXT[KEY_EEXISTS], b"", 9, False),
        (TOUCH, SUCCESS, b"", b"", f5, 10, True),
        (GATK, SUCCESS, k1, b"hello!", f5, 11, True),
        (0x50, UNKNOWN_COMMAND, b"", bp.ERROR_TEXT[UNKNOWN_COMMAND], b"", 12, False),
        (VERSION, SUCCESS, b"", version, b"", 13, False),
        (DELETE, SUCCESS, b"", b"", b"", 14, False),
        (NOOP, SUCCESS, b"", b"", b"", 15, False),
    ]
    return b"".join(packets), replies


def read_pipeline_replies(conn, count):
    out = []
    for _ in range(count):
        r = read_response(conn)
        assert r is not None, "missing replies after %r" % out
        assert (r.magic, r.datatype) == (bp.RES_MAGIC, 0)
        out.append((r.opcode, r.status, r.key, r.value, r.extras, r.opaque, r.cas != 0))
    return out


def test_pipeline_in_one_write(bconn, key):
    data, replies = pipeline(key)
    bconn.send(data)
    assert read_pipeline_replies(bconn, len(replies)) == replies


def test_pipeline_split_at_every_byte(server, key):
    data, replies = pipeline(key)
    with server.connect() as c:
        for i in range(1, len(data)):
            c.send(data[:i])
            time.sleep(0.001)  # let the server see the first part alone
            c.send(data[i:])
            assert read_pipeline_replies(c, len(replies)) == replies, "split at byte %d" % i
        fence(c)


def test_pipeline_one_byte_per_write(server, key):
    data, replies = pipeline(key)
    with server.connect() as c:
        for i in range(len(data)):
            c.send(data[i:i + 1])
        assert read_pipeline_replies(c, len(replies)) == replies
        fence(c)


# --- libmemcached's C API in binary mode (lmc_binary_test.c) ------------------------------

LMC_BINARY_TEST = "build/release/tests/integration/lmc_binary_test"


def test_libmemcached_binary_c_api(server):
    binary = repo_path(os.environ.get("STRATA_LMC_BINARY_TEST_BIN", LMC_BINARY_TEST))
    if not os.access(binary, os.X_OK):
        pytest.skip("%s not built (make %s, or set STRATA_LMC_BINARY_TEST_BIN)"
                    % (binary, LMC_BINARY_TEST))
    done = subprocess.run([binary, "%s:%d" % server.addr], stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=60)
    assert done.returncode == 0, (done.stdout + done.stderr).decode(errors="replace")
