"""Many connections at once, and the -c connection limit."""

import socket
import time

from helpers import IS_MEMCACHED, Conn, expected_version_line, wait_for_stat, wait_until

TOO_MANY = b"ERROR Too many open connections\r\n"


def test_2000_concurrent_connections(server_factory):
    srv = server_factory("-c", "4096")
    conns = [srv.connect() for _ in range(2000)]
    try:
        for i, c in enumerate(conns):
            c.send(b"set cc%d 0 0 %d\r\n%d\r\nget cc%d\r\n" % (i, len(b"%d" % i), i, i))
        for i, c in enumerate(conns):
            value = b"%d" % i
            expected = b"STORED\r\nVALUE cc%d 0 %d\r\n%s\r\nEND\r\n" % (i, len(value), value)
            assert c.read_exact(len(expected)) == expected
        with srv.connect() as admin:
            assert int(admin.stats_dict()["curr_connections"]) == 2001
    finally:
        for c in conns:
            c.close()
    with srv.connect() as admin:
        deadline = time.monotonic() + 5
        while int(admin.stats_dict()["curr_connections"]) != 1:
            assert time.monotonic() < deadline, "closed connections are still counted"
            time.sleep(0.05)


def connect_and_classify(srv, admin, before):
    """Opens one connection and waits until the server has decided about it:
    accepted (curr_connections goes up by one) or turned away
    (rejected_connections goes up by one). Returns (socket, accepted).
    `before` holds the two counters, updated in place."""
    s = socket.create_connection(srv.addr, timeout=5)
    seen = {}

    def decided():
        stats = admin.stats_dict()
        seen.update({n: int(stats[n]) for n in before})
        return seen != before
    assert wait_until(decided), "the server neither accepted nor rejected a connection"
    accepted = seen["curr_connections"] == before["curr_connections"] + 1
    rejected = seen["rejected_connections"] == before["rejected_connections"] + 1
    assert accepted != rejected, (before, seen)
    before.update(seen)
    return s, accepted


def answers_version(sock):
    return Conn.from_socket(sock).version() == expected_version_line()


def turned_away(sock):
    """The server's whole output on a rejected connection, and how it ended."""
    return Conn.from_socket(sock).read_to_eof()


def test_connection_limit(server_factory):
    """Over the -c limit a new connection gets exactly
    "ERROR Too many open connections\r\n" and is closed; it is counted in
    rejected_connections (not total_connections); once connections close,
    new ones are accepted. strata admits exactly -c clients (admin
    included); memcached counts its own descriptors (listener, eventfds, ...)
    against -c too, so fewer fit (docs/COMPATIBILITY.md, item 5)."""
    limit = 64
    srv = server_factory("-c", str(limit))
    admin = srv.connect()
    assert wait_for_stat(admin, "curr_connections", 1) == "1"  # the start-up probe left
    stats = admin.stats_dict()
    assert stats["max_connections"] == str(limit)
    total_before = int(stats["total_connections"])
    counters = {n: int(stats[n]) for n in ("curr_connections", "rejected_connections")}
    accepted, rejected = [], []
    try:
        # One at a time, so each one's fate is known: once one is turned
        # away, every later one must be too (nobody closed anything).
        for _ in range(limit + 16):
            s, ok = connect_and_classify(srv, admin, counters)
            (accepted if ok else rejected).append(s)
            assert not (ok and rejected), "accepted a connection after rejecting one"
        clients = len(accepted) + 1  # + admin
        if IS_MEMCACHED:
            assert 1 < clients < limit
        else:
            assert clients == limit
        assert len(rejected) == limit + 16 - len(accepted)
        assert [turned_away(s) for s in rejected] == [(TOO_MANY, "eof")] * len(rejected)
        assert all(answers_version(s) for s in accepted)
        stats = admin.stats_dict()
        assert int(stats["rejected_connections"]) == len(rejected)
        assert int(stats["curr_connections"]) == len(accepted) + 1
        assert int(stats["total_connections"]) - total_before == len(accepted)

        # Five close; five new connections fit in their place, a sixth does
        # not (memcached reuses the five descriptor numbers).
        for s in accepted[:5]:
            s.close()
        assert wait_for_stat(admin, "curr_connections", len(accepted) + 1 - 5) \
            == str(len(accepted) + 1 - 5)
        counters["curr_connections"] -= 5
        fresh = []
        for _ in range(5):
            s, ok = connect_and_classify(srv, admin, counters)
            fresh.append(s)
            assert ok, "no connection accepted after others closed"
        s, ok = connect_and_classify(srv, admin, counters)
        fresh.append(s)
        assert not ok and turned_away(s) == (TOO_MANY, "eof")
        assert all(answers_version(s) for s in fresh[:5])
        accepted += fresh
    finally:
        for s in accepted + rejected:
            s.close()
        admin.close()
