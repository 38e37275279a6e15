"""Fixtures for the pgcheckd integration tests (see cluster.py for what they start).

- `cluster`: function-scoped, for tests that change state: a PostgreSQL primary + 2 streaming replicas,
  one pgcheckd per node and HAProxy running conf/haproxy.cfg (ports substituted). Per-test pgcheckd
  settings: @pytest.mark.cluster_conf(pgcheckd={node index: {section: {key: value}}}, common={...}).
- `shared_cluster`: the same, session-scoped, for tests that only read (they must leave it as they found it).

When a test fails, the tails of the pgcheckd, HAProxy and PostgreSQL logs are added to its report.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster as cl  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "cluster_conf(pgcheckd=None, common=None, replicas=2, haproxy=True, pg_env=None): how the function-scoped "
        "`cluster` fixture is built (pgcheckd: {node index: {section: {key: value}}}; common: {section: {key: value}} "
        "for every node; replicas: how many; haproxy: False to run without HAProxy; pg_env: {node index: {VAR: "
        "value}} added to that PostgreSQL's environment, e.g. cluster.faketime_env('-60s'))")


def require_pgcheckd():
    if not os.access(cl.PGCHECKD_BIN, os.X_OK):
        pytest.fail(f"pgcheckd binary not found or not executable: {cl.PGCHECKD_BIN} "
                    f"(build it with `make`, or point PGCHECKD_BIN at it)", pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    for name, value in getattr(item, "funcargs", {}).items():
        if isinstance(value, cl.Cluster) and not value.closed:
            rep.sections.append((f"logs of fixture '{name}' ({rep.when})", value.logs()))


def _make_cluster(pgcheckd=None, common=None, replicas=2, haproxy=True, pg_env=None):
    require_pgcheckd()
    return cl.Cluster(replicas=replicas, pgcheckd_conf=pgcheckd, pgcheckd_common=common,
                      pg_env=pg_env).start(haproxy=haproxy)


@pytest.fixture(scope="session")
def shared_cluster():
    """A cluster for tests that only read; do not change its state."""
    c = _make_cluster()
    yield c
    c.close()


@pytest.fixture
def cluster(request):
    """A fresh cluster for one test, which may change anything in it."""
    marker = request.node.get_closest_marker("cluster_conf")
    kw = marker.kwargs if marker else {}
    c = _make_cluster(**kw)
    yield c
    c.close()


_REPORT_KEY = pytest.StashKey[list]()


@pytest.fixture
def report(request):
    """report(msg): print msg now (with -s) and again in the terminal summary (timings live here,
    never in assertions)."""
    lines = request.config.stash.setdefault(_REPORT_KEY, [])

    def say(msg):
        line = f"{request.node.name}: {msg}"
        lines.append(line)
        print(line)
    return say


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    lines = config.stash.get(_REPORT_KEY, [])
    if lines:
        terminalreporter.section("pgcheckd integration measurements")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
def pgcheckd_bin():
    require_pgcheckd()
    return cl.PGCHECKD_BIN
