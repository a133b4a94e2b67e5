"""strata-proxy's local backend writes a worker's writes as one engine
batch, their keys locked until the batch is in the engine (proxy/turn.c):
a connection's replies leave only after it. These tests drive that from
many pipelining connections over four workers, on few keys (so workers
meet on the same keys and lock stripes), and check what must hold whatever
the batching does: every incr returns a distinct number and none is lost,
the last set of every key wins, nothing hangs (a deadlock between workers
holding each other's stripes would), and every acknowledged write is there
after SIGKILL.
"""

import signal
import threading

import pytest

import helpers

strata_only = pytest.mark.skipif(helpers.SERVER_KIND != "strata",
                                 reason="needs strata-proxy's backend (docs/TIERS.md); "
                                        "runs in the strata run")

CLIENTS = 8
ROUNDS = 60
COUNTERS = [b"bc:%d" % i for i in range(12)]
DEADLINE = 60.0  # seconds for the whole load; a hang fails the test


def read_reply_lines(conn, n):
    return [conn.read_line() for _ in range(n)]


def client(addr, idx, incrs, sets, errors):
    """ROUNDS rounds of one pipelined burst: an incr of every counter, a set
    of this client's own keys, a get of a counter; replies checked."""
    conn = helpers.Conn(addr)
    try:
        for r in range(ROUNDS):
            burst = []
            for k in COUNTERS:
                burst.append(b"incr %s 1\r\n" % k)
            own = [b"bs:%d:%d" % (idx, j) for j in range(4)]
            for key in own:
                value = b"%d" % r
                burst.append(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value))
            burst.append(b"get %s\r\n" % COUNTERS[r % len(COUNTERS)])
            conn.send(b"".join(burst))
            for k, line in zip(COUNTERS, read_reply_lines(conn, len(COUNTERS))):
                if not line.rstrip(b"\r\n").isdigit():
                    errors.append((idx, r, k, line))
                    return
                incrs[k].append(int(line))
            for key, line in zip(own, read_reply_lines(conn, len(own))):
                if line != b"STORED\r\n":
                    errors.append((idx, r, key, line))
                    return
                sets[key] = b"%d" % r
            line = conn.read_line()
            if line.startswith(b"VALUE "):
                conn.read_line()
                line = conn.read_line()
            if line != b"END\r\n":
                errors.append((idx, r, "get", line))
                return
    except OSError as e:
        errors.append((idx, "io", repr(e)))
    finally:
        conn.close()


def get_value(conn, key):
    conn.send(b"get %s\r\n" % key)
    line = conn.read_line()
    if line == b"END\r\n":
        return None
    assert line.startswith(b"VALUE "), line
    value = conn.read_line()[:-2]
    assert conn.read_line() == b"END\r\n"
    return value


@strata_only
@pytest.mark.parametrize("sync", ["interval", "always"])
def test_pipelined_writes_from_many_connections_stay_exact(server_factory, tmp_path, sync):
    args = ["--backend", "local", "--data-dir", str(tmp_path / "data"), "--sync", sync]
    srv = server_factory(*args)
    with srv.connect() as c:
        for k in COUNTERS:
            c.call(b"set %s 0 0 1\r\n0\r\n" % k, b"STORED\r\n")
    incrs = {k: [] for k in COUNTERS}
    sets, errors = {}, []
    threads = [threading.Thread(target=client, args=(srv.addr, i, incrs, sets, errors),
                                daemon=True) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=DEADLINE)
    assert not any(t.is_alive() for t in threads), "clients still waiting: a hang"
    assert errors == []
    total = CLIENTS * ROUNDS
    for k in COUNTERS:
        # each incr saw its own number: none lost, none applied twice
        assert sorted(incrs[k]) == list(range(1, total + 1)), k
    # every acknowledged write is in the engine: SIGKILL and look
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(helpers.STOP_TIMEOUT)
    srv.proc = None
    srv = server_factory(*args)
    with srv.connect() as c:
        for k in COUNTERS:
            assert get_value(c, k) == b"%d" % total, k
        for key, value in sets.items():
            assert get_value(c, key) == value, key
