"""Stampede protection of the meta protocol under concurrent clients:
several connections send the same mg at the same moment (threads released
by a barrier) and exactly one of them must win.

- N (vivify on miss): one client gets W, the others Z, until the winner
  stores the item; then nobody gets a flag.
- md I (stale): one client gets X W, the others Z X; a new md I re-arms W.
- R (recache): once the remaining TTL is below R, one client gets W, the
  others Z; while it is above, nobody.

Every wait is bounded (barrier, joins, reads). Expected replies were probed
on memcached 1.6.18.
"""

import re
import threading
import time

import pytest

from helpers import IO_TIMEOUT, fill, read_meta_reply

CLIENTS = 8
ROUNDS = 3  # each scenario is repeated with a fresh key, to catch races


class Clients:
    """CLIENTS open connections that can send one request simultaneously."""

    def __init__(self, server, n=CLIENTS):
        self.conns = [server.connect() for _ in range(n)]

    def close(self):
        for c in self.conns:
            c.close()

    def all_send(self, request):
        """Every connection sends request at once; their replies, in
        connection order."""
        n = len(self.conns)
        barrier = threading.Barrier(n, timeout=IO_TIMEOUT)
        replies = [None] * n

        def run(i):
            try:
                barrier.wait()
                self.conns[i].send(request)
                replies[i] = read_meta_reply(self.conns[i])
            except Exception as e:  # reported by the assertion below
                replies[i] = repr(e).encode()

        threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 3 * IO_TIMEOUT
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in threads), "a client did not finish in time"
        return replies


@pytest.fixture
def clients(server):
    c = Clients(server)
    yield c
    c.close()


def split_one_winner(replies, winner, loser):
    """Asserts exactly one reply fullmatches `winner` and all the others
    `loser` (compiled regexes); returns the winner's index."""
    winners = [i for i, r in enumerate(replies) if winner.fullmatch(r)]
    assert len(winners) == 1, "expected one winner: %r" % replies
    losers = [r for i, r in enumerate(replies) if i != winners[0]]
    assert all(loser.fullmatch(r) for r in losers), "unexpected replies: %r" % replies
    return winners[0]


def rx(pattern):
    return re.compile(pattern, re.S)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_vivify_on_miss_one_winner(clients, key, round_):
    replies = clients.all_send(b"mg %s N30 v c\r\n" % key)
    w = split_one_winner(replies, rx(rb"VA 0 c\d+ W\r\n\r\n"), rx(rb"VA 0 c\d+ Z\r\n\r\n"))
    # All saw the same stub item.
    assert len({re.search(rb"c(\d+)", r).group(1) for r in replies}) == 1
    # Until the winner stores the item, everybody else keeps getting Z.
    for _ in range(2):
        assert clients.all_send(b"mg %s N30 v\r\n" % key) == [b"VA 0 Z\r\n\r\n"] * CLIENTS
    clients.conns[w].call(b"ms %s 5 T30\r\nvalue\r\n" % key, b"HD\r\n")
    assert clients.all_send(b"mg %s N30 v\r\n" % key) == [b"VA 5\r\nvalue\r\n"] * CLIENTS


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_vivify_in_quiet_mode_one_winner(clients, key, round_):
    """q hides only misses: the created stub is a hit, W/Z replies come."""
    replies = clients.all_send(b"mg %s N30 q k\r\n" % key)
    split_one_winner(replies, rx(rb"HD k%s W\r\n" % re.escape(key)),
                     rx(rb"HD k%s Z\r\n" % re.escape(key)))


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_stale_item_one_winner(clients, key, round_):
    c = clients.conns[0]
    c.call(b"ms %s 3\r\nold\r\n" % key, b"HD\r\n")
    c.call(b"md %s I\r\n" % key, b"HD\r\n")
    replies = clients.all_send(b"mg %s v\r\n" % key)
    split_one_winner(replies, rx(rb"VA 3 X W\r\nold\r\n"), rx(rb"VA 3 Z X\r\nold\r\n"))
    assert clients.all_send(b"mg %s v\r\n" % key) == [b"VA 3 Z X\r\nold\r\n"] * CLIENTS
    # Invalidating again gives the win to one client again.
    c.call(b"md %s I\r\n" % key, b"HD\r\n")
    replies = clients.all_send(b"mg %s\r\n" % key)
    split_one_winner(replies, rx(rb"HD X W\r\n"), rx(rb"HD Z X\r\n"))
    # Storing a fresh value ends it.
    c.call(b"ms %s 3\r\nnew\r\n" % key, b"HD\r\n")
    assert clients.all_send(b"mg %s v\r\n" % key) == [b"VA 3\r\nnew\r\n"] * CLIENTS


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_recache_one_winner(clients, key, round_):
    c = clients.conns[0]
    c.call(b"ms %s 1 T100\r\nx\r\n" % key, b"HD\r\n")
    # Remaining TTL above R: nobody wins.
    assert clients.all_send(b"mg %s R30 v\r\n" % key) == [b"VA 1\r\nx\r\n"] * CLIENTS
    c.call(b"ms %s 1 T10\r\ny\r\n" % key, b"HD\r\n")
    replies = clients.all_send(b"mg %s R30 v\r\n" % key)
    split_one_winner(replies, rx(rb"VA 1 W\r\ny\r\n"), rx(rb"VA 1 Z\r\ny\r\n"))
    assert clients.all_send(b"mg %s R30 v\r\n" % key) == [b"VA 1 Z\r\ny\r\n"] * CLIENTS
    c.call(b"ms %s 1 T100\r\nz\r\n" % key, b"HD\r\n")
    assert clients.all_send(b"mg %s R30 v\r\n" % key) == [b"VA 1\r\nz\r\n"] * CLIENTS


def test_recache_win_comes_when_ttl_drops_below_R(clients, key):
    c = clients.conns[0]
    c.call(b"ms %s 1 T8\r\nx\r\n" % key, b"HD\r\n")
    # Wait (bounded) until the remaining TTL is below 5 seconds...
    deadline = time.monotonic() + 10
    while True:
        c.send(b"mg %s t\r\n" % key)
        line = c.read_line()
        m = re.fullmatch(rb"HD t(\d+)\r\n", line)
        assert m, "item gone or flagged too early: %r" % line
        if int(m.group(1)) < 5:
            break
        assert time.monotonic() < deadline, "TTL did not drop"
        time.sleep(0.1)
    # ...then R5 makes exactly one winner.
    replies = clients.all_send(b"mg %s R5 v\r\n" % key)
    split_one_winner(replies, rx(rb"VA 1 W\r\nx\r\n"), rx(rb"VA 1 Z\r\nx\r\n"))


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_vivify_winner_then_stale_then_recache(clients, key, round_):
    """The token is per item version: a set clears it, md I re-arms it."""
    replies = clients.all_send(b"mg %s N30 c\r\n" % key)
    w = split_one_winner(replies, rx(rb"HD c\d+ W\r\n"), rx(rb"HD c\d+ Z\r\n"))
    cas = re.search(rb"c(\d+)", replies[w]).group(1)
    # The winner stores with compare-and-swap on the stub's CAS.
    clients.conns[w].call(b"ms %s 1 C%s T10\r\nv\r\n" % (key, cas), b"HD\r\n")
    clients.conns[w].call(b"md %s I\r\n" % key, b"HD\r\n")
    replies = clients.all_send(b"mg %s R30 v\r\n" % key)
    split_one_winner(replies, rx(rb"VA 1 X W\r\nv\r\n"), rx(rb"VA 1 Z X\r\nv\r\n"))


def test_losers_cannot_store_over_the_winner_with_the_stub_cas(clients, key):
    replies = clients.all_send(b"mg %s N30 c\r\n" % key)
    w = split_one_winner(replies, rx(rb"HD c\d+ W\r\n"), rx(rb"HD c\d+ Z\r\n"))
    cas = re.search(rb"c(\d+)", replies[w]).group(1)
    clients.conns[w].call(fill(b"ms {k} 1 C%s\r\nw\r\n" % cas, key), b"HD\r\n")
    loser = clients.conns[(w + 1) % CLIENTS]
    loser.call(fill(b"ms {k} 1 C%s\r\nl\r\n" % cas, key), b"EX\r\n")
    loser.call(b"mg %s v\r\n" % key, b"VA 1\r\nw\r\n")
