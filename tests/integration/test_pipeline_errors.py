"""Text-protocol pipelines that end in an error: which replies of the
earlier commands of the same write still arrive, and what a failing
multi-get has already done to the keys before its bad one. Every expected
reply was probed on memcached 1.6.18.

memcached writes its queued replies only at certain points (after a
get/gets/gat/gats, an `mn`, or when it runs out of input); a fatal error
closes the connection without writing what is still queued, and a failing
multi-get discards it. strata sends the reply of every complete command
before the bad input (docs/COMPATIBILITY.md, "Pipelined replies before a
fatal error"), so where memcached loses a reply the tests branch on the
server. Each request below is sent in ONE write.
"""

import pytest

from helpers import IS_MEMCACHED, assert_healthy, expected_version_line

BAD_FORMAT = b"CLIENT_ERROR bad command line format\r\n"
LONG_LINE = b"x" * 3000  # no newline: over memcached's 2048-byte line limit
LONG_KEY = b"z" * 251


def value_reply(key, value):
    return b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key, len(value), value)


def send_and_read_to_eof(server, request_):
    with server.connect() as c:
        c.send(request_)
        data, how = c.read_to_eof()
    assert how in ("eof", "reset"), "connection not closed: %r" % data[:200]
    return data


def stored(server, key, value):
    with server.connect() as c:
        c.call(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value), b"STORED\r\n")


# --- a fatal line after complete commands ----------------------------------------------

@pytest.mark.parametrize("bad", [LONG_LINE, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"],
                         ids=["overlong-line", "http"])
def test_get_reply_before_a_fatal_line_is_sent(server, bystander, key, bad):
    stored(server, key, b"v")
    assert send_and_read_to_eof(server, b"get %s\r\n" % key + bad) == value_reply(key, b"v")
    assert send_and_read_to_eof(server, b"get %s_miss\r\nmn\r\n" % key + bad) \
        == b"END\r\nMN\r\n"
    assert_healthy(server, bystander)


@pytest.mark.parametrize("bad", [LONG_LINE, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"],
                         ids=["overlong-line", "http"])
def test_store_reply_before_a_fatal_line(server, bystander, key, bad):
    """The store is done on both; memcached loses its STORED (and a
    `version`'s reply), strata sends them before closing."""
    data = send_and_read_to_eof(server, b"set %s 0 0 2\r\nv1\r\nversion\r\n" % key + bad)
    if IS_MEMCACHED:
        assert data == b""
    else:
        assert data == b"STORED\r\n" + expected_version_line()
    with server.connect() as c:
        c.call(b"get %s\r\n" % key, value_reply(key, b"v1"))
    # After a get memcached has written its replies; later ones are lost.
    data = send_and_read_to_eof(server, b"get %s\r\nset %s 0 0 2\r\nv2\r\n" % (key, key) + bad)
    if IS_MEMCACHED:
        assert data == value_reply(key, b"v1")
    else:
        assert data == value_reply(key, b"v1") + b"STORED\r\n"
    assert_healthy(server, bystander)


# --- a multi-get with a key over 250 bytes ---------------------------------------------

def test_store_before_a_failing_multiget(conn, bystander, server, key):
    """The multi-get's error discards memcached's queued replies, the
    earlier STORED included; strata keeps it. The connection stays open."""
    conn.call(b"set %s 0 0 1\r\nx\r\nget %s %s\r\n" % (key, key, LONG_KEY),
              BAD_FORMAT if IS_MEMCACHED else b"STORED\r\n" + BAD_FORMAT)
    conn.call(b"get %s\r\n" % key, value_reply(key, b"x"))
    assert_healthy(server, bystander)


def test_failing_multiget_reply_is_only_the_error(conn, key):
    conn.call(b"set %s 0 0 1\r\nx\r\n" % key, b"STORED\r\n")
    conn.call(b"get %s %s %s\r\n" % (key, LONG_KEY, key), BAD_FORMAT)
    conn.call(b"gets %s %s\r\n" % (key, LONG_KEY), BAD_FORMAT)
    conn.call(b"get %s\r\n" % LONG_KEY, BAD_FORMAT)


COUNTERS = ["cmd_get", "get_hits", "get_misses", "cmd_touch", "touch_hits", "touch_misses"]


@pytest.mark.parametrize("command, moved, ttl", [
    (b"get", {"cmd_get": 2, "get_hits": 1, "get_misses": 1}, b"-1"),
    (b"gets", {"cmd_get": 2, "get_hits": 1, "get_misses": 1}, b"-1"),
    (b"gat 100", {"cmd_touch": 2, "touch_hits": 1, "touch_misses": 1}, b"100"),
    (b"gats 100", {"cmd_touch": 2, "touch_hits": 1, "touch_misses": 1}, b"100"),
], ids=["get", "gets", "gat", "gats"])
def test_failing_multiget_has_fetched_the_keys_before(private_server, key, command, moved,
                                                      ttl):
    """memcached looks the keys up one by one and fails at the long one:
    those before it were fetched (counted, marked fetched) or touched; those
    after it were not looked at."""
    with private_server.connect() as c:
        c.call(b"set %s 0 0 1\r\nx\r\nset %s_after 0 0 1\r\ny\r\n" % (key, key),
               b"STORED\r\nSTORED\r\n")
        before = c.stats_dict()
        c.call(b"%s %s %s_miss %s %s_after\r\n" % (command, key, key, LONG_KEY, key), BAD_FORMAT)
        after = c.stats_dict()
        changed = {n: int(after[n]) - int(before[n]) for n in COUNTERS if after[n] != before[n]}
        assert changed == moved
        c.send(b"mg %s h t\r\n" % key)
        line = c.read_line()
        if ttl == b"-1":
            assert line == b"HD h1 t-1\r\n"
        else:  # the clock may tick while the test runs
            assert line in (b"HD h1 t100\r\n", b"HD h1 t99\r\n"), line
        c.call(b"mg %s_after h t\r\n" % key, b"HD h0 t-1\r\n")
        assert c.version() == expected_version_line()
