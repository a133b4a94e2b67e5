"""strata-proxy's command line and config file (--config, --check-config,
--describe-config): memcached-compatible flags where memcached has them,
exit codes from sysexits.h. strata-only where memcached has no equivalent
(docs/COMPATIBILITY.md)."""

import subprocess

import pytest

import helpers

strata_only = pytest.mark.skipif(helpers.IS_MEMCACHED,
                                 reason="strata-only options (docs/COMPATIBILITY.md)")

EX_USAGE, EX_CONFIG = 64, 78


def run(*args):
    return subprocess.run([helpers.server_binary(), *args], capture_output=True, text=True,
                          timeout=10)


@strata_only
@pytest.mark.parametrize("args", [["--bogus"], ["-x"], ["-p"], ["-p", "0"], ["-p", "70000"],
                                  ["-m", "abc"], ["-t", "0"], ["-I", "200m"], ["-U", "1"],
                                  ["extra"], ["-o", "bogus"], ["-o"], ["-S"], ["-Z"],
                                  ["-Y", "auth"], ["-e", "mem"], ["-D", ""], ["-f", "1"],
                                  ["-a", "8"], ["-n", "0"], ["--hashpower", "5"],
                                  ["--shutdown-timeout", "-1"], ["--idle-timeout", "x"],
                                  ["--read-buf-mem-limit", "lots"]])
def test_bad_flags_exit_with_usage_error(args):
    r = run(*args)
    assert r.returncode == EX_USAGE, r
    assert r.stderr.startswith("strata-proxy: "), r.stderr


@strata_only
def test_help_version_describe():
    h = run("--help")
    assert h.returncode == 0 and "--port" in h.stdout and "--config" in h.stdout
    v = run("-V")
    assert v.returncode == 0 and v.stdout.startswith("strata-proxy " + helpers.strata_semver())
    d = run("--describe-config")
    assert d.returncode == 0
    names = [l.split("\t")[0] for l in d.stdout.splitlines() if not l.startswith("#")]
    for name in ("port", "listen", "memory_limit", "conn_limit", "threads", "max_item_size",
                 "disable_evictions", "max_output", "drain_timeout", "user", "pidfile",
                 "shutdown_timeout", "idle_timeout", "read_buf_mem_limit", "hashpower",
                 "enable_shutdown", "disable_flush_all", "disable_dumping", "detail_delimiter",
                 "lock_memory", "enable_coredumps", "enable_largepages", "unix_mask",
                 "slab_growth_factor", "slab_min_size", "extended"):
        assert name in names
    # every described option is also a long flag in --help
    for name in names:
        assert "--" + name.replace("_", "-") in h.stdout, name


@strata_only
def test_config_file_is_read_and_flags_override_it(server_factory, tmp_path):
    conf = tmp_path / "proxy.conf"
    conf.write_text("; comment\n[proxy]\nmax_reqs_per_event = 7\nconn_limit = 321\n"
                    "max_item_size = 2m\nmemory_limit = 32m\n")
    srv = server_factory("--config", str(conf), "-c", "123")
    with srv.connect() as c:
        st = c.stats_dict(b"settings")
    assert st["reqs_per_event"] == "7"          # from the file
    assert st["maxbytes"] == str(64 << 20)      # the test's -m 64 wins
    assert st["item_size_max"] == str(2 << 20)  # from the file
    assert st["maxconns"] == "123"              # the flag wins


@strata_only
def test_config_file_sets_memcached_options(server_factory, tmp_path):
    conf = tmp_path / "proxy.conf"
    conf.write_text("[proxy]\nenable_shutdown = yes\ndisable_flush_all = yes\n"
                    "disable_dumping = yes\ndetail_delimiter = #\nidle_timeout = 30\n"
                    "hashpower = 16\nread_buf_mem_limit = 2m\nunix_mask = 750\n"
                    "slab_growth_factor = 1.5\nslab_min_size = 64\nshutdown_timeout = 2\n"
                    "extended = modern,tail_repair_time=20\nextended = read_buf_mem_limit=4\n")
    srv = server_factory("--config", str(conf), "-o", "idle_timeout=40")
    with srv.connect() as c:
        st = c.stats_dict(b"settings")
    expected = {"shutdown_command": "yes", "flush_enabled": "no", "dump_enabled": "no",
                "stat_key_prefix": "#", "detail_enabled": "yes",
                "idle_timeout": "40",  # the flag wins over the file
                "hashpower_init": "16",
                "read_buf_mem_limit": str(4 << 20),  # the later line wins
                "umask": "750", "growth_factor": "1.50", "chunk_size": "64"}
    assert {k: st.get(k) for k in expected} == expected
    log = srv.log()
    assert "-o modern: has no effect" in log and "-o tail_repair_time: does not apply" in log
    assert "-f (slab growth factor): does not apply" in log


@strata_only
def test_check_config_prints_the_start_up_notes(tmp_path):
    r = run("-o", "slab_reassign,modern", "-o", "slab_reassign", "-L", "--check-config")
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines[-1] == "configuration ok"
    assert lines.count("-o slab_reassign: does not apply: strata has no slab pages to move or "
                       "size (items are allocated one by one)") == 1
    assert any(l.startswith("-o modern: ") for l in lines)
    assert any(l.startswith("-L (large pages): does not apply") for l in lines)


@strata_only
@pytest.mark.parametrize("args,needle", [
    (["-S"], "SASL"), (["-Z"], "TLS"), (["-Y", "/etc/passwd"], "authentication"),
    (["-e", "/tmp/strata-never-created"], "memory file"),
])
def test_refused_memcached_flags_say_not_supported_yet(args, needle):
    r = run(*args, "--check-config")
    assert r.returncode == EX_USAGE, r
    assert needle in r.stderr and "not supported yet" in r.stderr, r.stderr
    assert r.stdout == ""


@strata_only
@pytest.mark.parametrize("text,needle", [
    ("[proxy]\nportx = 1\n", "unknown option 'portx'"),
    ("[cache]\nport = 1\n", "unknown section"),
    ("[proxy]\nport = 99999\n", "invalid port"),
    ("[proxy]\nmemory_limit = lots\n", "invalid memory_limit"),
    ("[proxy]\ndisable_evictions = maybe\n", "invalid disable_evictions"),
    ("[proxy]\nmax_item_size = 40m\nmemory_limit = 64m\n", "over half"),
    ("[proxy]\nextended = modern,bogus\n", "unknown -o option \"bogus\""),
    ("[proxy]\nextended = hashpower=5\n", "invalid -o hashpower"),
    ("[proxy]\nhashpower = 5\n", "invalid hashpower"),
    ("[proxy]\ndetail_delimiter =\n", "no delimiter"),
    ("[proxy]\nunix_mask = 999\n", "invalid unix_mask"),
    ("[proxy]\nslab_growth_factor = 1\n", "invalid slab_growth_factor"),
    ("[proxy]\ndisable_flush_all = perhaps\n", "invalid disable_flush_all"),
    ("[proxy]\nshutdown_timeout = 100000\n", "invalid shutdown_timeout"),
])
def test_bad_config_exits_with_config_error(tmp_path, text, needle):
    conf = tmp_path / "bad.conf"
    conf.write_text(text)
    r = run("--config", str(conf), "--check-config")
    assert r.returncode == EX_CONFIG, r
    assert needle in r.stderr, r.stderr


@strata_only
def test_check_config_accepts_a_good_file(tmp_path):
    conf = tmp_path / "ok.conf"
    conf.write_text("[proxy]\nport = 11311\nlisten = 127.0.0.1\nverbose = 1\n")
    r = run("--config", str(conf), "--check-config")
    assert r.returncode == 0 and "configuration ok" in r.stdout, r
    assert run("--config", str(tmp_path / "missing.conf")).returncode == EX_CONFIG


def test_pidfile_written_while_running(server_factory, tmp_path):
    pidfile = tmp_path / "server.pid"
    srv = server_factory("-P", str(pidfile))
    assert int(pidfile.read_text().strip()) == srv.proc.pid


@strata_only
def test_pidfile_removed_after_clean_exit(server_factory, tmp_path):
    pidfile = tmp_path / "proxy.pid"
    srv = server_factory("-P", str(pidfile))
    assert pidfile.exists()
    assert srv.stop() == 0
    assert not pidfile.exists()


@strata_only
def test_user_flag_drops_root(server_factory):
    import os
    if os.geteuid() != 0:
        pytest.skip("needs root to switch users")
    srv = server_factory("-u", "nobody")
    with open("/proc/%d/status" % srv.proc.pid) as f:
        uid_line = next(l for l in f if l.startswith("Uid:"))
    import pwd
    assert int(uid_line.split()[1]) == pwd.getpwnam("nobody").pw_uid
