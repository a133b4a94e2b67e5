"""strata-admin's cluster commands against real strata-nodes: `ring`
(members by ownership), `repair` (an anti-entropy cycle and its figures,
on a healthy cluster, on a replica that missed writes, and when a peer
does not answer) and `hints` (hinted-handoff totals and one line per
target).

Each test starts its own three nodes (free loopback ports, a temporary
data directory each, anti-entropy only on request) and stops them by pid
at the end. Run once, in the `strata` run of the suite.
"""
import os
import re
import signal
import subprocess
import time

import pytest

import helpers
from nodes import Cluster, node_binary, replica_records

pytestmark = pytest.mark.skipif(
    helpers.SERVER_KIND != "strata",
    reason="strata-node tests run once, in the strata run (STRATA_TEST_SERVER=strata)")

# Every node: loopback only, anti-entropy only on the `repair` command.
FLAGS = ["-l", "127.0.0.1", "--repair-interval", "0"]
CONVERGE_TIMEOUT = 15.0
ADMIN_TIMEOUT = 60.0  # one strata-admin run, repair included


def admin(*args, timeout=ADMIN_TIMEOUT):
    binary = os.path.join(os.path.dirname(node_binary()), "strata-admin")
    return subprocess.run([binary] + [str(a) for a in args], capture_output=True,
                          timeout=timeout)


def addr(node):
    return "%s:%d" % node.addr


def explain(p):
    return "exit %s\nstdout:\n%s\nstderr:\n%s" % (p.returncode, p.stdout.decode(),
                                                  p.stderr.decode())


def parse_ring(out):
    """([(id, address, state, status, owns, answered)], total) of `ring`."""
    lines = out.decode().splitlines()
    assert lines[0].split() == ["id", "address", "state", "status", "owns"], lines
    rows, total = [], None
    for line in lines[1:]:
        f = line.split()
        if f[0] == "total":
            total = float(f[1].rstrip("%"))
            continue
        assert f[4].endswith("%"), line
        rows.append((int(f[0]), f[1], f[2], f[3], float(f[4][:-1]), line.endswith("(answered)")))
    assert total is not None, lines
    return rows, total


def parse_repair(out):
    """{figure: int} of a waiting `repair`."""
    lines = out.decode().splitlines()
    assert re.match(r"repair on \S+ done in [0-9.]+ s$", lines[0]), lines
    figures = {}
    for line in lines[1:]:
        name, value = line.split()
        figures[name] = int(value)
    assert list(figures) == ["sessions", "sessions_failed", "ranges_equal", "ranges_differing",
                             "keys_pulled", "keys_pushed"], lines
    return figures


HINT_COLUMNS = ["Pending", "Bytes", "Oldest_ms", "Written", "Replayed", "Drop_full",
                "Drop_too_old", "Drop_old", "Drop_corrupt"]


def parse_hints(out):
    """({total: int}, {target id: {column: int}}) of `hints`."""
    totals, targets, header = {}, {}, None
    for line in out.decode().splitlines():
        f = line.split()
        if not f:
            continue
        if header is None and f[0] != "Target":
            totals[f[0]] = int(f[1])
        elif header is None:
            header = f[1:]
            assert header == HINT_COLUMNS, line
        else:
            assert re.fullmatch(r"[0-9a-f]{32}", f[0]) and len(f) == 1 + len(header), line
            targets[f[0]] = dict(zip(header, map(int, f[1:])))
    assert header is not None, out
    return totals, targets


def repair_stats(node):
    return {k: int(v) for k, v in node.stats(b"repair").items()}


def wait_repair_idle(node, timeout=30.0):
    assert helpers.wait_until(lambda: repair_stats(node)["running"] == 0,
                              timeout=timeout, interval=0.1), repair_stats(node)


def write_keys(node, prefix, n, size):
    keys = [("%s%03d" % (prefix, i)).encode() for i in range(n)]
    with node.connect() as c:
        for i, key in enumerate(keys):
            value = (b"%03d" % i) * (size // 3)
            c.call(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value), b"STORED\r\n")
    return keys


@pytest.fixture
def cluster_factory(tmp_path):
    """Starts a converged 3-node cluster with FLAGS plus the given flags;
    every node still running at the end is stopped by pid (SIGTERM, and
    each must exit cleanly)."""
    started = []

    def start(*extra):
        cl = Cluster(tmp_path / ("c%d" % len(started)), 3, extra=FLAGS + list(extra))
        started.append(cl)
        return cl.start(timeout=CONVERGE_TIMEOUT)
    yield start
    errors = []
    for cl in started:
        try:
            cl.stop_all()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)


# ---- ring -----------------------------------------------------------------

def test_ring_lists_every_member_by_ownership(cluster_factory):
    cl = cluster_factory()
    for i in range(3):
        p = admin("-n", addr(cl[i]), "ring")
        assert p.returncode == 0, explain(p)
        rows, total = parse_ring(p.stdout)
        assert sorted(r[0] for r in rows) == sorted(cl.ids), explain(p)
        owns = [r[4] for r in rows]
        assert owns == sorted(owns, reverse=True), explain(p)
        assert all(r[2] == "up" and r[3] == "normal" for r in rows), explain(p)
        assert all(r[1].startswith("127.0.0.1:") for r in rows), explain(p)
        assert [r[0] for r in rows if r[5]] == [cl.ids[i]], explain(p)
        # "owns" is the primary share: each token counted once, so 100%
        # whatever the replication factor (rounding to 0.1% per node)
        assert 99.5 <= total <= 100.5, explain(p)
        assert abs(total - sum(owns)) < 0.05, explain(p)
        assert all(o > 0 for o in owns), explain(p)

    p = admin("-n", "127.0.0.1:%d" % helpers.free_port(), "ring")
    assert p.returncode == 1 and b"cannot connect" in p.stderr, explain(p)
    assert admin("-n", addr(cl[0]), "ring", "extra").returncode == 64
    assert admin("-n", addr(cl[0]), "ring", "--no-wait").returncode == 64


# ---- repair ---------------------------------------------------------------

def test_repair_on_a_healthy_cluster_moves_nothing(cluster_factory):
    cl = cluster_factory()
    keys = write_keys(cl[0], "healthy", 20, 60)
    # a quorum write reaches the third replica a little later
    assert helpers.wait_until(
        lambda: all(None not in replica_records(n, keys).values() for n in cl.nodes),
        timeout=10.0, interval=0.1)

    p = admin("-n", addr(cl[1]), "repair")
    assert p.returncode == 0, explain(p)
    figures = parse_repair(p.stdout)
    assert figures["sessions"] > 0 and figures["sessions_failed"] == 0, explain(p)
    assert figures["ranges_equal"] > 0 and figures["ranges_differing"] == 0, explain(p)
    assert figures["keys_pulled"] == 0 and figures["keys_pushed"] == 0, explain(p)
    stats = repair_stats(cl[1])
    assert stats["running"] == 0 and stats["cycles"] == 1, stats

    # --no-wait only starts it
    p = admin("-n", addr(cl[2]), "repair", "--no-wait")
    assert p.returncode == 0 and p.stdout.startswith(b"repair started on "), explain(p)
    wait_repair_idle(cl[2])
    assert repair_stats(cl[2])["cycles"] == 1

    for bad in (["--timeout", "0"], ["--timeout", "x"], ["extra"]):
        assert admin("-n", addr(cl[0]), "repair", *bad).returncode == 64, bad
    p = admin("-n", "127.0.0.1:%d" % helpers.free_port(), "repair")
    assert p.returncode == 1 and b"cannot connect" in p.stderr, explain(p)


def test_repair_brings_back_writes_a_replica_missed(cluster_factory):
    # Hints would repair most of what the killed node misses; a 4 KiB hint
    # store per target refuses most of them, so Merkle repair must do it.
    cl = cluster_factory("--hint-max-bytes", "4k")
    cl.kill(2)
    keys = write_keys(cl[0], "missed", 50, 200)

    # the coordinator kept what fitted as hints for node 2 and refused the rest
    def hinted():
        p = admin("-n", addr(cl[0]), "hints")
        assert p.returncode == 0, explain(p)
        totals, targets = parse_hints(p.stdout)
        written = [t for t in targets.values() if t["Written"] > 0]
        return (totals, targets, p) if written and totals["hints_stored"] > 0 else None
    got = helpers.wait_until(hinted, timeout=10.0, interval=0.2)
    assert got, admin("-n", addr(cl[0]), "hints").stdout.decode()
    totals, targets, p = got
    assert totals["targets"] == len(targets) >= 1, explain(p)
    target = max(targets.values(), key=lambda t: t["Written"])
    assert target["Written"] < len(keys) and target["Drop_full"] > 0, explain(p)

    cl.restart(2)
    cl.wait_converged(CONVERGE_TIMEOUT)
    missing = [k for k, r in replica_records(cl[2], keys).items() if r is None]

    p = admin("-n", addr(cl[2]), "repair")
    assert p.returncode == 0, explain(p)
    figures = parse_repair(p.stdout)
    assert figures["sessions_failed"] == 0 and figures["ranges_differing"] > 0, explain(p)
    assert figures["keys_pulled"] > 0, (explain(p), len(missing))
    assert all(r is not None for r in replica_records(cl[2], keys).values())

    p = admin("-n", addr(cl[2]), "repair")
    assert p.returncode == 0, explain(p)
    figures = parse_repair(p.stdout)
    assert figures["keys_pulled"] == 0 and figures["keys_pushed"] == 0, explain(p)
    assert figures["ranges_differing"] == 0 and figures["sessions_failed"] == 0, explain(p)


def test_repair_with_a_peer_that_does_not_answer(cluster_factory):
    # A stopped (SIGSTOP) peer still looks up for a while and still accepts
    # connections: each session with it times out (5 x --request-timeout,
    # here 2 s), one per token range; one token per node keeps that to 3.
    cl = cluster_factory("--request-timeout", "400", "--vnodes", "1")
    before = repair_stats(cl[0])
    os.kill(cl[1].proc.pid, signal.SIGSTOP)
    try:
        waiting = subprocess.Popen(
            [os.path.join(os.path.dirname(node_binary()), "strata-admin"), "-n", addr(cl[2]),
             "repair", "--timeout", "50"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            t0 = time.monotonic()
            p = admin("-n", addr(cl[0]), "repair", "--timeout", "0.5")
            assert p.returncode == 1 and b"still running after" in p.stderr, explain(p)
            assert time.monotonic() - t0 < 1.8
            p = admin("-n", addr(cl[0]), "repair")
            assert p.returncode == 1, explain(p)
            assert b"SERVER_ERROR repair already running" in p.stderr, explain(p)
            out, err = waiting.communicate(timeout=ADMIN_TIMEOUT)
        finally:
            if waiting.poll() is None:
                waiting.kill()
                waiting.wait()
        done = subprocess.CompletedProcess(waiting.args, waiting.returncode, out, err)
        assert done.returncode == 2, explain(done)
        figures = parse_repair(out)
        assert figures["sessions_failed"] > 0, explain(done)
        wait_repair_idle(cl[0])
        after = repair_stats(cl[0])
        assert after["cycles"] == before["cycles"] + 1, after
        assert after["sessions_failed"] > before["sessions_failed"], after
    finally:
        os.kill(cl[1].proc.pid, signal.SIGCONT)
    cl.wait_converged(CONVERGE_TIMEOUT + 10)


# ---- hints ----------------------------------------------------------------

def test_hints_on_a_quiet_cluster(cluster_factory):
    cl = cluster_factory()
    p = admin("-n", addr(cl[0]), "hints")
    assert p.returncode == 0, explain(p)
    totals, targets = parse_hints(p.stdout)
    for name in ("targets", "hints_stored", "hints_store_failures", "hints_pending",
                 "hints_pending_bytes", "hints_oldest_age_ms", "replay_batches",
                 "replay_failures"):
        assert name in totals, explain(p)
    assert totals["hints_pending"] == 0 and totals["targets"] == len(targets), explain(p)
    assert all(t["Pending"] == 0 for t in targets.values()), explain(p)
    p = admin("-n", "127.0.0.1:%d" % helpers.free_port(), "hints")
    assert p.returncode == 1 and b"cannot connect" in p.stderr, explain(p)
