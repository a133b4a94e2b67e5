"""strata-proxy's tiers over `backend = cluster` (docs/TIERS.md; the code
is proxy/cbackend.c, proxy/cmd_cluster.c, proxy/clusterview.c): a proxy in
front of strata-nodes, its L1 above their replicated data.

- Every command in every mode (cache-only, read-through, write-through,
  write-around) through a proxy on a 3-node cluster (N=3): memcached's
  replies (test_tiers.py's SPECS), what each node holds afterwards (each
  replica's own copy and each node's memcached port), what a second proxy
  with an empty L1 reads (a fill), and CAS uniques that are the nodes'
  versions.
- Two proxies on one cluster: a write through one is read by the other
  when its L1 does not hold the key; l1_ttl_cap bounds a stale copy.
- Consistency levels with nodes SIGKILLed: QUORUM with one node down,
  `SERVER_ERROR not enough replicas available` with two, ONE still works,
  the proxy's view back to three nodes after the restarts; a proxy whose
  view of the ring is stale goes around a dead node.
- The history checker under a QUORUM load while a node is killed and
  restarted: no acknowledged write lost.
- Seeds all unreachable: backend keys answer SERVER_ERROR, cache-only keys
  work; a node started on the seed's port is found.
- The config: the cluster backend without seeds, or a read level of ANY,
  is refused (EX_CONFIG); write-behind over the cluster is
  test_writebehind_cluster.py's.

strata only. The tests that kill no node share one 3-node cluster and two
proxies (module fixtures); the others start their own. Every process is
stopped by pid, every wait is bounded.
"""

import threading
import time

import pytest

import helpers
from helpers import Conn, gets_unique, read_meta_reply
from history import OK, History, summarize
from nodes import Cluster, Node, replica_records
from test_replication import load_client
from test_tiers import (EX_CONFIG, FILLS_AFTER, MODE_NAMES, MODE_POLICIES, MODES, SEED,
                        SEED_REQUEST, SPECS, concurrent_gets, counters, delta, mc_get, meta_cas,
                        read_state, run_proxy, run_steps, same_state, start_refused)

# the cluster backend completes every command asynchronously already:
# --test-async-reads (strata-async) adds nothing, so these run once, in
# the strata run, like the strata-node suites
pytestmark = pytest.mark.skipif(helpers.SERVER_KIND != "strata",
                                reason="cluster backend tests run once, in the strata run")

STORED = b"STORED\r\n"
NOT_ENOUGH = b"SERVER_ERROR not enough replicas available\r\n"
POLL_MS = 100  # the proxies' ring poll: a node's state reaches them within ~0.1 s


def seeds_of(cl):
    return ",".join("%s:%d" % n.cluster_addr for n in cl)


def cluster_args(seeds, *more, poll_ms=POLL_MS):
    return ["--backend", "cluster", "--cluster-seeds", seeds, "--cluster-poll-ms", str(poll_ms),
            *more]


def start_proxy(*args):
    if helpers.external_addr():
        pytest.skip("needs a server of its own; not possible with STRATA_TEST_ADDR")
    return helpers.Server(args).start()


def backend_stats(srv):
    with srv.connect() as c:
        return c.stats_dict(b"backend")


def wait_nodes_up(srv, n, timeout=10.0):
    """Waits until the proxy's view shows n nodes up; asserts it did."""
    last = {}

    def seen():
        last.update(backend_stats(srv))
        return last["nodes_up"] == str(n)
    assert helpers.wait_until(seen, timeout=timeout, interval=0.05), \
        "the proxy's view did not show %d nodes up in %.0f s: %r" % (n, timeout, last)


def line(conn, request):
    conn.send(request)
    return conn.read_line()


def near_state(got, want):
    """same_state(), a positive TTL allowed one second more: each process
    counts time in whole seconds on a clock of its own (memcached's
    current_time), so an expiry set by the proxy may read one second longer
    on a node or after a fill than it was given."""
    if got is not None and want is not None and want[2] > 0 and got[:2] == want[:2]:
        return want[2] - 3 <= got[2] <= want[2] + 1
    return same_state(got, want)


def node_state(rec, now):
    """(flags, value, ttl) of a replica's own record as read_state shows a
    value, None for no record or a tombstone."""
    if rec is None or rec.tombstone:
        return None
    return rec.flags, rec.value, -1 if rec.expiry == 0 else rec.expiry - now


def copies(cl, keys):
    """{key: [(state, version) of each node's own copy]}."""
    per_node = [replica_records(n, keys) for n in cl]
    now = int(time.time())
    return {k: [(node_state(recs[k], now), None if recs[k] is None else tuple(recs[k].version))
                for recs in per_node] for k in keys}


def node_gets_unique(node, key):
    with node.connect() as c:
        return gets_unique(c, key)


# ---- one cluster for the tests that kill no node ------------------------------

@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if helpers.external_addr():
        pytest.skip("needs servers of its own; not possible with STRATA_TEST_ADDR")
    cl = Cluster(tmp_path_factory.mktemp("tiers-cluster"), 3)
    cl.start()
    yield cl
    cl.stop_all()


CAP_POLICY = ["--policy", "cap:=write-through,l1_ttl_cap=1"]


@pytest.fixture(scope="module")
def proxies(cluster):
    """Two proxies on the module's cluster with the same policies: A runs
    the scripts, B (its own L1) reads what reached the nodes."""
    args = cluster_args(seeds_of(cluster), *MODE_POLICIES, *CAP_POLICY)
    a = start_proxy(*args)
    try:
        b = start_proxy(*args)
    except BaseException:
        a.stop()
        raise
    try:
        yield a, b
    finally:
        try:
            a.stop()
        finally:
            b.stop()


def test_negative_ttl_remembers_a_miss_on_the_nodes(cluster):
    """negative_ttl: a miss on the nodes is remembered (no request for the
    next misses) until a write of the key through this proxy."""
    srv = start_proxy(*cluster_args(seeds_of(cluster), "-t", "1",
                                    "--policy", "neg:=write-through,negative_ttl=30"))
    try:
        with srv.connect() as c:
            b0 = backend_stats(srv)
            for _ in range(3):
                c.call(b"get neg:k\r\n", b"END\r\n")
            b1 = backend_stats(srv)
            assert int(b1["reads"]) - int(b0["reads"]) == 1, (b0, b1)
            assert int(c.stats_dict(b"tiers")["negative_hits"]) == 2
            c.call(b"set neg:k 0 0 2\r\nv1\r\n", STORED)
            c.call(b"delete neg:k\r\n", b"DELETED\r\n")
            c.call(b"get neg:k\r\n", b"END\r\n")  # read again: the write forgot it
            assert int(backend_stats(srv)["reads"]) - int(b1["reads"]) == 1
    finally:
        srv.stop()


def test_concurrent_misses_across_workers_read_the_nodes_once(cluster):
    """Single flight across the proxy's workers: 16 connections (spread
    over its 4 workers) miss the same key at once; the nodes are read once
    and every client gets the value. The values are large so that the read
    is still on its way when the other misses come."""
    values = {b"sfx:%d" % i: (b"%d-" % i) * 100000 for i in range(3)}
    with cluster[0].connect() as n:
        for key, value in values.items():
            n.call(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value), STORED)
    srv = start_proxy(*cluster_args(seeds_of(cluster), "-t", "4", "-m", "64"))
    try:
        wait_nodes_up(srv, 3)
        for key, value in values.items():
            before = backend_stats(srv)
            got = concurrent_gets(srv, key)
            after = backend_stats(srv)
            assert all(g == value for g in got), [g if g is None or isinstance(g, Exception)
                                                  else g[:20] for g in got]
            assert int(after["reads"]) - int(before["reads"]) == 1, key
    finally:
        srv.stop()


def test_the_proxy_learns_the_ring(cluster, proxies):
    for srv in proxies:
        s = backend_stats(srv)
        assert (s["backend"], s["nodes"], s["nodes_up"]) == ("cluster", "3", "3"), s
        assert int(s["ring_versions"]) >= 1 and int(s["ring_polls"]) >= 1, s
    a = proxies[0]
    before = int(backend_stats(a)["ring_polls"])
    time.sleep(5 * POLL_MS / 1000)
    s = backend_stats(a)
    assert int(s["ring_polls"]) - before >= 2, "polled every %d ms: %r" % (POLL_MS, s)
    assert int(s["ring_age_ms"]) < 1000 and s["ring_poll_failures"] == "0", s


# ---- every command in every mode ----------------------------------------------

@pytest.mark.parametrize("spec", SPECS, ids=repr)
def test_command_in_every_mode(cluster, proxies, spec):
    """One key per mode, seeded on the nodes (cache-only: in A's L1), the
    script run through proxy A. Then: what A reads, each node's own copy
    and its memcached port (write-through, write-around: the command's
    result; read-through, cache-only: unchanged), what B reads (a fill
    from the nodes), and CAS uniques equal to the nodes' versions.
    Problems of every mode are collected and reported together."""
    a, b = proxies
    keys = {m: ("%s:%s" % (m, spec.name)).encode() for m in MODES}
    below = [keys[m] for m in ("rt", "wt", "wa")]
    problems = []

    if spec.seeded:
        with cluster[0].connect() as c:
            for k in below:
                c.call(SEED_REQUEST % k, STORED)
        # the third replica is written after the quorum answered
        assert helpers.wait_until(
            lambda: all(all(near_state(s, SEED) for s, _ in cs)
                        for cs in copies(cluster, below).values()), timeout=5.0), \
            copies(cluster, below)
    before = copies(cluster, list(keys.values()))

    for m in MODES:
        k = keys[m]
        with a.connect() as c:
            try:
                if spec.seeded and m == "co":
                    c.call(SEED_REQUEST % k, STORED)
                c0 = counters(c)
                run_steps(c, k, spec.steps)
            except AssertionError as e:
                problems.append("%s: the script failed: %s" % (MODE_NAMES[m], e))
                continue
            c1 = counters(c)
            state = read_state(c, k)
            c2 = counters(c)
            want = spec.l1_final(m)
            if not near_state(state, want):
                problems.append("%s: after the script A reads %r, expected %r"
                                % (MODE_NAMES[m], state, want))
            # CAS uniques: the nodes' versions, for a copy that came from them
            from_nodes = m in ("wt", "wa") or (m == "rt" and spec.kind in ("read", "failed",
                                                                           "delete"))
            if from_nodes and want is not None and spec.kind != "vivify":
                u = gets_unique(c, k)
                on_nodes = [node_gets_unique(n, k) for n in cluster]
                if on_nodes != [u] * 3:
                    problems.append("%s: gets through A gives %d, the nodes' gets %r"
                                    % (MODE_NAMES[m], u, on_nodes))
        fills = 0 if spec.reads and m == "wa" else FILLS_AFTER[spec.kind][m]
        got_fills = delta(c2, c1, "tiers.l1_fills")
        if fills is not None and got_fills != fills:
            problems.append("%s: the read after the script made %d l1_fills, expected %d"
                            % (MODE_NAMES[m], got_fills, fills))
        writes, reads = delta(c1, c0, "backend.writes"), delta(c1, c0, "backend.reads")
        if m == "co" and (writes, reads, delta(c1, c0, "tiers.l1_fills")) != (0, 0, 0):
            problems.append("cache-only: the script made %d backend writes and %d reads"
                            % (writes, reads))
        if m == "rt" and writes != 0:
            problems.append("read-through: the script made %d backend writes" % writes)
        if m in ("wt", "wa"):
            if spec.kind in ("write", "delete") and writes < 1:
                problems.append("%s: the script made no backend write" % MODE_NAMES[m])
            if spec.kind in ("read", "vivify") and writes != 0:
                problems.append("%s: a read made %d backend writes" % (MODE_NAMES[m], writes))
        if m != "co" and spec.kind == "read" and reads < 1:
            problems.append("%s: the L1 miss did not read the nodes" % MODE_NAMES[m])
        for name in ("errors", "timeouts", "unavailable", "busy"):
            if delta(c2, c0, "backend." + name) != 0:
                problems.append("%s: stats backend %s moved" % (MODE_NAMES[m], name))

    # what landed on the nodes: each replica's own copy (the third one may
    # follow the quorum's answer by a moment) and each node's memcached port
    wants = {k: spec.durable_final(m) for m, k in keys.items()}

    def nodes_hold():
        got = copies(cluster, list(keys.values()))
        return got if all(all(near_state(s, wants[k]) for s, _ in cs)
                          for k, cs in got.items()) else None
    helpers.wait_until(nodes_hold, timeout=3.0, interval=0.05)
    after = copies(cluster, list(keys.values()))
    for m, k in keys.items():
        states = [s for s, _ in after[k]]
        if not all(near_state(s, wants[k]) for s in states):
            problems.append("%s: the nodes' own copies are %r, expected %r"
                            % (MODE_NAMES[m], states, wants[k]))
        unchanged = m in ("co", "rt") or spec.kind in ("read", "failed", "miss", "vivify")
        if unchanged and after[k] != before[k]:
            problems.append("%s: the nodes' copies changed: %r -> %r"
                            % (MODE_NAMES[m], before[k], after[k]))
        for i, n in enumerate(cluster):
            with n.connect() as c:
                got = read_state(c, k)
            if not near_state(got, wants[k]):
                problems.append("%s: node %d's memcached port reads %r, expected %r"
                                % (MODE_NAMES[m], i, got, wants[k]))

    # a proxy with an empty L1 reads what the nodes hold
    with b.connect() as c:
        for m, k in keys.items():
            c0 = counters(c)
            got = read_state(c, k)
            c1 = counters(c)
            want = None if m == "co" else wants[k]
            if not near_state(got, want):
                problems.append("%s: proxy B reads %r, expected %r" % (MODE_NAMES[m], got, want))
            fills = 1 if want is not None else 0
            if delta(c1, c0, "tiers.l1_fills") != fills:
                problems.append("%s: B's read made %d l1_fills, expected %d"
                                % (MODE_NAMES[m], delta(c1, c0, "tiers.l1_fills"), fills))
            if m != "co" and want is not None:
                u, on_node = gets_unique(c, k), node_gets_unique(cluster[1], k)
                if u != on_node:
                    problems.append("%s: gets through B gives %d, node 1's gets %d"
                                    % (MODE_NAMES[m], u, on_node))
    assert not problems, "%s:\n  " % spec.name + "\n  ".join(problems)


# ---- CAS uniques are the nodes' versions ---------------------------------------

def test_cas_uniques_are_the_nodes_versions(cluster, proxies):
    a, b = proxies
    for m in ("wt", "wa", "rt"):
        key = b"%s:casv" % m.encode()
        with cluster[2].connect() as c:
            c.call(b"set %s 1 0 2\r\nn1\r\n" % key, STORED)
        u = node_gets_unique(cluster[2], key)
        assert u >= 1 << 40, "a hybrid-logical-clock version: %d" % u
        with a.connect() as c:
            assert gets_unique(c, key) == u, m
            assert meta_cas(c, key) == u, m
            c.call(b"cas %s 2 0 2 %d\r\np1\r\n" % (key, u + 1), b"EXISTS\r\n")
            c.call(b"cas %s 2 0 2 %d\r\np1\r\n" % (key, u), STORED)
            u2 = gets_unique(c, key)
            # read-through: the cas ran on L1, whose own counter numbers the
            # change; the other modes: a newer version from the nodes
            assert u2 != u if m == "rt" else u2 > u, (m, u, u2)
            c.call(b"cas %s 3 0 2 %d\r\np2\r\n" % (key, u), b"EXISTS\r\n")
            c.call(b"get %s\r\n" % key, b"VALUE %s 2 2\r\np1\r\nEND\r\n" % key)
        on_nodes = [node_gets_unique(n, key) for n in cluster]
        if m == "rt":
            # read-through: the cas ran on L1; the nodes keep their record
            assert on_nodes == [u] * 3, on_nodes
            continue
        assert on_nodes == [u2] * 3, (m, u2, on_nodes)
        with b.connect() as c:  # a unique from proxy A works through proxy B
            assert gets_unique(c, key) == u2
            c.call(b"cas %s 4 0 2 %d\r\nb1\r\n" % (key, u2), STORED)
        with a.connect() as c:
            # A's write-through copy is stale now (B wrote the nodes): its
            # unique is refused by the nodes, which decide
            c.call(b"cas %s 5 0 2 %d\r\na1\r\n" % (key, u2), b"EXISTS\r\n")
        with cluster[0].connect() as c:
            c.call(b"get %s\r\n" % key, b"VALUE %s 4 2\r\nb1\r\nEND\r\n" % key)


# ---- two proxies on one cluster ---------------------------------------------------

def test_a_write_through_one_proxy_is_read_through_the_other(cluster, proxies):
    a, b = proxies
    with a.connect() as ca, b.connect() as cb:
        for key in (b"two:k", b"wa:two"):
            ca.call(b"set %s 3 0 2\r\nv1\r\n" % key, STORED)
            c0 = counters(cb)
            cb.call(b"get %s\r\n" % key, b"VALUE %s 3 2\r\nv1\r\nEND\r\n" % key)
            c1 = counters(cb)
            assert (delta(c1, c0, "tiers.l1_fills"), delta(c1, c0, "backend.reads")) == (1, 1)
        # B holds two:k now; without l1_ttl_cap its copy is what B answers
        ca.call(b"set two:k 3 0 2\r\nv2\r\n", STORED)
        cb.call(b"get two:k\r\n", b"VALUE two:k 3 2\r\nv1\r\nEND\r\n")
        # keys B does not hold: A's incr, append, delete are what B reads
        ca.call(b"set two:n 0 0 2\r\n10\r\n", STORED)
        ca.call(b"incr two:n 5\r\n", b"15\r\n")
        ca.call(b"get wa:two\r\n", b"VALUE wa:two 3 2\r\nv1\r\nEND\r\n")  # A fills
        a0 = counters(ca)
        ca.call(b"append wa:two 0 0 1\r\n!\r\n", STORED)  # write-around: A's copy dropped
        a1 = counters(ca)
        assert delta(a1, a0, "tiers.l1_invalidations") == 1, (a0, a1)
        cb.call(b"delete wa:two\r\n", b"DELETED\r\n")  # B's copy and the nodes'
        ca.call(b"get wa:two\r\n", b"END\r\n")
        a2 = counters(ca)
        assert (delta(a2, a1, "tiers.l1_fill_misses"), delta(a2, a1, "tiers.l1_fills")) == (1, 0)
        cb.call(b"get two:n wa:two\r\n", b"VALUE two:n 0 2\r\n15\r\nEND\r\n")
        ca.call(b"delete two:n\r\n", b"DELETED\r\n")
        with Conn(b.addr) as cb2:
            # B's copy of two:n is stale (no cap): B still answers it, while
            # the nodes have the delete
            cb2.call(b"get two:n\r\n", b"VALUE two:n 0 2\r\n15\r\nEND\r\n")
        with cluster[2].connect() as cn:
            cn.call(b"get two:n\r\n", b"END\r\n")

        # l1_ttl_cap=1: B's copy is read again from the nodes within ~2 s
        ca.call(b"set cap:k 0 0 2\r\nc1\r\n", STORED)
        cb.call(b"get cap:k\r\n", b"VALUE cap:k 0 2\r\nc1\r\nEND\r\n")
        state = read_state(cb, b"cap:k")
        assert state is not None and state[:2] == (0, b"c1") and 0 <= state[2] <= 1, state
        ca.call(b"set cap:k 0 0 2\r\nc2\r\n", STORED)
        t0 = time.monotonic()
        assert helpers.wait_until(lambda: mc_get(cb, b"cap:k") == b"c2", timeout=3.0,
                                  interval=0.05), "B still serves its stale capped copy"
        took = time.monotonic() - t0
        assert took < 2.2, "B's capped copy was replaced after %.2f s" % took
        # the uncapped copy is still the stale one
        cb.call(b"get two:k\r\n", b"VALUE two:k 3 2\r\nv1\r\nEND\r\n")


# ---- consistency levels with nodes down ------------------------------------------

LEVEL_POLICIES = ["--policy", "co:=cache-only", "--policy", "wa:=write-around",
                  "--policy", "one:=write-around,read_consistency=one,write_consistency=one",
                  "--policy", "all:=write-around,write_consistency=all"]


def test_consistency_levels_with_nodes_down(tmp_path):
    """QUORUM (the default) with one node SIGKILLed works without trying the
    dead node once the proxy's view has it down; with two down QUORUM is
    refused with `SERVER_ERROR not enough replicas available` and changes
    nothing, ONE works; after the restarts the view is back to three and
    QUORUM works again."""
    wt_keys = [b"q:%02d" % i for i in range(12)]
    wa_keys = [b"wa:%02d" % i for i in range(12)]
    problems = []
    with Cluster(tmp_path, 3) as cl:
        cl.start()
        args = cluster_args(seeds_of(cl), *LEVEL_POLICIES)
        srv = start_proxy(*args)
        started = [srv]
        try:
            with srv.connect() as c:
                for k in wt_keys + wa_keys + [b"all:k"]:
                    c.call(b"set %s 0 0 2\r\nv1\r\n" % k, STORED)

            cl.kill(2)
            cl.wait_state(2, "down")
            wait_nodes_up(srv, 2)
            s0 = counters(srv.connect())
            with srv.connect() as c:
                for k in wt_keys + wa_keys:
                    c.call(b"set %s 0 0 2\r\nv2\r\n" % k, STORED)
                for k in wa_keys:  # write-around: each read goes to the nodes
                    c.call(b"get %s\r\n" % k, b"VALUE %s 0 2\r\nv2\r\nEND\r\n" % k)
                c.call(b"incr q:n 1\r\n", b"NOT_FOUND\r\n")
                c.call(b"add q:n 0 0 1\r\n1\r\n", STORED)
                c.call(b"incr q:n 1\r\n", b"2\r\n")
                c.call(b"delete q:00\r\n", b"DELETED\r\n")
                # ALL needs the dead node: refused before anything is written
                c.call(b"set all:k 0 0 2\r\nv2\r\n", NOT_ENOUGH)
                c.call(b"get all:k\r\n", b"VALUE all:k 0 2\r\nv1\r\nEND\r\n")
                s1 = counters(c)
            n_writes = len(wt_keys) + len(wa_keys) + 5
            assert delta(s1, s0, "backend.writes") == n_writes, (s0, s1)
            assert delta(s1, s0, "backend.reads") == len(wa_keys) + 1, (s0, s1)
            got = {n: delta(s1, s0, "backend." + n) for n in
                   ("retries", "timeouts", "errors", "busy", "unavailable")}
            assert got == dict(retries=0, timeouts=0, errors=0, busy=0, unavailable=1), \
                "the dead node, down in the proxy's view, is never tried: %r" % got
            fresh = start_proxy(*args)  # an empty L1: QUORUM reads of two replicas
            started.append(fresh)
            with fresh.connect() as c:
                for k in wt_keys[1:]:
                    c.call(b"get %s\r\n" % k, b"VALUE %s 0 2\r\nv2\r\nEND\r\n" % k)
                c.call(b"get q:00 q:n\r\n", b"VALUE q:n 0 1\r\n2\r\nEND\r\n")

            cl.kill(1)
            cl.wait_state(1, "down", observers=[0])
            wait_nodes_up(srv, 1)
            s2 = counters(srv.connect())
            refusals = [b"set q:01 0 0 2\r\nv3\r\n", b"add q:new 0 0 2\r\nv3\r\n",
                        b"delete q:02\r\n", b"incr q:n 1\r\n", b"touch q:03 100\r\n",
                        b"set wa:01 0 0 2\r\nv3\r\n"]
            with srv.connect() as c:
                for r in refusals:
                    assert line(c, r) == NOT_ENOUGH, r
                c.send(b"ms q:04 2 T0\r\nv3\r\n")
                assert read_meta_reply(c) == NOT_ENOUGH
                c.send(b"md q:05\r\n")
                assert read_meta_reply(c) == NOT_ENOUGH
                # ONE: the survivor alone is enough
                c.call(b"set one:k 0 0 3\r\none\r\n", STORED)
                c.call(b"get one:k\r\n", b"VALUE one:k 0 3\r\none\r\nEND\r\n")
                c.call(b"append one:k 0 0 1\r\n!\r\n", STORED)
                c.call(b"mg one:k v\r\n", b"VA 4\r\none!\r\n")
                c.call(b"incr one:k 1\r\n",
                       b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
                c.call(b"set one:n 0 0 1\r\n7\r\n", STORED)
                c.call(b"decr one:n 2\r\n", b"5\r\n")
                c.call(b"delete one:k\r\n", b"DELETED\r\n")
                c.call(b"get one:k one:n\r\n", b"VALUE one:n 0 1\r\n5\r\nEND\r\n")
                # cache-only keys never need the nodes
                c.call(b"set co:k 0 0 2\r\nco\r\n", STORED)
                c.call(b"get co:k\r\n", b"VALUE co:k 0 2\r\nco\r\nEND\r\n")
                s3 = counters(c)
            assert delta(s3, s2, "backend.unavailable") == len(refusals) + 2, (s2, s3)
            # QUORUM reads of keys L1 does not hold: refused as the writes are
            # (a get's error ends its reply and closes the connection, as on
            # a node). Each after the links' retry window (500 ms), so that
            # the proxy dials the dead nodes again. Collected, not asserted
            # at once: the restarts below are checked either way.
            wait_nodes_up(fresh, 1)
            for key in (b"wa:05", b"wa:06"):
                time.sleep(0.6)
                with fresh.connect() as c:
                    c.send(b"get %s\r\n" % key)
                    got = c.read_to_eof()
                if got != (NOT_ENOUGH, "eof"):
                    problems.append("with two nodes down a QUORUM get of %r answered %r, expected "
                                    "%r and the connection closed" % (key, got, NOT_ENOUGH))
            time.sleep(0.6)
            with fresh.connect() as c:
                c.send(b"mg wa:07 v\r\n")
                got = read_meta_reply(c)
                if got != NOT_ENOUGH:
                    problems.append("with two nodes down a QUORUM mg answered %r, expected %r"
                                    % (got, NOT_ENOUGH))
                c.call(b"get one:n\r\n", b"VALUE one:n 0 1\r\n5\r\nEND\r\n")

            cl.restart(1)
            cl.restart(2)
            cl.wait_converged()
            wait_nodes_up(srv, 3)
            s4 = counters(srv.connect())
            with srv.connect() as c:
                c.call(b"set q:new 0 0 2\r\nv4\r\n", STORED)
                c.call(b"set all:k 0 0 2\r\nv4\r\n", STORED)
                c.call(b"set wa:00 0 0 2\r\nv4\r\n", STORED)
                c.call(b"get wa:00\r\n", b"VALUE wa:00 0 2\r\nv4\r\nEND\r\n")
            s5 = counters(srv.connect())
            assert delta(s5, s4, "backend.unavailable") == delta(s5, s4, "backend.timeouts") == 0
            # the refused writes changed nothing
            late = start_proxy(*args)
            started.append(late)
            with late.connect() as c:
                for k in (b"q:01", b"q:02", b"q:03", b"q:04", b"q:05", b"wa:01"):
                    c.call(b"mg %s v t\r\n" % k, b"VA 2 t-1\r\nv2\r\n")
                c.call(b"get q:n q:new all:k\r\n", b"VALUE q:n 0 1\r\n2\r\nVALUE q:new 0 2\r\n"
                       b"v4\r\nVALUE all:k 0 2\r\nv4\r\nEND\r\n")
        finally:
            for s in started:
                s.stop()
    assert not problems, "\n".join(problems)


def test_a_proxy_with_a_stale_view_goes_around_a_dead_node(tmp_path):
    """A proxy that has not yet learned that a node died (its ring poll is
    a minute away) while the nodes already have it down: reads go to the
    next replica (stats backend retries), and so do writes whose primary is
    the dead node - nothing was sent to it, so nothing can have been
    applied there (cbackend.c: "next replica when one is down")."""
    keys = [b"wa:s%02d" % i for i in range(30)]
    with Cluster(tmp_path, 3) as cl:
        cl.start()
        srv = start_proxy(*cluster_args(seeds_of(cl), "--policy", "wa:=write-around",
                                        poll_ms=60000))
        try:
            with srv.connect() as c:
                for k in keys:
                    c.call(b"set %s 0 0 2\r\nv1\r\n" % k, STORED)
            cl.kill(2)
            cl.wait_state(2, "down")
            assert backend_stats(srv)["nodes_up"] == "3", "the view is not stale"
            s0 = counters(srv.connect())
            with srv.connect() as c:
                for k in keys:
                    c.call(b"get %s\r\n" % k, b"VALUE %s 0 2\r\nv1\r\nEND\r\n" % k)
            s1 = counters(srv.connect())
            assert delta(s1, s0, "backend.retries") >= 1, \
                "no read went to the dead node first: %r" % s1
            assert delta(s1, s0, "backend.timeouts") == delta(s1, s0, "backend.errors") == 0
            # past the links' retry window (500 ms): the dead node is dialed again
            time.sleep(0.6)
            with srv.connect() as c:
                replies = {k: line(c, b"set %s 0 0 2\r\nv2\r\n" % k) for k in keys}
            s2 = counters(srv.connect())
            failed = {k: r for k, r in replies.items() if r != STORED}
            assert not failed, (
                "writes whose primary is the dead node were answered %r without being sent "
                "to another replica (stats backend: timeouts +%d, retries +%d)"
                % (failed, delta(s2, s1, "backend.timeouts"), delta(s2, s1, "backend.retries")))
        finally:
            srv.stop()


# ---- acknowledged writes across a node's SIGKILL (history checker) ---------------

def test_quorum_history_through_the_proxy_across_a_node_kill(tmp_path):
    """Four clients set, delete and get twelve keys (write-through and
    write-around, QUORUM) through one proxy while node 2 is SIGKILLed and
    restarted; a fresh proxy then reads every key: every acknowledged
    write is there or superseded, nothing appears that was never written."""
    history = History()
    keys = [b"%sh:%s:%d" % (b"wa:" if i % 2 else b"", history.run_id.encode(), i)
            for i in range(12)]
    stop = threading.Event()

    def ok_writes():
        return sum(1 for op in history.ops() if op.is_write and op.outcome == OK)

    with Cluster(tmp_path, 3) as cl:
        cl.start()
        args = cluster_args(seeds_of(cl), "--policy", "wa:=write-around")
        srv = start_proxy(*args)
        started = [srv]
        try:
            threads = [threading.Thread(target=load_client,
                                        args=(history, [srv.addr], "c%d" % i, keys, stop, 600,
                                              0.008), daemon=True) for i in range(4)]
            for t in threads:
                t.start()
            try:
                assert helpers.wait_until(lambda: ok_writes() >= 150, timeout=15.0,
                                          interval=0.02), history.summary()
                cl.kill(2)
                killed, dead_until = ok_writes(), time.monotonic() + 1.0
                assert helpers.wait_until(
                    lambda: ok_writes() >= killed + 150 and time.monotonic() > dead_until,
                    timeout=15.0, interval=0.02), history.summary()
                cl.restart(2)
                cl.wait_converged()
                back = ok_writes()
                assert helpers.wait_until(lambda: ok_writes() >= back + 150, timeout=15.0,
                                          interval=0.02), history.summary()
            finally:
                stop.set()
                for t in threads:
                    t.join(timeout=10)
            assert not any(t.is_alive() for t in threads)
            final = start_proxy(*args)
            started.append(final)
            with final.connect() as c:
                history.final_reads(lambda k: mc_get(c, k), keys=keys)
        finally:
            for s in started:
                s.stop()
    result = history.check()
    assert result.ok, result.report() + "\n" + history.summary()
    counts = summarize(history.ops())
    assert counts["pending"] == 0, history.summary()
    finals = [op for op in history.ops() if op.final]
    assert len(finals) == len(keys) and all(op.outcome == OK for op in finals), \
        history.summary()


# ---- seeds all unreachable ----------------------------------------------------------

def test_unreachable_seeds_answer_server_error_until_a_node_comes(tmp_path):
    cport = helpers.free_port()
    srv = start_proxy(*cluster_args("127.0.0.1:%d" % cport, "--cluster-timeout-ms", "200",
                                    "--policy", "co:=cache-only", "--policy", "rt:=read-through"))
    node = None
    try:
        with srv.connect() as c:
            for r in (b"set k 0 0 1\r\nx\r\n", b"add k 0 0 1\r\nx\r\n", b"delete k\r\n",
                      b"incr k 1\r\n", b"touch k 10\r\n"):
                assert line(c, r) == NOT_ENOUGH, r
            for r in (b"mg k v\r\n", b"ms k 1\r\nx\r\n", b"md k\r\n", b"ma k\r\n"):
                c.send(r)
                assert read_meta_reply(c) == NOT_ENOUGH, r
            # cache-only keys are L1 alone; read-through stores in L1
            c.call(b"set co:k 0 0 2\r\nco\r\n", STORED)
            c.call(b"get co:k\r\n", b"VALUE co:k 0 2\r\nco\r\nEND\r\n")
            c.call(b"set rt:k 0 0 2\r\nrt\r\n", STORED)
            c.call(b"get rt:k co:k\r\n", b"VALUE rt:k 0 2\r\nrt\r\nVALUE co:k 0 2\r\nco\r\nEND\r\n")
            c.send(b"get co:k k\r\n")  # k needs the nodes: the reply ends with the error
            got, how = c.read_to_eof()
            assert (got, how) == (b"VALUE co:k 0 2\r\nco\r\n" + NOT_ENOUGH, "eof"), (got, how)
        s = backend_stats(srv)
        assert (s["nodes"], s["nodes_up"], s["ring_versions"]) == ("0", "0", "0"), s
        assert int(s["ring_poll_failures"]) >= 1 and s["unavailable"] == "10", s
        assert srv.answers_version()

        node = Node(str(tmp_path / "node")).start(port=helpers.free_port(), cport=cport)
        wait_nodes_up(srv, 1)
        with srv.connect() as c:
            c.call(b"set k 0 0 1\r\nx\r\n", STORED)
            c.call(b"incr k 1\r\n",
                   b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
            c.call(b"get k co:k\r\n", b"VALUE k 0 1\r\nx\r\nVALUE co:k 0 2\r\nco\r\nEND\r\n")
        with node.connect() as c:
            c.call(b"get k co:k rt:k\r\n", b"VALUE k 0 1\r\nx\r\nEND\r\n")
    finally:
        srv.stop()
        if node is not None:
            node.stop()


# ---- the config ----------------------------------------------------------------------

REFUSED = [
    (["--backend", "cluster"], "cluster_seeds"),
    (["--backend", "cluster", "--mode", "write-behind"], "cluster_seeds"),
    (["--backend", "cluster", "--cluster-seeds", "127.0.0.1:7311", "--policy",
      "x:=write-through,read_consistency=any"], "read_consistency"),
    # a list without one host:port (bogus, no port)
    (["--backend", "cluster", "--cluster-seeds", "localhost"], "cluster_seeds"),
]


@pytest.mark.parametrize("args,needle", REFUSED, ids=lambda v: v if isinstance(v, str)
                         else " ".join(v[2:]) or "no-seeds")
def test_bad_cluster_settings_exit_with_config_error(args, needle):
    r = run_proxy(*args, "--check-config")
    assert (r.returncode, needle in r.stderr) == (EX_CONFIG, True), r
    status, err = start_refused(*args)
    assert (status, needle in err) == (EX_CONFIG, True), (status, err)


def test_bad_cluster_config_file_exits_with_config_error(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("[proxy]\nbackend = cluster\ncluster_seeds = 127.0.0.1:7311\n"
                    "[policy]\nmode = write-behind\nread_consistency = any\n")
    r = run_proxy("--config", str(conf), "--check-config")
    assert r.returncode == EX_CONFIG and "read_consistency" in r.stderr, r
    status, err = start_refused("--config", str(conf))
    assert status == EX_CONFIG and "read_consistency" in err, (status, err)


def test_good_cluster_settings_pass_check_config():
    r = run_proxy("--backend", "cluster", "--cluster-seeds", "127.0.0.1:7311,127.0.0.1:7312",
                  "--cluster-name", "c1", "--cluster-timeout-ms", "500",
                  "--cluster-max-inflight", "64", "--cluster-poll-ms", "250",
                  "--mode", "write-around", "--policy", "x:=read-through,read_consistency=one",
                  "--policy", "y:=write-through,write_consistency=any", "--check-config")
    assert r.returncode == 0 and "configuration ok" in r.stdout, r
