"""Input limits and hostile or unusual input: key length, control characters
in keys, value size, non-memcached traffic, huge lines, fragmented and
pipelined delivery, half-closed and vanishing clients. After each bad input
the server must still run and serve other connections."""

import socket

import pytest

from helpers import (CRLF, ReadWatch, assert_healthy, expected_version_line,
                     run_script, stats_value, wait_for_stat, wait_until)

BAD_FORMAT = b"CLIENT_ERROR bad command line format\r\n"
TOO_LARGE = b"SERVER_ERROR object too large for cache\r\n"
ITEM_SIZE_MAX = 1024 * 1024  # memcached's default -I 1m


# --- key length --------------------------------------------------------------

def long_key(n):
    return b"L" + b"k" * (n - 1)


# Commands that name one key, with their reply when the key is not there.
KEYED_COMMANDS = [
    (b"get {k}\r\n", b"END\r\n"),
    (b"gets {k}\r\n", b"END\r\n"),
    (b"gat 0 {k}\r\n", b"END\r\n"),
    (b"gats 0 {k}\r\n", b"END\r\n"),
    (b"delete {k}\r\n", b"NOT_FOUND\r\n"),
    (b"incr {k} 1\r\n", b"NOT_FOUND\r\n"),
    (b"decr {k} 1\r\n", b"NOT_FOUND\r\n"),
    (b"touch {k} 0\r\n", b"NOT_FOUND\r\n"),
    (b"append {k} 0 0 1\r\nx\r\n", b"NOT_STORED\r\n"),
    (b"prepend {k} 0 0 1\r\nx\r\n", b"NOT_STORED\r\n"),
    (b"replace {k} 0 0 1\r\nx\r\n", b"NOT_STORED\r\n"),
    (b"cas {k} 0 0 1 1\r\nx\r\n", b"NOT_FOUND\r\n"),
    (b"add {k} 0 0 1\r\nx\r\n", b"STORED\r\n"),
    (b"set {k} 0 0 1\r\nx\r\n", b"STORED\r\n"),
]
KEYED_IDS = [c[0].split()[0].decode() for c in KEYED_COMMANDS]


def has_data_block(request):
    return request.count(CRLF) == 2


@pytest.mark.parametrize("request_, reply", KEYED_COMMANDS, ids=KEYED_IDS)
def test_key_of_250_bytes_is_accepted(conn, request_, reply):
    key = long_key(250)
    conn.call(b"delete %s noreply\r\n" % key + request_.replace(b"{k}", key), reply)
    conn.call(b"delete %s noreply\r\n" % key, b"")


def test_key_of_250_bytes_round_trip(conn):
    key = long_key(250)
    conn.call(b"set %s 0 0 2\r\nhi\r\nget %s %s\r\n" % (key, key, key),
              b"STORED\r\nVALUE %s 0 2\r\nhi\r\nVALUE %s 0 2\r\nhi\r\nEND\r\n" % (key, key))
    conn.call(b"delete %s\r\n" % key, b"DELETED\r\n")


def rejected_key_reply(request):
    """CLIENT_ERROR; for a storage command the data line is NOT swallowed and
    is read as a command of its own ("x" -> ERROR)."""
    return BAD_FORMAT + (b"ERROR\r\n" if has_data_block(request) else b"")


@pytest.mark.parametrize("request_", [c[0] for c in KEYED_COMMANDS], ids=KEYED_IDS)
def test_key_of_251_bytes_is_rejected(conn, bystander, server, request_):
    conn.call(request_.replace(b"{k}", long_key(251)), rejected_key_reply(request_))
    assert_healthy(server, bystander)


def test_long_key_in_multiget_discards_the_whole_reply(conn, key):
    conn.call(b"set %s 0 0 1\r\nx\r\n" % key, b"STORED\r\n")
    conn.call(b"get %s %s %s\r\n" % (key, long_key(251), key), BAD_FORMAT)


def test_long_key_with_noreply_is_silent_but_data_is_not_swallowed(conn):
    conn.call(b"set %s 0 0 1 noreply\r\nx\r\n" % long_key(251), b"ERROR\r\n")


# --- control characters in keys ---------------------------------------------------
# memcached 1.6 accepts them (only length is checked), and load generators
# such as memaslap rely on it, so strata accepts them too (COMPATIBILITY.md).

CONTROL_BYTES = [0x01, 0x09, 0x0b, 0x0d, 0x1b, 0x1f, 0x7f]


@pytest.mark.parametrize("byte", CONTROL_BYTES, ids=lambda b: "0x%02x" % b)
def test_control_character_in_key(conn, bystander, server, key, byte):
    bad = key + b"_" + bytes([byte]) + b"_"
    conn.call(b"set %s 0 0 1\r\nv\r\n" % key, b"STORED\r\n")
    steps = [
        (b"set %s 0 0 1\r\nx\r\n" % bad, b"STORED\r\n"),
        (b"get %s\r\n" % bad, b"VALUE %s 0 1\r\nx\r\nEND\r\n" % bad),
        (b"get %s %s\r\n" % (key, bad),
         b"VALUE %s 0 1\r\nv\r\nVALUE %s 0 1\r\nx\r\nEND\r\n" % (key, bad)),
        (b"incr %s 1\r\n" % bad, b"CLIENT_ERROR cannot increment or decrement "
                                 b"non-numeric value\r\n"),
        (b"touch %s 0\r\n" % bad, b"TOUCHED\r\n"),
        (b"delete %s\r\n" % bad, b"DELETED\r\n"),
    ]
    run_script(conn, b"", steps)
    assert_healthy(server, bystander)


def test_nul_byte_in_key(conn, key):
    """memcached reads the command line as a C string, so it ends at the NUL."""
    bad = key + b"\x00tail"
    conn.call(b"get %s\r\n" % bad, b"END\r\n")  # looks up `key`, which is absent
    conn.call(b"set %s 0 0 1\r\nx\r\n" % bad, b"ERROR\r\nERROR\r\n")  # "set <key>"
    conn.call(b"get %s\r\n" % key, b"END\r\n")


def test_utf8_and_high_bytes_in_key_are_fine(conn, key):
    k = key + "_é_€".encode() + b"\x80\xff"
    conn.call(b"set %s 0 0 1\r\nx\r\nget %s\r\n" % (k, k),
              b"STORED\r\nVALUE %s 0 1\r\nx\r\nEND\r\n" % k)


# --- value size (intended difference 3) -------------------------------------------

def set_request(key, size, verb=b"set", noreply=False):
    return (b"%s %s 0 0 %d%s\r\n" % (verb, key, size, b" noreply" if noreply else b"")
            + b"v" * size + CRLF)


@pytest.mark.parametrize("size", [ITEM_SIZE_MAX, ITEM_SIZE_MAX + 1, 2 * ITEM_SIZE_MAX,
                                  8 * ITEM_SIZE_MAX])
def test_value_too_large_is_refused_and_swallowed(conn, bystander, server, key, size):
    too_large = stats_value(conn, "store_too_large")
    conn.send(b"set %s 0 0 3\r\nold\r\n" % key)
    conn.send_in_background(set_request(key, size)).join(30)
    # The data was swallowed: the next command is answered normally. A
    # refused set also removes the old value.
    conn.call(b"get %s\r\n" % key, b"STORED\r\n" + TOO_LARGE + b"END\r\n", timeout=30)
    assert stats_value(conn, "store_too_large") == too_large + 1
    assert_healthy(server, bystander)


def test_value_too_large_with_noreply_is_silent(conn, key):
    conn.send(b"set %s 0 0 3\r\nold\r\n" % key)
    conn.send_in_background(set_request(key, ITEM_SIZE_MAX + 1, noreply=True)).join(30)
    conn.call(b"get %s\r\n" % key, b"STORED\r\nEND\r\n", timeout=30)


def test_append_too_large_keeps_old_value(conn, key):
    conn.send(b"set %s 0 0 3\r\nold\r\n" % key)
    conn.send_in_background(set_request(key, ITEM_SIZE_MAX + 1, verb=b"append")).join(30)
    conn.call(b"get %s\r\n" % key,
              b"STORED\r\n" + TOO_LARGE + b"VALUE %s 0 3\r\nold\r\nEND\r\n" % key, timeout=30)


def check_largest_accepted(conn, key, size):
    value = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    conn.send_in_background(b"set %s 7 0 %d\r\n%s\r\n" % (key, size, value)).join(30)
    conn.call(b"get %s\r\n" % key,
              b"STORED\r\nVALUE %s 7 %d\r\n%s\r\nEND\r\n" % (key, size, value), timeout=30)
    conn.call(b"delete %s\r\n" % key, b"DELETED\r\n")


def test_value_of_item_size_max_minus_1k_is_accepted(conn, key):
    check_largest_accepted(conn, key, ITEM_SIZE_MAX - 1024)


def test_item_size_max_follows_dash_I(server_factory, key):
    srv = server_factory("-I", "2m")
    with srv.connect() as c:
        assert c.stats_dict(b"settings")["item_size_max"] == str(2 * ITEM_SIZE_MAX)
        check_largest_accepted(c, key, 2 * ITEM_SIZE_MAX - 1024)
        check_largest_accepted(c, key, ITEM_SIZE_MAX + 1)
        c.send_in_background(set_request(key, 2 * ITEM_SIZE_MAX)).join(30)
        c.call(b"version\r\n", TOO_LARGE + expected_version_line(), timeout=30)


# --- traffic that is not memcached --------------------------------------------------

@pytest.mark.parametrize("request_", [
    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"GET /index.html HTTP/1.0\r\n\r\n",
    b"POST /api HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
    b"HEAD / HTTP/1.1\r\n\r\n",
], ids=["get", "get-1.0", "post", "head"])
def test_http_request_closes_connection_without_reply(server, bystander, request_):
    with server.connect() as c:
        c.send(request_)
        data, how = c.read_to_eof()
        assert data == b"" and how in ("eof", "reset")
    assert_healthy(server, bystander)


def test_http_like_lowercase_get_is_a_get(conn):
    # Only an unknown command whose last token starts with "HTTP/" closes.
    conn.call(b"get / HTTP/1.1\r\n", b"END\r\n")
    conn.call(b"GET / http/1.1\r\n", b"ERROR\r\n")


def test_megabyte_of_garbage_without_newline_closes(server, bystander):
    with server.connect() as c:
        sender = c.send_in_background(b"x" * (1 << 20))
        data, how = c.read_to_eof(timeout=10)
        sender.join(10)
        assert data == b"" and how in ("eof", "reset")
    assert_healthy(server, bystander)


# A command line still without its newline after 2048 bytes closes the
# connection, unless it is a get/gets (multi-gets may be long). What the
# server does depends on whether it sees the line without its newline, so
# each line is sent two ways: in one write (the newline arrives in the same
# read: a plain long line), and head first, the newline only once the server
# has read the head (bytes_read says so). Both servers agree on each.
LONG_LINES = {  # id: (head, rest, (reply, how) in one write, (reply, how) head first)
    "2048-bytes": (b"x" * 2048, b"\r\n", (b"ERROR\r\n", "open"), (b"ERROR\r\n", "open")),
    "2049-bytes": (b"x" * 2049, b"\r\n", (b"ERROR\r\n", "open"), (b"", "closed")),
    "long-version": (b"version " + b"k" * 3000, b"\r\n", (expected_version_line(), "open"),
                     (b"", "closed")),
    "long-get": (b"get " + b"k" * 3000, b"\r\n", (BAD_FORMAT, "open"), (BAD_FORMAT, "open")),
    "long-gets": (b"gets " + b"k " * 3000, b"\r\n", (b"END\r\n", "open"), (b"END\r\n", "open")),
}


@pytest.mark.parametrize("split", ["one-write", "head-first"])
@pytest.mark.parametrize("case", list(LONG_LINES))
def test_line_without_newline_limit(private_server, case, split):
    head, rest, one_write, head_first = LONG_LINES[case]
    srv = private_server  # bytes_read must count this test's clients only
    with srv.connect() as admin, srv.connect() as c:
        if split == "one-write":
            reply, how = one_write
            c.send(head + rest)
        else:
            reply, how = head_first
            watch = ReadWatch(admin)
            c.send(head)
            assert watch.wait_for(len(head)) >= len(head), "the server did not read the head"
            if how == "open":
                c.send(rest)
        if how == "open":
            assert c.read_exact(len(reply)) == reply
            assert c.version() == expected_version_line()
        else:
            data, state = c.read_to_eof()
            assert data == reply and state in ("eof", "reset")
        assert_healthy(srv, admin)


def test_long_unknown_line_with_newline_is_an_error(conn):
    conn.call(b"x" * 1500 + b"\r\n", b"ERROR\r\n")


def test_binary_zeros_and_high_bytes_as_commands(conn):
    conn.call(b"\xff\xfe\xfd\r\n\x01\x02\r\n", b"ERROR\r\nERROR\r\n")


def test_client_vanishing_mid_value(private_server, key):
    """A client that closes in the middle of a value: nothing is stored,
    and the counters end as memcached's do (the connection is gone, no item
    or set counted); strata also frees the memory it reserved for it."""
    srv = private_server
    with srv.connect() as admin:
        assert wait_for_stat(admin, "curr_connections", 1) == "1"
        before = admin.stats_dict()
        watch = ReadWatch(admin)
        with srv.connect() as c:
            request = b"set %s 0 0 100\r\n0123456789" % key
            c.send(request)
            # Close only once the server is reading the value.
            assert watch.wait_for(len(request)) == len(request)
        assert wait_for_stat(admin, "curr_connections", 1) == "1"
        after = admin.stats_dict()
        admin.call(b"get %s\r\n" % key, b"END\r\n")
        same = ["curr_items", "total_items", "cmd_set", "bytes", "curr_connections",
                "rejected_connections"]
        assert {n: after[n] for n in same} == {n: before[n] for n in same}
        assert int(after["total_connections"]) == int(before["total_connections"]) + 1
        if "total_malloced" in before:  # strata: plain stats shows item memory
            assert after["total_malloced"] == before["total_malloced"]
        assert_healthy(srv, admin)


def test_client_closing_without_reading_large_replies(private_server, key):
    srv = private_server
    with srv.connect() as admin:
        assert wait_for_stat(admin, "curr_connections", 1) == "1"
        hits = int(admin.stats_dict()["get_hits"])
        with srv.connect() as c:
            c.call(b"set %s 0 0 100000\r\n%s\r\n" % (key, b"v" * 100000), b"STORED\r\n")
            c.send(b"get %s\r\n" % key * 200)
            # Close while 20 MB of replies are queued: once some were made.
            assert wait_until(lambda: int(admin.stats_dict()["get_hits"]) > hits)
        # The server noticed and dropped the connection with its replies.
        assert wait_for_stat(admin, "curr_connections", 1) == "1"
        assert_healthy(srv, admin)


# --- huge multi-get, pipelines, fragmentation, half-close ----------------------------

def test_get_with_100000_keys(conn, bystander, server):
    stored = {b"bg%d" % i: b"val%d" % i for i in range(0, 100000, 997)}
    conn.call(b"".join(b"set %s 0 0 %d\r\n%s\r\n" % (k, len(v), v) for k, v in stored.items()),
              b"STORED\r\n" * len(stored))
    keys = [b"bg%d" % i for i in range(100000)] + [b"bg0", b"bg997"]  # + duplicates
    expected = b"".join(b"VALUE %s 0 %d\r\n%s\r\n" % (k, len(stored[k]), stored[k])
                        for k in keys if k in stored) + b"END\r\n"
    sender = conn.send_in_background(b"get " + b" ".join(keys) + CRLF)
    got = conn.read_exact(len(expected), timeout=30)
    sender.join(10)
    assert got == expected
    assert_healthy(server, bystander)


def mixed_pipeline():
    """A self-contained byte stream of commands (it resets its own keys) and
    the exact replies it must produce."""
    request = (
        b"delete fp1 noreply\r\ndelete fp2 noreply\r\ndelete fp3 noreply\r\n"
        b"delete fp1\r\n"
        b"set fp1 0 0 5\r\nhello\r\n"
        b"get fp1 fp2\r\n"
        b"incr fp1 1\r\n"
        b"set fp2 3 0 2\r\n10\r\n"
        b"incr fp2 5\r\ndecr fp2 100\r\n"
        b"append fp1 0 0 3\r\n!!!\r\n"
        b"get fp1 fp2\r\n"
        b"bogus command\r\n"
        b"set fp3 0 0 1\r\nxyz\r\n"
        b"set fp3 x 0 1\r\ny\r\n"
        b"add fp1 0 0 1\r\nq\r\n"
        b"touch fp1 100\r\n"
        b"delete fp1 noreply\r\n"
        b"get fp1\n"
        b"set fp3 0 0 0 noreply\r\n\r\n"
        b"gat 0 fp3\r\n"
        b"version\r\n"
    )
    reply = (
        b"NOT_FOUND\r\n"
        + b"STORED\r\n"
        + b"VALUE fp1 0 5\r\nhello\r\nEND\r\n"
        + b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
        + b"STORED\r\n"
        + b"15\r\n0\r\n"
        + b"STORED\r\n"
        + b"VALUE fp1 0 8\r\nhello!!!\r\nVALUE fp2 3 2\r\n0 \r\nEND\r\n"
        + b"ERROR\r\n"
        + b"CLIENT_ERROR bad data chunk\r\nERROR\r\n"
        + BAD_FORMAT + b"ERROR\r\n"
        + b"NOT_STORED\r\n"
        + b"TOUCHED\r\n"
        + b"END\r\n"
        + b"VALUE fp3 0 0\r\n\r\nEND\r\n"
        + expected_version_line()
    )
    return request, reply


def test_pipeline_in_one_write(conn):
    request, reply = mixed_pipeline()
    conn.call(request, reply)


def test_pipeline_one_byte_per_write(server):
    request, reply = mixed_pipeline()
    with server.connect() as c:
        for i in range(len(request)):
            c.send(request[i:i + 1])
        assert c.read_exact(len(reply)) == reply


def test_pipeline_split_at_every_byte(private_server):
    request, reply = mixed_pipeline()
    srv = private_server  # bytes_read must count this test's clients only
    with srv.connect() as admin, srv.connect() as c:
        watch = ReadWatch(admin)
        for i in range(1, len(request)):
            c.send(request[:i])
            # The server has read the first part before the rest is sent.
            assert watch.wait_for(c.sent) == c.sent, "split at byte %d" % i
            c.send(request[i:])
            assert c.read_exact(len(reply)) == reply, "split at byte %d" % i


def test_long_pipeline_answered_in_order(conn, key):
    request, reply = [], []
    for i in range(2500):
        k = b"%s_%d" % (key, i % 50)
        value = b"%d" % i
        request += [b"set %s 0 0 %d\r\n%s\r\n" % (k, len(value), value),
                    b"get %s\r\n" % k, b"incr %s 1\r\n" % k, b"delete %s_miss\r\n" % k]
        reply += [b"STORED\r\n", b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (k, len(value), value),
                  b"%d\r\n" % (i + 1), b"NOT_FOUND\r\n"]
    assert len(request) == 10000
    sender = conn.send_in_background(b"".join(request))
    expected = b"".join(reply)
    got = conn.read_exact(len(expected), timeout=30)
    sender.join(10)
    assert got == expected


def test_half_closed_client_gets_all_replies_then_eof(server, key):
    request = b"set %s 0 0 2\r\nhi\r\n" % key + b"get %s\r\n" % key * 2000
    reply = b"STORED\r\n" + b"VALUE %s 0 2\r\nhi\r\nEND\r\n" % key * 2000
    with server.connect() as c:
        c.send(request)
        c.sock.shutdown(socket.SHUT_WR)
        data, how = c.read_to_eof(timeout=10)
    assert (data, how) == (reply, "eof")

