"""strata-proxy's cluster backend (`--backend cluster`) against a node that
misbehaves: a fake strata-node written here (a listening socket on
127.0.0.1 served by threads) answers the proxy's HANDSHAKE and RING
correctly (a one-node ring whose only node is itself, N = 1) and then
breaks the protocol on the data requests (COORD_READ for gets, RMW for
sets) in one way per test:

  a. a response header declaring a 1 GiB body (and one byte over the
     16 MiB frame limit): nothing of it is allocated (the proxy's VmHWM),
     the link is reset;
  b. a response cut short (in the header, in the body) and then a stall:
     the request times out; a late end of that frame, when the node
     resumes, is discarded and never answers a newer request;
  c. bytes that are no frame (text, a wrong version, a broken header or
     body check, a reserved flag, a request on the proxy's own link, a
     body that does not decode): the link is dropped;
  d. a well-formed response to an id the proxy never sent; a response to
     the right id carrying another key's record; and two clients whose
     concurrent gets (and sets) are answered in reverse order, or with
     the two ids swapped, so that a proxy matching responses by anything
     but the id would give client 1 client 2's value;
  e. seeds on a refused port and on a silent port (accepts, never answers,
     not even the handshake), and a ring that places the key on such a
     port.

For each: a client's get and set through the proxy answer the exact
`SERVER_ERROR ...` line of frontend/exec.h fe_server_error within about
the request timeout (--cluster-timeout-ms 500) (a get that fails also
closes its client connection, by design: frontend/proto_text.c get_cont;
each get here has a connection of its own), the proxy stays up (a
bystander connection and the setting client go on working, the next
requests are served once the node behaves again, it exits 0 on SIGTERM),
the fake node sees the connection closed or reset where the proxy must
drop a link that broke the protocol (docs/formats/cluster-protocol.md,
"Receiving a frame": every result but "need more" closes the
connection), and no client ever receives a value the node did not give
for that key's own request (every bad response carries a POISON value
for the key; after the fault, gets of the same keys must return the
node's real values, not something a discarded frame left in L1).

The proxy runs one worker (-t 1) so that every client shares one link to
the node (a link per worker): the fault and the next requests meet on the
same connection. The fake node also checks what the proxy sends: the
HANDSHAKE first, ids that only grow on a connection, bodies that decode.
The RING and COORD_READ encoders the fake needs (clusterproto.py has none)
are below, pinned by the bytes tests/unit/common/test_wire_client.c checks
common/wire.c against.

Strata only (skipped with STRATA_TEST_SERVER=memcached); each test starts
its own fake node and proxy, every process stopped by pid.
"""

import dataclasses
import os
import socket
import struct
import threading
import time

import pytest

import clusterproto as cp
import helpers
from helpers import CRLF

# the cluster backend completes every command asynchronously already:
# --test-async-reads (strata-async) adds nothing, so these run once, in
# the strata run
# Not under ThreadSanitizer (make tsan sets TSAN_OPTIONS): one worker, one
# link; what these check is input handling, which the ASan run covers.
strata_only = pytest.mark.skipif(
    helpers.SERVER_KIND != "strata" or "TSAN_OPTIONS" in os.environ,
    reason="cluster backend tests run once, in the strata run (not under TSan)")

TIMEOUT_MS = 250                # --cluster-timeout-ms
TIMEOUT_S = TIMEOUT_MS / 1000.0
SLACK_S = 1.0                   # "within about the timeout": before TIMEOUT_S + SLACK_S
EARLY_S = 0.05                  # a timeout never answers more than this before TIMEOUT_S
WAIT_S = 3.0                    # bound of every polling loop
RING_WAIT_S = 4.0               # the proxy learns the ring (poll every 1 s, 100 ms after a failure)

# frontend/exec.h fe_server_error, as proxy/cbackend.c maps what happened:
# no answer in time, or the link closed with the request in flight
ERR_TIMEOUT = b"SERVER_ERROR timeout waiting for replicas\r\n"
# not sent: no ring yet, or the link failed lately (its retry window)
ERR_UNAVAILABLE = b"SERVER_ERROR not enough replicas available\r\n"
# an answer whose body does not decode
ERR_FAILED = b"SERVER_ERROR storage error\r\n"
SERVER_ERRORS = (ERR_TIMEOUT, ERR_UNAVAILABLE, ERR_FAILED, b"SERVER_ERROR backend busy\r\n")

POISON = b"POISON"  # the value every bad response carries


# ---- RING and COORD_READ bodies (common/wire.h) ----------------------------------

RING_NODE_MIN = 16 + 2 + 1 + 1 + 1 + 1 + 8  # bytes of the smallest node


@dataclasses.dataclass
class RingNode:
    """A node of a RING answer (struct wire_ring_node)."""
    id: bytes
    short_id: int
    addr: bytes = b""
    rack: bytes = b""
    state: int = 0  # 0 up, 1 suspect, 2 down
    tokens: tuple = (0,)


def put_ring_node(n):
    """wire_put_ring_node; ValueError where it sets ST_INVAL."""
    addr, rack = cp._b(n.addr), cp._b(n.rack)
    cp._check_node_id(n.id)
    cp._check_len(addr, 0, cp.ADDR_MAX, "addr")
    cp._check_len(rack, 0, cp.RACK_MAX, "rack")
    if not 0 <= n.state <= 2:
        raise ValueError("state %d" % n.state)
    if not 1 <= len(n.tokens) <= cp.RING_VNODES_MAX:
        raise ValueError("%d tokens" % len(n.tokens))
    return (cp.put_raw(n.id) + cp.put_u16(n.short_id) + cp.put_bytes(addr) +
            cp.put_bytes(rack) + cp.put_u8(n.state) + cp.put_varint(len(n.tokens)) +
            b"".join(cp.put_u64(t) for t in n.tokens))


def compose_ring(version, replicas, nodes):
    """RING response body: wire_put_ring_head, then wire_put_ring_node each."""
    if not 1 <= replicas <= 64:
        raise ValueError("replicas %d" % replicas)
    if len(nodes) > cp.RING_NODES_MAX:
        raise ValueError("%d nodes" % len(nodes))
    return (cp.put_u64(version) + cp.put_u8(replicas) + cp.put_varint(len(nodes)) +
            b"".join(put_ring_node(n) for n in nodes))


def parse_ring(body):
    """(version, replicas, [RingNode]) with wire.c's rules."""
    r = cp.Reader(body)
    version, replicas, count = r.get_u64(), r.get_u8(), r.get_varint()
    if (not 1 <= replicas <= 64 or count > cp.RING_NODES_MAX
            or count > r.remaining() // RING_NODE_MIN):
        raise cp.WireError(cp.MALFORMED, "ring head")
    nodes = []
    for _ in range(count):
        node_id, short_id = r.get_raw(cp.NODE_ID_LEN), r.get_u16()
        addr, rack = r.get_bytes(cp.ADDR_MAX), r.get_bytes(cp.RACK_MAX)
        state, ntokens = r.get_u8(), r.get_varint()
        if state > 2 or not 1 <= ntokens <= cp.RING_VNODES_MAX:
            raise cp.WireError(cp.MALFORMED, "ring node")
        tokens = struct.unpack("<%dQ" % ntokens, r.get_raw(8 * ntokens))
        nodes.append(RingNode(node_id, short_id, addr, rack, state, tokens))
    r.finish()
    return version, replicas, nodes


def compose_coord_read(read_cl, key):
    key = cp._b(key)
    if not cp.CL_ONE <= read_cl <= cp.CL_ALL:
        raise ValueError("read level %d" % read_cl)
    cp._check_len(key, 1, cp.REC_KEY_MAX, "key")
    return cp.put_u8(read_cl) + cp.put_bytes(key)


def parse_coord_read(body):
    """(read_cl, key) of a COORD_READ request."""
    r = cp.Reader(body)
    read_cl, key = r.get_u8(), r.get_bytes(cp.REC_KEY_MAX, 1)
    r.finish()
    if not cp.CL_ONE <= read_cl <= cp.CL_ALL:
        raise cp.WireError(cp.MALFORMED, "read level %d" % read_cl)
    return read_cl, key


def parse_coord_write(body):
    """(write_cl, cp.Record) of a COORD_WRITE request."""
    r = cp.Reader(body)
    write_cl = r.get_u8()
    rec = cp.get_record(r)
    r.finish()
    if not cp.CL_ONE <= write_cl <= cp.CL_ANY:
        raise cp.WireError(cp.MALFORMED, "write level %d" % write_cl)
    return write_cl, rec


def parse_rmw(body):
    """An RMW request (wire_parse_rmw's layout) as a cp.Rmw."""
    r = cp.Reader(body)
    op, read_cl, write_cl, rflags = r.get_u8(), r.get_u8(), r.get_u8(), r.get_u8()
    key, value = r.get_bytes(cp.REC_KEY_MAX, 1), r.get_bytes()
    q = cp.Rmw(op=op, key=key, value=value, read_cl=read_cl, write_cl=write_cl, rflags=rflags,
               flags=r.get_u32(), expiry=r.get_u64(), expiry2=r.get_u64(), cas_in=r.get_u64(),
               delta=r.get_u64(), initial=r.get_u64())
    r.finish()
    return q


def compose_rmw_reply(rep):
    """RMW response body (wire_compose_rmw_reply)."""
    out = (cp.put_u8(rep.result) + cp.put_u64(rep.cas) + cp.put_u64(rep.number) +
           cp.put_u64(rep.old_expiry) + cp.put_u8(1 if rep.created else 0))
    if rep.record is None:
        return out + cp.put_u8(0)
    return out + cp.put_u8(1) + cp.put_record(rep.record)


# test_wire_client.c test_ring_golden: the bytes wire.c composes for this head and node.
RING_GOLDEN = bytes.fromhex(
    "8877665544332211" "02" "01"
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf" "0102" "03683a31" "02726b" "01" "02"
    "0102030405060708" "8090a0b0c0d0e0f0")


def test_ring_and_coord_read_codec():
    """The encoders above against wire.c's bytes, their bounds, and round trips."""
    node = RingNode(bytes(range(0xa0, 0xb0)), 0x0201, b"h:1", b"rk", 1,
                    (0x0807060504030201, 0xf0e0d0c0b0a09080))
    assert compose_ring(0x1122334455667788, 2, [node]) == RING_GOLDEN
    assert parse_ring(RING_GOLDEN) == (0x1122334455667788, 2, [node])
    for bad in (RING_GOLDEN[:-1], RING_GOLDEN + b"\0"):
        with pytest.raises(cp.WireError):
            parse_ring(bad)
    for replicas in (0, 65):
        with pytest.raises(ValueError):
            compose_ring(1, replicas, [node])
    for change in ({"state": 3}, {"tokens": ()}, {"tokens": (1,) * 1025},
                   {"addr": b"a" * 513}, {"rack": b"r" * 65}):
        with pytest.raises(ValueError):
            put_ring_node(dataclasses.replace(node, **change))
    assert compose_coord_read(2, b"k") == b"\x02\x01k"
    assert parse_coord_read(compose_coord_read(3, b"x" * 250)) == (3, b"x" * 250)
    for cl, key in ((0, b"k"), (4, b"k"), (1, b""), (1, b"x" * 251)):
        with pytest.raises(ValueError):
            compose_coord_read(cl, key)
    for body in (b"\x00\x01k", b"\x04\x01k", b"\x01\x00", b"\x01\x01kk"):
        with pytest.raises(cp.WireError):
            parse_coord_read(body)
    q = cp.Rmw(op=cp.RMW_SET, key=b"k", value=b"v", rflags=cp.RMW_RETURN, flags=3)
    assert parse_rmw(cp.compose_rmw(q)) == q
    rep = cp.RmwReply(result=cp.RMW_STORED, cas=9,
                      record=cp.Record(key=b"k", value=b"v", version=cp.Version(9, 1)))
    assert cp.parse_rmw_reply(compose_rmw_reply(rep)) == rep


# ---- The fake node -------------------------------------------------------------------

def response(opcode, body, rid):
    return cp.encode_frame(opcode, body, cp.FLAG_RESPONSE, rid)


class FakeConn:
    """One connection the proxy dialed to the fake node."""

    def __init__(self, node, sock, number):
        self.node = node
        self.sock = sock
        self.number = number
        self.parser = cp.FrameParser()
        self.ids = []          # request ids in arrival order
        self.data = 0          # data requests (COORD_READ, RMW) received
        self.closed = None     # 'eof' / 'reset' / 'error' once the proxy closed it
        self.stalled = False   # answers nothing more (a node stuck mid-frame)
        self.tail = b""        # the rest of a frame cut short, for a resume
        self.send_lock = threading.Lock()

    def send(self, data):
        with self.send_lock:
            try:
                self.sock.sendall(data)
                return True
            except OSError:
                return False


class FakeNode:
    """A strata-node's cluster port, as far as a proxy uses it: HANDSHAKE,
    RING (a one-node ring, replicas 1, whose node is `ring_addr`, by default
    this port), COORD_READ and RMW answered from `store` unless `behaviour`
    takes the request. silent: accept, read, never send anything.

    behaviour(node, conn, frame) -> True when it answered (or chose not to),
    False to let the node answer well. It runs on the connection's thread."""

    NODE_ID = b"fake-strata-node"

    def __init__(self, ring_addr=None, silent=False):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.05)
        self.port = self.lsock.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.ring_addr = ring_addr or self.addr
        self.silent = silent
        self.tokens = tuple(i * (1 << 61) + 0x1234567 for i in range(8))
        self.cv = threading.Condition()
        self.conns = []
        self.requests = []     # (conn, frame, key) of every data request, in arrival order
        self.store = {}        # key -> value, what good answers say
        self.written = []      # the records of COORD_WRITEs answered well
        self.behaviour = None
        self.rings = 0
        self.problems = []     # rules the proxy broke (each test asserts none)
        self.hlc = 1 << 40
        self.stopping = False
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    # -- life

    def stop(self):
        self.stopping = True
        with self.cv:
            conns = list(self.conns)
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in list(self.threads):
            t.join(2.0)
        for c in conns:
            c.sock.close()
        self.lsock.close()

    def _accept(self):
        while not self.stopping:
            try:
                sock, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(0.05)
            with self.cv:
                fc = FakeConn(self, sock, len(self.conns))
                self.conns.append(fc)
                self.cv.notify_all()
            t = threading.Thread(target=self._serve, args=(fc,), daemon=True)
            self.threads.append(t)
            t.start()

    def _closed(self, fc, how):
        with self.cv:
            if fc.closed is None:
                fc.closed = how
            self.cv.notify_all()

    def _serve(self, fc):
        while not self.stopping:
            try:
                chunk = fc.sock.recv(1 << 16)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return self._closed(fc, "reset")
            except OSError:
                return self._closed(fc, "error")
            if not chunk:
                return self._closed(fc, "eof")
            if self.silent:
                continue
            fc.parser.feed(chunk)
            try:
                frames = fc.parser.frames()
            except cp.WireError as e:
                self.problem(fc, "the proxy sent bytes that are no frame: %s" % e)
                return
            for f in frames:
                try:
                    self._handle(fc, f)
                except (cp.WireError, ValueError) as e:
                    self.problem(fc, "a request that does not decode (opcode %d): %s"
                                 % (f.opcode, e))
                except Exception as e:  # a behaviour's own failure: reported, not lost
                    self.problem(fc, "the fake node failed: %r" % e)

    def problem(self, fc, what):
        with self.cv:
            self.problems.append("conn %s: %s" % (fc.number if fc else "?", what))

    # -- answers

    def next_hlc(self):
        with self.cv:
            self.hlc += 1
            return self.hlc

    def ring_body(self):
        node = RingNode(self.NODE_ID, 1, self.ring_addr.encode(), b"", 0, self.tokens)
        return compose_ring(1, 1, [node])

    def request_key(self, f):
        if f.opcode == cp.OP_COORD_READ:
            return parse_coord_read(f.body)[1]
        if f.opcode == cp.OP_COORD_WRITE:
            return parse_coord_write(f.body)[1].key
        return parse_rmw(f.body).key

    def good_body(self, f, value=None):
        """The body a node would answer f with; value: this value instead
        of the store's (and nothing stored)."""
        if f.opcode == cp.OP_COORD_READ:
            key = parse_coord_read(f.body)[1]
            v = self.store.get(key) if value is None else value
            rec = None if v is None else cp.Record(key=key, value=v, flags=7,
                                                   version=cp.Version(self.next_hlc(), 1))
            return cp.compose_read_reply(rec)
        if f.opcode == cp.OP_COORD_WRITE:
            rec = parse_coord_write(f.body)[1]
            if value is None:
                self.store[rec.key] = rec.value
                self.written.append(rec)
            return b""
        q = parse_rmw(f.body)
        if q.op != cp.RMW_SET:
            self.problem(None, "RMW op %d for a set" % q.op)
        v = q.value if value is None else value
        if value is None:
            self.store[q.key] = q.value
        hlc = self.next_hlc()
        rec = cp.Record(key=q.key, value=v, flags=q.flags, expiry=q.expiry,
                        version=cp.Version(hlc, 1))
        return compose_rmw_reply(cp.RmwReply(result=cp.RMW_STORED, cas=hlc,
                                             record=rec if q.rflags & cp.RMW_RETURN else None))

    def good_frame(self, f, value=None, rid=None):
        return response(f.opcode, self.good_body(f, value), f.id if rid is None else rid)

    def poison_frame(self, f, rid=None):
        """A well-formed answer to f whose value is POISON."""
        return self.good_frame(f, POISON, rid)

    def _handle(self, fc, f):
        if f.flags & cp.FLAG_RESPONSE:
            self.problem(fc, "a response frame from the dialer")
            return
        if fc.ids and f.id <= fc.ids[-1]:
            self.problem(fc, "request id %d after %d" % (f.id, fc.ids[-1]))
        fc.ids.append(f.id)
        if f.opcode == cp.OP_HANDSHAKE:
            if len(fc.ids) != 1:
                self.problem(fc, "a second HANDSHAKE")
            h = cp.parse_handshake(f.body)
            if h.cluster != b"strata":
                self.problem(fc, "cluster name %r" % h.cluster)
            reply = cp.HandshakeReply(accept=True, version=1, node_id=self.NODE_ID,
                                      short_id=1, generation=1)
            fc.send(response(cp.OP_HANDSHAKE, cp.compose_handshake_reply(reply), f.id))
            return
        if len(fc.ids) == 1:
            self.problem(fc, "opcode %d before the HANDSHAKE" % f.opcode)
        if f.opcode == cp.OP_RING:
            if f.body:
                self.problem(fc, "a RING request with a body")
            fc.send(response(cp.OP_RING, self.ring_body(), f.id))
            with self.cv:
                self.rings += 1
            return
        if f.opcode not in (cp.OP_COORD_READ, cp.OP_RMW, cp.OP_COORD_WRITE):
            self.problem(fc, "unexpected opcode %d" % f.opcode)
            fc.send(response(cp.OP_ERROR, cp.compose_error(cp.Error(cp.ERR_UNKNOWN_OPCODE)), f.id))
            return
        key = self.request_key(f)
        with self.cv:
            fc.data += 1
            self.requests.append((fc, f, key))
            self.cv.notify_all()
            behaviour = self.behaviour
        if fc.stalled:
            return
        if behaviour is None or not behaviour(self, fc, f):
            fc.send(self.good_frame(f))

    # -- what the tests look at

    def data_requests(self):
        with self.cv:
            return len(self.requests)

    def last_request(self):
        with self.cv:
            return self.requests[-1]

    def wait_closed(self, fc, timeout=WAIT_S):
        deadline = time.monotonic() + timeout
        with self.cv:
            while fc.closed is None and time.monotonic() < deadline:
                self.cv.wait(0.05)
            return fc.closed


# ---- The proxy and its clients ----------------------------------------------------------

class ClusterProxy(helpers.Server):
    """strata-proxy with one worker: every client shares its one link to a node."""

    def command_line(self, port):
        args = super().command_line(port)
        args[args.index("-t") + 1] = "1"
        return args


def start_proxy(seeds, *more):
    if helpers.external_addr():
        pytest.skip("needs a proxy of its own; not possible with STRATA_TEST_ADDR")
    args = ["--backend", "cluster", "--cluster-seeds", seeds,
            "--cluster-timeout-ms", str(TIMEOUT_MS), *more]
    return ClusterProxy(args).start()


def backend_stats(proxy):
    with proxy.connect() as c:
        return c.stats_dict(b"backend")


def wait_ring(proxy, nodes=1):
    got = helpers.wait_until(lambda: backend_stats(proxy).get("nodes") == str(nodes), RING_WAIT_S)
    assert got, "the proxy learned no ring of %d node(s): %r" % (nodes, backend_stats(proxy))


@pytest.fixture
def cluster():
    """(fake node, proxy) with the proxy holding the node's ring."""
    node = FakeNode()
    proxy = None
    try:
        proxy = start_proxy(node.addr)
        wait_ring(proxy)
        yield node, proxy
    finally:
        if proxy is not None:
            proxy.stop()  # asserts exit status 0
        node.stop()


def read_reply(conn, timeout=None):
    """One reply to get (VALUE ... END, END, or one error line) or set."""
    line = conn.read_line(timeout)
    if line.startswith(b"VALUE "):
        size = int(line.split()[3])
        line += conn.read_exact(size + 2, timeout)
        line += conn.read_line(timeout)
    return line


def get(proxy, key):
    """(reply, seconds) of `get key` on a connection of its own. A get that
    fails ends its reply with the SERVER_ERROR line and closes the client
    connection (frontend/proto_text.c get_cont, as memcached does when it
    cannot finish a get's reply): asserted here."""
    with proxy.connect() as c:
        t0 = time.monotonic()
        c.send(b"get " + key + CRLF)
        reply = read_reply(c)
        took = time.monotonic() - t0
        if reply.startswith(b"SERVER_ERROR"):
            rest, how = c.read_to_eof(WAIT_S)
            assert (rest, how) in ((b"", "eof"), (b"", "reset")), \
                "after %r the connection gave %r (%s)" % (reply, rest, how)
    return reply, took


def set_(conn, key, value):
    t0 = time.monotonic()
    conn.send(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value))
    reply = read_reply(conn)
    return reply, time.monotonic() - t0


def hit(key, value, flags=7):
    return b"VALUE %s %d %d\r\n%s\r\nEND\r\n" % (key, flags, len(value), value)


def reaching_node(node, request):
    """Runs request() (returning (reply, seconds)) until one reaches the
    node. After a link closed, the proxy refuses requests to that node for
    its retry window (500 ms) without sending them: those must be answered
    ERR_UNAVAILABLE at once. Returns (reply, seconds, (conn, frame, key))
    of the one that reached the node."""
    deadline = time.monotonic() + WAIT_S
    while True:
        before = node.data_requests()
        reply, took = request()
        if node.data_requests() > before:
            return reply, took, node.last_request()
        assert reply == ERR_UNAVAILABLE, "a request the node never saw answered %r" % reply
        assert took < TIMEOUT_S, "a refusal took %.2f s" % took
        assert time.monotonic() < deadline, "no request reached the node in %.0f s" % WAIT_S
        time.sleep(0.05)


def served_again(node, proxy, key, value):
    """Once the node behaves: a get of key is answered value, bounded (the
    proxy may still be in its retry window, answering ERR_UNAVAILABLE)."""
    node.store[key] = value
    deadline = time.monotonic() + WAIT_S
    while True:
        reply, took = get(proxy, key)
        if reply == hit(key, value):
            return
        assert reply == ERR_UNAVAILABLE and took < TIMEOUT_S, \
            "after the fault, get %r answered %r in %.2f s" % (key, reply, took)
        assert time.monotonic() < deadline, \
            "the proxy serves no get %.0f s after the fault" % WAIT_S
        time.sleep(0.05)


def assert_up(proxy, *conns):
    assert proxy.process_alive(), "strata-proxy died:\n" + proxy.log()
    for c in conns:
        assert c.version() == helpers.expected_version_line()


def assert_no_problems(node):
    assert node.problems == [], "the proxy broke the protocol: %r" % node.problems


def assert_timely(reply, took, expected, slow, what):
    """reply is exactly `expected`, answered before TIMEOUT_S + SLACK_S, and
    (slow: it waited for the timeout) not before TIMEOUT_S."""
    assert reply == expected, "%s answered %r, expected %r" % (what, reply, expected)
    assert took < TIMEOUT_S + SLACK_S, "%s answered after %.2f s" % (what, took)
    if slow:
        assert took >= TIMEOUT_S - EARLY_S, "%s timed out after %.2f s only" % (what, took)


def check_fault(node, proxy, behaviour, get_reply, set_reply, drops, slow=False, name=""):
    """The generic run: a get and a set meet `behaviour`; their replies,
    timing, the link dropped (drops) or not asserted; then the node
    behaves again and the proxy serves; the keys of the failed requests
    read back the node's values, never POISON. Returns the connections the
    bad answers went out on."""
    k_get, k_set = b"get-" + name.encode(), b"set-" + name.encode()
    node.store[b"warm"] = b"w"
    node.store[k_get] = b"real-get"
    node.store[k_set] = b"real-set"
    not_dropped = []
    used = []
    with proxy.connect() as c, proxy.connect() as bystander:
        assert get(proxy, b"warm")[0] == hit(b"warm", b"w")
        node.behaviour = behaviour
        for what, request, expected in (
                ("get", lambda: get(proxy, k_get), get_reply),
                ("set", lambda: set_(c, k_set, b"new-value"), set_reply)):
            reply, took, (fc, _, _) = reaching_node(node, request)
            assert_timely(reply, took, expected, slow, "%s %s" % (name, what))
            used.append(fc)
            if drops and node.wait_closed(fc) is None:
                not_dropped.append(what)
            assert_up(proxy, c, bystander)
        node.behaviour = None
        served_again(node, proxy, b"after-" + name.encode(), b"fine")
        assert set_(c, b"after-set", b"v2")[0] == b"STORED\r\n"
        assert get(proxy, b"after-set")[0] == hit(b"after-set", b"v2", 0)
        # nothing of a bad answer reached L1: the node's own values
        assert get(proxy, k_get)[0] == hit(k_get, b"real-get")
        assert get(proxy, k_set)[0] == hit(k_set, b"real-set")
        assert_up(proxy, c, bystander)
    assert not not_dropped, ("%s: the proxy kept the link after a response that broke the "
                             "protocol (for the %s); the fake node saw no close or reset"
                             % (name, " and the ".join(not_dropped)))
    assert_no_problems(node)
    return used


# ---- a. a header declaring a huge body ---------------------------------------------------

def proc_status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


@strata_only
def test_huge_body_length_is_not_allocated(cluster):
    """A valid header declaring a 1 GiB body, followed by 1 MiB of it: the
    proxy refuses the frame from its header (over the 16 MiB limit),
    resets the link, and its peak RSS stays far below the declared size."""
    node, proxy = cluster
    pid = proxy.proc.pid
    rss_before = proc_status_kb(pid, "VmRSS")

    def huge(node, fc, f):
        head = cp.raw_frame(f.opcode, b"", cp.FLAG_RESPONSE, f.id, body_len=1 << 30)
        fc.send(head + bytes(1 << 20))
        return True

    check_fault(node, proxy, huge, ERR_TIMEOUT, ERR_TIMEOUT, drops=True, name="huge")
    hwm, rss = proc_status_kb(pid, "VmHWM"), proc_status_kb(pid, "VmRSS")
    assert hwm < 256 * 1024, "strata-proxy's peak RSS %d KiB after a 1 GiB header" % hwm
    assert rss - rss_before < 64 * 1024, "RSS grew from %d to %d KiB" % (rss_before, rss)


@strata_only
def test_one_byte_over_the_frame_limit(cluster):
    """The limit itself: a header declaring 32 + n = 16 MiB + 1 is refused
    as soon as it arrives (the body is not waited for)."""
    node, proxy = cluster

    def over(node, fc, f):
        body_len = cp.FRAME_MAX_DEFAULT - cp.HEADER_LEN + 1
        fc.send(cp.raw_frame(f.opcode, b"", cp.FLAG_RESPONSE, f.id, body_len=body_len))
        return True

    check_fault(node, proxy, over, ERR_TIMEOUT, ERR_TIMEOUT, drops=True, name="over")


# ---- b. a response cut short, then a stall -----------------------------------------------

def cut_and_stall(cut):
    """Sends the first `cut` bytes of a well-formed answer (value POISON),
    keeps the rest in conn.tail and answers nothing more on that
    connection."""
    def behaviour(node, fc, f):
        frame = node.poison_frame(f)
        assert cut < len(frame)
        fc.send(frame[:cut])
        fc.tail = frame[cut:]
        fc.stalled = True
        return True
    return behaviour


@strata_only
@pytest.mark.parametrize("cut", [10, 40], ids=["in-header", "in-body"])
def test_truncated_then_resumed(cluster, cut):
    """A get whose answer stops mid-frame times out; so does a set sent on
    the same link meanwhile. When the node resumes, it first finishes the
    old frame (a late POISON answer to a request that gave up), then
    answers a newer get: the proxy discards the late frame (spec: a
    response to an id no longer pending is discarded), so the newer get is
    answered its own value, and nothing of the late frames reaches L1."""
    node, proxy = cluster
    node.store.update({b"warm": b"w", b"k1": b"real-1", b"k2": b"real-2", b"k3": b"real-3"})
    with proxy.connect() as c, proxy.connect() as bystander:
        assert get(proxy, b"warm")[0] == hit(b"warm", b"w")
        node.behaviour = cut_and_stall(cut)
        reply, took = get(proxy, b"k1")
        assert_timely(reply, took, ERR_TIMEOUT, True, "get on a stalled answer")
        fc, f1, _ = node.last_request()
        assert fc.stalled
        assert_up(proxy, c, bystander)
        # the link is still the proxy's: the set goes on it and times out
        reply, took = set_(c, b"k2", b"new-2")
        assert_timely(reply, took, ERR_TIMEOUT, True, "set on a stalled link")
        fc2, f2, _ = node.last_request()
        assert fc2 is fc, "the set went out on another connection"
        assert node.wait_closed(fc, 0.1) is None, "the proxy closed a slow link"

        def resume(node, conn, f):
            if conn is fc and fc.tail:
                # the rest of the first answer, then a late POISON answer to the set
                conn.send(fc.tail + node.poison_frame(f2))
                fc.tail = b""
            return False  # then the good answer to f

        node.behaviour = resume
        fc.stalled = False
        reply, took = get(proxy, b"k3")
        assert reply == hit(b"k3", b"real-3"), "a newer get answered %r" % reply
        assert node.last_request()[0] is fc
        assert fc.tail == b""
        # the late answers filled nothing: the node's values
        assert get(proxy, b"k1")[0] == hit(b"k1", b"real-1")
        node.store[b"k2"] = b"real-2"
        assert get(proxy, b"k2")[0] == hit(b"k2", b"real-2")
        assert set_(c, b"k4", b"v4")[0] == b"STORED\r\n"
        assert get(proxy, b"k4")[0] == hit(b"k4", b"v4", 0)
        assert_up(proxy, c, bystander)
    assert_no_problems(node)


@strata_only
def test_truncated_then_stalled_for_good(cluster):
    """The node never finishes the frame: every later request on that link
    times out, each within the timeout, and the proxy stays up."""
    node, proxy = cluster
    node.store[b"warm"] = b"w"
    with proxy.connect() as c, proxy.connect() as bystander:
        assert get(proxy, b"warm")[0] == hit(b"warm", b"w")
        node.behaviour = cut_and_stall(40)
        for i in range(3):
            reply, took = get(proxy, b"g%d" % i)
            assert_timely(reply, took, ERR_TIMEOUT, True, "get %d on a stalled link" % i)
            reply, took = set_(c, b"s%d" % i, b"v")
            assert_timely(reply, took, ERR_TIMEOUT, True, "set %d on a stalled link" % i)
            assert_up(proxy, c, bystander)
        stats = backend_stats(proxy)
        assert int(stats["timeouts"]) >= 6, stats
    assert_no_problems(node)


# ---- c. bytes that are no (acceptable) frame ----------------------------------------------

def send_instead(make):
    def behaviour(node, fc, f):
        fc.send(make(node, f))
        return True
    return behaviour


def _poison_body(node, f):
    return node.good_body(f, POISON)


GARBAGE = {
    # not this protocol at all
    "text": lambda node, f: b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
    "zeros": lambda node, f: bytes(64),
    # the magic, then a version this build does not speak
    "version": lambda node, f: cp.raw_frame(f.opcode, _poison_body(node, f), cp.FLAG_RESPONSE,
                                            f.id, version=2),
    "header-check": lambda node, f: cp.raw_frame(f.opcode, _poison_body(node, f),
                                                 cp.FLAG_RESPONSE, f.id,
                                                 header_check_value=0x12345678),
    "body-check": lambda node, f: cp.raw_frame(f.opcode, _poison_body(node, f), cp.FLAG_RESPONSE,
                                               f.id, body_check_value=1),
    "reserved-flag": lambda node, f: cp.raw_frame(f.opcode, _poison_body(node, f),
                                                  cp.FLAG_RESPONSE | 0x8000, f.id),
    # a request (no RESPONSE flag) on the proxy's own link
    "request": lambda node, f: cp.encode_frame(f.opcode, _poison_body(node, f), 0, f.id),
}


@strata_only
@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_garbage_instead_of_a_frame(cluster, kind):
    node, proxy = cluster
    check_fault(node, proxy, send_instead(GARBAGE[kind]), ERR_TIMEOUT, ERR_TIMEOUT, drops=True,
                name=kind)


@strata_only
def test_body_that_does_not_decode(cluster):
    """A verified frame with the right id and opcode whose body is no READ
    / RMW reply: the request fails (storage error) and, per the spec
    ("Receiving a frame", step 9: a body that does not decode is
    malformed; every result but need-more closes the connection), the link
    is dropped."""
    node, proxy = cluster
    bad = send_instead(lambda node, f: response(f.opcode, b"\x07\x07\x07", f.id))
    check_fault(node, proxy, bad, ERR_FAILED, ERR_FAILED, drops=True, name="undecodable")


@strata_only
def test_answer_with_another_opcode(cluster):
    """A verified response to the right id but of another opcode (PING):
    the answer broke the protocol, so the request fails at once (storage
    error) and the link is reset."""
    node, proxy = cluster
    bad = send_instead(lambda node, f: response(cp.OP_PING, cp.compose_ping(1), f.id))
    check_fault(node, proxy, bad, ERR_FAILED, ERR_FAILED, drops=True, name="opcode")


# ---- the write-behind drainer's COORD_WRITEs -------------------------------------------

BAD_WRITE_ANSWERS = {
    # a body where there is none: the link is reset
    "body": (lambda node, f: response(cp.OP_COORD_WRITE, b"\x00", f.id), True),
    # an answer of another opcode: the link is reset
    "opcode": (lambda node, f: response(cp.OP_PING, cp.compose_ping(1), f.id), True),
    # a refusal: the link stays
    "error": (lambda node, f: response(cp.OP_ERROR, cp.compose_error(cp.Error(cp.ERR_OVERLOADED)),
                                       f.id), False),
}


@strata_only
@pytest.mark.parametrize("kind", sorted(BAD_WRITE_ANSWERS))
def test_drainer_keeps_what_a_bad_coord_write_answer_did_not_take(kind, tmp_path):
    """write-behind over the fake node: while it answers the drainer's
    COORD_WRITEs badly, the write stays pending (the client had its STORED
    at once, and reads its value), the drainer retries, the link is reset
    where the answer broke the protocol; once the node answers well, the
    journal drains and the node holds the value at the version the client
    saw."""
    make, drops = BAD_WRITE_ANSWERS[kind]
    node = FakeNode()
    proxy = None
    try:
        proxy = start_proxy(node.addr, "--data-dir", str(tmp_path / "data"),
                            "--policy", "wb:=write-behind")
        wait_ring(proxy)
        bad_conns = []

        def bad(node, fc, f):
            if f.opcode != cp.OP_COORD_WRITE:
                return False
            bad_conns.append(fc)
            fc.send(make(node, f))
            return True
        node.behaviour = bad
        with proxy.connect() as c:
            c.call(b"set wb:k 0 0 2\r\nv1\r\n", b"STORED\r\n")
            cas = helpers.gets_unique(c, b"wb:k")
            assert helpers.wait_until(lambda: len(bad_conns) >= 2, WAIT_S + 2), bad_conns
            j = c.stats_dict(b"journal")
            assert (j["pending"], int(j["retried"]) >= 1) == ("1", True), j
            assert node.store.get(b"wb:k") is None
            if drops:
                assert node.wait_closed(bad_conns[0]) is not None, "the link was not reset"
            node.behaviour = None
            assert helpers.wait_until(lambda: c.stats_dict(b"journal")["pending"] == "0",
                                      WAIT_S + 2), c.stats_dict(b"journal")
            c.call(b"get wb:k\r\n", b"VALUE wb:k 0 2\r\nv1\r\nEND\r\n")
        assert node.store.get(b"wb:k") == b"v1"
        assert [r.version.hlc for r in node.written if r.key == b"wb:k"][-1] == cas
        assert_no_problems(node)
    finally:
        if proxy is not None:
            proxy.stop()  # asserts exit status 0
        node.stop()


# ---- d. ids the proxy did not send, answers swapped between clients -----------------------

@strata_only
@pytest.mark.parametrize("offset", [1, 1000000], ids=["next-id", "far-id"])
def test_answer_to_an_id_never_sent(cluster, offset):
    """A well-formed POISON answer to an id the proxy has not sent (the
    next one it will send, or one far ahead) instead of the real answer:
    it is no request's, so the request times out, and the next request
    (which takes that very id, for next-id) gets its own answer."""
    node, proxy = cluster

    def stray(node, fc, f):
        fc.send(node.poison_frame(f, rid=f.id + offset))
        return True

    check_fault(node, proxy, stray, ERR_TIMEOUT, ERR_TIMEOUT, drops=False, slow=True,
                name="id%d" % offset)


@strata_only
@pytest.mark.parametrize("op", ["get", "set"])
def test_answer_carrying_another_key(cluster, op):
    """A well-formed answer to the right id whose record is another key's
    (key-b, value POISON) - what a client of key-a's request was sent, the
    data of another request. No client may receive it: not key-a's client,
    and not a later client of key-b, who must read the node's own value of
    key-b (the proxy must not take the record for key-b into L1 on the
    strength of an answer to a request for key-a)."""
    node, proxy = cluster
    node.store.update({b"key-a": b"real-a", b"key-b": b"real-b"})

    def other_key(node, fc, f):
        if node.request_key(f) != b"key-a":
            return False
        rec = cp.Record(key=b"key-b", value=POISON, flags=7,
                        version=cp.Version(node.next_hlc(), 1))
        if f.opcode == cp.OP_COORD_READ:
            body = cp.compose_read_reply(rec)
        else:
            body = compose_rmw_reply(cp.RmwReply(result=cp.RMW_STORED, cas=rec.version.hlc,
                                                 record=rec))
        fc.send(response(f.opcode, body, f.id))
        return True

    node.behaviour = other_key
    with proxy.connect() as c:
        if op == "get":
            reply = get(proxy, b"key-a")[0]
            assert reply in (b"END\r\n",) + SERVER_ERRORS, "get key-a answered %r" % reply
        else:
            reply = set_(c, b"key-a", b"new-a")[0]
            assert reply in (b"STORED\r\n",) + SERVER_ERRORS, "set key-a answered %r" % reply
        node.behaviour = None
        # the link was reset (an answer about another key breaks the
        # protocol): within its retry window a get is refused, then served;
        # never with the POISON record
        served_again(node, proxy, b"key-b", b"real-b")
        assert_up(proxy, c)
    assert_no_problems(node)


def hold_two(mode):
    """Holds the first data request; at the second, answers both: 'reverse'
    (right answers, the second first) or 'swap' (the first request's answer
    under the second's id and the reverse). Later requests: good answers."""
    held = []

    def behaviour(node, fc, f):
        if len(held) >= 2:
            return False
        held.append((fc, f))
        if len(held) < 2:
            return True
        (fc1, f1), (fc2, f2) = held
        if fc1 is not fc2:
            node.problem(fc, "the two requests came on two connections")
        if mode == "reverse":
            fc.send(node.good_frame(f2) + node.good_frame(f1))
        else:
            fc.send(node.good_frame(f1, rid=f2.id) + node.good_frame(f2, rid=f1.id))
        return True
    return behaviour


def two_clients(proxy, request_a, request_b):
    """Sends client 1's request, then client 2's, before reading either
    reply; returns both replies."""
    with proxy.connect() as c1, proxy.connect() as c2:
        c1.send(request_a)
        c2.send(request_b)
        return read_reply(c1), read_reply(c2)


@strata_only
@pytest.mark.parametrize("mode", ["reverse", "swap"])
def test_two_clients_gets(cluster, mode):
    """Two clients' gets in flight on the one link. Answered in reverse
    order, each client gets exactly its own value. Answered with the ids
    swapped (client 1's id carries key B's record), a proxy that took the
    answer for its request's would give client 1 client 2's value: neither
    client may ever see the other's value; and later gets of both keys
    read the right values."""
    node, proxy = cluster
    node.store.update({b"key-a": b"value-of-a", b"key-b": b"value-of-b"})
    node.behaviour = hold_two(mode)
    ra, rb = two_clients(proxy, b"get key-a\r\n", b"get key-b\r\n")
    assert len(node.requests) == 2
    if mode == "reverse":
        assert ra == hit(b"key-a", b"value-of-a")
        assert rb == hit(b"key-b", b"value-of-b")
    for reply, own, other in ((ra, b"a", b"b"), (rb, b"b", b"a")):
        assert b"value-of-" + other not in reply, "client of key-%s got %r" % (own.decode(), reply)
        assert reply in (hit(b"key-" + own, b"value-of-" + own), b"END\r\n") + SERVER_ERRORS, reply
    for k in (b"a", b"b"):
        # swapped answers carry the other key's record: the link is reset,
        # so a get may first meet its retry window
        served_again(node, proxy, b"key-" + k, b"value-of-" + k)
    assert_up(proxy)
    assert_no_problems(node)


@strata_only
@pytest.mark.parametrize("mode", ["reverse", "swap"])
def test_two_clients_sets(cluster, mode):
    """The same with two sets whose answers return the stored record (L1
    takes it): after them, a get of each key never shows the other key's
    value (old or new)."""
    node, proxy = cluster
    node.store.update({b"key-a": b"old-a", b"key-b": b"old-b"})
    # L1 holds the old values
    assert get(proxy, b"key-a")[0] == hit(b"key-a", b"old-a")
    assert get(proxy, b"key-b")[0] == hit(b"key-b", b"old-b")
    node.behaviour = hold_two(mode)
    ra, rb = two_clients(proxy, b"set key-a 0 0 5\r\nnew-a\r\n", b"set key-b 0 0 5\r\nnew-b\r\n")
    for reply in (ra, rb):
        assert reply in (b"STORED\r\n",) + SERVER_ERRORS, reply
    if mode == "reverse":
        assert ra == rb == b"STORED\r\n"
    for own, other in ((b"a", b"b"), (b"b", b"a")):
        reply = get(proxy, b"key-" + own)[0]
        for v in (b"old-" + other, b"new-" + other):
            assert v not in reply, "get key-%s answered %r" % (own.decode(), reply)
        assert reply in (hit(b"key-" + own, b"new-" + own, 0),
                         hit(b"key-" + own, b"new-" + own),
                         hit(b"key-" + own, b"old-" + own)), reply
        if mode == "reverse":
            assert reply == hit(b"key-" + own, b"new-" + own, 0), reply
    assert_up(proxy)
    assert_no_problems(node)


# ---- e. refused and silent ports -----------------------------------------------------------

class ClosedPort:
    """A port bound and not listening: connecting to it is refused. Kept
    bound for the test so that nobody else takes it."""

    def __enter__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        return self

    def __exit__(self, *exc):
        self.sock.close()


def assert_fails_fast(proxy, expected, slow, rounds=3):
    """Gets and sets answered one of `expected` (each within about the
    timeout; slow: after it), the proxy up throughout."""
    with proxy.connect() as c, proxy.connect() as bystander:
        for i in range(rounds):
            for what, (reply, took) in (("get", get(proxy, b"k%d" % i)),
                                        ("set", set_(c, b"k%d" % i, b"v"))):
                assert reply in expected, "%s answered %r" % (what, reply)
                assert took < TIMEOUT_S + SLACK_S, "%s answered after %.2f s" % (what, took)
                if slow:
                    assert took >= TIMEOUT_S - EARLY_S, "%s answered after %.2f s" % (what, took)
            assert_up(proxy, c, bystander)


@strata_only
def test_seed_refused():
    """The only seed refuses connections: no ring, every request is
    answered `not enough replicas available` at once."""
    with ClosedPort() as port:
        proxy = start_proxy(port.addr)
        try:
            assert_fails_fast(proxy, (ERR_UNAVAILABLE,), slow=False)
            stats = backend_stats(proxy)
            assert stats["nodes"] == "0" and int(stats["ring_poll_failures"]) >= 1, stats
        finally:
            proxy.stop()


@strata_only
def test_seed_silent():
    """The only seed accepts and never answers, not even the handshake: no
    ring either (its RING requests time out), requests answered at once."""
    silent = FakeNode(silent=True)
    proxy = None
    try:
        proxy = start_proxy(silent.addr)
        assert_fails_fast(proxy, (ERR_UNAVAILABLE,), slow=False)
        stats = backend_stats(proxy)
        assert stats["nodes"] == "0" and int(stats["ring_poll_failures"]) >= 1, stats
        assert silent.conns, "the proxy never dialed the seed"
    finally:
        if proxy is not None:
            proxy.stop()
        silent.stop()


@strata_only
def test_ring_node_refused():
    """The ring (from a good seed) places every key on a port that refuses
    connections: the request in flight when the dial fails is answered
    `timeout waiting for replicas`, those inside the retry window after
    it `not enough replicas available`, all at once."""
    with ClosedPort() as port:
        node = FakeNode(ring_addr=port.addr)
        proxy = None
        try:
            proxy = start_proxy(node.addr)
            wait_ring(proxy)
            assert_fails_fast(proxy, (ERR_TIMEOUT, ERR_UNAVAILABLE), slow=False)
            assert node.data_requests() == 0
            assert_no_problems(node)
        finally:
            if proxy is not None:
                proxy.stop()
            node.stop()


@strata_only
def test_ring_node_silent():
    """The ring places every key on a port that accepts and never answers:
    every get and set times out, after the timeout and not much later."""
    silent = FakeNode(silent=True)
    node = FakeNode(ring_addr=silent.addr)
    proxy = None
    try:
        proxy = start_proxy(node.addr)
        wait_ring(proxy)
        assert_fails_fast(proxy, (ERR_TIMEOUT,), slow=True, rounds=2)
        assert silent.conns, "the proxy never dialed the node"
        assert node.data_requests() == 0
        assert_no_problems(node)
    finally:
        if proxy is not None:
            proxy.stop()
        node.stop()
        silent.stop()
