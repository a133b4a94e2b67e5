"""strata-proxy's write-behind over `backend = cluster` (docs/TIERS.md,
"The journal"): a write is decided against the key's pending write (or,
with none, the cluster's record, read first when the command needs it),
journaled and acknowledged; the drainer sends each pending record to the
nodes as a COORD_WRITE at the policy's write level, with the version the
client was given.

- Every command (test_tiers.py's SPECS) through a write-behind prefix
  answers as write-through does; once drained, every node's own copy is
  what write-through would have left, at the version (CAS unique) the
  client saw.
- The backend "down" (--test-backend-pause-file): writes are acknowledged
  and read back from the journal; the journal's bound refuses more with
  overflow = error; SIGKILL with thousands pending, restart: every
  acknowledged write reaches the nodes as its latest value.
- A node SIGKILLed: QUORUM drains with two of three; the third gets its
  copies from the hints when it is back.

strata only; real strata-node and strata-proxy processes on loopback,
stopped by pid.
"""

import os
import signal
import time

import pytest

import helpers
from helpers import gets_unique
from nodes import Cluster
from test_tiers import SEED, SEED_REQUEST, SPECS, read_state, run_steps
# the module's 3-node cluster: test_tiers_cluster's fixture (one per module)
from test_tiers_cluster import (cluster, cluster_args, copies, near_state,  # noqa: F401
                                node_gets_unique, seeds_of)
from test_writebehind import (OUT_OF_MEMORY, READY_TIMEOUT, Proxy, get_many, journal,
                              kill_all, set_all, set_request)

pytestmark = pytest.mark.skipif(helpers.SERVER_KIND != "strata",
                                reason="cluster backend tests run once, in the strata run")

STORED = b"STORED\r\n"
DRAIN_TIMEOUT = 20.0


def wait_drained(conn, timeout=DRAIN_TIMEOUT):
    """Until `stats journal` shows nothing pending; asserts it did."""
    last = {}

    def drained():
        last.update(journal(conn))
        return last["pending"] == 0
    assert helpers.wait_until(drained, timeout=timeout, interval=0.05), last


@pytest.fixture
def start_proxy(cluster):
    """start_proxy(data_dir, *flags): a strata-proxy on the module's
    cluster with a write-behind prefix `wb:`; killed by pid at the end."""
    started = []

    def run(data_dir, *flags):
        p = Proxy(cluster_args(seeds_of(cluster), "--data-dir", str(data_dir),
                               "--policy", "wb:=write-behind", *flags))
        p.start()
        started.append(p)
        return p

    yield run
    kill_all(started)


@pytest.fixture(scope="module")
def wb_proxy(cluster, tmp_path_factory):
    p = Proxy(cluster_args(seeds_of(cluster), "--data-dir",
                           str(tmp_path_factory.mktemp("wb-proxy")),
                           "--policy", "wb:=write-behind"))
    p.start()
    yield p
    p.stop()


@pytest.mark.parametrize("spec", SPECS, ids=repr)
def test_command_in_write_behind_mode(cluster, wb_proxy, spec):
    key = ("wb:%s" % spec.name).encode()
    if spec.seeded:
        with cluster[0].connect() as c:
            c.call(SEED_REQUEST % key, STORED)
        assert helpers.wait_until(
            lambda: all(near_state(s, SEED) for s, _ in copies(cluster, [key])[key]),
            timeout=5.0), copies(cluster, [key])
    with wb_proxy.connect() as c:
        run_steps(c, key, spec.steps)
        want = spec.l1_final("wt")
        assert near_state(read_state(c, key), want), (read_state(c, key), want)
        wait_drained(c)
        # the nodes hold what write-through would have left
        durable = spec.durable_final("wt")
        assert helpers.wait_until(
            lambda: all(near_state(s, durable) for s, _ in copies(cluster, [key])[key]),
            timeout=5.0), (copies(cluster, [key]), durable)
        # at the version the client was given
        if durable is not None and spec.kind not in ("read", "failed", "miss"):
            u = gets_unique(c, key)
            assert [node_gets_unique(n, key) for n in cluster] == [u] * 3


def test_pending_while_the_backend_is_down_then_drained(cluster, start_proxy, tmp_path):
    """Backend "down": sets, an incr and a delete acknowledged and read
    back (from L1 and from the journal after L1 lost them), nothing on the
    nodes; the journal's bound refuses a new key with overflow = error;
    back up: every key drains to its latest value."""
    pause = tmp_path / "pause"
    pause.write_bytes(b"")
    p = start_proxy(tmp_path / "data", "--test-backend-pause-file", str(pause),
                    "--journal-max-entries", "50", "--policy", "wb:=write-behind,overflow=error")
    keys = [b"wb:down:%d" % i for i in range(40)]
    with p.connect() as c:
        set_all(c, [(k, b"v1-" + k) for k in keys])
        set_all(c, [(k, b"v2-" + k) for k in keys[:20]])  # coalesced
        c.call(b"set wb:down:n 0 0 1\r\n5\r\n", STORED)
        c.call(b"incr wb:down:n 3\r\n", b"8\r\n")
        c.call(b"delete %s\r\n" % keys[39], b"DELETED\r\n")
        assert journal(c)["pending"] == 41
        # L1 forgets them: the journal still answers
        c.call(b"flush_all\r\n", b"OK\r\n")
        got = {k: v for k, (_, v) in get_many(c, keys + [b"wb:down:n"]).items()}
        assert got.get(b"wb:down:n") == b"8" and keys[39] not in got
        assert all(got.get(k) == (b"v2-" if i < 20 else b"v1-") + k
                   for i, k in enumerate(keys[:39]))
        # nothing reached the nodes
        assert all(s is None for cs in copies(cluster, keys[:5]).values() for s, _ in cs)
        # the bound: 41 keys pending, 9 more fit, the 10th new key is refused
        for i in range(9):
            c.call(set_request(b"wb:more:%d" % i, b"x"), STORED)
        c.call(set_request(b"wb:more:9", b"x"), OUT_OF_MEMORY)
        c.call(set_request(keys[0], b"v3-" + keys[0]), STORED)  # a pending key: coalesced
        os.unlink(pause)
        wait_drained(c)
    want = {k: (b"v3-" if i == 0 else b"v2-" if i < 20 else b"v1-") + k
            for i, k in enumerate(keys[:39])}
    with cluster[2].connect() as n:
        got = {k: v for k, (_, v) in get_many(n, list(want) + [keys[39], b"wb:down:n",
                                                               b"wb:more:8", b"wb:more:9"]).items()}
    assert {k: got.get(k) for k in want} == want
    assert keys[39] not in got and got.get(b"wb:down:n") == b"8"
    assert got.get(b"wb:more:8") == b"x" and b"wb:more:9" not in got


def test_sigkill_with_pending_writes_keeps_every_acknowledged_write(cluster, start_proxy,
                                                                     tmp_path):
    """5,000 keys written twice while the backend is "down", the proxy
    SIGKILLed; started again (the pause gone), it sends the journal to the
    nodes before it serves: each key holds its second value there."""
    pause = tmp_path / "pause"
    pause.write_bytes(b"")
    data = tmp_path / "data"
    p = start_proxy(data, "--test-backend-pause-file", str(pause))
    keys = [b"wb:kill:%05d" % i for i in range(5000)]
    with p.connect() as c:
        set_all(c, [(k, b"a-" + k) for k in keys])
        set_all(c, [(k, b"b-" + k) for k in keys])
        assert journal(c)["pending"] == len(keys)
    p.proc.send_signal(signal.SIGKILL)
    p.proc.wait(helpers.STOP_TIMEOUT)
    p.proc = None
    os.unlink(pause)
    t0 = time.monotonic()
    p = start_proxy(data)
    with p.connect() as c:
        assert journal(c)["pending"] == 0  # applied before it served
    assert time.monotonic() - t0 < READY_TIMEOUT
    with cluster[1].connect() as n:
        got = {k: v for k, (_, v) in get_many(n, keys).items()}
    wrong = [k for k in keys if got.get(k) != b"b-" + k]
    assert wrong == [], "%d keys not at their last value, e.g. %r" % (len(wrong), wrong[:3])


def test_a_node_down_quorum_drains_and_hints_fill_it(tmp_path):
    """One node of three SIGKILLed: write-behind keys drain at QUORUM;
    when it is back, the hints the coordinators kept bring it the same
    records at the same versions."""
    with Cluster(tmp_path / "cl", 3) as cl:
        cl.start()
        p = Proxy(cluster_args(seeds_of(cl), "--data-dir", str(tmp_path / "data"),
                               "--policy", "wb:=write-behind"))
        p.start()
        try:
            cl.kill(2)
            cl.wait_state(2, "down", observers=[0, 1])
            keys = [b"wb:q:%d" % i for i in range(200)]
            with p.connect() as c:
                set_all(c, [(k, b"q-" + k) for k in keys])
                wait_drained(c)
                uniques = {k: gets_unique(c, k) for k in keys[:10]}
            cl.restart(2)
            cl.wait_state(2, "up", observers=[0, 1])

            def third_has_them():
                got = copies(cl, keys)
                return all(cs[2][0] is not None and cs[2][0][1] == b"q-" + k
                           for k, cs in got.items())
            assert helpers.wait_until(third_has_them, timeout=20.0, interval=0.2)
            assert all(node_gets_unique(cl[2], k) == u for k, u in uniques.items())
        finally:
            p.stop()
