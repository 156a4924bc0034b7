"""Fixtures of the sessions role's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis.asyncio.connection
import redis.cluster
import redis.connection
from django.contrib.auth import get_user_model
from django.test import Client

from django_redisroles import conf
from django_redisroles.sessions import keys as session_keys

PASSWORD = "correct horse"


class RoundTrips:
    """Counts requests the redis-py connections send (a pipeline or a command is one)."""

    def __init__(self) -> None:
        self.count = 0
        self.sync = 0
        self.async_ = 0

    def reset(self) -> None:
        self.count = self.sync = self.async_ = 0


# Sent once per new connection (or to learn a cluster's slot map), not per request:
# a cluster opens a connection per node, so a request may be the first on its node.
_SETUP = (b"CLIENT", b"HELLO", b"PING", b"READONLY", b"CLUSTER", b"COMMAND", b"AUTH", b"SELECT")


def _setup(command: Any) -> bool:
    first = command if isinstance(command, bytes | str) else b"".join(command[:1])
    head = first.encode() if isinstance(first, str) else first
    return any(b"\r\n" + word + b"\r\n" in head[:64].upper() for word in _SETUP)


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    """Observe (not alter) every request written to Redis by this process."""
    counter = RoundTrips()
    original = redis.connection.AbstractConnection.send_packed_command

    def send_packed_command(self, command, check_health=True):  # type: ignore[no-untyped-def]
        if not _setup(command):
            counter.count += 1
            counter.sync += 1
        return original(self, command, check_health)

    monkeypatch.setattr(
        redis.connection.AbstractConnection, "send_packed_command", send_packed_command
    )
    async_original = redis.asyncio.connection.AbstractConnection.send_packed_command

    async def asend_packed_command(self, command, check_health=True):  # type: ignore[no-untyped-def]
        if not _setup(command):
            counter.count += 1
            counter.async_ += 1
        return await async_original(self, command, check_health)

    monkeypatch.setattr(
        redis.asyncio.connection.AbstractConnection, "send_packed_command", asend_packed_command
    )
    return counter


@pytest.fixture
def user(db):  # type: ignore[no-untyped-def]
    return get_user_model().objects.create_user("alice", password=PASSWORD)


@pytest.fixture
def async_user(transactional_db):  # type: ignore[no-untyped-def]
    """The user, for async tests (views run in threads: no wrapping transaction)."""
    return get_user_model().objects.create_user("alice", password=PASSWORD)


@pytest.fixture
def browser() -> Callable[..., Client]:
    """A test client that looks like a browser on a given address."""

    def make(ip: str = "127.0.0.1", ua: str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"):
        return Client(REMOTE_ADDR=ip, HTTP_USER_AGENT=ua, raise_request_exception=False)

    return make


def login(client: Client, username: str = "alice", password: str = PASSWORD) -> None:
    """Log in through the real login page (signals, cycle_key, middleware save)."""
    response = client.post(
        "/accounts/login/", {"username": username, "password": password, "next": "/sessions/"}
    )
    assert response.status_code == 302, response.content[:500]
    assert response["Location"] == "/sessions/"


def session_redis_key(session_key: str) -> str:
    """The Redis key of a session, as the store names it on this topology."""
    return session_keys.session_key_name(session_key)


def index_redis_key(user_pk: object) -> str:
    return session_keys.index_key_name(user_pk)


def meta_redis_key(user_pk: object) -> str:
    return session_keys.meta_key_name(user_pk)


def all_keys(client: redis.Redis, pattern: str = "*") -> list[bytes]:
    """Every key matching ``pattern``, sorted: SCAN (on a cluster, of every master)."""
    return sorted(client.scan_iter(match=pattern))


@pytest.fixture
def sessions_keys(redis_client: redis.Redis) -> Iterator[Callable[[], list[bytes]]]:
    yield lambda: all_keys(redis_client, conf.make_key("sessions", "*"))


def command_stats(client: redis.Redis) -> dict[str, Any]:
    """``INFO commandstats``, summed over every master on a cluster."""
    if not isinstance(client, redis.cluster.RedisCluster):
        return dict(client.info("commandstats"))
    total: dict[str, Any] = {}
    for info in client.info("commandstats", target_nodes=client.PRIMARIES).values():
        for name, stat in info.items():
            total.setdefault(name, {"calls": 0})["calls"] += stat["calls"]
    return total


def reset_stats(client: redis.Redis) -> None:
    if isinstance(client, redis.cluster.RedisCluster):
        client.config_resetstat(target_nodes=client.PRIMARIES)
    else:
        client.config_resetstat()
