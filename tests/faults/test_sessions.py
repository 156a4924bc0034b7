"""The sessions role where it broke: OOM and MASTERDOWN were 500s; logout_everywhere raced."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.serializers import JSONSerializer
from django.test import AsyncClient, Client

from django_redisroles.sessions import SessionStore, logout_everywhere, user_sessions
from django_redisroles.testing import RedisServer, free_port

from .lab import FakeService, http_service, ssh_service

PASSWORD = "correct horse"


@pytest.fixture
def user(db: Any) -> Any:
    return get_user_model().objects.create_user("alice", password=PASSWORD)


@pytest.fixture
def async_user(transactional_db: Any) -> Any:
    """The user, for async views (they run outside the test's transaction)."""
    return get_user_model().objects.create_user("alice", password=PASSWORD)


@pytest.fixture
def site(settings: Any, point_roles: Callable[..., None], victim: RedisServer) -> RedisServer:
    settings.ROOT_URLCONF = "tests.faults.urls"
    point_roles(victim.url())
    return victim


def browser() -> Client:
    return Client(raise_request_exception=False)


def log_in(client: Client | AsyncClient) -> str:
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200, response.content
    return client.cookies["sessionid"].value


def assert_503(response: Any) -> None:
    assert response.status_code == 503, response.content[:300]
    assert response["Retry-After"] == "5"
    assert "sessionid" not in response.cookies  # the cookie is neither replaced nor deleted


@pytest.fixture
def full(site: RedisServer) -> Iterator[RedisServer]:
    """maxmemory reached under noeviction: writes refused (OOM), reads served."""
    yield site
    with site.client() as admin:
        admin.config_set("maxmemory", 0)


def fill(server: RedisServer) -> None:
    with server.client() as admin:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)


def test_oom_writes_are_503_reads_still_work(full: RedisServer, user: Any) -> None:
    client = browser()
    cookie = log_in(client)
    fill(full)
    response = client.get("/session/")
    assert response.status_code == 200 and response.json()["user"] == "alice"
    assert_503(client.get("/session/write/"))  # saving a modified session
    assert_503(browser().post("/login/", {"username": "alice", "password": PASSWORD}))
    with full.client() as admin:
        admin.config_set("maxmemory", 0)
    assert client.get("/session/").json()["user"] == "alice"  # nothing lost
    assert client.cookies["sessionid"].value == cookie


async def test_oom_async_writes_are_503(full: RedisServer, async_user: Any) -> None:
    client = AsyncClient(raise_request_exception=False)
    response = await client.post("/alogin/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    fill(full)
    assert (await client.get("/asession/")).status_code == 200
    assert_503(await client.get("/asession/write/"))
    assert_503(
        await AsyncClient(raise_request_exception=False).post(
            "/alogin/", {"username": "alice", "password": PASSWORD}
        )
    )


def test_a_replica_without_its_primary_is_503(site: RedisServer, user: Any) -> None:
    client = browser()
    log_in(client)
    with site.client() as admin:
        admin.config_set("replica-serve-stale-data", "no")
        admin.replicaof("127.0.0.1", free_port())  # its primary is gone: MASTERDOWN
    try:
        assert_503(client.get("/session/"))
    finally:
        with site.client() as admin:
            admin.replicaof("NO", "ONE")
    assert client.get("/session/").json()["user"] == "alice"


@pytest.fixture(params=["http", "ssh"])
def not_redis(request: Any) -> Iterator[FakeService]:
    service = http_service() if request.param == "http" else ssh_service()
    yield service
    service.close()


def test_a_non_redis_service_at_the_url_is_503(
    settings: Any, point_roles: Callable[..., None], not_redis: FakeService
) -> None:
    settings.ROOT_URLCONF = "tests.faults.urls"
    point_roles(not_redis.url())
    client = browser()
    client.cookies["sessionid"] = "a" * 32
    assert_503(client.get("/session/"))


class HookedSerializer(JSONSerializer):
    """JSON, plus a hook run once the first time logout_everywhere reads a session."""

    hook: Callable[[], None] | None = None

    def loads(self, data: bytes) -> Any:
        hook, HookedSerializer.hook = HookedSerializer.hook, None
        if hook is not None:
            hook()
        return super().loads(data)


def test_logout_everywhere_ends_a_session_whose_key_changes_meanwhile(
    site: RedisServer, user: Any, settings: Any
) -> None:
    settings.SESSION_SERIALIZER = "tests.faults.test_sessions.HookedSerializer"
    client = browser()
    first = log_in(client)
    other = browser()
    log_in(other)
    moved: list[str] = []

    def concurrent_cycle_key() -> None:
        # Another request of that browser: login() or update_session_auth_hash()
        # moves its session to a new key while logout_everywhere is between
        # reading the index and deleting.
        def run() -> None:
            store = SessionStore(first)
            store.load()
            store.cycle_key()
            moved.append(store.session_key)

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()

    HookedSerializer.hook = concurrent_cycle_key
    keep = other.cookies["sessionid"].value
    ended = logout_everywhere(user, keep=keep)
    assert moved and moved[0] != first
    assert not SessionStore().exists(moved[0])  # not surviving under its new key
    assert [s.session_key for s in user_sessions(user)] == [keep]
    assert ended == 1
