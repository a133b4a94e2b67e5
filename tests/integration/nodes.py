"""strata-node processes for the integration tests: Node (one process on
127.0.0.1 with its own data directory, started on free ports or on given
ones for a restart, stopped by pid), Cluster (k nodes joined through the
first one's cluster port, waited on until every node sees every other up),
the `data_dir` and `node` fixtures, and small readers of `stats cluster`.

Used by test_node.py and test_replication.py. Every wait is bounded.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import helpers
from helpers import Conn, free_port




def node_binary():
    return helpers.repo_path(os.environ.get("STRATA_NODE_BIN", "build/release/bin/strata-node"))


class Node:
    """A strata-node process on 127.0.0.1 with its own data directory."""

    def __init__(self, data_dir, *extra):
        self.data_dir = data_dir
        self.extra = [str(a) for a in extra]
        self.proc = None
        self.addr = None
        self.cluster_addr = None
        self.log_path = None

    def start(self, attempts=5, port=None, cport=None):
        """Starts on free ports, or on the given ones (a restart on the
        same address)."""
        if not os.access(node_binary(), os.X_OK):
            raise RuntimeError("strata-node not built: %s (make)" % node_binary())
        fixed = port is not None
        log = ""
        for _ in range(attempts):
            if not fixed:
                port, cport = free_port(), free_port()
            self.addr = ("127.0.0.1", port)
            self.cluster_addr = ("127.0.0.1", cport)
            fd, self.log_path = tempfile.mkstemp(prefix="strata-node-it-", suffix=".log")
            with os.fdopen(fd, "wb") as out:
                self.proc = subprocess.Popen(
                    [node_binary(), "-d", self.data_dir, "-p", str(port), "-P", str(cport),
                     "-t", "2"] + self.extra,
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
            if self._wait_ready():
                return self
            log = self.log()
            self.stop(signal.SIGKILL)
            if fixed:
                time.sleep(0.2)  # the old process's ports may still be closing
        raise RuntimeError("strata-node did not start:\n" + log)

    def _wait_ready(self):
        # The clock wait after a quick restart can take up to 2.5 s.
        deadline = time.monotonic() + helpers.READY_TIMEOUT + 2.5
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with Conn(self.addr, timeout=1.0) as c:
                    return int(c.stats_dict().get("pid", -1)) == self.proc.pid
            except (OSError, AssertionError, ValueError):
                time.sleep(0.02)
        return False

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        if not self.log_path:
            return ""
        with open(self.log_path, "rb") as f:
            return f.read()[-4000:].decode("latin-1")

    def connect(self, timeout=helpers.IO_TIMEOUT):
        return Conn(self.addr, timeout)

    def stats(self, sub=b""):
        with self.connect() as c:
            return c.stats_dict(sub)

    def stop(self, sig=signal.SIGTERM):
        """Stops by pid; returns the exit status (asserted 0 for SIGTERM)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(helpers.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(helpers.STOP_TIMEOUT)
        status = self.proc.returncode
        log = self.log()
        self.proc = None
        os.unlink(self.log_path)
        self.log_path = None
        if sig == signal.SIGTERM:
            assert status == 0, "strata-node did not exit cleanly (%s):\n%s" % (status, log)
        return status


@pytest.fixture
def data_dir():
    d = tempfile.mkdtemp(prefix="strata-node-data-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def node(data_dir):
    n = Node(data_dir).start()
    yield n
    n.stop()


def gets_cas(conn, key):
    conn.send(b"gets " + key + b"\r\n")
    header = conn.read_line()
    assert header.startswith(b"VALUE " + key + b" "), header
    parts = header.split()
    value = conn.read_exact(int(parts[3]) + 2)
    assert conn.read_line() == b"END\r\n"
    return int(parts[4]), value[:-2]


def members_view(node):
    """{short_id: (addr, state, owns)} and this node's short id, from stats cluster."""
    return members_of(node.stats(b"cluster"))


def members_of(stats):
    """members_view() of a `stats cluster` dict already read."""
    view, me = {}, None
    for name, value in stats.items():
        if not name.startswith("member_"):
            continue
        fields = dict(f.split("=", 1) for f in value.split() if "=" in f)
        sid = int(name[len("member_"):])
        view[sid] = (fields["addr"], fields["state"], fields["owns"])
        if value.endswith(" self"):
            me = sid
    return view, me


class Cluster:
    """k strata-nodes on 127.0.0.1, data directories under base_dir. The
    first one is the seed of the others (a restarted first node is given
    the others as seeds). extra: flags for every node; per_node: {index:
    flags} added for that node. Use as a context manager, or call
    stop_all() at the end: every node still running is stopped with
    SIGTERM and must exit cleanly."""

    def __init__(self, base_dir, k, extra=(), per_node=None, gossip_ms=100):
        self.base_dir = str(base_dir)
        self.k = k
        # gossip rounds (and the failure detector, scaled alike) every
        # gossip_ms: a kill is seen in half a second instead of five
        self.extra = ["--test-gossip-interval-ms", str(gossip_ms)] + [str(a) for a in extra]
        self.round = gossip_ms * 1.5 / 1000
        self.per_node = {i: [str(a) for a in f] for i, f in (per_node or {}).items()}
        self.nodes = []
        self.ids = []     # short id of each node (from its own stats cluster)
        self.ports = []   # (memcached port, cluster port) of each node, kept for restarts

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop_all()

    def __getitem__(self, i):
        return self.nodes[i]

    def __iter__(self):
        return iter(self.nodes)

    def __len__(self):
        return len(self.nodes)

    def _flags(self, i, restart=False):
        flags = self.extra + self.per_node.get(i, [])
        if i > 0:
            seeds = [self.nodes[0].cluster_addr]
        elif restart:
            seeds = [n.cluster_addr for n in self.nodes[1:]]
        else:
            seeds = []
        if seeds:
            flags = flags + ["--seeds", ",".join("%s:%d" % a for a in seeds)]
        return flags

    def start(self, timeout=20.0):
        """Starts the k nodes and waits until they all see each other up."""
        try:
            for i in range(self.k):
                d = os.path.join(self.base_dir, "node%d" % i)
                os.makedirs(d, exist_ok=True)
                n = Node(d, *self._flags(i)).start()
                self.nodes.append(n)
                self.ports.append((n.addr[1], n.cluster_addr[1]))
            self.wait_converged(timeout)
            self.ids = [members_view(n)[1] for n in self.nodes]
            assert None not in self.ids and len(set(self.ids)) == self.k, self.ids
        except BaseException:
            self.stop_all(check=False)
            raise
        return self

    def running(self):
        return [n for n in self.nodes if n.running]

    def converged(self):
        """Every running node shows ring_nodes == k and its k members up."""
        for n in self.running():
            try:
                stats = n.stats(b"cluster")
            except OSError:
                return False
            view, _ = members_of(stats)
            if int(stats.get("ring_nodes", -1)) != self.k or len(view) != self.k:
                return False
            if any(state != "up" for _, state, _ in view.values()):
                return False
        return True

    def wait_converged(self, timeout=20.0, settle=None):
        """Waits until converged(), then `settle` seconds more (default a
        gossip round and a half: the coordinators' views follow the stats a
        round later)."""
        assert helpers.wait_until(self.converged, timeout=timeout, interval=0.05), \
            "cluster did not converge in %.0f s:\n%s" % (timeout, self.describe())
        time.sleep(self.round if settle is None else settle)

    def state_of(self, observer, i):
        """The state node `observer` shows for node i ('up', 'suspect',
        'down', or None when it does not know it)."""
        view, _ = members_view(self.nodes[observer])
        return view.get(self.ids[i], (None, None))[1]

    def wait_state(self, i, state, observers=None, timeout=25.0, settle=None):
        """Waits until every running node but i (or the given observers)
        shows node i in `state` in `stats cluster`, then `settle` seconds
        more: the coordinators' own view of liveness is refreshed once a
        gossip round, after the stats show it. Asserts it happened;
        returns how long it took."""
        if observers is None:
            observers = [j for j, n in enumerate(self.nodes) if j != i and n.running]

        def seen():
            try:
                return all(self.state_of(j, i) == state for j in observers)
            except OSError:
                return False
        t0 = time.monotonic()
        assert helpers.wait_until(seen, timeout=timeout, interval=0.05), \
            "node %d not seen %s in %.0f s:\n%s" % (i, state, timeout, self.describe())
        took = time.monotonic() - t0
        time.sleep(self.round if settle is None else settle)
        return took

    def kill(self, i):
        """SIGKILL node i (its data directory and ports are kept)."""
        assert self.nodes[i].stop(signal.SIGKILL) == -signal.SIGKILL

    def stop(self, i):
        """SIGTERM node i; it must exit cleanly."""
        self.nodes[i].stop()

    def restart(self, i):
        """Starts node i again on the same ports and data directory."""
        assert not self.nodes[i].running
        port, cport = self.ports[i]
        n = Node(self.nodes[i].data_dir, *self._flags(i, restart=True))
        self.nodes[i] = n.start(port=port, cport=cport)
        return n

    def stop_all(self, check=True):
        """SIGTERM every running node; with check, asserts afterwards that
        each exited cleanly (all are stopped first)."""
        errors = []
        for n in self.nodes:
            if n.proc is None:
                continue
            try:
                n.stop()
            except AssertionError as e:
                errors.append(str(e))
        if check and errors:
            raise AssertionError("\n".join(errors))

    def stat(self, i, name, sub=b"cluster"):
        return int(self.nodes[i].stats(sub)[name])

    def stat_sum(self, name, sub=b"cluster"):
        """name summed over the running nodes."""
        return sum(int(n.stats(sub).get(name, 0)) for n in self.running())

    def describe(self):
        out = []
        for i, n in enumerate(self.nodes):
            if not n.running:
                out.append("node %d: not running" % i)
                continue
            try:
                stats = n.stats(b"cluster")
                lines = ["%s %s" % kv for kv in sorted(stats.items())
                         if kv[0].startswith("member") or kv[0] == "ring_nodes"]
            except OSError as e:
                lines = ["stats cluster failed: %r" % e]
            out.append("node %d (%s:%d):\n  %s" % (i, n.addr[0], n.addr[1], "\n  ".join(lines)))
        return "\n".join(out)


# A peer id no real node has: the tests' own handshakes on cluster ports.
TEST_PEER_ID = bytes(range(1, 17))


def replica_records(node, keys):
    """{key: clusterproto.Record or None}: what node's own engine holds
    for each key (a cluster-port READ: the newest version, tombstones
    included), without the coordinator."""
    import clusterproto
    out = {}
    with clusterproto.ClusterClient(node.cluster_addr) as c:
        reply = c.handshake(b"strata", TEST_PEER_ID, 4242, 1, b"127.0.0.1:1")
        assert reply.accept, reply
        for key in keys:
            rec = c.read(key)
            assert rec is None or isinstance(rec, clusterproto.Record), rec
            out[key] = rec
    return out
