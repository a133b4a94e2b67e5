"""Missing test dependencies: a skip locally, a failure under CI.

A test that needs a tool or library the machine lacks (collectd, the
libmemcached tools, pymemcache, the lmc_test binaries) calls require_tool,
require_module or require_file. Locally that skips the test, with a reason
starting with MISSING_DEPENDENCY and naming the Debian package to install.
With CI=true in the environment it fails the test instead: CI installs
every dependency (tools/install-deps.sh test), so a missing one means the
suite did not test what it claims to.

The report hooks below apply the same rule to dependency skips raised
elsewhere (pytest.importorskip, or a file that still calls pytest.skip with
"... not built" / "... not installed"). Skips for other reasons (an external
daemon via STRATA_TEST_ADDR, strata-only flags on memcached) are untouched.

conftest.py imports the hooks; tools/run-tests.sh also loads this module as
a plugin (-p strata_deps) for test directories with a conftest of their own.
"""

import importlib
import os
import re
import shutil

import pytest

MISSING_DEPENDENCY = "missing dependency: "

# Skip reasons that mean "a dependency is missing": this module's own, and
# those of pytest.importorskip and of older pytest.skip calls in the suite.
DEPENDENCY_REASON = re.compile(
    r"(^|Skipped: )%s|could not import|\bnot built\b|\bnot installed\b"
    % re.escape(MISSING_DEPENDENCY))


def strict():
    """True under CI (CI=true): a missing dependency is a failure."""
    return os.environ.get("CI", "").lower() == "true"


def missing(what, how):
    """Skip (locally) or fail (CI=true) because `what` is missing; `how`
    says how to get it."""
    reason = "%s%s (%s)" % (MISSING_DEPENDENCY, what, how)
    if strict():
        pytest.fail("CI=true: " + reason, pytrace=False)
    pytest.skip(reason)


def require_tool(*names, package):
    """Path of the first of `names` found on PATH (or given as an absolute
    path that is executable)."""
    for name in names:
        path = name if os.path.isabs(name) else shutil.which(name)
        if path and os.access(path, os.X_OK):
            return path
    missing(" or ".join(names), "apt-get install " + package)


def require_module(name, package):
    """The imported Python module `name`."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        missing("Python module %s: %s" % (name, e), "apt-get install " + package)


def require_file(path, how):
    """`path` if it is an executable file (a binary the build makes)."""
    if os.access(path, os.X_OK) and os.path.isfile(path):
        return path
    missing(path, how)


def is_dependency_skip(report):
    """Whether a skipped report's reason says a dependency is missing."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return bool(DEPENDENCY_REASON.search(reason)), reason


def fail_dependency_skip(report):
    """Under CI=true, turn a dependency skip into a failure (in place)."""
    if not (strict() and report.skipped) or hasattr(report, "wasxfail"):
        return
    is_dep, reason = is_dependency_skip(report)
    if is_dep:
        report.outcome = "failed"
        report.longrepr = "CI=true: a missing dependency fails the test: " + reason


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    fail_dependency_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    # A module-level importorskip skips the whole file at collection.
    outcome = yield
    fail_dependency_skip(outcome.get_result())
