"""strata-node as a cluster: the coordinator (docs/NODE.md, "The
coordinator"). Whichever node a client talks to, it gets memcached's
answers; QUORUM keeps acknowledged writes and deletes through a replica's
death and restart; ALL and QUORUM refuse at once when too few replicas
are up, ONE keeps going; read repair brings a restarted replica up to
date; read-modify-writes run at the key's primary.

Real strata-node processes on 127.0.0.1 (nodes.py: free ports, data
directories under tmp_path, stopped by pid); run once, in the `strata`
run of the suite, like test_node.py. A SIGKILLed node is seen down by
the others after 5-8 s (phi-accrual); the coordinators' own view of
liveness follows once a gossip round (1 s) after `stats cluster` shows
it, so Cluster.wait_state() waits that round too.
"""
import random
import re
import threading
import time

import pytest

import binproto
import helpers
from helpers import Conn, read_meta_reply
from history import OK, History, summarize
from nodes import Cluster, Node, members_view, replica_records

pytestmark = pytest.mark.skipif(
    helpers.SERVER_KIND != "strata",
    reason="strata-node tests run once, in the strata run (STRATA_TEST_SERVER=strata)")

NOT_ENOUGH = b"SERVER_ERROR not enough replicas available\r\n"
STORED = b"STORED\r\n"
NON_NUMERIC = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
REQUEST_TIMEOUT_S = 2.0  # strata-node's --request-timeout default
FAST = 0.5               # "at once": a quarter of the request timeout


# ---- replies: read one, hide its CAS values ---------------------------------

LINE, GET, META, BIN = "line", "get", "meta", "bin"


def read_get(conn):
    """A get-family reply: VALUE blocks up to END, or up to the first
    other line (an error)."""
    out = b""
    while True:
        line = conn.read_line()
        out += line
        if not line.startswith(b"VALUE "):
            return out
        out += conn.read_exact(int(line.split()[3]) + 2)


def read_reply(conn, kind):
    if kind == LINE:
        return conn.read_line()
    if kind == GET:
        return read_get(conn)
    if kind == META:
        return read_meta_reply(conn)
    r = binproto.read_response(conn)
    assert r is not None, "no binary response"
    return binproto.HEADER.pack(*r[:9]) + r.extras + r.key + r.value


VALUE_CAS = re.compile(rb"^(VALUE \S+ \d+ \d+) (\d+)\r$", re.M)
META_CAS = re.compile(rb"(?<= )c(\d+)(?=[ \r])")


def cas_of(reply, kind):
    """The CAS value a reply shows (0 if none)."""
    if kind == BIN:
        return binproto.HEADER.unpack(reply[:binproto.HEADER_LEN])[8]
    pattern = VALUE_CAS if kind == GET else META_CAS
    m = pattern.search(reply.split(b"\n", 1)[0] + b"\n" if kind == META else reply)
    return int(m.groups()[-1]) if m else 0


def masked(reply, kind):
    """reply with each CAS value replaced by <cas> (binary: the header's
    CAS becomes 1 when it is set): CAS values are versions, different on
    every run, and only their presence is compared."""
    if kind == BIN:
        f = list(binproto.HEADER.unpack(reply[:binproto.HEADER_LEN]))
        f[8] = 1 if f[8] else 0
        return binproto.HEADER.pack(*f) + reply[binproto.HEADER_LEN:]
    if kind == GET:
        return VALUE_CAS.sub(rb"\1 <cas>\r", reply)
    if kind == META:
        head, sep, rest = reply.partition(b"\n")
        return META_CAS.sub(b"c<cas>", head) + sep + rest
    return reply


# ---- one command script, run through a cluster and through a lone node ------

def bin_req(opcode, key=b"", value=b"", extras=b""):
    return binproto.request(opcode, key=key, value=value, extras=extras)


def bin_ok(opcode, key=b"", value=b"", extras=b"", cas=True):
    return binproto.response(opcode, key=key, value=value, extras=extras, cas=1 if cas else 0)


# (request, reader, expected reply with CAS values masked[, name]): a name
# keeps the step's CAS for later requests, which say {name} where it goes.
# Expected replies are memcached 1.6.18's.
SCRIPT = [
    (b"set k1 5 0 3\r\nabc\r\n", LINE, STORED),
    (b"get k1\r\n", GET, b"VALUE k1 5 3\r\nabc\r\nEND\r\n"),
    (b"add k1 0 0 1\r\nx\r\n", LINE, b"NOT_STORED\r\n"),
    (b"add k2 0 0 1\r\nx\r\n", LINE, STORED),
    (b"get k2\r\n", GET, b"VALUE k2 0 1\r\nx\r\nEND\r\n"),
    (b"replace nope 0 0 1\r\nx\r\n", LINE, b"NOT_STORED\r\n"),
    (b"replace k2 3 0 1\r\ny\r\n", LINE, STORED),
    (b"append k1 0 0 2\r\nde\r\n", LINE, STORED),
    (b"prepend k1 0 0 2\r\n__\r\n", LINE, STORED),
    (b"append nope 0 0 1\r\nx\r\n", LINE, b"NOT_STORED\r\n"),
    (b"prepend nope 0 0 1\r\nx\r\n", LINE, b"NOT_STORED\r\n"),
    (b"get k1 k2 nope\r\n", GET, b"VALUE k1 5 7\r\n__abcde\r\nVALUE k2 3 1\r\ny\r\nEND\r\n"),
    # incr/decr: memcached's in-place rewrite pads a shorter result
    (b"incr n 1\r\n", LINE, b"NOT_FOUND\r\n"),
    (b"decr n 1\r\n", LINE, b"NOT_FOUND\r\n"),
    (b"set n 0 0 2\r\n10\r\n", LINE, STORED),
    (b"incr n 5\r\n", LINE, b"15\r\n"),
    (b"incr n 990\r\n", LINE, b"1005\r\n"),
    (b"decr n 1000\r\n", LINE, b"5\r\n"),
    (b"get n\r\n", GET, b"VALUE n 0 4\r\n5   \r\nEND\r\n"),
    (b"decr n 100\r\n", LINE, b"0\r\n"),
    (b"incr k1 1\r\n", LINE, NON_NUMERIC),
    (b"set big 0 0 20\r\n18446744073709551615\r\n", LINE, STORED),
    (b"incr big 1\r\n", LINE, b"0\r\n"),
    # cas: a CAS from one node is checked at another
    (b"gets k1\r\n", GET, b"VALUE k1 5 7 <cas>\r\n__abcde\r\nEND\r\n", "A"),
    (b"set k1 5 0 2\r\nv2\r\n", LINE, STORED),
    (b"cas k1 0 0 1 {A}\r\nx\r\n", LINE, b"EXISTS\r\n"),
    (b"gets k1\r\n", GET, b"VALUE k1 5 2 <cas>\r\nv2\r\nEND\r\n", "B"),
    (b"cas k1 7 0 3 {B}\r\nnew\r\n", LINE, STORED),
    (b"cas k1 7 0 3 {B}\r\nold\r\n", LINE, b"EXISTS\r\n"),
    (b"get k1\r\n", GET, b"VALUE k1 7 3\r\nnew\r\nEND\r\n"),
    (b"cas nope 0 0 1 1\r\nx\r\n", LINE, b"NOT_FOUND\r\n"),
    # touch, gat, gats
    (b"touch k1 100\r\n", LINE, b"TOUCHED\r\n"),
    (b"touch nope 100\r\n", LINE, b"NOT_FOUND\r\n"),
    (b"gat 100 k1 nope\r\n", GET, b"VALUE k1 7 3\r\nnew\r\nEND\r\n"),
    (b"gats 100 k1\r\n", GET, b"VALUE k1 7 3 <cas>\r\nnew\r\nEND\r\n", "C"),
    (b"cas k1 7 0 3 {C}\r\nnw2\r\n", LINE, STORED),
    (b"get k1\r\n", GET, b"VALUE k1 7 3\r\nnw2\r\nEND\r\n"),
    # delete
    (b"delete k2\r\n", LINE, b"DELETED\r\n"),
    (b"delete k2\r\n", LINE, b"NOT_FOUND\r\n"),
    (b"get k2\r\n", GET, b"END\r\n"),
    (b"add k2 0 0 1\r\nz\r\n", LINE, STORED),
    (b"get k2\r\n", GET, b"VALUE k2 0 1\r\nz\r\nEND\r\n"),
    # a noreply write, then a read on the same connection: in order
    (b"set q 0 0 1 noreply\r\nq\r\nget q\r\n", GET, b"VALUE q 0 1\r\nq\r\nEND\r\n"),
    (b"delete q noreply\r\nget q\r\n", GET, b"END\r\n"),
    # meta
    (b"ms m 2 T0 F9\r\nhi\r\n", META, b"HD\r\n"),
    (b"mg m v f\r\n", META, b"VA 2 f9\r\nhi\r\n"),
    (b"mg m s v c\r\n", META, b"VA 2 s2 c<cas>\r\nhi\r\n", "D"),
    (b"ms m 2 C{A}\r\nno\r\n", META, b"EX\r\n"),
    (b"ms m 2 C{D}\r\nyo\r\n", META, b"HD\r\n"),
    (b"mg m v\r\n", META, b"VA 2\r\nyo\r\n"),
    (b"mg nope v\r\n", META, b"EN\r\n"),
    (b"mg m k v T30\r\n", META, b"VA 2 km\r\nyo\r\n"),
    (b"ms nope 1 MR\r\nx\r\n", META, b"NS\r\n"),
    (b"ms m 1 MA\r\n!\r\n", META, b"HD\r\n"),
    (b"mg m v\r\n", META, b"VA 3\r\nyo!\r\n"),
    (b"ma cnt\r\n", META, b"NF\r\n"),
    (b"ma cnt N0 J5 v\r\n", META, b"VA 1\r\n5\r\n"),
    (b"ma cnt v\r\n", META, b"VA 1\r\n6\r\n"),
    (b"ma cnt MD D4 v\r\n", META, b"VA 1\r\n2\r\n"),
    (b"md m\r\n", META, b"HD\r\n"),
    (b"md m\r\n", META, b"NF\r\n"),
    (b"mg m v\r\n", META, b"EN\r\n"),
    (b"mn\r\n", META, b"MN\r\n"),
    # binary
    (bin_req(binproto.SET, b"bk", b"bv", binproto.storage_extras(1)), BIN,
     bin_ok(binproto.SET)),
    (bin_req(binproto.GETK, b"bk"), BIN,
     bin_ok(binproto.GETK, b"bk", b"bv", binproto.storage_extras(1)[:4])),
    (bin_req(binproto.ADD, b"bk", b"x", binproto.storage_extras()), BIN,
     binproto.error_response(binproto.ADD, binproto.KEY_EEXISTS)),
    (bin_req(binproto.INCREMENT, b"bc", extras=binproto.arith_extras(2, 10)), BIN,
     bin_ok(binproto.INCREMENT, value=b"\0" * 7 + b"\x0a")),
    (bin_req(binproto.INCREMENT, b"bc", extras=binproto.arith_extras(2, 10)), BIN,
     bin_ok(binproto.INCREMENT, value=b"\0" * 7 + b"\x0c")),
    (bin_req(binproto.DECREMENT, b"bc", extras=binproto.arith_extras(5, 0)), BIN,
     bin_ok(binproto.DECREMENT, value=b"\0" * 7 + b"\x07")),
    (bin_req(binproto.GET, b"bc"), BIN, bin_ok(binproto.GET, value=b"7 ", extras=b"\0" * 4)),
    (bin_req(binproto.INCREMENT, b"bnope",
             extras=binproto.arith_extras(1, 0, binproto.DONT_CREATE)), BIN,
     binproto.error_response(binproto.INCREMENT, binproto.KEY_ENOENT)),
    (bin_req(binproto.DELETE, b"bk"), BIN, bin_ok(binproto.DELETE, cas=False)),
    (bin_req(binproto.GET, b"bk"), BIN, binproto.error_response(binproto.GET, binproto.KEY_ENOENT)),
    (b"get bc\r\n", GET, b"VALUE bc 0 2\r\n7 \r\nEND\r\n"),
]


def run_script(nodes):
    """Runs SCRIPT, step i through nodes[i % len(nodes)] (a text and a
    binary connection to each: memcached picks a connection's protocol
    from its first byte); returns the replies with CAS values masked, and
    checks that every CAS a step named is non-zero."""
    saved, out = {}, []
    text = [n.connect() for n in nodes]
    binary = [n.connect() for n in nodes]
    try:
        for i, step in enumerate(SCRIPT):
            request, kind = step[:2]
            for name, value in saved.items():
                request = request.replace(b"{%s}" % name.encode(), b"%d" % value)
            conn = (binary if kind == BIN else text)[i % len(nodes)]
            conn.send(request)
            reply = read_reply(conn, kind)
            if len(step) > 3:
                saved[step[3]] = cas_of(reply, kind)
                assert saved[step[3]] > 0, (request, reply)
            out.append(masked(reply, kind))
        for c in text:  # still in sync: nothing more was sent
            assert c.version() == helpers.expected_version_line()
    finally:
        for c in text + binary:
            c.close()
    return out


def script_diff(got, expected_label, expected):
    lines = []
    for i, (step, a, b) in enumerate(zip(SCRIPT, got, expected)):
        if a != b:
            lines.append("step %d %r:\n  got      %r\n  %-8s %r" % (i, step[0][:60], a,
                                                                  expected_label, b))
    return "\n".join(lines)


def read_value(conn, key):
    """(flags, cas, value) from gets, or None for a miss."""
    conn.send(b"gets %s\r\n" % key)
    reply = read_get(conn)
    if reply == b"END\r\n":
        return None
    m = re.fullmatch(rb"VALUE (\S+) (\d+) (\d+) (\d+)\r\n(.*)\r\nEND\r\n", reply, re.S)
    assert m and m.group(1) == key, (key, reply)
    return int(m.group(2)), int(m.group(4)), m.group(5)


def test_any_node_answers_like_one_memcached(tmp_path):
    """Three nodes, N=3: what one node's client writes, every node reads
    back (same value, flags and CAS); every command gives memcached's
    answer whichever node coordinates, byte for byte the answers of a
    lone node given the same script."""
    lone = Node(str(tmp_path / "lone")).start()
    try:
        lone_replies = run_script([lone])
    finally:
        lone.stop()
    expected = [masked(step[2], step[1]) for step in SCRIPT]
    assert lone_replies == expected, script_diff(lone_replies, "memcached", expected)

    with Cluster(tmp_path / "cluster", 3) as cl:
        cl.start()
        replies = run_script(cl.nodes)
        assert replies == lone_replies, script_diff(replies, "lone", lone_replies)
        conns = [n.connect() for n in cl]
        try:
            keys = [b"many:%03d" % i for i in range(200)]
            for i, key in enumerate(keys):
                value = b"value-%d-" % i + b"x" * (i % 50)
                conns[i % 3].call(b"set %s %d 0 %d\r\n%s\r\n" % (key, i, len(value), value),
                                  STORED)
            for i, key in enumerate(keys):
                value = b"value-%d-" % i + b"x" * (i % 50)
                seen = [read_value(c, key) for c in conns]
                assert all(s is not None for s in seen), (key, seen)
                assert seen[0][0] == i and seen[0][2] == value, (key, seen)
                assert seen[1] == seen[0] and seen[2] == seen[0], (key, seen)  # same CAS
                for c in conns:
                    c.call(b"get %s\r\n" % key, b"VALUE %s %d %d\r\n%s\r\nEND\r\n"
                           % (key, i, len(value), value))
                    c.call(b"mg %s v f\r\n" % key, b"VA %d f%d\r\n%s\r\n" % (len(value), i, value))
            for i, key in enumerate(keys[::5]):
                conns[i % 3].call(b"delete %s\r\n" % key, b"DELETED\r\n")
            for i, key in enumerate(keys):
                for c in conns:
                    if i % 5 == 0:
                        c.call(b"get %s\r\n" % key, b"END\r\n")
                        c.call(b"mg %s v\r\n" % key, b"EN\r\n")
                    else:
                        assert read_value(c, key)[2].startswith(b"value-%d-" % i)
            for c in conns:  # every connection still in sync
                assert c.version() == helpers.expected_version_line()
        finally:
            for c in conns:
                c.close()
        writes = cl.stat_sum("coord_writes")
        reads = cl.stat_sum("coord_reads")
        assert writes >= 200 and reads >= 600 * 3, (writes, reads)


# ---- consistency levels while nodes are down -------------------------------

class Findings:
    """Failures noted while a long scenario goes on and asserted at its
    end, so that one run reports every problem of the scenario (used only
    for checks whose failure does not invalidate the steps after them)."""

    def __init__(self):
        self.items = []

    def expect(self, ok, what):
        if not ok:
            self.items.append(what)
        return ok

    def assert_none(self):
        assert not self.items, "\n".join(self.items)


def refused(node, request, findings, reader=LINE, closes=False):
    """Sends request on a new connection; notes in findings unless it is
    answered NOT_ENOUGH at once (and, for a text get, the connection then
    closes with nothing after the error line)."""
    with node.connect() as c:
        t0 = time.monotonic()
        c.send(request)
        reply = read_reply(c, reader)
        took = time.monotonic() - t0
        assert reply == NOT_ENOUGH, (request, reply)
        findings.expect(took < FAST, "%r took %.3f s (not at once)" % (request, took))
        if closes:
            rest = c.read_to_eof(timeout=2.0)
            findings.expect(rest == (b"", "eof"),
                            "%r: after %r the connection gave %r, not EOF at once"
                            % (request, reply, rest))


def no_hints_pending(nodes):
    """Every node's hints are gone (dropped after --hint-window)."""
    return all(int(n.stats(b"hints")["hints_pending"]) == 0 for n in nodes if n.running)


# Where a test needs a replica to come back stale, so that what brings it
# up to date is read repair: hints are kept 1 s (the shortest window) and
# no anti-entropy cycle runs unasked.
NO_HEALING = ["--hint-window", "1", "--repair-interval", "0"]


def test_consistency_levels_with_nodes_down(tmp_path):
    """Three nodes, N=3; node 0 coordinates at QUORUM, node 1 writes at
    ALL, node 2 reads and writes at ONE (a node's levels are flags, so the
    lone survivor of the ONE check is node 2, restarted while node 0 still
    lives to learn the cluster from it, then left alone). Refusals come at
    once and change nothing; after the restarts QUORUM reads return what
    node 2 missed and repair it."""
    per_node = {1: ["--write-consistency", "all"],
                2: ["--read-consistency", "one", "--write-consistency", "one"]}
    keys = [b"cl:%02d" % i for i in range(60)]
    findings = Findings()
    with Cluster(tmp_path, 3, extra=NO_HEALING, per_node=per_node) as cl:
        cl.start()
        with cl[1].connect() as c:  # all three up: ALL works
            for key in keys + [b"cl:all-set", b"cl:all-del", b"cl:all-ms"]:
                c.call(b"set %s 0 0 2\r\nv1\r\n" % key, STORED)
            c.call(b"set cl:all-n 0 0 1\r\n1\r\n", STORED)
            c.call(b"incr cl:all-n 1\r\n", b"2\r\n")

        cl.kill(2)
        cl.wait_state(2, "down")
        # one replica down: QUORUM reads and writes work
        with cl[0].connect() as c:
            for key in keys:
                c.call(b"set %s 0 0 2\r\nv2\r\n" % key, STORED)
                c.call(b"get %s\r\n" % key, b"VALUE %s 0 2\r\nv2\r\nEND\r\n" % key)
            c.call(b"incr cl:n 1\r\n", b"NOT_FOUND\r\n")
            c.call(b"add cl:n 0 0 1\r\n1\r\n", STORED)
            c.call(b"incr cl:n 1\r\n", b"2\r\n")
            c.call(b"delete cl:00\r\n", b"DELETED\r\n")
        with cl[1].connect() as c:  # node 1 reads at QUORUM
            c.call(b"get cl:01 cl:00 cl:n\r\n",
                   b"VALUE cl:01 0 2\r\nv2\r\nVALUE cl:n 0 1\r\n2\r\nEND\r\n")
        # ALL: refused at once, before anything is written
        refused(cl[1], b"set cl:all-set 0 0 2\r\nv3\r\n", findings)
        refused(cl[1], b"ms cl:all-ms 2\r\nv3\r\n", findings, META)
        refused(cl[1], b"delete cl:all-del\r\n", findings)
        refused(cl[1], b"incr cl:all-n 1\r\n", findings)
        with cl[0].connect() as c:
            c.send(b"get cl:all-set cl:all-ms cl:all-del cl:all-n\r\n")
            got = read_get(c)
            findings.expect(
                got == b"VALUE cl:all-set 0 2\r\nv1\r\nVALUE cl:all-ms 0 2\r\nv1\r\n"
                       b"VALUE cl:all-del 0 2\r\nv1\r\nVALUE cl:all-n 0 1\r\n2\r\nEND\r\n",
                "writes refused at ALL (not enough replicas) were applied: a QUORUM get "
                "of the four keys gave %r" % got)

        cl.kill(1)
        cl.wait_state(1, "down")
        # two down: QUORUM is refused at once, reads and writes alike
        refused(cl[0], b"set cl:03 0 0 2\r\nv3\r\n", findings)
        refused(cl[0], b"get cl:03\r\n", findings, GET, closes=True)
        refused(cl[0], b"mg cl:03 v\r\n", findings, META)
        refused(cl[0], b"delete cl:04\r\n", findings)
        refused(cl[0], b"incr cl:n 1\r\n", findings)

        # node 2 must come back stale: node 0's hints for it are dropped
        # first (1 s window; on a slow box the steps above may take less)
        assert helpers.wait_until(lambda: no_hints_pending(cl), timeout=5.0, interval=0.1), \
            [n.stats(b"hints") for n in cl if n.running]
        # ONE: node 2 back, learns the cluster from node 0, then alone
        cl.restart(2)
        assert helpers.wait_until(lambda: int(cl[2].stats(b"cluster")["ring_nodes"]) == 3,
                                  timeout=10.0, interval=0.1), cl.describe()
        cl.kill(0)
        cl.wait_state(0, "down", observers=[2])
        cl.wait_state(1, "down", observers=[2])
        with cl[2].connect() as c:
            t0 = time.monotonic()
            c.call(b"set cl:one 0 0 3\r\none\r\n", STORED)
            c.call(b"get cl:one\r\n", b"VALUE cl:one 0 3\r\none\r\nEND\r\n")
            c.call(b"append cl:one 0 0 1\r\n!\r\n", STORED)
            c.call(b"mg cl:one v\r\n", b"VA 4\r\none!\r\n")
            c.call(b"incr cl:one 1\r\n", NON_NUMERIC)
            c.call(b"delete cl:one\r\n", b"DELETED\r\n")
            c.call(b"get cl:one\r\n", b"END\r\n")
            took = time.monotonic() - t0
            findings.expect(took < 7 * FAST, "7 commands at ONE took %.3f s" % took)

        # everyone back: QUORUM reads return the writes node 2 missed and
        # repair it (its copies are still v1: its hints were dropped)
        assert helpers.wait_until(lambda: no_hints_pending(cl), timeout=5.0, interval=0.1)
        cl.restart(0)
        cl.restart(1)
        cl.wait_converged()
        stale = replica_records(cl[2], keys[1:])
        assert all(r is not None and r.value == b"v1" for r in stale.values()), stale
        before = cl[0].stats(b"cluster")
        with cl[0].connect() as c:
            c.call(b"get cl:00\r\n", b"END\r\n")
            for key in keys[1:]:
                c.call(b"get %s\r\n" % key, b"VALUE %s 0 2\r\nv2\r\nEND\r\n" % key)
        after = cl[0].stats(b"cluster")
        grew = {name: int(after[name]) - int(before[name])
                for name in ("coord_digest_mismatches", "coord_read_repairs")}
        assert grew["coord_digest_mismatches"] > 0 and grew["coord_read_repairs"] > 0, grew
        # the repairs went to node 2, the only stale replica; node 2 reads
        # at ONE, its own copy first: the repaired keys read the new value
        held = replica_records(cl[2], keys)
        repaired = [key for key in keys[1:] if held[key].value == b"v2"]
        assert len(repaired) + held[b"cl:00"].tombstone >= grew["coord_read_repairs"], \
            (held, grew)
        with cl[2].connect() as c:
            for key in repaired:
                c.call(b"get %s\r\n" % key, b"VALUE %s 0 2\r\nv2\r\nEND\r\n" % key)
        with cl[1].connect() as c:
            c.call(b"get cl:n cl:00\r\n", b"VALUE cl:n 0 1\r\n2\r\nEND\r\n")
    findings.assert_none()


# ---- a replica killed under a QUORUM load: the history checker ------------

def mc_line(conn, request):
    conn.send(request)
    return conn.read_line()


def mc_get(conn, key):
    """The value, None for a miss; raises ConnectionError if the reply is
    cut or is an error (a failed get ends with SERVER_ERROR and closes)."""
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


def load_client(history, addrs, name, keys, stop, max_ops, pace_s=0.0):
    """set, set, get, delete on random keys through random nodes of addrs
    until stop or max_ops (pace_s: a pause after each); a connection is
    dropped after any non-ok outcome (its late reply would be taken for
    the next request's)."""
    rnd, conns = random.Random(name), {}
    for _ in range(max_ops):
        if stop.is_set():
            break
        if pace_s:
            time.sleep(pace_s)
        addr = rnd.choice(addrs)
        key, kind = rnd.choice(keys), rnd.choice(("set", "set", "get", "delete"))
        with history.record(name, kind, key) as call:
            if addr not in conns:
                conns[addr] = Conn(addr, timeout=REQUEST_TIMEOUT_S + 1.0)
            conn = conns[addr]
            if kind == "set":
                call.reply(mc_line(conn, b"set %s 0 0 %d\r\n%s\r\n"
                                   % (key, len(call.value), call.value)))
            elif kind == "delete":
                call.reply(mc_line(conn, b"delete %s\r\n" % key))
            else:
                call.ok(mc_get(conn, key))
        if call.op.outcome != OK and addr in conns:
            conns.pop(addr).close()
            time.sleep(0.01)
    for conn in conns.values():
        conn.close()


def test_quorum_history_across_a_replica_kill(tmp_path):
    """Four clients write, delete and read eight keys at QUORUM through
    nodes 0 and 1 while node 2 (a replica of every key) is SIGKILLed and
    restarted; afterwards every key is read through every node: every
    acknowledged write is there or superseded, no value appears that was
    never written (timeouts count as indeterminate)."""
    history = History()
    keys = [b"h:%s:%d" % (history.run_id.encode(), i) for i in range(8)]
    stop = threading.Event()

    def ok_writes():
        return sum(1 for op in history.ops() if op.is_write and op.outcome == OK)

    with Cluster(tmp_path, 3) as cl:
        cl.start()
        addrs = [cl[0].addr, cl[1].addr]
        threads = [threading.Thread(target=load_client,
                                    args=(history, addrs, "c%d" % i, keys, stop, 50000),
                                    daemon=True) for i in range(4)]
        for t in threads:
            t.start()
        try:
            assert helpers.wait_until(lambda: ok_writes() >= 200, timeout=15.0, interval=0.05)
            cl.kill(2)
            killed, dead_until = ok_writes(), time.monotonic() + 1.5
            # the survivors go on (2 of 3 replicas make a quorum); node 2
            # stays dead for at least 1.5 s of load
            assert helpers.wait_until(
                lambda: ok_writes() >= killed + 300 and time.monotonic() > dead_until,
                timeout=15.0, interval=0.05), history.summary()
            cl.restart(2)
            cl.wait_converged()
            back = ok_writes()
            assert helpers.wait_until(lambda: ok_writes() >= back + 300, timeout=15.0,
                                      interval=0.05), history.summary()
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=2 * REQUEST_TIMEOUT_S + 5)
        assert not any(t.is_alive() for t in threads)
        for i, n in enumerate(cl):
            with n.connect() as c:
                history.final_reads(lambda k: mc_get(c, k), keys=keys, client="final%d" % i)
        node2 = cl[2].stats(b"cluster")
    result = history.check()
    assert result.ok, result.report() + "\n" + history.summary()
    counts = summarize(history.ops())
    assert counts["pending"] == 0, history.summary()
    finals = [op for op in history.ops() if op.final]
    assert len(finals) == 3 * len(keys) and all(op.outcome == OK for op in finals), \
        history.summary()
    assert int(node2["records_written"]) > 0, node2  # node 2 was written to after its restart


# ---- a delete while a replica is down --------------------------------------

def test_delete_while_a_replica_is_down_stays_deleted(tmp_path):
    """Keys written to all three replicas; node 2 is killed; the keys are
    deleted at QUORUM through node 1; node 2 comes back holding the old
    values (NO_HEALING: its hints were dropped). Reads through every node,
    node 2 included from the moment it answers again, miss: the values
    never return, and a read through node 2 repairs node 2's own copy."""
    keys = [b"del:%02d" % i for i in range(30)]
    findings = Findings()
    with Cluster(tmp_path, 3, extra=NO_HEALING) as cl:
        cl.start()
        with cl[0].connect() as c:
            for key in keys:
                c.call(b"set %s 0 0 3\r\nold\r\n" % key, STORED)
        # every replica has them (W=2 acknowledges before the third applies)
        assert helpers.wait_until(
            lambda: all(r is not None and r.value == b"old"
                        for n in cl for r in replica_records(n, keys).values()),
            timeout=5.0, interval=0.1)

        cl.kill(2)
        cl.wait_state(2, "down")
        with cl[1].connect() as c:
            for key in keys:
                c.call(b"delete %s\r\n" % key, b"DELETED\r\n")
        with cl[0].connect() as c:
            for key in keys:
                c.call(b"get %s\r\n" % key, b"END\r\n")
        assert helpers.wait_until(lambda: no_hints_pending(cl), timeout=5.0, interval=0.1)

        # node 2 answers again: from then on, reads through it miss
        cl.restart(2)
        early, t0 = {}, time.monotonic()
        refused = 0
        while not cl.converged() and time.monotonic() < t0 + 20.0:
            for key in keys[:5]:
                # until it has heard from a peer the node refuses (the
                # SERVER_ERROR line, then it closes): never the old value
                with cl[2].connect() as c:
                    c.send(b"get %s\r\n" % key)
                    reply = read_get(c)
                if reply.startswith(b"SERVER_ERROR "):
                    refused += 1
                elif reply != b"END\r\n":
                    early.setdefault(key, (round(time.monotonic() - t0, 2),
                                           cl[2].stats(b"cluster")["ring_nodes"], reply))
            time.sleep(0.05)
        findings.expect(not early, "deleted keys read through node 2 right after its restart "
                        "(seconds after it answered, its ring_nodes, reply): %r" % early)
        cl.wait_converged()
        # the early reads at most repaired the keys they read
        held = replica_records(cl[2], keys[5:])
        assert all(r is not None and r.value == b"old" and not r.tombstone
                   for r in held.values()), held
        with cl[2].connect() as c:
            for key in keys:
                c.call(b"get %s\r\n" % key, b"END\r\n")
        held = replica_records(cl[2], keys)
        assert all(r is not None and r.tombstone for r in held.values()), held
        for _ in range(3):
            for n in cl:
                with n.connect() as c:
                    for key in keys:
                        c.call(b"get %s\r\n" % key, b"END\r\n")
                        c.call(b"mg %s v\r\n" % key, b"EN\r\n")
        # read-modify-writes at the primary see the key absent too
        for i, key in enumerate(keys):
            with cl[i % 3].connect() as c:
                c.call(b"incr %s 1\r\n" % key, b"NOT_FOUND\r\n")
                c.call(b"append %s 0 0 1\r\nx\r\n" % key, b"NOT_STORED\r\n")
                c.call(b"touch %s 10\r\n" % key, b"NOT_FOUND\r\n")
        for n in cl:
            assert all(r is not None and r.tombstone
                       for r in replica_records(n, keys).values())
    findings.assert_none()


# ---- five nodes, three replicas --------------------------------------------

def test_five_nodes_three_replicas(tmp_path):
    """Five nodes, N=3: each key lives on exactly three of them; what is
    written through any node is read back through every node; some
    read-modify-writes are forwarded to another node, the key's primary."""
    keys = [b"five:%03d" % i for i in range(100)]
    with Cluster(tmp_path, 5) as cl:
        cl.start()
        view, _ = members_view(cl[0])
        owned = sum(float(o.rstrip("%")) for _, _, o in view.values())
        assert abs(owned - 100.0) < 0.5 and all(float(o.rstrip("%")) > 0
                                                for _, _, o in view.values()), view
        conns = [n.connect() for n in cl]
        try:
            for i, key in enumerate(keys):
                conns[i % 5].call(b"set %s 0 0 2\r\n%02d\r\n" % (key, i % 100), STORED)
            for i, key in enumerate(keys):
                for c in conns:
                    c.call(b"get %s\r\n" % key, b"VALUE %s 0 2\r\n%02d\r\nEND\r\n" % (key, i))
            # read-modify-writes through every node
            for i, key in enumerate(keys):
                conns[(i + 1) % 5].call(b"append %s 0 0 1\r\n+\r\n" % key, STORED)
                conns[(i + 2) % 5].call(b"incr five:n%d 1\r\n" % (i % 10), b"NOT_FOUND\r\n")
            for i, key in enumerate(keys):
                for c in conns:
                    c.call(b"get %s\r\n" % key, b"VALUE %s 0 3\r\n%02d+\r\nEND\r\n" % (key, i))
        finally:
            for c in conns:
                c.close()

        def placed():
            held = [replica_records(n, keys) for n in cl]
            return all(sum(1 for h in held if h[key] is not None and h[key].value.endswith(b"+"))
                       == 3 for key in keys)
        assert helpers.wait_until(placed, timeout=5.0, interval=0.1)
        held = [replica_records(n, keys) for n in cl]
        for key in keys:
            copies = sum(1 for h in held if h[key] is not None)
            assert copies == 3, (key, copies)
        stats = [n.stats(b"cluster") for n in cl]
        forwarded = [int(s["coord_rmws_forwarded"]) for s in stats]
        served = [int(s["coord_rmws_served"]) for s in stats]
        rmws = [int(s["coord_rmws"]) for s in stats]
        assert sum(rmws) >= 2 * len(keys), rmws
        assert sum(forwarded) > 0 and sum(served) == sum(forwarded), (forwarded, served)
        assert sum(int(s["coord_failures"]) + int(s["coord_timeouts"])
                   + int(s["coord_unavailable"]) for s in stats) == 0, stats


# ---- repair, wiped disks, skewed clocks, failing disks ---------------------

def run_repair(node, timeout=60.0):
    """Runs one anti-entropy cycle on node (the `repair` command) and
    returns the growth of its `stats repair` counters."""
    before = node.stats(b"repair")
    with node.connect() as c:
        c.call(b"repair\r\n", b"OK\r\n")

    def done():
        s = node.stats(b"repair")
        return s["running"] == "0" and int(s["cycles"]) > int(before["cycles"])
    assert helpers.wait_until(done, timeout=timeout, interval=0.05), node.stats(b"repair")
    after = node.stats(b"repair")
    return {k: int(after[k]) - int(before[k]) for k in
            ("sessions", "sessions_failed", "ranges_differing", "keys_pulled", "keys_pushed")}


def versions(node, keys):
    """{key: (hlc, node, tombstone)} of node's own replica (None: absent)."""
    return {k: (None if r is None else (r.version.hlc, r.version.node, r.tombstone))
            for k, r in replica_records(node, keys).items()}


def test_replicas_converge_after_a_kill_and_repair_then_moves_nothing(tmp_path):
    """Writes at QUORUM while a replica is dead (its hints replay when it
    is back); then every replica holds the same versions, an anti-entropy
    cycle finds nothing to move, and a second one neither."""
    keys = [b"conv:%03d" % i for i in range(120)]
    with Cluster(tmp_path, 3) as cl:
        cl.start()
        with cl[0].connect() as c:
            for key in keys[:60]:
                c.call(b"set %s 0 0 2\r\nv1\r\n" % key, STORED)
        cl.kill(2)
        cl.wait_state(2, "down")
        with cl[1].connect() as c:
            for key in keys:
                c.call(b"set %s 0 0 2\r\nv2\r\n" % key, STORED)
            for key in keys[:10]:
                c.call(b"delete %s\r\n" % key, b"DELETED\r\n")
        assert not no_hints_pending(cl)  # the dead replica's writes wait as hints
        cl.restart(2)
        cl.wait_converged()
        assert helpers.wait_until(lambda: no_hints_pending(cl), timeout=10.0, interval=0.05)
        want = versions(cl[0], keys)
        assert all(v is not None for v in want.values())
        assert all(want[k][2] for k in keys[:10]) and not any(want[k][2] for k in keys[10:])
        for n in cl:
            assert versions(n, keys) == want  # identical records on every replica
        for n in cl:
            moved = run_repair(n)
            assert moved["sessions"] > 0 and moved["sessions_failed"] == 0, moved
            assert moved["keys_pulled"] == 0 and moved["keys_pushed"] == 0, moved
            assert moved["ranges_differing"] == 0, moved


def test_wiped_node_comes_back_with_a_new_id_and_repair_fills_it(tmp_path):
    """A node whose data directory is wiped starts as a new node (new id,
    new tokens) and joins; the old identity stays in the ring, down; an
    anti-entropy cycle on the new node fills its replicas."""
    import shutil
    keys = [b"wipe:%03d" % i for i in range(100)]
    with Cluster(tmp_path, 3) as cl:
        cl.start()
        old_id = cl.ids[2]
        with cl[0].connect() as c:
            for key in keys:
                c.call(b"set %s 0 0 3\r\nabc\r\n" % key, STORED)
        # a write node 2 was slow to take left a hint for its address; the
        # hint must reach the old node, not fill the new one before repair
        assert helpers.wait_until(lambda: no_hints_pending(cl), timeout=10.0, interval=0.05)
        cl.kill(2)
        shutil.rmtree(cl[2].data_dir)
        os_makedirs(cl[2].data_dir)
        cl.restart(2)

        def joined():
            view, me = members_view(cl[2])
            return me is not None and me != old_id and \
                view.get(me, (None, None))[1] == "up" and len(view) == 4 and \
                members_view(cl[0])[0].get(me, (None, None))[1] == "up"
        assert helpers.wait_until(joined, timeout=15.0, interval=0.05)
        assert helpers.wait_until(lambda: members_view(cl[0])[0][old_id][1] == "down",
                                  timeout=10.0, interval=0.05)
        time.sleep(cl.round)
        assert all(r is None for r in replica_records(cl[2], keys).values())
        moved = run_repair(cl[2])
        assert moved["keys_pulled"] > 0, moved
        # a session that failed (a peer slow to answer on a loaded box)
        # leaves its ranges to the next cycle: cycles until one has nothing
        # left to do, a few at most
        cycles = [moved]
        while cycles[-1]["sessions_failed"] > 0 and len(cycles) < 5:
            cycles.append(run_repair(cl[2]))
        held = replica_records(cl[2], keys)
        # the new node holds the keys of the ranges it replicates (with four
        # ring members and N=3, three quarters of them on average; its
        # random tokens made it 47 in one CI run, so no share is asserted):
        # all of them, as the next cycle finds nothing left to pull
        n = sum(r is not None and r.value == b"abc" for r in held.values())
        assert n > 0, (n, cycles)
        assert run_repair(cl[2])["keys_pulled"] == 0
        with cl[2].connect() as c:
            for key in keys:
                assert read_value(c, key)[2] == b"abc"


def os_makedirs(path):
    import os
    os.makedirs(path, exist_ok=True)


@pytest.mark.parametrize("offset_ms", [-600000, 600000], ids=["behind", "ahead"])
def test_a_skewed_clock_never_makes_a_later_write_lose(tmp_path, offset_ms):
    """Node 2's hybrid clock runs ten minutes behind (or ahead of) the
    others'. A write through it after a write through node 0 is either
    refused (SERVER_ERROR) or wins: an acknowledged later write is never
    hidden by an older one."""
    with Cluster(tmp_path, 3, per_node={2: ["--test-clock-offset-ms", offset_ms]}) as cl:
        cl.start()
        acked = refused = 0
        with cl[0].connect() as a, cl[2].connect() as b:
            for i in range(20):
                key = b"skew:%d" % i
                a.call(b"set %s 0 0 5\r\nfirst\r\n" % key, STORED)
                b.send(b"set %s 0 0 6\r\nsecond\r\n" % key)
                reply = b.read_line()
                if reply == STORED:
                    acked += 1
                    assert read_value(a, key)[2] == b"second", (i, reply)
                else:
                    assert reply.startswith(b"SERVER_ERROR "), reply
                    refused += 1
                    assert read_value(a, key)[2] in (b"first", b"second")
        assert acked + refused == 20
        # the skewed node's writes are refused by the others' clocks
        assert refused == 20, (acked, refused)
        clocks = sum(int(n.stats(b"cluster")["clock_refusals"]) for n in cl)
        coord = int(cl[2].stats(b"cluster")["coord_clock_refusals"])
        assert clocks > 0 or coord > 0


def test_a_replica_whose_disk_fails_is_served_around(tmp_path):
    """Node 2's engine fails its writes (the fault env): writes and reads
    through every node keep working at QUORUM from the two others, and the
    failure shows in node 2's stats."""
    keys = [b"disk:%03d" % i for i in range(50)]
    with Cluster(tmp_path, 3, per_node={2: ["--test-fail-writes-after", "3"]}) as cl:
        cl.start()
        for n in cl:
            with n.connect() as c:
                for key in keys:
                    c.call(b"set %s 0 0 2\r\nok\r\n" % key, STORED)
                for key in keys:
                    assert read_value(c, key)[2] == b"ok"
        storage = cl[2].stats(b"storage")
        assert storage["read_only"] == "1", storage
        assert int(cl[2].stats(b"cluster")["storage_errors"]) > 0
        failures = sum(int(n.stats(b"cluster")["coord_replica_failures"]) for n in cl[:2])
        assert failures > 0


def test_a_node_down_longer_than_gc_grace_refuses_to_start(tmp_path):
    """A node last up more than gc_grace (10 days) ago would bring deleted
    keys back: it refuses to start (exit 65) and says how to rebuild."""
    d = str(tmp_path / "node")
    n = Node(d).start()
    n.stop()
    import subprocess
    from nodes import node_binary
    p = subprocess.run([node_binary(), "-d", d, "-p", str(helpers.free_port()),
                        "-P", str(helpers.free_port()),
                        "--test-clock-offset-ms", str(11 * 86400 * 1000)],
                       capture_output=True, timeout=30)
    assert p.returncode == 65, p
    assert b"gc_grace" in p.stderr and b"empty" in p.stderr, p.stderr


def test_racks_get_one_replica_each_first(tmp_path):
    """Four nodes in two racks, N=2: every key has one replica in each
    rack (the ring's rack rule), whichever node coordinated the write."""
    keys = [b"rack:%03d" % i for i in range(60)]
    racks = {0: "a", 1: "a", 2: "b", 3: "b"}
    per_node = {i: ["--rack", r] for i, r in racks.items()}
    with Cluster(tmp_path, 4, extra=["-N", "2"], per_node=per_node) as cl:
        cl.start()
        for i, key in enumerate(keys):
            with cl[i % 4].connect() as c:
                c.call(b"set %s 0 0 1\r\nr\r\n" % key, STORED)
        held = [replica_records(n, keys) for n in cl]
        for key in keys:
            where = [racks[i] for i in range(4) if held[i][key] is not None]
            assert sorted(where) == ["a", "b"], (key, where)


# ---- COORD_WRITE: records with their own versions, at a level -------------------

def coord_write(client, cl, rec):
    """COORD_WRITE of rec at level cl: None when written, else the Error."""
    import clusterproto as cp
    body = cp.put_u8(cl) + cp.put_record(rec)
    frame = client.request(cp.OP_COORD_WRITE, body)
    if frame.opcode == cp.OP_ERROR:
        return cp.decode_body(frame)
    assert frame.opcode == cp.OP_COORD_WRITE and frame.body == b"", frame
    return None


def test_coord_write_replays_old_versions_at_a_level(tmp_path):
    """What strata-proxy's write-behind drainer relies on: a record sent
    with a version from minutes ago (not FRESH: no replica refuses it for
    its age) lands on every replica at that version, through any node;
    an older version of the key changes nothing, a newer tombstone
    deletes it; ALL with a replica down answers OVERLOADED and writes
    nothing; a version far ahead of the clock is refused."""
    import clusterproto as cp
    from test_node import hlc_now
    from nodes import TEST_PEER_ID
    with Cluster(tmp_path, 3) as cl:
        cl.start()
        old = hlc_now(-120_000)  # two minutes ago: beyond FRESH's 5 s
        keys = [b"cw:%d" % i for i in range(12)]
        with cp.ClusterClient(cl[0].cluster_addr) as c:
            assert c.handshake(b"strata", TEST_PEER_ID, 4243, 1, b"127.0.0.1:1").accept
            for i, key in enumerate(keys):
                rec = cp.Record(key=key, value=b"v%d" % i, flags=i, version=cp.Version(old + i, 77))
                assert coord_write(c, cp.CL_QUORUM, rec) is None, key
        # on all three replicas at its own version (QUORUM acknowledged two)
        assert helpers.wait_until(
            lambda: all(r is not None and r.version == (old + i, 77)
                        for n in cl for i, r in enumerate(replica_records(n, keys).values())),
            timeout=5.0, interval=0.1)
        with cl[1].connect() as m:
            assert read_value(m, keys[3])[::2] == (3, b"v3")
            with cp.ClusterClient(cl[1].cluster_addr) as c:
                assert c.handshake(b"strata", TEST_PEER_ID, 4243, 1, b"127.0.0.1:1").accept
                # an older version: merged away
                stale = cp.Record(key=keys[3], value=b"stale", version=cp.Version(old - 1000, 77))
                assert coord_write(c, cp.CL_ALL, stale) is None
                assert read_value(m, keys[3])[::2] == (3, b"v3")
                # a newer tombstone: deleted everywhere it was written
                tomb = cp.Record(key=keys[3], tombstone=True, version=cp.Version(old + 1000, 77))
                assert coord_write(c, cp.CL_ALL, tomb) is None
                assert read_value(m, keys[3]) is None
                assert all(r.tombstone for n in cl for r in replica_records(n, [keys[3]]).values())
        cl.kill(2)
        cl.wait_state(2, "down", observers=[0])
        with cp.ClusterClient(cl[0].cluster_addr) as c:
            assert c.handshake(b"strata", TEST_PEER_ID, 4243, 1, b"127.0.0.1:1").accept
            rec = cp.Record(key=b"cw:all", value=b"x", version=cp.Version(old, 77))
            err = coord_write(c, cp.CL_ALL, rec)
            assert isinstance(err, cp.Error) and err.code == cp.ERR_OVERLOADED, err
            assert replica_records(cl[0], [b"cw:all"])[b"cw:all"] is None
            # QUORUM still works with two of three
            assert coord_write(c, cp.CL_QUORUM, rec) is None
            # a version an hour ahead: refused, the connection closed
            ahead = cp.Record(key=b"cw:ahead", value=b"x",
                              version=cp.Version(hlc_now(3_600_000), 77))
            err = coord_write(c, cp.CL_ONE, ahead)
            assert isinstance(err, cp.Error) and err.code == cp.ERR_BAD_REQUEST, err
            assert c.read_to_eof(timeout=2.0)[1] in ("eof", "reset")
        assert replica_records(cl[0], [b"cw:ahead"])[b"cw:ahead"] is None
