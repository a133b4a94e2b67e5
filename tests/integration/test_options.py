"""memcached 1.6.18's command line on both servers: every -o (extended)
option memcached accepts, its other flags (-A, -X, -F, -D, -L, -a, -k, -r,
-n, -f and their long names), the flags strata refuses (-S, -Y, -Z, -e),
and strata's own --shutdown-timeout.

Where an option has an observable effect (idle_timeout, read_buf_mem_limit,
-A, -F, -X, `stats settings`) the same assertions run on both servers;
where strata differs on purpose the test branches on the server
(docs/COMPATIBILITY.md, "Flag-level differences").
"""

import os
import re
import signal
import socket
import subprocess
import time

import pytest

import helpers

EX_USAGE = 64
MEMCACHED_BAD_OPTION = 1  # memcached exits 1 for a bad -o option or value

strata_only = pytest.mark.skipif(helpers.IS_MEMCACHED,
                                 reason="strata-only option (docs/COMPATIBILITY.md)")

# Every -o option memcached 1.6.18 (Debian's build: extstore and TLS in)
# accepts, with a value it accepts. worker_logbuf_size=64: memcached also
# parses that value as slab_sizes (a fall-through in its parser), so a
# value below its smallest slab size stops it.
MEMCACHED_EXTENDED = [
    "maxconns_fast", "no_maxconns_fast", "hashpower=16", "no_hashexpand", "slab_reassign",
    "no_slab_reassign", "slab_automove", "slab_automove=2", "no_slab_automove",
    "slab_automove_ratio=0.5", "slab_automove_window=10", "slab_sizes=96-192-384",
    "slab_chunk_max=256", "no_chunked_items", "tail_repair_time=20", "hash_algorithm=jenkins",
    "hash_algorithm=murmur3", "hash_algorithm=xxh3", "lru_crawler", "no_lru_crawler",
    "lru_crawler_sleep=50", "lru_crawler_tocrawl=10", "lru_maintainer", "no_lru_maintainer",
    "hot_lru_pct=10", "warm_lru_pct=30", "hot_max_factor=0.5", "warm_max_factor=1.5",
    "temporary_ttl=30", "idle_timeout=600", "idle_timeout=-1", "watcher_logbuf_size=8",
    "worker_logbuf_size=64", "track_sizes", "inline_ascii_resp", "no_inline_ascii_resp",
    "modern", "no_modern", "drop_privileges", "no_drop_privileges", "resp_obj_mem_limit",
    "read_buf_mem_limit=64", "sock_cookie_id=5", "ssl_chain_cert=/nonexistent.pem",
    "ssl_key=/nonexistent.key", "ssl_verify_mode=1", "ssl_keyformat=1", "ssl_ciphers=HIGH",
    "ssl_ca_cert=/nonexistent.ca", "ssl_wbuf_size=16", "ssl_session_cache", "ssl_kernel_tls",
    "ssl_min_version=2", "ext_page_size=32", "ext_wbuf_size=8", "ext_threads=2",
    "ext_io_depth=2", "ext_item_size=1024", "ext_item_age=10", "ext_low_ttl=5",
    "ext_recache_rate=100", "ext_compact_under=2", "ext_drop_under=2", "ext_max_sleep=100000",
    "ext_max_frag=0.5", "ext_drop_unread", "slab_automove_freeratio=0.02", "modern,",
]

# The ones that change what strata does; every other one is logged at
# start-up as not applying.
APPLIED_IN_STRATA = {"maxconns_fast", "hashpower", "idle_timeout", "read_buf_mem_limit",
                     "lru_crawler", "no_lru_crawler", "lru_crawler_sleep", "lru_crawler_tocrawl",
                     "watcher_logbuf_size"}


def run(*args, timeout=10):
    """Runs the server binary to completion (options it refuses)."""
    argv = [helpers.server_binary(), "-p", str(helpers.free_port()), "-l", "127.0.0.1", "-U",
            "0"]
    if helpers.IS_MEMCACHED and os.geteuid() == 0:
        argv += ["-u", "root"]
    return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=timeout)


def settings_of(srv):
    with srv.connect() as c:
        return helpers.parse_stats(c.stats(b"settings"))


@pytest.mark.parametrize("option", MEMCACHED_EXTENDED)
def test_every_memcached_extended_option_starts(server_factory, tmp_path, option):
    srv = server_factory("-o", option)
    assert srv.answers_version()
    name = option.split("=")[0].rstrip(",")
    if helpers.IS_STRATA and name not in APPLIED_IN_STRATA:
        # one start-up line saying it does not apply
        assert len(re.findall(r"-o %s: " % re.escape(name), srv.log())) == 1, srv.log()


def test_extstore_path_option_starts(server_factory, tmp_path):
    srv = server_factory("-o", "ext_path=%s:64m" % (tmp_path / "extstore"))
    assert srv.answers_version()
    if helpers.IS_STRATA:
        assert "-o ext_path: does not apply" in srv.log()
        assert not (tmp_path / "extstore").exists()


def test_repeated_and_listed_extended_options_all_apply(server_factory):
    srv = server_factory("-o", "modern,idle_timeout=300", "--extended=hashpower=18",
                         "-o", "read_buf_mem_limit=8")
    st = settings_of(srv)
    assert (st["idle_timeout"], st["hashpower_init"], st["read_buf_mem_limit"]) == \
        ("300", "18", str(8 << 20))


@pytest.mark.parametrize("option,needle", [
    ("bogus", "bogus"),
    ("modern,bogus", "bogus"),
    (",modern", ""),
    ("idle_timeout", "idle_timeout"),
    ("hashpower=5", "hashpower"),
    ("hashpower=33", "hashpower"),
    ("slab_automove=3", "slab_automove"),
    ("hash_algorithm=md5", "hash_algorithm"),
    ("tail_repair_time=5", "tail_repair_time"),
    ("lru_crawler_tocrawl=abc", "lru_crawler_tocrawl"),
    ("read_buf_mem_limit=abc", "read_buf_mem_limit"),
    ("ext_bogus=1", "ext_bogus"),
])
def test_bad_extended_option_is_refused(option, needle):
    r = run("-o", option)
    if helpers.IS_MEMCACHED:
        assert r.returncode == MEMCACHED_BAD_OPTION, r
    else:
        assert r.returncode == EX_USAGE, r
        assert r.stderr.startswith("strata-proxy: ") and needle in r.stderr, r.stderr


def test_stats_settings_defaults_of_the_new_fields(server_factory):
    st = settings_of(server_factory())
    expected = {"umask": "700", "shutdown_command": "no", "growth_factor": "1.25",
                "chunk_size": "48", "stat_key_prefix": ":", "detail_enabled": "no",
                "maxconns_fast": "yes", "hashpower_init": "0", "flush_enabled": "yes",
                "dump_enabled": "yes", "idle_timeout": "0", "read_buf_mem_limit": "0",
                "binding_protocol": "auto-negotiate", "domain_socket": "NULL"}
    assert {k: st.get(k) for k in expected} == expected


def test_stats_settings_reflect_flags(server_factory):
    srv = server_factory("-A", "-X", "-F", "-D", "#", "-n", "64", "-f", "1.5", "-a", "777",
                         "-o", "idle_timeout=7,hashpower=16,read_buf_mem_limit=3")
    st = settings_of(srv)
    expected = {"umask": "777", "shutdown_command": "yes", "growth_factor": "1.50",
                "chunk_size": "64", "stat_key_prefix": "#", "detail_enabled": "yes",
                "flush_enabled": "no", "dump_enabled": "no", "idle_timeout": "7",
                "hashpower_init": "16", "read_buf_mem_limit": str(3 << 20)}
    assert {k: st.get(k) for k in expected} == expected


def test_stats_settings_long_flag_names(server_factory):
    srv = server_factory("--enable-shutdown", "--disable-dumping", "--disable-flush-all",
                         "--unix-mask=750", "--slab-min-size=96", "--slab-growth-factor=2",
                         "--extended=idle_timeout=9")
    st = settings_of(srv)
    expected = {"shutdown_command": "yes", "dump_enabled": "no", "flush_enabled": "no",
                "umask": "750", "chunk_size": "96", "growth_factor": "2.00",
                "idle_timeout": "9"}
    assert {k: st.get(k) for k in expected} == expected


def test_slab_and_lru_options_in_stats_settings(server_factory):
    """memcached reports what it runs; strata has no slab mover, segmented
    LRU or maintainer thread and always turns clients over -c away at once,
    so it reports that whatever -o says; its crawler follows -o
    (docs/COMPATIBILITY.md)."""
    srv = server_factory("-o", "slab_reassign,slab_automove=2,lru_crawler,lru_maintainer,"
                               "no_maxconns_fast,hash_algorithm=jenkins")
    st = settings_of(srv)
    names = ("slab_reassign", "slab_automove", "lru_crawler", "lru_maintainer_thread",
             "maxconns_fast", "hash_algorithm")
    got = tuple(st[n] for n in names)
    if helpers.IS_MEMCACHED:
        assert got == ("yes", "2", "yes", "yes", "no", "jenkins")
    else:
        assert got == ("no", "0", "yes", "no", "yes", "xxh3")


def test_hashpower_sizes_the_hash_table(server_factory):
    with server_factory("-o", "hashpower=20").connect() as c:
        assert c.stats_dict()["hash_bytes"] == str(8 << 20)  # 2^20 eight-byte buckets


# ---- idle_timeout ----

IDLE = 2


def test_idle_connection_is_closed_and_counted(server_factory):
    srv = server_factory("-o", "idle_timeout=%d" % IDLE)
    idle = srv.connect(timeout=IDLE + 8)
    assert idle.version() == helpers.expected_version_line()
    start = time.monotonic()
    data, how = idle.read_to_eof(timeout=IDLE + 8)
    elapsed = time.monotonic() - start
    assert (data, how) == (b"", "eof")
    assert elapsed >= IDLE - 0.5, elapsed  # idle for more than IDLE s by the server's clock
    idle.close()
    with srv.connect() as admin:
        stats = admin.stats_dict()
        assert stats["idle_kicks"] == "1"
        assert helpers.wait_for_stat(admin, "curr_connections", 1) == "1"


def test_idle_timeout_spares_active_and_mid_value_connections(server_factory, key):
    """One worker thread, so all three are checked in the same pass."""
    srv = server_factory("-t", "1", "-o", "idle_timeout=%d" % IDLE)
    mid = srv.connect()
    mid.send(b"set %s 0 0 5\r\n" % key)  # the value never comes (yet)
    active = srv.connect()
    idle = srv.connect()
    assert idle.version() == helpers.expected_version_line()  # idle is the newest
    deadline = time.monotonic() + IDLE + 8
    while True:
        data, how = idle.read_to_eof(timeout=0.5)
        if how != "open":
            break
        assert time.monotonic() < deadline, "the idle connection was never closed"
        assert active.version() == helpers.expected_version_line()
    assert (data, how) == (b"", "eof")
    mid.call(b"hello\r\n", b"STORED\r\n")
    assert active.version() == helpers.expected_version_line()
    assert active.stats_dict()["idle_kicks"] == "1"
    for c in (mid, active, idle):
        c.close()


def test_no_idle_kicks_row_without_idle_timeout(conn):
    assert "idle_kicks" not in conn.stats_dict()


# ---- read_buf_mem_limit ----

def test_read_buf_mem_limit_closes_connections_beyond_the_pool(server_factory):
    """-t 1 and 1 MB: a pool of 64 16-KB input buffers. A connection holds
    one while it has unprocessed input (a command line without its end);
    the 65th such connection is closed and counted in read_buf_oom."""
    srv = server_factory("-t", "1", "-o", "read_buf_mem_limit=1")
    holders = [srv.connect() for _ in range(72)]
    for c in holders:
        c.send(b"get partial_line_without_end")
    closed = set()
    deadline = time.monotonic() + 5
    while len(closed) < 8 and time.monotonic() < deadline:
        for i, c in enumerate(holders):
            if i not in closed and c.read_to_eof(timeout=0.01)[1] != "open":
                closed.add(i)
    for i, c in enumerate(holders):  # one more look at the ones still open
        if i not in closed and c.read_to_eof(timeout=0.01)[1] != "open":
            closed.add(i)
    # 64 buffers: strata keeps 64 holders; memcached 63 (one of its 64 is
    # still held by an earlier connection)
    assert 8 <= len(closed) <= 9, len(closed)
    for c in holders:
        c.close()
    # The pool refills once the server has seen the closes; a probe that
    # still finds it empty is closed too (and counted).
    deadline = time.monotonic() + 5
    stats = {}
    while stats.get("curr_connections") != "1":
        assert time.monotonic() < deadline, "connections were not released: %r" % stats
        try:
            with srv.connect(timeout=1) as admin:
                stats = admin.stats_dict()
        except (OSError, AssertionError):
            stats = {}
    assert int(stats["read_buf_oom"]) >= 8
    assert srv.answers_version()


# ---- -F, -X, -A ----

def test_disable_flush_all(server_factory, key):
    srv = server_factory("-F")
    with srv.connect() as c:
        c.call(b"set %s 0 0 1\r\nv\r\n" % key, b"STORED\r\n")
        for line in (b"flush_all", b"flush_all 0", b"flush_all abc", b"flush_all 1 2"):
            c.call(line + b"\r\n", b"CLIENT_ERROR flush_all not allowed\r\n")
        c.send(b"flush_all noreply\r\n")
        c.call(b"flush_all 1 2 3\r\n", b"ERROR\r\n")
        c.call(b"get %s\r\n" % key, b"VALUE %s 0 1\r\nv\r\nEND\r\n" % key)
        stats = c.stats_dict()
        assert stats["cmd_flush"] == "5"  # counted, as memcached does, though refused
        assert c.stats_dict(b"settings")["flush_enabled"] == "no"


def test_disable_flush_all_binary(server_factory, key):
    """-F refuses binary FLUSH and FLUSHQ with status 0x20 (auth error, the
    quiet one too), not counted in cmd_flush; the item stays."""
    import binproto as bp
    srv = server_factory("-F")
    with srv.connect() as c:
        c.call(b"set %s 0 0 1\r\nv\r\n" % key, b"STORED\r\n")
    with srv.connect() as b:
        for op in (bp.FLUSH, bp.FLUSHQ):
            b.send(bp.request(op, extras=bp.expiry_extras(0), opaque=7))
            assert b.read_exact(bp.HEADER_LEN + 13) == bp.error_response(op, bp.AUTH_ERROR, 7)
        b.send(bp.request(bp.NOOP, opaque=9))
        assert b.read_exact(bp.HEADER_LEN) == bp.response(bp.NOOP, opaque=9)
    with srv.connect() as c:
        c.call(b"get %s\r\n" % key, b"VALUE %s 0 1\r\nv\r\nEND\r\n" % key)
        assert c.stats_dict()["cmd_flush"] == "0"


def test_disable_dumping(server_factory):
    """Will pass on strata once `stats cachedump` and `lru_crawler metadump`
    are implemented; -X must then refuse them as memcached does."""
    srv = server_factory("-X")
    with srv.connect() as c:
        c.call(b"stats cachedump 1 1\r\n", b"CLIENT_ERROR stats cachedump not allowed\r\n")
        c.call(b"lru_crawler metadump all\r\n", b"ERROR metadump not allowed\r\n")
        assert c.stats_dict(b"settings")["dump_enabled"] == "no"


@pytest.mark.parametrize("line", [b"shutdown", b"shutdown graceful", b"shutdown now"])
def test_shutdown_is_refused_without_dash_A(conn, line):
    conn.call(line + b"\r\n", b"ERROR: shutdown not enabled\r\n")


@pytest.mark.parametrize("line", [b"shutdown", b"shutdown graceful"])
def test_shutdown_command_stops_the_server(server_factory, line):
    srv = server_factory("-A")
    bystander = srv.connect()
    with srv.connect() as c:
        c.call(b"shutdown now\r\n", b"CLIENT_ERROR invalid shutdown mode\r\n")
        c.call(b"shutdown graceful now\r\n", b"CLIENT_ERROR invalid shutdown mode\r\n")
        c.send(line + b"\r\n")
        assert c.read_to_eof(timeout=10) == (b"", "eof")
    assert srv.proc.wait(10) == 0, srv.log()
    assert bystander.read_to_eof(timeout=5)[1] in ("eof", "reset")
    bystander.close()


# ---- other memcached flags ----

@pytest.mark.parametrize("flags", [
    ["-L"], ["--enable-largepages"], ["-a", "777"], ["--unix-mask", "0777"], ["-n", "100"],
    ["-f", "2"], ["-D", ":"], ["-D", "ab"], ["-k"], ["--lock-memory"], ["-r"],
    ["--enable-coredumps"], ["-A"], ["-X"], ["-F"],
])
def test_memcached_flag_starts(server_factory, flags):
    srv = server_factory(*flags)
    assert srv.answers_version()


def test_dash_L_is_logged_as_not_applying(server_factory):
    srv = server_factory("-L")
    if helpers.IS_STRATA:
        assert "-L (large pages): does not apply" in srv.log()


def proc_status(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


def test_lock_memory_locks_pages(server_factory):
    """Both lock or, when the system refuses (no privilege, RLIMIT_MEMLOCK),
    warn and run unlocked. Sanitizer builds make mlockall a no-op."""
    srv = server_factory("-k")
    assert srv.answers_version()
    if re.search(r"/(asan|tsan)/", helpers.server_binary()):
        return
    locked = proc_status(srv.proc.pid, "VmLck")
    if os.geteuid() == 0:
        assert locked > 0  # root may lock everything
    elif locked == 0:
        assert "mlockall() failed" in srv.log(), srv.log()


def test_enable_coredumps_raises_the_core_limit(server_factory):
    srv = server_factory("-r")
    with open("/proc/%d/limits" % srv.proc.pid) as f:
        row = next(l for l in f if l.startswith("Max core file size"))
    soft = row.split()[4]
    assert soft == "unlimited" or int(soft) > 0, row


@pytest.mark.parametrize("flags", [["-D", ""], ["-n", "0"], ["-f", "1.0"], ["-f", "x"]])
def test_bad_memcached_flag_values_are_refused(flags):
    r = run(*flags)
    if helpers.IS_MEMCACHED:
        assert r.returncode == 1, r
    else:
        assert r.returncode == EX_USAGE and r.stderr.startswith("strata-proxy: "), r


# ---- flags strata refuses ----

@pytest.mark.parametrize("flags,what", [
    (["-S"], "SASL"), (["--enable-sasl"], "SASL"), (["-Z"], "TLS"), (["--enable-ssl"], "TLS"),
])
def test_sasl_and_tls_flags(flags, what):
    r = run(*flags)
    if helpers.IS_MEMCACHED:
        # Debian's memcached has both built in but fails without their
        # configuration: no SASL database, no certificate.
        assert r.returncode == (1 if what == "SASL" else EX_USAGE), r
    else:
        assert r.returncode == EX_USAGE, r
        assert what in r.stderr and "not supported yet" in r.stderr, r.stderr


def test_auth_file_flag(server_factory, tmp_path):
    auth = tmp_path / "auth"
    auth.write_text("user:pass\n")
    if helpers.IS_MEMCACHED:
        # Started by hand: the fixtures' readiness check (`stats`) needs auth.
        port = helpers.free_port()
        argv = [helpers.server_binary(), "-p", str(port), "-l", "127.0.0.1", "-U", "0",
                "-Y", str(auth)] + (["-u", "root"] if os.geteuid() == 0 else [])
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + helpers.READY_TIMEOUT
            while True:
                try:
                    c = helpers.Conn(("127.0.0.1", port))
                    break
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline
                    time.sleep(0.02)
            with c:
                c.call(b"get k\r\n", b"CLIENT_ERROR unauthenticated\r\n")
        finally:
            proc.kill()
            proc.wait(helpers.STOP_TIMEOUT)
    else:
        for flags in (["-Y", str(auth)], ["--auth-file", str(auth)]):
            r = run(*flags)
            assert r.returncode == EX_USAGE, r
            assert "authentication" in r.stderr and "not supported yet" in r.stderr, r.stderr


def test_memory_file_flag(server_factory, tmp_path):
    path = tmp_path / "memory_file"
    if helpers.IS_MEMCACHED:
        srv = server_factory("-e", str(path))
        assert srv.answers_version()
    else:
        r = run("-e", str(path))
        assert r.returncode == EX_USAGE, r
        assert "not supported yet" in r.stderr, r.stderr
        assert not path.exists()


# ---- strata's --shutdown-timeout ----

VALUE_SIZE = 100_000


def block_a_client(srv, key):
    """A client that asks for far more than its socket holds and never
    reads: its replies stay queued (state conn_mwrite). Returns it."""
    with srv.connect() as c:
        c.call(b"set %s 0 0 %d\r\n" % (key, VALUE_SIZE) + b"v" * VALUE_SIZE + b"\r\n",
               b"STORED\r\n")
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(srv.addr)
    slow.sendall(b"get %s\r\n" % key * 200)  # 20 MB of replies
    with srv.connect() as admin:
        deadline = time.monotonic() + 5
        while b"conn_mwrite" not in admin.stats(b"conns"):
            assert time.monotonic() < deadline, "replies never backed up"
            time.sleep(0.02)
    return slow


@strata_only
@pytest.mark.parametrize("timeout", [0, 1])
def test_shutdown_timeout_bounds_the_drain(server_factory, key, timeout):
    srv = server_factory("--shutdown-timeout", str(timeout))
    slow = block_a_client(srv, key)
    start = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(timeout + 4) == 0, srv.log()
    assert time.monotonic() - start < timeout + 4
    slow.close()


@strata_only
def test_shutdown_timeout_lets_the_drain_run_that_long(server_factory, key):
    timeout = 5
    srv = server_factory("--shutdown-timeout", str(timeout))
    slow = block_a_client(srv, key)
    start = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    with pytest.raises(subprocess.TimeoutExpired):
        srv.proc.wait(timeout - 2)  # still draining well before the timeout
    assert srv.proc.wait(6) == 0, srv.log()
    assert timeout - 0.5 <= time.monotonic() - start < timeout + 6
    slow.close()


@strata_only
def test_shutdown_timeout_from_the_config_file(server_factory, tmp_path, key):
    conf = tmp_path / "proxy.conf"
    conf.write_text("[proxy]\nshutdown_timeout = 1\n")
    srv = server_factory("--config", str(conf))
    slow = block_a_client(srv, key)
    start = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(5) == 0, srv.log()
    assert time.monotonic() - start < 5
    slow.close()
