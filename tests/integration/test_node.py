"""strata-node, one node: memcached's commands on the node's own engine,
what survives a restart and a SIGKILL, and the data directory rules.

These tests start their own strata-node processes (free loopback ports, a
temporary data directory each) and run once, in the `strata` run of the
suite: they do not depend on which server the rest of the suite targets.
"""
import os
import shutil
import signal
import subprocess
import time

import pytest

import helpers
from helpers import Conn, free_port
from nodes import Node, data_dir, gets_cas, members_view, node, node_binary  # noqa: F401

pytestmark = pytest.mark.skipif(
    helpers.SERVER_KIND != "strata",
    reason="strata-node tests run once, in the strata run (STRATA_TEST_SERVER=strata)")

EX_DATAERR = 65
EX_CONFIG = 78


# Text protocol: request, exact reply (memcached 1.6's replies).
STEPS = [
    (b"set k 7 0 3\r\nabc\r\n", b"STORED\r\n"),
    (b"get k\r\n", b"VALUE k 7 3\r\nabc\r\nEND\r\n"),
    (b"add k 0 0 1\r\nx\r\n", b"NOT_STORED\r\n"),
    (b"add k2 0 0 1\r\nx\r\n", b"STORED\r\n"),
    (b"replace nope 0 0 1\r\nx\r\n", b"NOT_STORED\r\n"),
    (b"replace k2 3 0 1\r\ny\r\n", b"STORED\r\n"),
    (b"append k 0 0 2\r\nde\r\n", b"STORED\r\n"),
    (b"prepend k 0 0 2\r\n__\r\n", b"STORED\r\n"),
    (b"get k k2 missing\r\n", b"VALUE k 7 7\r\n__abcde\r\nVALUE k2 3 1\r\ny\r\nEND\r\n"),
    (b"append nope 0 0 1\r\nx\r\n", b"NOT_STORED\r\n"),
    (b"incr n 1\r\n", b"NOT_FOUND\r\n"),
    (b"set n 0 0 2\r\n10\r\n", b"STORED\r\n"),
    (b"incr n 5\r\n", b"15\r\n"),
    (b"decr n 100\r\n", b"0\r\n"),
    (b"get n\r\n", b"VALUE n 0 2\r\n0 \r\nEND\r\n"),
    (b"incr k 1\r\n", b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"),
    (b"set big 0 0 20\r\n18446744073709551615\r\n", b"STORED\r\n"),
    (b"incr big 1\r\n", b"0\r\n"),
    (b"delete k2\r\n", b"DELETED\r\n"),
    (b"delete k2\r\n", b"NOT_FOUND\r\n"),
    (b"get k2\r\n", b"END\r\n"),
    (b"touch k 100\r\n", b"TOUCHED\r\n"),
    (b"touch nope 100\r\n", b"NOT_FOUND\r\n"),
    (b"set q 0 0 1 noreply\r\nq\r\nget q\r\n", b"VALUE q 0 1\r\nq\r\nEND\r\n"),
    (b"version\r\n", b"VERSION 1.6.18\r\n"),
    # persistent data is never emptied by a cache command (docs/NODE.md)
    (b"flush_all\r\n", b"CLIENT_ERROR flush_all not allowed\r\n"),
    (b"get q\r\n", b"VALUE q 0 1\r\nq\r\nEND\r\n"),
    (b"bogus\r\n", b"ERROR\r\n"),
]


def test_text_commands(node):
    with node.connect() as c:
        for request, reply in STEPS:
            c.call(request, reply)


def test_cas(node):
    with node.connect() as c:
        c.call(b"set c 0 0 1\r\na\r\n", b"STORED\r\n")
        cas, value = gets_cas(c, b"c")
        assert value == b"a" and cas > 0
        c.call(b"cas c 0 0 1 %d\r\nb\r\n" % (cas + 1), b"EXISTS\r\n")
        c.call(b"cas c 0 0 1 %d\r\nb\r\n" % cas, b"STORED\r\n")
        c.call(b"cas c 0 0 1 %d\r\nx\r\n" % cas, b"EXISTS\r\n")
        c.call(b"cas nope 0 0 1 1\r\nx\r\n", b"NOT_FOUND\r\n")
        cas2, value = gets_cas(c, b"c")
        assert value == b"b" and cas2 > cas


def test_expiry(node):
    with node.connect() as c:
        c.call(b"set e 0 1 1\r\ne\r\n", b"STORED\r\n")
        c.call(b"set f 0 -1 1\r\nf\r\n", b"STORED\r\n")
        c.call(b"get f\r\n", b"END\r\n")
        helpers.wait_until(lambda: (c.send(b"get e\r\n"), c.read_until(b"END\r\n"))[1]
                           == b"END\r\n", timeout=4.0)


def test_meta_commands(node):
    with node.connect() as c:
        c.call(b"ms m 2 T0 F9\r\nhi\r\n", b"HD\r\n")
        c.call(b"mg m v f\r\n", b"VA 2 f9\r\nhi\r\n")
        c.call(b"mg nope v\r\n", b"EN\r\n")
        c.call(b"mg nope v q\r\nmn\r\n", b"MN\r\n")
        c.call(b"ma cnt\r\n", b"NF\r\n")
        c.call(b"ma cnt N0 J5 v\r\n", b"VA 1\r\n5\r\n")
        c.call(b"ma cnt v\r\n", b"VA 1\r\n6\r\n")
        c.call(b"md m\r\n", b"HD\r\n")
        c.call(b"md m\r\n", b"NF\r\n")


def test_binary_get_and_set(node):
    import binproto
    with node.connect() as c:
        c.send(binproto.request(binproto.SET, key=b"bk", value=b"bv", extras=b"\0\0\0\1\0\0\0\0"))
        r = binproto.read_response(c)
        assert r.status == 0
        c.send(binproto.request(binproto.GETK, key=b"bk"))
        r = binproto.read_response(c)
        assert r.status == 0 and r.key == b"bk" and r.value == b"bv"


def test_data_survives_restart_and_sigkill(data_dir):
    n = Node(data_dir).start()
    with n.connect() as c:
        for i in range(200):
            c.call(b"set key%d 0 0 6\r\nval%03d\r\n" % (i, i), b"STORED\r\n")
        cas_before, _ = gets_cas(c, b"key7")
    n.stop()
    n = Node(data_dir).start()
    with n.connect() as c:
        for i in range(200):
            c.call(b"get key%d\r\n" % i, b"VALUE key%d 0 6\r\nval%03d\r\nEND\r\n" % (i, i))
        # versions keep growing across restarts (the HLC floor), so a
        # client's CAS from before a restart never matches a newer value
        assert gets_cas(c, b"key7")[0] == cas_before
        c.call(b"set key7 0 0 1\r\nz\r\n", b"STORED\r\n")
        assert gets_cas(c, b"key7")[0] > cas_before
        for i in range(200, 300):
            c.call(b"set key%d 0 0 6\r\nval%03d\r\n" % (i, i), b"STORED\r\n")
    # every acknowledged write survives a kill of the process
    assert n.stop(signal.SIGKILL) == -signal.SIGKILL
    n = Node(data_dir).start()
    with n.connect() as c:
        for i in range(200, 300):
            c.call(b"get key%d\r\n" % i, b"VALUE key%d 0 6\r\nval%03d\r\nEND\r\n" % (i, i))
    n.stop()


def start_fails(data_dir, *extra):
    p = subprocess.run([node_binary(), "-d", data_dir, "-p", str(free_port()),
                        "-P", str(free_port())] + list(extra),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    return p.returncode, p.stderr.decode("latin-1")


def test_foreign_cluster_refused(data_dir):
    Node(data_dir, "--cluster-name", "alpha").start().stop()
    code, err = start_fails(data_dir, "--cluster-name", "beta")
    assert code == EX_CONFIG, err
    assert "cluster" in err


def test_data_without_identity_refused(data_dir):
    Node(data_dir).start().stop()
    os.unlink(os.path.join(data_dir, "NODE"))
    code, err = start_fails(data_dir)
    assert code == EX_DATAERR, err


def test_wiped_directory_gets_a_new_identity(data_dir):
    n = Node(data_dir, "-v").start()
    n.stop()
    with open(os.path.join(data_dir, "NODE"), "rb") as f:
        first = f.read()[16:32]
    shutil.rmtree(data_dir)
    os.mkdir(data_dir)
    Node(data_dir).start().stop()
    with open(os.path.join(data_dir, "NODE"), "rb") as f:
        second = f.read()[16:32]
    assert first != second


def test_bad_flags():
    p = subprocess.run([node_binary(), "--port", "0"], capture_output=True, timeout=10)
    assert p.returncode == 64
    p = subprocess.run([node_binary(), "--sync", "sometimes"], capture_output=True, timeout=10)
    assert p.returncode == 64
    p = subprocess.run([node_binary(), "--version"], capture_output=True, timeout=10)
    assert p.returncode == 0 and p.stdout.startswith(b"strata-node ")


# ---- the cluster port (docs/formats/cluster-protocol.md) ----------------

def cluster_client(node):
    import clusterproto
    return clusterproto.ClusterClient(node.cluster_addr)


def hlc_now(offset_ms=0):
    return (int(time.time() * 1000) + offset_ms) << 16


PEER_ID = bytes(range(1, 17))


def joined(node, cluster=b"strata"):
    c = cluster_client(node)
    reply = c.handshake(cluster, PEER_ID, 4242, 1, b"127.0.0.1:1")
    assert reply.accept, reply
    return c


def cluster_stat(node, name):
    with node.connect() as c:
        return int(c.stats_dict(b"cluster")[name])


def test_cluster_handshake_and_ping(node):
    with joined(node) as c:
        assert c.peer.generation > 0 and c.peer.short_id != 0
        with open(os.path.join(node.data_dir, "NODE"), "rb") as f:
            assert c.peer.node_id == f.read()[16:32]
        before = hlc_now()
        theirs = c.ping(before)
        assert isinstance(theirs, int) and theirs > before
    assert cluster_stat(node, "handshakes") == 1


def test_cluster_foreign_cluster_refused(node):
    import clusterproto
    with cluster_client(node) as c:
        reply = c.handshake(b"other", PEER_ID, 1, 1, b"127.0.0.1:1")
        assert not reply.accept and reply.reason == clusterproto.REFUSE_CLUSTER
        assert c.read_to_eof(timeout=2.0)[1] in ("eof", "reset")
    assert cluster_stat(node, "handshakes_refused") == 1


def test_cluster_requests_need_a_handshake(node):
    import clusterproto
    with cluster_client(node) as c:
        err = c.ping(1)
        assert isinstance(err, clusterproto.Error) and err.code == clusterproto.ERR_NOT_READY
        assert c.read_to_eof(timeout=2.0)[1] in ("eof", "reset")


@pytest.mark.parametrize("garbage", [
    b"get foo\r\n",                       # a memcached client on the wrong port
    b"\x80\x00\x00\x03" + bytes(28),      # memcached binary
    b"STRC\x07" + bytes(27),              # an unknown protocol version
])
def test_cluster_garbage_closes_only_that_connection(node, garbage):
    with cluster_client(node) as c:
        c.send_raw(garbage)
        assert c.read_to_eof(timeout=2.0)[1] in ("eof", "reset")
    assert cluster_stat(node, "bad_frames") == 1
    with node.connect() as m:
        m.call(b"version\r\n", b"VERSION 1.6.18\r\n")


def test_cluster_corrupt_and_oversized_frames(node):
    import clusterproto
    with joined(node) as c:
        frame = bytearray(clusterproto.encode_frame(clusterproto.OP_PING,
                                                    clusterproto.compose_ping(1), 0, 7))
        frame[-1] ^= 1  # a body byte: the body check fails
        c.send_raw(bytes(frame))
        assert c.read_to_eof(timeout=2.0)[1] in ("eof", "reset")
    with joined(node) as c:
        c.send_raw(clusterproto.raw_frame(clusterproto.OP_WRITE, b"", 0, 9,
                                          body_len=0xffffffff))
        data, how = c.read_to_eof(timeout=2.0)
        assert how in ("eof", "reset")
        err = clusterproto.decode_body(clusterproto.decode_frame(data))
        assert err.code == clusterproto.ERR_TOO_LARGE
    assert cluster_stat(node, "bad_frames") == 2
    assert cluster_stat(node, "handshakes") == 2


def test_cluster_unknown_opcode_keeps_the_connection(node):
    import clusterproto
    with joined(node) as c:
        err = c.call(clusterproto.OP_HINT_REPLAY, b"")
        assert isinstance(err, clusterproto.Error)
        assert err.code == clusterproto.ERR_UNKNOWN_OPCODE
        assert isinstance(c.ping(hlc_now()), int)


def test_cluster_writes_merge_by_version(node):
    import clusterproto
    V, R = clusterproto.Version, clusterproto.Record
    t = hlc_now()
    with joined(node) as c:
        newer = R(b"rk", b"new", flags=3, version=V(t + 2, 9))
        older = R(b"rk", b"old", flags=1, version=V(t + 1, 9))
        assert c.write([newer]) is None
        assert c.write([older]) is None  # late: never shadows the newer one
        assert c.read(b"rk") == newer
        d = c.read(b"rk", digest=True)
        assert d.found and d.version == newer.version
        assert d.digest == clusterproto.record_digest(newer)
        assert c.write([newer]) is None  # a replay changes nothing
        with node.connect() as m:
            m.call(b"get rk\r\n", b"VALUE rk 3 3\r\nnew\r\nEND\r\n")
            cas, _ = gets_cas(m, b"rk")
            assert cas == t + 2  # the CAS a client sees is the version's HLC
        # a tombstone at a newer version deletes; the READ still shows it
        gone = R(b"rk", b"", version=V(t + 3, 9), tombstone=True,
                 expiry=int(time.time()))
        assert c.write([gone, R(b"rk2", b"two", version=V(t + 4, 9))]) is None
        assert c.read(b"rk") == gone
        assert c.read(b"missing") is None
        with node.connect() as m:
            m.call(b"get rk rk2\r\n", b"VALUE rk2 0 3\r\ntwo\r\nEND\r\n")
    assert cluster_stat(node, "records_written") == 5


def test_cluster_refuses_a_version_from_the_future(node):
    import clusterproto
    with joined(node) as c:
        ahead = clusterproto.Record(b"fk", b"x",
                                    version=clusterproto.Version(hlc_now(10 * 60 * 1000), 9))
        err = c.write([ahead])
        assert isinstance(err, clusterproto.Error)
        assert c.read_to_eof(timeout=2.0)[1] in ("eof", "reset")
    assert cluster_stat(node, "clock_refusals") == 1
    with node.connect() as m:
        m.call(b"get fk\r\n", b"END\r\n")


# ---- membership (gossip over the cluster port) ---------------------------

def test_three_nodes_find_each_other_and_notice_a_death(tmp_path):
    dirs = [str(tmp_path / ("n%d" % i)) for i in range(3)]
    first = Node(dirs[0]).start()
    seed = "127.0.0.1:%d" % first.cluster_addr[1]
    nodes = [first] + [Node(d, "--seeds", seed).start() for d in dirs[1:]]
    try:
        def converged():
            views = [members_view(n)[0] for n in nodes]
            return all(len(v) == 3 and all(s == "up" for _, s, _ in v.values()) for v in views) \
                and all(v == views[0] for v in views)
        assert helpers.wait_until(converged, timeout=15.0, interval=0.2), \
            [members_view(n) for n in nodes]
        view, _ = members_view(nodes[0])
        owned = sum(float(o.rstrip("%")) for _, _, o in view.values())
        assert abs(owned - 100.0) < 0.5  # every token is owned once (primary ranges)
        # a node that stops is seen down by the others (phi-accrual)
        _, dead = members_view(nodes[2])
        nodes[2].stop(signal.SIGKILL)
        assert helpers.wait_until(lambda: members_view(nodes[0])[0][dead][1] == "down",
                                  timeout=20.0, interval=0.2)
        # and up again after a restart (same id, a new generation)
        nodes[2] = Node(dirs[2], "--seeds", seed).start()
        assert helpers.wait_until(
            lambda: members_view(nodes[0])[0].get(dead, ("", ""))[1] == "up",
            timeout=15.0, interval=0.2)
        assert members_view(nodes[2])[1] == dead
    finally:
        for n in nodes:
            if n.proc is not None:
                n.stop()


def admin(*args):
    binary = os.path.join(os.path.dirname(node_binary()), "strata-admin")
    return subprocess.run([binary] + list(args), capture_output=True, timeout=20)


def test_strata_admin_status_and_stats(tmp_path):
    a = Node(str(tmp_path / "a")).start()
    b = Node(str(tmp_path / "b"), "--seeds", "127.0.0.1:%d" % a.cluster_addr[1]).start()
    try:
        target = "127.0.0.1:%d" % b.addr[1]

        def both_up():
            p = admin("-n", target, "status")
            rows = [l for l in p.stdout.decode().splitlines()[1:] if l.strip()]
            return p.returncode == 0 and len(rows) == 2 and all(" up " in r for r in rows)
        assert helpers.wait_until(both_up, timeout=15.0, interval=0.2), admin("-n", target, "status")
        p = admin("-n", target, "stats", "storage")
        assert p.returncode == 0 and b"write_amplification" in p.stdout
        p = admin("-n", "127.0.0.1:%d" % free_port(), "status")
        assert p.returncode == 1 and b"cannot connect" in p.stderr
        assert admin("-n", target, "stats", "bogus").returncode == 1
        assert admin("frobnicate").returncode == 64
    finally:
        b.stop()
        a.stop()


def test_a_failed_disk_answers_errors_and_keeps_reads(data_dir):
    import binproto
    # the engine's third file write from start fails, and every one after it
    n = Node(data_dir, "--test-fail-writes-after", "3").start()
    try:
        with n.connect() as c:
            c.call(b"set k1 0 0 1\r\na\r\n", b"STORED\r\n")
            c.call(b"set k2 0 0 1\r\nb\r\n", b"STORED\r\n")
            c.call(b"set k3 0 0 1\r\nc\r\n", b"SERVER_ERROR storage error\r\n")
            c.call(b"get k1 k2 k3\r\n", b"VALUE k1 0 1\r\na\r\nVALUE k2 0 1\r\nb\r\nEND\r\n")
            c.call(b"delete k1\r\n", b"SERVER_ERROR storage error\r\n")
            c.call(b"touch k2 10\r\n", b"SERVER_ERROR storage error\r\n")
            c.call(b"ms k4 1\r\nx\r\n", b"SERVER_ERROR storage error\r\n")
            assert c.stats_dict(b"storage")["read_only"] == "1"
            c.call(b"get k2\r\n", b"VALUE k2 0 1\r\nb\r\nEND\r\n")
        with n.connect() as b:  # binary: "Internal error"
            b.send(binproto.request(binproto.SET, key=b"k5", value=b"v",
                                    extras=binproto.storage_extras()))
            assert binproto.read_response(b).status == 0x0084
    finally:
        n.stop()


def test_config_file(tmp_path):
    data = tmp_path / "data"
    conf = tmp_path / "node.conf"
    port = free_port()
    conf.write_text("# strata-node\n[node]\ncluster_name = alpha\nport = %d\nvnodes = 8\n"
                    "data_dir = %s\n" % (port, data))
    p = subprocess.run([node_binary(), "--config", str(conf), "--check-config"],
                       capture_output=True, timeout=10)
    assert p.returncode == 0 and b"ok" in p.stdout
    # the file's options apply; a flag given too wins (-P here, -p from the file)
    n = Node(str(data), "--config", str(conf))
    n.start()  # Node passes its own -p and -P: the flags win over the file
    try:
        with n.connect() as c:
            c.call(b"set x 0 0 1\r\n1\r\n", b"STORED\r\n")
    finally:
        n.stop()
    with open(data / "NODE", "rb") as f:
        raw = f.read()
    assert b"alpha" in raw  # the cluster name came from the file
    for bad, needle in ((b"bogus = 1\n", b"unknown option 'bogus'"),
                        (b"port = x\n", b"invalid value 'x' for port"),
                        (b"[proxy]\nport = 1\n", b"unknown section")):
        conf.write_bytes(bad)
        p = subprocess.run([node_binary(), "--config", str(conf)], capture_output=True,
                           timeout=10)
        assert p.returncode == EX_CONFIG and needle in p.stderr, (bad, p.stderr)


# ---- acknowledged writes survive a SIGKILL (the history checker) ---------

def _mc_line(conn, request):
    conn.send(request)
    return conn.read_line()


def _mc_get(conn, key):
    """The value, None for a miss; raises ConnectionError if the reply is cut."""
    conn.send(b"get %s\r\n" % key)
    line = conn.read_line()
    if line == b"END\r\n":
        return None
    if not line.startswith(b"VALUE "):
        raise ConnectionError("bad get reply %r" % line[:80])
    size = int(line.split()[3])
    data = conn.read_exact(size + 2)
    if len(data) != size + 2 or conn.read_line() != b"END\r\n":
        raise ConnectionError("get reply cut")
    return data[:-2]


def _client(history, addr, name, keys, stop, max_ops):
    import random
    rnd, conn = random.Random(name), None
    for _ in range(max_ops):
        if stop.is_set():
            break
        key, kind = rnd.choice(keys), rnd.choice(("set", "set", "get", "delete"))
        with history.record(name, kind, key) as call:
            if conn is None:
                conn = Conn(addr, timeout=1.0)  # refused: a definite failure
            if kind == "set":
                call.reply(_mc_line(conn, b"set %s 0 0 %d\r\n%s\r\n"
                                    % (key, len(call.value), call.value)))
            elif kind == "delete":
                call.reply(_mc_line(conn, b"delete %s\r\n" % key))
            else:
                call.ok(_mc_get(conn, key))
        if call.op.outcome != "ok" and conn is not None:
            conn.close()  # a late reply would be read as the next one's
            conn = None
        if conn is None:
            time.sleep(0.02)  # the node is down: do not spin
    if conn is not None:
        conn.close()


def test_acknowledged_writes_survive_sigkill(data_dir):
    import threading
    from history import OK, History, summarize

    def ok_sets():
        return sum(1 for op in history.ops() if op.kind == "set" and op.outcome == OK)

    port, cport = free_port(), free_port()
    n = Node(data_dir).start(port=port, cport=cport)
    history = History()
    keys = [b"kill_%s_%d" % (history.run_id.encode(), i) for i in range(8)]
    stop = threading.Event()
    threads = [threading.Thread(target=_client,
                                args=(history, n.addr, "c%d" % i, keys, stop, 200000),
                                daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    try:
        # writes acknowledged before the kill, then the kill, then more after
        assert helpers.wait_until(lambda: ok_sets() >= 200, timeout=20.0, interval=0.05)
        assert n.stop(signal.SIGKILL) == -signal.SIGKILL
        before = ok_sets()
        time.sleep(0.3)
        n = Node(data_dir).start(port=port, cport=cport)
        assert helpers.wait_until(lambda: ok_sets() >= before + 200, timeout=20.0, interval=0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    try:
        with n.connect() as c:
            history.final_reads(lambda k: _mc_get(c, k))
    finally:
        n.stop()
    result = history.check()
    assert result.ok, result.report() + "\n" + history.summary()
    # the node was down for a while: some calls failed or stayed undecided
    counts = summarize(history.ops())["by_kind"]
    assert sum(v["fail"] + v["info"] for v in counts.values()) > 0, history.summary()
