"""Fixtures: real redis-server processes on free loopback ports.

A session-wide server is started before any test (its URL becomes $REDIS_URL,
the default of every role) and flushed before each test. ``redis_factory``
starts more servers for one test (separate instances per role, fault tests);
each is killed and its directory removed when the test ends.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from django_redisroles import connections
from django_redisroles.testing import RedisServer, RedisServerNotFound, redis_server_bin

_server: RedisServer | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _server
    try:
        redis_server_bin()
    except RedisServerNotFound as exc:
        # Never skip: a suite that cannot reach Redis tests nothing.
        raise pytest.UsageError(str(exc)) from None
    _server = RedisServer().start()
    os.environ["REDIS_URL"] = _server.url()
    for role in ("CACHE", "SESSIONS", "RATELIMIT", "PUBSUB", "LOCKS"):
        os.environ.pop(f"REDIS_{role}_URL", None)


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
        server = RedisServer(**kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.cleanup()
    connections.reset()
