"""collectd's memcached plugin, for real: it must produce every metric it
produces for memcached 1.6.18 (the names below were observed with it)."""

import os
import re
import signal
import subprocess
import time

from helpers import require_tool

COLLECTD = "/usr/sbin/collectd"

# collectd 5.12 memcached plugin + csv plugin, against memcached 1.6.18 after
# the traffic below: "<type>-<type instance>" file names without the date.
# (The incr/decr ones appear only once incr/decr counters are non-zero.)
EXPECTED_METRICS = {
    "connections-opened",
    "df-cache",
    "memcached_command-flush",
    "memcached_command-get",
    "memcached_command-meta",
    "memcached_command-set",
    "memcached_command-touch",
    "memcached_connections-current",
    "memcached_items-current",
    "memcached_octets",
    "memcached_ops-decr",
    "memcached_ops-decr_hits",
    "memcached_ops-decr_misses",
    "memcached_ops-delete_hits",
    "memcached_ops-delete_misses",
    "memcached_ops-evictions",
    "memcached_ops-hits",
    "memcached_ops-incr",
    "memcached_ops-incr_hits",
    "memcached_ops-incr_misses",
    "memcached_ops-misses",
    "percent-decr_hitratio",
    "percent-hitratio",
    "percent-incr_hitratio",
    "ps_count",
    "ps_cputime",
    "total_events-listen_disabled",
    "uptime",
}

# ps_count's "processes" is always NaN; hit ratios are NaN for an interval
# without the matching commands.
def may_be_nan(name):
    return name == "ps_count" or name.startswith("percent-")

CONFIG = """\
Interval 1
BaseDir "{dir}"
PIDFile "{dir}/collectd.pid"
AutoLoadPlugin false
FQDNLookup false
Hostname "strata-it"
LoadPlugin memcached
LoadPlugin csv
<Plugin memcached>
  <Instance "it">
    Host "127.0.0.1"
    Port "{port}"
  </Instance>
</Plugin>
<Plugin csv>
  DataDir "{dir}/data"
  StoreRates false
</Plugin>
"""


def metrics_written(data_dir):
    """{metric name: [csv lines]} of what collectd wrote so far."""
    plugin_dir = os.path.join(data_dir, "strata-it", "memcached-it")
    if not os.path.isdir(plugin_dir):
        return {}
    out = {}
    for name in os.listdir(plugin_dir):
        with open(os.path.join(plugin_dir, name)) as f:
            out[re.sub(r"-\d{4}-\d{2}-\d{2}$", "", name)] = f.read().splitlines()
    return out


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_collectd_memcached_plugin(server, tmp_path):
    collectd = require_tool(COLLECTD, package="collectd-core")
    with server.connect() as c:  # every kind of counter non-zero
        c.call(b"set cd_k 0 0 1\r\n1\r\nget cd_k cd_miss\r\nincr cd_k 1\r\nincr cd_miss 1\r\n"
               b"decr cd_k 1\r\ndecr cd_miss 1\r\ndelete cd_k\r\ndelete cd_miss\r\n",
               b"STORED\r\nVALUE cd_k 0 1\r\n1\r\nEND\r\n2\r\nNOT_FOUND\r\n1\r\nNOT_FOUND\r\n"
               b"DELETED\r\nNOT_FOUND\r\n")
    conf = tmp_path / "collectd.conf"
    conf.write_text(CONFIG.format(dir=tmp_path, port=server.addr[1]))
    log = open(tmp_path / "collectd.log", "wb")
    proc = subprocess.Popen([collectd, "-f", "-C", str(conf)], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        written = {}
        while time.monotonic() < deadline and proc.poll() is None:
            written = metrics_written(str(tmp_path / "data"))
            if EXPECTED_METRICS <= set(written) and all(len(v) >= 2 for v in written.values()):
                break
            time.sleep(0.2)
    finally:
        stop(proc)
        log.close()
    assert EXPECTED_METRICS - set(written) == set(), (tmp_path / "collectd.log").read_text()
    for name, lines in written.items():
        assert lines[0].startswith("epoch,"), name
        for row in lines[1:]:  # epoch,value[,value]
            fields = row.split(",")
            assert len(fields) == len(lines[0].split(",")), (name, row)
            values = [float(f) for f in fields]  # all numbers
            if not may_be_nan(name):
                assert "nan" not in fields, (name, row)
            assert values[0] > 0, (name, row)
