#!/usr/bin/python3
"""pkgcheck.py - helpers of tests/packaging/run.sh that are clearer in Python.

Each check prints "ok <name>" or "FAIL <name>: <detail>" lines, which
run.sh counts, and exits 1 if any failed.

  pkgcheck.py free-port [N]
  pkgcheck.py filelist EXPECTED ACTUAL KEY=WORDS...
      ACTUAL holds "mode owner/group path" lines; EXPECTED the same with
      shell patterns, where a line naming @KEY@ stands for one line per
      word of KEY (bin, unit, conf, man, doc).
  pkgcheck.py conf-covers CONF BINARY
      every option `BINARY --describe-config` lists is in CONF, commented
      out with its default unless it has none.
  pkgcheck.py man-covers MANPAGE BINARY
      every option of --describe-config has its long flag in the man page.
  pkgcheck.py run-unit UNIT PORT WORKDIR [--expect-version V] [--expect-maxbytes N]
                       [--expect-kept]
      starts the unit's ExecStart= as its User=/Group=, under its
      LimitNOFILE=, with a systemd notify socket, plus `-p PORT`; expects
      READY=1, talks memcached protocol, sends SIGTERM, expects STOPPING=1
      and exit status 0.
  pkgcheck.py node-conf CONF BINARY
      strata-node has no --describe-config: every option of `BINARY -h`
      (but the actions and the test-only ones) is in CONF, commented out
      with the default --help names; each commented line passes
      --check-config once uncommented.
  pkgcheck.py man-covers-help MANPAGE BINARY
      every long option and every command of `BINARY -h` is in the
      man page.
  pkgcheck.py run-node UNIT PORT CLUSTER_PORT WORKDIR [--admin BIN]
          [--expect-version V] [--expect-threads N] [--set K] [--expect-key K]
      starts the unit's ExecStart= (Type=exec: no notify socket) as its
      User=/Group=, under its LimitNOFILE=, plus `-p PORT -P CLUSTER_PORT`;
      waits for the port, checks the data directory, talks memcached
      protocol (stats cluster, storage, hints, repair; the repair command),
      runs `BIN status` against it, sends SIGTERM, expects exit status 0.
  pkgcheck.py maintscripts CONTROL_DIR UNITS MANUAL_UNITS
      runs the .deb's preinst, postinst, prerm and postrm (`dpkg-deb -e`) as
      dpkg would on a machine running systemd, with deb-systemd-helper,
      deb-systemd-invoke, systemctl, systemd-sysusers, rm and rmdir
      replaced by stubs that log their arguments, and checks what they ask
      for: each unit of UNITS (space separated) enabled and started on
      install, restarted on upgrade, except MANUAL_UNITS, which are neither
      enabled nor started on install and only try-restarted on upgrade
      (an operator's enable kept); none stopped by preinst or prerm on
      upgrade; all stopped on remove and disabled on purge.
"""

import fnmatch
import os
import pwd
import re
import resource
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time

failures = 0


def ok(name):
    print(f"ok {name}", flush=True)


def fail(name, detail):
    global failures
    failures += 1
    detail = str(detail).rstrip().replace("\n", "\n      ")
    print(f"FAIL {name}: {detail}", flush=True)


def check(cond, name, detail=""):
    if cond:
        ok(name)
    else:
        fail(name, detail)
    return cond


def free_port(n=1):
    """n different free ports, one a line (held together while chosen)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        for s in socks:
            print(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()


def filelist(expected_path, actual_path, words):
    subst = {}
    for w in words:
        key, _, vals = w.partition("=")
        subst[key] = vals.split()
    patterns = []
    for line in open(expected_path):
        line = line.rstrip("\n")
        if not line.strip() or line.startswith("#"):
            continue
        keys = [k for k in subst if f"@{k}@" in line]
        if len(keys) > 1:
            sys.exit(f"{expected_path}: one placeholder per line: {line}")
        if keys:
            patterns += [line.replace(f"@{keys[0]}@", v) for v in subst[keys[0]]]
        else:
            patterns.append(line)
    actual = [l.rstrip("\n") for l in open(actual_path) if l.strip()]
    unexpected = [a for a in actual if not any(fnmatch.fnmatchcase(a, p) for p in patterns)]
    missing = [p for p in patterns if not any(fnmatch.fnmatchcase(a, p) for a in actual)]
    name = f"file list of {os.path.basename(actual_path)} matches {os.path.basename(expected_path)}"
    detail = "".join(f"\nunexpected: {a}" for a in unexpected) + \
        "".join(f"\nmissing:    {m}" for m in missing)
    check(not unexpected and not missing, name, detail)


def describe(binary):
    out = subprocess.run([binary, "--describe-config"], capture_output=True, text=True,
                         timeout=10, check=True).stdout
    opts = []
    for line in out.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, flag, typ, default, lo, hi, desc = line.split("\t")
        opts.append((name, default))
    return opts


def conf_covers(conf, binary):
    text = open(conf).read()
    opts = describe(binary)
    check(len(opts) > 0, "--describe-config lists options")
    for name, default in opts:
        if default == "-":
            m = re.search(rf"^#?{re.escape(name)} = \S", text, re.M)
            check(m, f"{os.path.basename(conf)} describes {name}",
                  f"no line '#{name} = ...'")
        else:
            m = re.search(rf"^#?{re.escape(name)} = {re.escape(default)}$", text, re.M)
            check(m, f"{os.path.basename(conf)} describes {name} (default {default})",
                  f"no line '#{name} = {default}'")
    check(re.search(r"^listen = 127\.0\.0\.1$", text, re.M),
          f"{os.path.basename(conf)} binds 127.0.0.1", "no uncommented 'listen = 127.0.0.1'")


def man_covers(man, binary):
    src = subprocess.run(["sh", "-c", f"zcat -f {shlex.quote(man)}"], capture_output=True,
                         text=True, check=True).stdout
    # roff escapes hyphens as \-
    text = src.replace("\\-", "-").replace("\\fB", "").replace("\\fR", "")
    missing = [n for n, _ in describe(binary) if "--" + n.replace("_", "-") not in text]
    check(not missing, f"{os.path.basename(man)} documents every option",
          f"missing: {missing}")


def unit_settings(path):
    s = {}
    for line in open(path):
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            k, _, v = line.partition("=")
            s.setdefault(k.strip(), []).append(v.strip())
    return s


def mc(sock, data, until):
    sock.sendall(data)
    buf = b""
    end = time.monotonic() + 5
    while not buf.endswith(until) and time.monotonic() < end:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def run_unit(unit, port, workdir, expect_version=None, expect_maxbytes=None, expect_kept=False):
    u = unit_settings(unit)
    execstart = u["ExecStart"][-1]
    user = u.get("User", ["root"])[-1]
    group = u.get("Group", [user])[-1]
    nofile = u.get("LimitNOFILE", [None])[-1]
    argv = shlex.split(execstart.lstrip("-@:+!")) + ["-p", str(port)]
    pw = pwd.getpwnam(user)

    # systemd's notify socket, writable by the service user.
    os.makedirs(workdir, exist_ok=True)
    notify_path = os.path.join(workdir, "notify.sock")
    if os.path.exists(notify_path):
        os.unlink(notify_path)
    nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    nsock.bind(notify_path)
    os.chmod(workdir, 0o755)
    os.chown(notify_path, pw.pw_uid, pw.pw_gid)

    wrapper = ["setpriv", f"--reuid={user}", f"--regid={group}", "--init-groups",
               "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    if nofile:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard != resource.RLIM_INFINITY and hard < int(nofile):
            # Raising a hard limit needs CAP_SYS_RESOURCE, which systemd has
            # and a container running this test may not.
            print(f"  note: this machine's hard limit on open files is {hard}, below "
                  f"LimitNOFILE={nofile}; the test runs with {hard}", flush=True)
            nofile = str(hard)
        wrapper = ["prlimit", f"--nofile={nofile}:{nofile}"] + wrapper
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "LANG": "C.UTF-8", "NOTIFY_SOCKET": notify_path}
    errlog = open(os.path.join(workdir, "strata-proxy.stderr"), "w+")
    print(f"  running as {user}: {' '.join(argv)}", flush=True)
    proc = subprocess.Popen(wrapper + ["--"] + argv, env=env, cwd="/", stdin=subprocess.DEVNULL,
                            stdout=errlog, stderr=errlog)
    try:
        nsock.settimeout(10)
        msgs = []
        try:
            while not any("READY=1" in m for m in msgs):
                msgs.append(nsock.recv(4096).decode())
        except socket.timeout:
            pass
        errlog.seek(0)
        if not check(any("READY=1" in m for m in msgs), "service sends READY=1 (Type=notify)",
                     f"got {msgs}; exit {proc.poll()}; stderr: {errlog.read()}"):
            return

        status = open(f"/proc/{proc.pid}/status").read()
        uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
        check(uid == pw.pw_uid, f"service process runs as {user}", f"uid {uid}")
        limits = open(f"/proc/{proc.pid}/limits").read()
        if nofile:
            m = re.search(r"^Max open files\s+(\d+)\s+(\d+)", limits, re.M)
            check(m and m.group(2) == nofile, f"open files limit {nofile} (LimitNOFILE=)",
                  m.group(0) if m else limits)

        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            r = mc(c, b"version\r\n", b"\r\n")
            # memcached's plain release number; strata's own in stats strata_version
            check(re.fullmatch(rb"VERSION \d+\.\d+\.\d+\r\n", r), "memcached 'version' is numeric", r)
            r = mc(c, b"stats\r\n", b"END\r\n")
            want = rf"STAT strata_version {re.escape(expect_version or '')}\S*\r\n"
            check(re.search(want.encode(), r), f"stats strata_version is {expect_version}",
                  re.findall(rb"STAT strata_version \S+", r))
            if expect_kept:
                # backend = local: a value written by the last run survives
                # the restart (and the upgrade between)
                r = mc(c, b"get pkgtest\r\n", b"END\r\n")
                check(r == b"VALUE pkgtest 5 5\r\nhello\r\nEND\r\n",
                      "the last run's data is kept (backend = local)", r)
            r = mc(c, b"stats backend\r\n", b"END\r\n")
            check(b"STAT backend local\r\n" in r, "the shipped config keeps data (backend local)",
                  r)
            r = mc(c, b"set pkgtest 5 0 5\r\nhello\r\n", b"\r\n")
            check(r == b"STORED\r\n", "memcached 'set'", r)
            r = mc(c, b"get pkgtest\r\n", b"END\r\n")
            check(r == b"VALUE pkgtest 5 5\r\nhello\r\nEND\r\n", "memcached 'get'", r)
            r = mc(c, b"stats settings\r\n", b"END\r\n")
            st = dict(l.split(" ")[1:3] for l in r.decode().splitlines() if l.startswith("STAT "))
            check(st.get("inter") == "127.0.0.1" and st.get("tcpport") == str(port),
                  "stats settings: interface 127.0.0.1, the test port",
                  {k: st.get(k) for k in ("inter", "tcpport")})
            if expect_maxbytes is not None:
                check(st.get("maxbytes") == str(expect_maxbytes),
                      f"the config file is read (maxbytes {expect_maxbytes})", st.get("maxbytes"))
        listening = open("/proc/net/tcp").read()
        check(re.search(rf"^\s*\d+: 0100007F:{port:04X} 00000000:0000 0A ", listening, re.M),
              "listens on 127.0.0.1 only", "no LISTEN socket on 127.0.0.1:%d" % port)

        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
            fail("SIGTERM stops the service within 15 s", "killed")
        errlog.seek(0)
        check(rc == 0, "exit status 0 after SIGTERM", f"{rc}; stderr: {errlog.read()}")
        nsock.settimeout(1)
        try:
            while True:
                msgs.append(nsock.recv(4096).decode())
        except (socket.timeout, BlockingIOError):
            pass
        check(any("STOPPING=1" in m for m in msgs), "service sends STOPPING=1", msgs)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        nsock.close()
        os.unlink(notify_path)


# strata-node's actions and options for tests only: not in a shipped config.
HELP_ACTIONS = {"config", "check-config", "describe-config", "version", "help"}


def help_text(binary):
    # -h: every Strata program has it (strata-admin has no --help yet)
    return subprocess.run([binary, "-h"], capture_output=True, text=True,
                          timeout=10, check=True).stdout


def help_options(binary):
    """The long options of `binary --help`, each with the default its
    description names ("(default X)", up to a comma), or None."""
    entries = []
    for line in help_text(binary).splitlines():
        if re.match(r"^\s+-", line):
            entries.append(line.strip())
        elif entries and re.match(r"^\s{6,}\S", line):
            entries[-1] += " " + line.strip()
    opts = []
    for e in entries:
        m = re.match(r"^(?:-\w, )?--([a-z][a-z0-9-]*)", e)
        if not m:
            continue
        d = re.search(r"\(default ([^),]+)", e)
        opts.append((m.group(1), d.group(1).strip() if d else None))
    return opts


def check_config_of(binary, text):
    """Runs `binary --config FILE --check-config` on text; (ok, output)."""
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
        f.write(text)
        f.flush()
        r = subprocess.run([binary, "--config", f.name, "--check-config"],
                           capture_output=True, text=True, timeout=10)
    return r.returncode == 0, (r.stdout + r.stderr).strip()


def node_conf(conf, binary):
    text = open(conf).read()
    base = os.path.basename(conf)
    opts = [(n, d) for n, d in help_options(binary)
            if n not in HELP_ACTIONS and not n.startswith("test-")]
    check(len(opts) > 0, f"{os.path.basename(binary)} -h lists options")
    for name, default in opts:
        key = name.replace("-", "_")
        m = re.search(rf"^#?{re.escape(key)} = (.*)$", text, re.M)
        if default is None or default == "none":
            check(m, f"{base} describes {key}", f"no line '#{key} = ...'")
        else:
            check(m and m.group(1) == default, f"{base} describes {key} (default {default})",
                  m.group(0) if m else f"no line '#{key} = {default}'")
    check(re.search(r"^listen = 127\.0\.0\.1$", text, re.M),
          f"{base} binds 127.0.0.1", "no uncommented 'listen = 127.0.0.1'")
    bad = []
    commented = re.findall(r"^#([a-z][a-z0-9_-]*) = (.*)$", text, re.M)
    for key, value in commented:
        good, out = check_config_of(binary, f"[node]\n{key} = {value}\n")
        if not good:
            bad.append(f"{key} = {value}: {out}")
    check(commented and not bad,
          f"{base}: each of its {len(commented)} commented settings passes --check-config",
          "\n".join(bad) or "no commented settings")


def man_covers_help(man, binary):
    src = subprocess.run(["sh", "-c", f"zcat -f {shlex.quote(man)}"], capture_output=True,
                         text=True, check=True).stdout
    text = src.replace("\\-", "-")
    plain = text.replace("\\fB", "").replace("\\fR", "").replace("\\fI", "")
    helptext = help_text(binary)
    longs = sorted(set(re.findall(r"(?<![\w-])--([a-z][a-z0-9-]*)", helptext)))
    missing = [f"--{n}" for n in longs if f"--{n}" not in plain]
    # usage lines: "usage: prog [-n host:port] command ..." / "       prog ... command"
    cmds = re.findall(r"^(?:usage:)?\s*\S*strata-[a-z]+ (?:\[-[a-z] [^]]*\] )?([a-z]+)",
                      helptext, re.M)
    missing += [c for c in cmds if f"\\fB{c}\\fR" not in text]
    name = os.path.basename(man)
    what = "every option" + (f" and command ({', '.join(cmds)})" if cmds else "")
    check((longs or cmds) and not missing, f"{name} documents {what} of -h",
          f"missing: {missing}")


def wait_port(port, proc, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def stat_lines(reply):
    return dict(l.split(" ", 2)[1:3] for l in reply.decode(errors="replace").splitlines()
                if l.startswith("STAT ") and l.count(" ") >= 2)


# Stubs for maintscripts(): each logs "name args..." to $STUB_LOG.
# deb-systemd-helper answers debian-installed and was-enabled as the
# scenario says: $DEBIAN_INSTALLED (0 or 1) and $WAS_ENABLED (the units
# whose enable links exist, space separated).
STUB = """#!/bin/sh
echo "${0##*/} $*" >>"$STUB_LOG"
if [ "${0##*/}" = deb-systemd-helper ]; then
    [ "$1" = --quiet ] && shift
    case $1 in
    debian-installed) [ "$DEBIAN_INSTALLED" = 1 ]; exit ;;
    was-enabled) case " $WAS_ENABLED " in *" $2 "*) exit 0 ;; *) exit 1 ;; esac ;;
    esac
fi
exit 0
"""
STUBBED = ("deb-systemd-helper", "deb-systemd-invoke", "systemctl", "systemd-sysusers",
           "rm", "rmdir")


def maintscripts(ctrl, units, manual):
    units = units.split()
    manual = manual.split()
    auto = [u for u in units if u not in manual]
    check(all(u in units for u in manual), f"the manual units {manual} are units of the package",
          units)
    with tempfile.TemporaryDirectory() as tmp:
        bindir = os.path.join(tmp, "bin")
        os.mkdir(bindir)
        for name in STUBBED:
            with open(os.path.join(bindir, name), "w") as f:
                f.write(STUB)
            os.chmod(os.path.join(bindir, name), 0o755)
        scripts = {}
        for name in ("preinst", "postinst", "prerm", "postrm"):
            if name == "preinst" and not os.path.exists(os.path.join(ctrl, name)):
                continue  # nothing to do before unpacking: fine
            text = open(os.path.join(ctrl, name)).read()
            # As on a machine booted with systemd.
            n = text.count("[ -d /run/systemd/system ]")
            if name in ("postinst", "prerm"):
                check(n > 0, f"{name} acts only when systemd runs ([ -d /run/systemd/system ])",
                      "no such test")
            path = os.path.join(tmp, name)
            with open(path, "w") as f:
                f.write(text.replace("[ -d /run/systemd/system ]", "true"))
            os.chmod(path, 0o755)
            scripts[name] = path

        def run(script, args, debian_installed=0, was_enabled=(), label=""):
            log = os.path.join(tmp, "log")
            open(log, "w").close()
            env = {"PATH": f"{bindir}:/usr/sbin:/usr/bin:/sbin:/bin", "STUB_LOG": log,
                   "DEBIAN_INSTALLED": str(debian_installed),
                   "WAS_ENABLED": " ".join(was_enabled), "DPKG_MAINTSCRIPT_PACKAGE": "strata",
                   "DPKG_MAINTSCRIPT_NAME": script}
            r = subprocess.run([scripts[script]] + args, env=env, capture_output=True,
                               text=True, timeout=30)
            calls = [l.split() for l in open(log).read().splitlines()]
            what = f"{script} {' '.join(args)}{label}"
            check(r.returncode == 0, f"{what}: exits 0", f"{r.returncode}: {r.stdout}{r.stderr}")
            return what, calls

        def asked(calls, prog, action, unit):
            return any(c[0] == prog and action in c[1:] and unit in c[1:] for c in calls)

        def invoked(calls, unit):
            return [" ".join(c) for c in calls if c[0] == "deb-systemd-invoke" and unit in c]

        # Fresh install: configure with no old version; no state, so the
        # real helper's was-enabled says yes (its default).
        what, calls = run("postinst", ["configure"], 0, units)
        check(["systemd-sysusers", "strata.conf"] in calls,
              f"{what}: creates the user (systemd-sysusers strata.conf)", calls)
        for u in auto:
            check(asked(calls, "deb-systemd-helper", "enable", u), f"{what}: enables {u}", calls)
            check(asked(calls, "deb-systemd-invoke", "start", u), f"{what}: starts {u}", calls)
        for u in manual:
            check(not asked(calls, "deb-systemd-helper", "enable", u),
                  f"{what}: does not enable {u}", calls)
            check(not invoked(calls, u), f"{what}: does not start {u}", invoked(calls, u))
            check(asked(calls, "deb-systemd-helper", "update-state", u),
                  f"{what}: records {u}'s enable links for purge (update-state)", calls)

        # Upgrade: preinst before unpacking must not stop a unit (nothing
        # would start a manual one again), then configure OLD with the
        # manual units as the operator left them.
        if "preinst" in scripts:
            what, calls = run("preinst", ["upgrade", "0.0.1-1"])
        else:
            what, calls = "preinst upgrade 0.0.1-1 (no preinst)", []
        check(not any(c[0] == "deb-systemd-invoke" for c in calls),
              f"{what}: stops nothing (the units run on until the postinst restarts them)",
              calls)
        for state, enabled in (("not enabled", auto), ("enabled by the operator", units)):
            what, calls = run("postinst", ["configure", "0.0.1-1"], 1, enabled,
                              f" (upgrade, {' '.join(manual)} {state})")
            for u in auto:
                check(asked(calls, "deb-systemd-invoke", "restart", u),
                      f"{what}: restarts {u}", calls)
            for u in manual:
                got = invoked(calls, u)
                check(got and all(g.split()[1] == "try-restart" for g in got),
                      f"{what}: only try-restarts {u} (restarted if it runs)", got)
                en = asked(calls, "deb-systemd-helper", "enable", u)
                if u in enabled:
                    check(en, f"{what}: keeps {u} enabled", calls)
                else:
                    check(not en, f"{what}: does not enable {u}", calls)

        what, calls = run("prerm", ["remove"])
        for u in units:
            check(asked(calls, "deb-systemd-invoke", "stop", u), f"{what}: stops {u}", calls)
        what, calls = run("prerm", ["upgrade", "0.0.2-1"])
        check(not any(c[0] == "deb-systemd-invoke" for c in calls),
              f"{what}: stops nothing (the new postinst restarts)", calls)
        what, calls = run("postrm", ["remove"])
        check(not any(c[0] == "deb-systemd-helper" or c[0] == "rm" for c in calls),
              f"{what}: keeps enable links and /var/lib/strata", calls)
        what, calls = run("postrm", ["purge"])
        for u in units:
            check(asked(calls, "deb-systemd-helper", "purge", u),
                  f"{what}: disables {u} (deb-systemd-helper purge)", calls)
        check(["rm", "-rf", "/var/lib/strata"] in calls, f"{what}: deletes /var/lib/strata", calls)


def run_node(unit, port, cport, workdir, admin=None, expect_version=None, expect_threads=None,
             set_key=None, expect_key=None):
    u = unit_settings(unit)
    execstart = u["ExecStart"][-1]
    user = u.get("User", ["root"])[-1]
    group = u.get("Group", [user])[-1]
    nofile = u.get("LimitNOFILE", [None])[-1]
    argv = shlex.split(execstart.lstrip("-@:+!")) + ["-p", str(port), "-P", str(cport)]
    pw = pwd.getpwnam(user)
    os.makedirs(workdir, exist_ok=True)
    wrapper = ["setpriv", f"--reuid={user}", f"--regid={group}", "--init-groups",
               "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    if nofile:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard != resource.RLIM_INFINITY and hard < int(nofile):
            print(f"  note: this machine's hard limit on open files is {hard}, below "
                  f"LimitNOFILE={nofile}; the test runs with {hard}", flush=True)
            nofile = str(hard)
        wrapper = ["prlimit", f"--nofile={nofile}:{nofile}"] + wrapper
    umask = u.get("UMask", [None])[-1]
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "LANG": "C.UTF-8"}
    errlog = open(os.path.join(workdir, "strata-node.stderr"), "w+")
    print(f"  running as {user}: {' '.join(argv)}", flush=True)
    old_umask = os.umask(int(umask, 8)) if umask else None
    try:
        proc = subprocess.Popen(wrapper + ["--"] + argv, env=env, cwd="/",
                                stdin=subprocess.DEVNULL, stdout=errlog, stderr=errlog)
    finally:
        if old_umask is not None:
            os.umask(old_umask)

    def stderr():
        errlog.seek(0)
        return errlog.read()

    try:
        up = wait_port(port, proc, 15)
        if not check(up, "strata-node listens on its memcached port within 15 s",
                     f"exit {proc.poll()}; stderr: {stderr()}"):
            return
        status = open(f"/proc/{proc.pid}/status").read()
        uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
        check(uid == pw.pw_uid, f"strata-node runs as {user}", f"uid {uid}")
        if nofile:
            limits = open(f"/proc/{proc.pid}/limits").read()
            m = re.search(r"^Max open files\s+(\d+)\s+(\d+)", limits, re.M)
            check(m and m.group(2) == nofile, f"open files limit {nofile} (LimitNOFILE=)",
                  m.group(0) if m else limits)

        # The data directory named by the config (--data-dir), as the unit
        # leaves it: the identity written by the service user.
        cmdline = open(f"/proc/{proc.pid}/cmdline").read().split("\0")
        conf = cmdline[cmdline.index("--config") + 1] if "--config" in cmdline else None
        data_dir = "/var/lib/strata/node"
        if conf:
            m = re.search(r"^data[_-]dir\s*=\s*(\S+)", open(conf).read(), re.M)
            data_dir = m.group(1) if m else data_dir
        ident = os.path.join(data_dir, "NODE")
        st = os.stat(ident) if os.path.exists(ident) else None
        check(st and st.st_uid == pw.pw_uid,
              f"identity {ident} written by {user}",
              f"{ident}: " + (f"uid {st.st_uid}" if st else "missing"))

        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            r = mc(c, b"version\r\n", b"\r\n")
            check(re.fullmatch(rb"VERSION \d+\.\d+\.\d+\r\n", r), "memcached 'version' is numeric", r)
            st = stat_lines(mc(c, b"stats\r\n", b"END\r\n"))
            check(st.get("strata_version", "").startswith(expect_version or ""),
                  f"stats strata_version is {expect_version}", st.get("strata_version"))
            if expect_threads is not None:
                check(st.get("threads") == str(expect_threads),
                      f"the config file is read (threads {expect_threads})", st.get("threads"))
            r = mc(c, b"stats cluster\r\n", b"END\r\n")
            cl = stat_lines(r)
            selfs = [v for k, v in cl.items() if k.startswith("member_") and v.endswith(" self")]
            check(r.endswith(b"END\r\n") and int(cl.get("members", 0)) >= 1 and len(selfs) == 1
                  and f"addr=127.0.0.1:{cport} " in selfs[0] and "state=up" in selfs[0],
                  "stats cluster: this node is a member, up, at 127.0.0.1:<cluster port>", r)
            for group, field in (("storage", "read_only"), ("hints", "hints_pending"),
                                 ("repair", "running")):
                g = stat_lines(mc(c, f"stats {group}\r\n".encode(), b"END\r\n"))
                check(field in g, f"stats {group} answers ({field} {g.get(field)})", g)
            if expect_key is not None:
                r = mc(c, f"get {expect_key}\r\n".encode(), b"END\r\n")
                check(r == f"VALUE {expect_key} 0 5\r\nhello\r\nEND\r\n".encode(),
                      f"'{expect_key}', stored by the run before, is read back", r)
            key = set_key or "pkgtest"
            r = mc(c, f"set {key} 0 0 5\r\nhello\r\n".encode(), b"\r\n")
            check(r == b"STORED\r\n", "memcached 'set' (a cluster of one)", r)
            r = mc(c, f"get {key}\r\n".encode(), b"END\r\n")
            check(r == f"VALUE {key} 0 5\r\nhello\r\nEND\r\n".encode(), "memcached 'get'", r)
            r = mc(c, b"repair\r\n", b"\r\n")
            check(r == b"OK\r\n", "the 'repair' command starts a cycle", r)
            end = time.monotonic() + 10
            running = None
            while time.monotonic() < end:
                running = stat_lines(mc(c, b"stats repair\r\n", b"END\r\n")).get("running")
                if running == "0":
                    break
                time.sleep(0.2)
            check(running == "0", "stats repair: running 0 once the cycle ends", running)
        listening = open("/proc/net/tcp").read()
        for what, p in (("memcached", port), ("cluster", cport)):
            check(re.search(rf"^\s*\d+: 0100007F:{p:04X} 00000000:0000 0A ", listening, re.M),
                  f"{what} port on 127.0.0.1 only", "no LISTEN socket on 127.0.0.1:%d" % p)
        if admin:
            r = subprocess.run([admin, "-n", f"127.0.0.1:{port}", "status"],
                               capture_output=True, text=True, timeout=20)
            check(r.returncode == 0 and f"127.0.0.1:{cport}" in r.stdout and "(answered)" in r.stdout,
                  f"{os.path.basename(admin)} status lists the node",
                  f"exit {r.returncode}: {r.stdout}{r.stderr}")
            r = subprocess.run([admin, "-n", f"127.0.0.1:{port}", "stats", "storage"],
                               capture_output=True, text=True, timeout=20)
            check(r.returncode == 0 and re.search(r"^\s*read_only 0$", r.stdout, re.M),
                  f"{os.path.basename(admin)} stats storage", f"exit {r.returncode}: {r.stdout}{r.stderr}")

        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
            fail("SIGTERM stops strata-node within 15 s", "killed")
        check(rc == 0, "strata-node exits 0 after SIGTERM", f"{rc}; stderr: {stderr()}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "free-port":
        free_port(int(args[0]) if args else 1)
        return
    if cmd == "filelist":
        filelist(args[0], args[1], args[2:])
    elif cmd == "conf-covers":
        conf_covers(args[0], args[1])
    elif cmd == "man-covers":
        man_covers(args[0], args[1])
    elif cmd == "node-conf":
        node_conf(args[0], args[1])
    elif cmd == "maintscripts":
        maintscripts(args[0], args[1], args[2])
    elif cmd == "man-covers-help":
        man_covers_help(args[0], args[1])
    elif cmd == "run-node":
        opts = {"--admin": None, "--expect-version": None, "--expect-threads": None,
                "--set": None, "--expect-key": None}
        pos = []
        it = iter(args)
        for a in it:
            if a in opts:
                opts[a] = next(it)
            else:
                pos.append(a)
        run_node(pos[0], int(pos[1]), int(pos[2]), pos[3], opts["--admin"],
                 opts["--expect-version"], opts["--expect-threads"], opts["--set"],
                 opts["--expect-key"])
    elif cmd == "run-unit":
        opts = {"--expect-version": None, "--expect-maxbytes": None}
        pos = []
        kept = False
        it = iter(args)
        for a in it:
            if a in opts:
                opts[a] = next(it)
            elif a == "--expect-kept":
                kept = True
            else:
                pos.append(a)
        run_unit(pos[0], int(pos[1]), pos[2], opts["--expect-version"],
                 int(opts["--expect-maxbytes"]) if opts["--expect-maxbytes"] else None, kept)
    else:
        sys.exit(f"unknown command {cmd}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
