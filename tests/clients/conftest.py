"""Fixtures of the client-compatibility suite (see README.md in this folder):
real memcached client libraries, from Debian's packages, driven against
strata-proxy or stock memcached (STRATA_TEST_SERVER, as in tests/integration).

- need: the one place that decides what a missing client does: SKIP with
  the package to install, or FAIL when CI=true (the suite must not pass in
  CI by skipping what it was meant to test).
- server: a fresh server per test module (module scope); target: its
  address, pid and item size limit, as the client scripts are told them.
- run_client: runs one language's check script once and returns a
  ScriptRun, whose check(name) turns one "ok NAME" / "not ok NAME: why"
  line into one test result.
- build_dir, java_classes, go_program: the Java and Go programs compiled
  into the build directory once per session.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

pytest.register_assert_rewrite("helpers")

import helpers  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() in ("true", "1", "yes")

SCRIPT_TIMEOUT = 60      # one language's whole script, seconds
COMPILE_TIMEOUT = 180    # javac / go build on a cold cache, seconds
SPYMEMCACHED_JAR = "/usr/share/java/spymemcached.jar"
GOPATH_DEBIAN = "/usr/share/gocode"


def pytest_report_header(config):
    return "strata clients: STRATA_TEST_SERVER=%s (%s), CI=%s" % (
        helpers.SERVER_KIND, helpers.server_binary(), "yes" if IN_CI else "no")


def missing(what, package):
    """A client (library, interpreter, compiler) is not installed: skip
    outside CI, fail under CI=true."""
    message = "%s is not installed (Debian package: %s)" % (what, package)
    if IN_CI:
        pytest.fail(message + "; CI=true, so this is a failure, not a skip",
                    pytrace=False)
    pytest.skip(message)


def _probe(args):
    """True if args runs and exits 0 (used to probe for a library)."""
    try:
        done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


class Need:
    """need.X(...) returns what was asked for, or skips/fails via missing()."""

    def executable(self, name, package):
        path = shutil.which(name) if not os.path.isabs(name) else name
        if not path or not os.access(path, os.X_OK):
            missing(name, package)
        return path

    def file(self, path, package):
        if not os.path.isfile(path):
            missing(path, package)
        return path

    def python_module(self, name, package):
        try:
            return __import__(name)
        except ImportError:
            missing("Python module %s" % name, package)

    def perl_module(self, name, package):
        perl = self.executable("perl", "perl")
        if not _probe([perl, "-M" + name, "-e", "1"]):
            missing("Perl module %s" % name, package)
        return perl

    def php_extension(self, name, package):
        php = self.executable("php", "php-cli")
        if not _probe([php, "-r", "exit(extension_loaded('%s') ? 0 : 1);" % name]):
            missing("PHP extension %s" % name, package)
        return php

    def ruby_library(self, name, package):
        ruby = self.executable("ruby", "ruby")
        if not _probe([ruby, "-e", "require '%s'" % name]):
            missing("Ruby library %s" % name, package)
        return ruby


@pytest.fixture(scope="session")
def need():
    return Need()


@pytest.fixture(scope="module")
def server():
    """A fresh server for one client module, default flags (-I 1m)."""
    addr = helpers.external_addr()
    if addr:
        pytest.skip("the client suite starts its own servers; unset STRATA_TEST_ADDR")
    srv = helpers.Server().start()
    yield srv
    srv.stop()


class Target:
    """What a client script is told about the server it talks to."""

    def __init__(self, srv):
        self.server = srv
        self.host, self.port = srv.addr
        self.hostport = "%s:%d" % srv.addr
        with srv.connect() as c:
            self.pid = int(c.stats_dict()["pid"])
            self.item_size_max = int(c.stats_dict(b"settings")["item_size_max"])
        self.version = helpers.MEMCACHED_VERSION.decode()

    def counters(self):
        """Server counters a test compares before and after a client ran,
        so it can tell the server saw the request (not a client-side check)."""
        with self.server.connect() as c:
            stats = c.stats_dict()
        return {name: int(stats[name]) for name in COUNTERS}

    def env(self):
        """Environment of a client script: the expectations it checks."""
        env = dict(os.environ)
        env.update({
            "CLIENT_EXPECT_PID": str(self.pid),
            "CLIENT_EXPECT_VERSION": self.version,
            "CLIENT_ITEM_SIZE_MAX": str(self.item_size_max),
        })
        return env


@pytest.fixture(scope="module")
def target(server):
    return Target(server)


COUNTERS = ("store_too_large", "cmd_touch", "cas_hits", "cas_badval")

CHECK_LINE = re.compile(r"(ok|not ok) ([A-Za-z0-9_.-]+)(?:: (.*))?")
DONE_LINE = "# done"


class ScriptRun:
    """The outcome of one client script: its per-check lines, exit status,
    and output for failure messages."""

    def __init__(self, label, args, stdout, stderr, returncode, timed_out,
                 stats_delta=None):
        self.label = label
        self.stats_delta = stats_delta or {}   # server counters: after - before
        self.args = args
        self.stdout = stdout
        self.stderr = stderr
        self.returncode = returncode
        self.timed_out = timed_out
        self.results = {}      # name -> (passed, detail)
        self.duplicates = []
        self.done = False
        for line in stdout.splitlines():
            if line == DONE_LINE:
                self.done = True
                continue
            m = CHECK_LINE.fullmatch(line)
            if not m:
                continue
            name = m.group(2)
            if name in self.results:
                self.duplicates.append(name)
            self.results[name] = (m.group(1) == "ok", m.group(3) or "")

    def context(self, lines=25):
        where = "%s (%s)" % (self.label, " ".join(self.args))
        if self.timed_out:
            where += ": timed out after %d s" % SCRIPT_TIMEOUT
        else:
            where += ": exit status %s" % self.returncode
        out = "\n".join(self.stdout.splitlines()[-lines:])
        err = "\n".join(self.stderr.splitlines()[-lines:])
        return "%s\n--- stdout (tail) ---\n%s\n--- stderr (tail) ---\n%s" % (where, out, err)

    def check(self, name):
        """One test result: the script reported `ok NAME`."""
        if name not in self.results:
            pytest.fail("%s never reported check %r\n%s" % (self.label, name, self.context()),
                        pytrace=False)
        passed, detail = self.results[name]
        if not passed:
            pytest.fail("%s: check %s failed: %s" % (self.label, name, detail), pytrace=False)

    def complete(self, expected):
        """The script ran to its end, reported exactly the expected checks
        once each, and its exit status agrees with them."""
        problems = []
        if not self.done:
            problems.append("did not reach its end (%r missing)" % DONE_LINE)
        unknown = sorted(set(self.results) - set(expected))
        if unknown:
            problems.append("reported checks this test does not know: %s" % unknown)
        absent = [n for n in expected if n not in self.results]
        if absent:
            problems.append("did not report: %s" % absent)
        if self.duplicates:
            problems.append("reported twice: %s" % self.duplicates)
        all_ok = all(passed for passed, _ in self.results.values())
        if all_ok and self.returncode != 0:
            problems.append("exit status %s although every check passed" % self.returncode)
        if not all_ok and self.returncode == 0:
            problems.append("exit status 0 although a check failed")
        if problems:
            pytest.fail("%s: %s\n%s" % (self.label, "; ".join(problems), self.context()),
                        pytrace=False)


@pytest.fixture(scope="module")
def run_client(target):
    """run_client(label, args, env=None) -> ScriptRun. args get the
    server's host:port appended; the script's environment carries the
    expectations (Target.env)."""

    def run(label, args, env=None):
        args = [str(a) for a in args] + [target.hostport]
        full_env = target.env()
        # Passes of one module share its server: each keeps to its own keys.
        full_env["CLIENT_KEY_PREFIX"] = re.sub(r"[^A-Za-z0-9]", "_", label) + "_"
        full_env.update(env or {})
        before = target.counters()
        try:
            done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=SCRIPT_TIMEOUT, env=full_env, cwd=HERE)
            stdout, stderr, rc, timed_out = done.stdout, done.stderr, done.returncode, False
        except subprocess.TimeoutExpired as e:
            stdout, stderr, rc, timed_out = e.stdout or b"", e.stderr or b"", None, True
        after = target.counters()
        delta = {name: after[name] - before[name] for name in before}
        return ScriptRun(label, args, stdout.decode("utf-8", "replace"),
                         stderr.decode("utf-8", "replace"), rc, timed_out, delta)

    return run


@pytest.fixture(scope="session")
def build_dir():
    """Where compiled client programs go: STRATA_BUILD_DIR (default
    build/release) + tests/clients/<server>. One directory per server, as
    tools/run-tests.sh runs the suite against several servers at once: a
    javac or go build of one run must not rewrite the classes or the
    program that another run is executing."""
    base = helpers.repo_path(os.environ.get("STRATA_BUILD_DIR", "build/release"))
    path = os.path.join(base, "tests", "clients", helpers.SERVER_KIND)
    os.makedirs(path, exist_ok=True)
    return path


def _compile(args, env=None, what=""):
    try:
        done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=COMPILE_TIMEOUT, env=env, cwd=HERE)
    except subprocess.TimeoutExpired:
        pytest.fail("%s: compiling took over %d s: %s" % (what, COMPILE_TIMEOUT, args),
                    pytrace=False)
    if done.returncode != 0:
        pytest.fail("%s does not compile (%s):\n%s" % (
            what, " ".join(args), (done.stdout + done.stderr).decode("utf-8", "replace")),
            pytrace=False)


@pytest.fixture(scope="session")
def java_classes(need, build_dir):
    """Classpath with the compiled java/*.java and spymemcached."""
    javac = need.executable("javac", "default-jdk-headless")
    need.executable("java", "default-jdk-headless")
    jar = need.file(SPYMEMCACHED_JAR, "libspymemcached-java")
    out = os.path.join(build_dir, "java")
    os.makedirs(out, exist_ok=True)
    sources = sorted(os.path.join(HERE, "java", f)
                     for f in os.listdir(os.path.join(HERE, "java")) if f.endswith(".java"))
    _compile([javac, "-Xlint:all", "-Werror", "-encoding", "UTF-8", "-cp", jar,
              "-d", out] + sources, what="java/*.java")
    return out + os.pathsep + jar


@pytest.fixture(scope="session")
def go_program(need, build_dir):
    """The compiled go/gomemcache_check.go, built offline against Debian's
    gomemcache sources (GOPATH mode; no module proxy, no network)."""
    go = need.executable("go", "golang-go")
    need.file(os.path.join(GOPATH_DEBIAN, "src/github.com/bradfitz/gomemcache/memcache",
                           "memcache.go"), "golang-github-bradfitz-gomemcache-dev")
    out = os.path.join(build_dir, "go")
    os.makedirs(out, exist_ok=True)
    binary = os.path.join(out, "gomemcache_check")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env.update({
        "GO111MODULE": "off",        # GOPATH mode: imports come from GOPATH
        "GOPATH": GOPATH_DEBIAN,
        "GOFLAGS": "",
        "GOPROXY": "off",            # never the network
        "GOENV": "off",              # ignore a user's go env file
        "GOCACHE": os.path.join(out, "cache"),
        "GOTMPDIR": tempfile.gettempdir(),
        "CGO_ENABLED": "0",
    })
    _compile([go, "build", "-o", binary, os.path.join(HERE, "go", "gomemcache_check.go")],
             env=env, what="go/gomemcache_check.go")
    return binary

