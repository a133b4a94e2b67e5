"""Fixtures for Strata's integration tests (see README.md in this folder).

- server: one session-wide server with the default command line, for plain
  protocol tests (or the external daemon of STRATA_TEST_ADDR).
- server_factory: starts a private server with extra flags; private_server:
  a default server for one module. Both skip the test when STRATA_TEST_ADDR
  points at an external daemon.
- conn: a fresh connection to the session server, checked at teardown to be
  still in sync (the next reply is exactly the `version` line).
- bystander: a connection opened before the test, for "another connection
  still works" checks after bad input.

A test whose tool or library is missing skips, or fails under CI=true
(strata_deps.py; its report hooks are imported here).
"""

import pytest

pytest.register_assert_rewrite("helpers")

import helpers  # noqa: E402
from strata_deps import pytest_make_collect_report, pytest_runtest_makereport  # noqa: E402,F401

helpers.raise_nofile_limit()


def pytest_collection_modifyitems(config, items):
    """Through the router, the tests router_known.py lists are skipped
    with their reason."""
    if not helpers.IS_ROUTER:
        return
    from router_known import KNOWN
    for item in items:
        test_id = item.nodeid.split("/")[-1]
        if test_id in KNOWN:
            item.add_marker(pytest.mark.skip(reason="routing mode: " + KNOWN[test_id]))


def pytest_report_header(config):
    addr = helpers.external_addr()
    where = "external daemon %s:%d" % addr if addr else helpers.server_binary()
    return "strata integration: STRATA_TEST_SERVER=%s (%s)" % (helpers.SERVER_KIND, where)


@pytest.fixture(scope="session")
def server():
    addr = helpers.external_addr()
    if addr:
        yield helpers.Server.external(addr)
        return
    srv = helpers.Server().start()
    try:
        yield srv
    finally:
        srv.stop()


def start_private_server(extra_args=(), memory_mb=64):
    if helpers.external_addr():
        pytest.skip("needs a server of its own; not possible with STRATA_TEST_ADDR")
    return helpers.Server(extra_args, memory_mb=memory_mb).start()


@pytest.fixture
def server_factory():
    """start(*flags, memory_mb=64): a server of the test's own, stopped after it."""
    started = []

    def start(*extra_args, memory_mb=64):
        started.append(start_private_server(extra_args, memory_mb))
        return started[-1]

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture(scope="module")
def private_server():
    """A default server shared by one module only, for tests that empty the
    whole cache or reset counters."""
    srv = start_private_server()
    yield srv
    srv.stop()


@pytest.fixture
def conn(server):
    c = server.connect()
    yield c
    try:
        # Still in sync: nothing unexpected was left unread. (Tests that
        # close a connection on purpose open their own.)
        assert c.version() == helpers.expected_version_line(), \
            "connection out of sync at the end of the test"
    finally:
        c.close()


@pytest.fixture
def bystander(server):
    c = server.connect()
    assert c.version() == helpers.expected_version_line()
    yield c
    c.close()


@pytest.fixture
def key(request):
    return helpers.unique_key(request)
