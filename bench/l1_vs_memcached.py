"""L1 benchmark: strata-proxy against memcached with memcaslap (see run.sh)."""
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = os.environ.get("BENCH_SECONDS", "5")
WORKLOADS = [  # name, memcaslap flags
    ("get/set 90/10, 32 conns", ["-c", "32", "-T", "2"]),
    ("get/set 90/10, 128 conns", ["-c", "128", "-T", "2"]),
    ("multiget of 10 keys, 32 conns", ["-c", "32", "-T", "2", "-d", "10"]),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv, port):
    p = subprocess.Popen(argv + ["-p", str(port), "-l", "127.0.0.1", "-U", "0", "-t", "2",
                                 "-m", "1024"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p
        except OSError:
            time.sleep(0.05)
    p.kill()
    sys.exit(f"server {argv[0]} did not start")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def served(port):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"stats\r\n")
        buf = b""
        while not buf.endswith(b"END\r\n"):
            buf += s.recv(65536)
    st = dict(l.split(" ", 2)[1:] for l in buf.decode().splitlines() if l.startswith("STAT "))
    return int(st["cmd_get"]) + int(st["cmd_set"])


def run(port, pid, flags):
    c0, r0 = cpu_seconds(pid), served(port)
    out = subprocess.run(["memcaslap", "-s", f"127.0.0.1:{port}", "-t", SECONDS + "s"] + flags,
                         capture_output=True, text=True, timeout=120).stdout
    c1, r1 = cpu_seconds(pid), served(port)
    m = re.search(r"TPS: (\d+)", out)
    tps = int(m.group(1)) if m else 0
    return tps, (c1 - c0) * 1e6 / max(1, r1 - r0)


def main():
    strata = sys.argv[1]
    servers = {"memcached": ["memcached", "-u", "root"] if os.geteuid() == 0 else ["memcached"],
               "strata": [strata]}
    procs = {}
    for name, argv in servers.items():
        port = free_port()
        procs[name] = (start(argv, port), port)
    try:
        print(f"{'workload':32} {'server':10} {'ops/s':>10} {'cpu us/req':>11}")
        for wname, flags in WORKLOADS:
            res = {n: [] for n in servers}
            for _ in range(ROUNDS):
                for name in servers:  # alternate servers within each round
                    p, port = procs[name]
                    res[name].append(run(port, p.pid, flags))
            med = {n: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v))
                   for n, v in res.items()}
            for name in servers:
                print(f"{wname:32} {name:10} {med[name][0]:>10.0f} {med[name][1]:>11.2f}")
            m, s = med["memcached"], med["strata"]
            print(f"{wname:32} {'ratio':10} {s[0] / max(1, m[0]):>10.2f} "
                  f"{s[1] / max(1e-9, m[1]):>11.2f}   (strata/memcached)")
    finally:
        for p, _ in procs.values():
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=10)


if __name__ == "__main__":
    main()
