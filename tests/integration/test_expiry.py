"""Expiration times and flush_all. Waits are short and bounded: memcached
keeps a clock that ticks once a second, so an item with a TTL of N seconds
disappears between N-1 and N seconds after it was stored; the checks leave
at least a second of margin on each side."""

import time

import pytest

from helpers import assert_healthy

# Relative TTLs are at most 30 days; larger numbers are absolute unix times.
THIRTY_DAYS = 60 * 60 * 24 * 30


def expiry_cases(now):
    """(id, commands storing/altering {k}, reply bytes, alive right after,
    alive after the wait). Every case uses its own key."""
    soon = b"%d" % (now + 2)
    return [
        ("exptime-0-never", b"set {k} 0 0 1\r\nx\r\n", b"STORED\r\n", True, True),
        ("relative-2s", b"set {k} 0 2 1\r\nx\r\n", b"STORED\r\n", True, False),
        ("relative-30-days", b"set {k} 0 %d 1\r\nx\r\n" % THIRTY_DAYS, b"STORED\r\n",
         True, True),
        ("absolute-now-plus-2", b"set {k} 0 " + soon + b" 1\r\nx\r\n", b"STORED\r\n",
         True, False),
        ("absolute-future", b"set {k} 0 %d 1\r\nx\r\n" % (now + 100000), b"STORED\r\n",
         True, True),
        ("absolute-past", b"set {k} 0 %d 1\r\nx\r\n" % (now - 10), b"STORED\r\n",
         False, False),
        # One second over 30 days is an absolute time in January 1970.
        ("30-days-plus-1-is-1970", b"set {k} 0 %d 1\r\nx\r\n" % (THIRTY_DAYS + 1),
         b"STORED\r\n", False, False),
        ("negative", b"set {k} 0 -1 1\r\nx\r\n", b"STORED\r\n", False, False),
        # memcached 1.6.18 keeps the low 32 bits of the exptime (README.md).
        ("exptime-2-31-wraps-negative", b"set {k} 0 2147483648 1\r\nx\r\n",
         b"STORED\r\n", False, False),
        ("exptime-below-minus-2-31-wraps-positive", b"set {k} 0 -2147483649 1\r\nx\r\n",
         b"STORED\r\n", True, True),
        ("touch-sets-ttl", b"set {k} 0 0 1\r\nx\r\ntouch {k} 2\r\n",
         b"STORED\r\nTOUCHED\r\n", True, False),
        ("touch-extends-ttl", b"set {k} 0 2 1\r\nx\r\ntouch {k} 100\r\n",
         b"STORED\r\nTOUCHED\r\n", True, True),
        ("touch-negative-expires", b"set {k} 0 0 1\r\nx\r\ntouch {k} -1\r\n",
         b"STORED\r\nTOUCHED\r\n", False, False),
        ("gat-sets-ttl", b"set {k} 0 0 1\r\nx\r\ngat 2 {k}\r\n",
         b"STORED\r\nVALUE {k} 0 1\r\nx\r\nEND\r\n", True, False),
        ("gat-extends-ttl", b"set {k} 0 2 1\r\nx\r\ngat 0 {k}\r\n",
         b"STORED\r\nVALUE {k} 0 1\r\nx\r\nEND\r\n", True, True),
        ("gats-sets-ttl", b"set {k} 0 0 1\r\nx\r\ngats 2 {k}\r\n", None, True, False),
        ("append-keeps-ttl", b"set {k} 0 2 1\r\nx\r\nappend {k} 0 0 1\r\ny\r\n",
         b"STORED\r\nSTORED\r\n", True, False),
        ("prepend-keeps-ttl", b"set {k} 0 2 1\r\nx\r\nprepend {k} 0 0 1\r\ny\r\n",
         b"STORED\r\nSTORED\r\n", True, False),
        ("append-ignores-its-exptime", b"set {k} 0 0 1\r\nx\r\nappend {k} 0 2 1\r\ny\r\n",
         b"STORED\r\nSTORED\r\n", True, True),
        ("incr-keeps-ttl", b"set {k} 0 2 1\r\n1\r\nincr {k} 1\r\n", b"STORED\r\n2\r\n",
         True, False),
        ("incr-grow-keeps-ttl", b"set {k} 0 2 1\r\n9\r\nincr {k} 1\r\n", b"STORED\r\n10\r\n",
         True, False),
        ("set-replaces-ttl", b"set {k} 0 2 1\r\nx\r\nset {k} 0 0 1\r\nx\r\n",
         b"STORED\r\nSTORED\r\n", True, True),
    ]


def is_present(conn, key):
    conn.send(b"get " + key + b"\r\n")
    reply = conn.read_until(b"END\r\n")
    assert reply == b"END\r\n" or reply.startswith(b"VALUE " + key + b" "), reply
    return reply != b"END\r\n"


def test_expiration_times(conn, key):
    now = int(time.time())
    cases = expiry_cases(now)
    keys = {}
    for i, (name, request, reply, _, _) in enumerate(cases):
        k = key + b"_%d" % i
        keys[name] = k
        if reply is None:  # gats: find the unique in the reply itself
            conn.send(request.replace(b"{k}", k))
            assert conn.read_line() == b"STORED\r\n"
            assert conn.read_line().startswith(b"VALUE " + k + b" 0 1 ")
            assert conn.read_exact(8) == b"x\r\nEND\r\n"
        else:
            conn.call(request.replace(b"{k}", k), reply.replace(b"{k}", k))
    started = time.monotonic()
    now_alive = {name: is_present(conn, keys[name]) for name, *_ in cases}
    assert time.monotonic() - started < 0.9, "machine too slow for 1-second margins"
    assert now_alive == {name: alive for name, _, _, alive, _ in cases}
    time.sleep(max(0.0, 3.2 - (time.monotonic() - started)))
    later_alive = {name: is_present(conn, keys[name]) for name, *_ in cases}
    assert later_alive == {name: alive for name, _, _, _, alive in cases}


@pytest.mark.parametrize("command", [b"flush_all", b"flush_all 0", b"flush_all -1"])
def test_flush_all_immediate(private_server, command):
    with private_server.connect() as c:
        flushes = int(c.stats_dict()["cmd_flush"])
        c.call(b"set a 0 0 1\r\na\r\nset b 0 100 1\r\nb\r\n", b"STORED\r\nSTORED\r\n")
        c.call(command + b"\r\n", b"OK\r\n")
        c.call(b"get a b\r\n", b"END\r\n")
        # Items stored right after an immediate flush are kept.
        c.call(b"set c 0 0 1\r\nc\r\nget c\r\n", b"STORED\r\nVALUE c 0 1\r\nc\r\nEND\r\n")
        assert int(c.stats_dict()["cmd_flush"]) == flushes + 1
        assert int(c.stats_dict()["curr_items"]) <= 1


def test_flush_all_with_delay(private_server):
    """Items stored before the flush time vanish when it comes (memcached
    acts one clock tick early: between N-1 and N seconds); items stored
    after it survive."""
    with private_server.connect() as c:
        c.call(b"set before 0 0 1\r\na\r\n", b"STORED\r\n")
        started = time.monotonic()
        c.call(b"flush_all 3\r\n", b"OK\r\n")
        c.call(b"set between 0 0 1\r\nb\r\n", b"STORED\r\n")
        c.call(b"get before between\r\n",
               b"VALUE before 0 1\r\na\r\nVALUE between 0 1\r\nb\r\nEND\r\n")
        assert time.monotonic() - started < 0.9, "machine too slow for 1-second margins"
        time.sleep(3.6 - (time.monotonic() - started))
        c.call(b"get before between\r\n", b"END\r\n")
        c.call(b"set after 0 0 1\r\nc\r\n", b"STORED\r\n")
        time.sleep(1.1)
        c.call(b"get after\r\n", b"VALUE after 0 1\r\nc\r\nEND\r\n")


@pytest.mark.parametrize("request_, reply", [
    (b"flush_all abc\r\n", b"CLIENT_ERROR invalid exptime argument\r\n"),
    (b"flush_all noreply x\r\n", b"CLIENT_ERROR invalid exptime argument\r\n"),
    (b"flush_all 0 0 0\r\n", b"ERROR\r\n"),
    (b"touch k abc\r\n", b"CLIENT_ERROR invalid exptime argument\r\n"),
    (b"gat abc k\r\n", b"CLIENT_ERROR invalid exptime argument\r\n"),
    (b"gats 1.5 k\r\n", b"CLIENT_ERROR invalid exptime argument\r\n"),
], ids=lambda v: v.decode().strip() if isinstance(v, bytes) else v)
def test_bad_exptime_arguments(conn, bystander, server, request_, reply):
    conn.call(request_, reply)
    assert_healthy(server, bystander)
