"""strata-proxy's own lifecycle guarantees: reply backpressure, dropping a
client that never reads, graceful shutdown on SIGTERM/SIGINT.

The backpressure flags (--max-output, --drain-timeout) are strata's; stock
memcached has no equivalent, so those tests run against strata only (see
docs/COMPATIBILITY.md). Shutdown is checked on both servers where they agree.
"""

import signal
import socket

import pytest

import helpers

strata_only = pytest.mark.skipif(helpers.IS_MEMCACHED,
                                 reason="strata-only flags (docs/COMPATIBILITY.md)")

VALUE_SIZE = 100_000


def store_big_value(conn, key):
    conn.call(b"set %s 0 0 %d\r\n" % (key, VALUE_SIZE) + b"v" * VALUE_SIZE + b"\r\n",
              b"STORED\r\n")


def one_reply(key):
    return (b"VALUE %s 0 %d\r\n" % (key, VALUE_SIZE) + b"v" * VALUE_SIZE + b"\r\nEND\r\n")


def wait_for_conn_state(admin, sock, state, timeout=5.0):
    """Waits until `stats conns` (seen from admin) shows the connection of
    client socket `sock` in `state`; returns the last state seen."""
    port = sock.getsockname()[1]
    seen = None

    def reached():
        nonlocal seen
        seen = helpers.conn_states(admin).get(port)
        return seen == state
    helpers.wait_until(reached, timeout)
    return seen


@strata_only
def test_reading_pauses_while_replies_back_up_then_slow_client_is_dropped(server_factory):
    srv = server_factory("--max-output", "64k", "--drain-timeout", "3")
    key = b"bp_key"
    with srv.connect() as setup:
        store_big_value(setup, key)
    bystander = srv.connect()
    assert helpers.wait_for_stat(bystander, "curr_connections", 1) == "1"
    watch = helpers.ReadWatch(bystander)

    # A client that pipelines gets and never reads: 2,000 requests would
    # produce 200 MB of replies. The 24 KB of requests fit in the socket
    # buffers, so sending them completes whether or not the server reads.
    slow = socket.create_connection(srv.addr, timeout=5)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    request = b"get %s\r\n" % key
    slow.sendall(request * 2000)
    sent = 2000 * len(request)

    # The connection waits in conn_mwrite (its replies back up) while
    # others are served.
    assert wait_for_conn_state(bystander, slow, "conn_mwrite") == "conn_mwrite"
    assert bystander.version() == helpers.expected_version_line()

    # It never drains, so after --drain-timeout it is disconnected.
    assert helpers.wait_for_stat(bystander, "curr_connections", 1, timeout=8) == "1"
    # Now that it is gone, what the server read from it is final: it stopped
    # reading that client far short of what was sent.
    read_by_server = watch.others()
    assert 0 < read_by_server < 2000 * len(request), (read_by_server, sent)
    slow.close()
    helpers.assert_healthy(srv, bystander)
    bystander.close()


@strata_only
def test_paused_client_that_reads_gets_every_reply(server_factory):
    srv = server_factory("--max-output", "64k")
    key = b"bp_ok"
    with srv.connect() as c:
        store_big_value(c, key)
        n = 300  # 30 MB of replies, far beyond --max-output
        t = c.send_in_background(b"get %s\r\n" % key * n)
        expected = one_reply(key)
        for i in range(n):
            assert c.read_exact(len(expected), timeout=10) == expected, "reply %d" % i
        t.join(5)
        assert c.version() == helpers.expected_version_line()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_after_queued_replies(server_factory, sig):
    srv = server_factory()
    key = b"shutdown_key"
    with srv.connect() as c:
        store_big_value(c, key)
    idle = srv.connect()            # an idle client must not hold up the exit
    hits = int(idle.stats_dict()["get_hits"])
    busy = srv.connect()
    busy.send(b"get %s\r\n" % key * 50)   # 5 MB of replies, unread for now
    # The signal comes once replies are queued: the server answered a get.
    assert helpers.wait_until(lambda: int(idle.stats_dict()["get_hits"]) > hits), \
        "the server answered none of the gets"

    srv.proc.send_signal(sig)
    data, how = busy.read_to_eof(timeout=10)
    # Whatever was answered arrives whole: complete replies, then EOF.
    reply = one_reply(key)
    assert how == "eof"
    assert len(data) % len(reply) == 0 and data == reply * (len(data) // len(reply))
    assert len(data) > 0
    assert srv.proc.wait(10) == 0, srv.log()
    assert idle.read_to_eof(timeout=5)[1] in ("eof", "reset")
    with pytest.raises(OSError):
        socket.create_connection(srv.addr, timeout=1).close()
    idle.close()
    busy.close()


def test_value_read_continues_while_replies_are_blocked(server_factory):
    """Regression: a storage command whose value arrives while earlier
    replies wait for a client that reads slowly must still be read as data
    (strata once let the "waiting to write" state overwrite "reading a
    value"). 10 MB of replies exceed any socket buffer; strata gets an
    output bound above that so the set is parsed before the client reads,
    and both servers get -R above the 21 commands of the first write so the
    set line is parsed in the same pass as the gets."""
    flags = ["-R", "100"] + (["--max-output", "64m"] if helpers.IS_STRATA else [])
    srv = server_factory(*flags)
    key = b"blocked_nread"
    big = b"b" * 500_000
    with srv.connect() as c:
        c.call(b"set %s 0 0 %d\r\n" % (key, len(big)) + big + b"\r\n", b"STORED\r\n")
    admin = srv.connect()
    assert helpers.wait_for_stat(admin, "curr_connections", 1) == "1"
    watch = helpers.ReadWatch(admin)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # replies back up fast
    s.settimeout(5)
    s.connect(srv.addr)
    c = helpers.Conn.from_socket(s, timeout=5.0)
    value = b"d" * 300_000
    first = b"get %s\r\n" % key * 20 + b"set %s_2 0 0 %d\r\n" % (key, len(value)) + value[:1000]
    c.send(first)
    # The rest of the value must arrive while the replies are blocked: wait
    # until the server has read the whole first part and the connection
    # waits to write (strata: in the middle of the value; memcached: with
    # the set still unparsed).
    assert watch.wait_for(len(first)) == len(first)
    assert wait_for_conn_state(admin, s, "conn_mwrite") == "conn_mwrite"
    t = c.send_in_background(value[1000:] + b"\r\nget %s_2\r\n" % key)
    reply = b"VALUE %s 0 %d\r\n" % (key, len(big)) + big + b"\r\nEND\r\n"
    for i in range(20):
        assert c.read_exact(len(reply), timeout=10) == reply, "reply %d" % i
    assert c.read_exact(8) == b"STORED\r\n"
    want = b"VALUE %s_2 0 %d\r\n" % (key, len(value)) + value + b"\r\nEND\r\n"
    assert c.read_exact(len(want), timeout=10) == want
    t.join(5)
    c.close()
    admin.close()
