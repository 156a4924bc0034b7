"""Fixtures of the sessions role's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis.asyncio.connection
import redis.connection
from django.contrib.auth import get_user_model
from django.test import Client

from django_redisroles import conf

PASSWORD = "correct horse"


class RoundTrips:
    """Counts requests the redis-py connections send (a pipeline or a command is one)."""

    def __init__(self) -> None:
        self.count = 0
        self.sync = 0
        self.async_ = 0

    def reset(self) -> None:
        self.count = self.sync = self.async_ = 0


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    """Observe (not alter) every request written to Redis by this process."""
    counter = RoundTrips()
    original = redis.connection.AbstractConnection.send_packed_command

    def send_packed_command(self, command, check_health=True):  # type: ignore[no-untyped-def]
        counter.count += 1
        counter.sync += 1
        return original(self, command, check_health)

    monkeypatch.setattr(
        redis.connection.AbstractConnection, "send_packed_command", send_packed_command
    )
    async_original = redis.asyncio.connection.AbstractConnection.send_packed_command

    async def asend_packed_command(self, command, check_health=True):  # type: ignore[no-untyped-def]
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
    return conf.make_key("sessions", "s", session_key)


@pytest.fixture
def sessions_keys(redis_client: redis.Redis) -> Iterator[Callable[[], list[bytes]]]:
    yield lambda: sorted(redis_client.keys(conf.make_key("sessions", "*")))
