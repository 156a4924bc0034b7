"""The cache role's failure policy where it broke: non-Redis services, ACL users, loaders."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.cache import InvalidCacheKey, caches
from redis.backoff import NoBackoff
from redis.retry import Retry

from django_redisroles.cache import LoaderError, cached
from django_redisroles.testing import RedisServer, free_port
from tests.processes import run_released

from .lab import NOSCRIPT_USER, FakeService, add_acl_users, http_service, ssh_service, user_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["http", "ssh"])
def not_redis(request: Any) -> Iterator[FakeService]:
    service = http_service() if request.param == "http" else ssh_service()
    yield service
    service.close()


def test_a_non_redis_service_at_the_url_is_a_miss_not_an_exception(
    not_redis: FakeService, point_roles: Callable[..., None], caplog: Any
) -> None:
    point_roles(not_redis.url())
    cache = caches["default"]
    assert cache.get("k", "default") == "default"
    assert cache.set("k", "v") is False
    assert cache.get_or_set("k", lambda: "computed", 60) == "computed"
    assert "PROTOCOL (outage)" in caplog.text
    assert "does not speak the Redis protocol" in caplog.text


async def test_a_non_redis_service_at_the_url_is_a_miss_async(
    not_redis: FakeService, point_roles: Callable[..., None]
) -> None:
    point_roles(not_redis.url())
    cache = caches["default"]
    assert await cache.aget("k", "default") == "default"
    assert await cache.aset("k", "v") is False
    assert await cache.aget_or_set("k", lambda: "computed", 60) == "computed"


@pytest.fixture
def acl_server(redis_factory: Callable[..., RedisServer]) -> RedisServer:
    server = redis_factory()
    add_acl_users(server)
    return server


def test_incr_without_evalsha_is_refused_loudly_not_made_non_atomic(
    acl_server: RedisServer, point_roles: Callable[..., None], caplog: Any
) -> None:
    point_roles(user_url(acl_server, *NOSCRIPT_USER))
    cache = caches["default"]
    cache.set("n", 0)
    results: list[Any] = []

    def worker() -> None:
        for _ in range(200):
            results.append(cache.incr("n"))

    with caplog.at_level(logging.ERROR, logger="django_redisroles.cache"):
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    # The failure policy (documented): None, and an error saying why. Not a
    # read-modify-write that loses increments without a word.
    assert set(results) == {None}
    assert cache.get("n") == 0
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and "NOPERM (refused)" in errors[0].getMessage()
    assert "ACL" in errors[0].getMessage()


class Loader:
    def __init__(self, error: Callable[[], BaseException]) -> None:
        self.error = error
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        raise self.error()


def _other_redis_error() -> BaseException:
    """A ConnectionError from a Redis that is not the cache's (nothing listens there)."""
    try:
        redis.Redis(port=free_port(), retry=Retry(NoBackoff(), 0)).get("x")
    except redis.exceptions.ConnectionError as exc:
        return exc
    raise AssertionError("expected a ConnectionError")


LOADER_ERRORS: dict[str, Callable[[], BaseException]] = {
    "TimeoutError": lambda: TimeoutError("the loader's own timeout"),
    "redis ConnectionError": _other_redis_error,
}


@pytest.mark.parametrize("error", list(LOADER_ERRORS))
def test_a_loaders_error_is_the_callers_not_a_cache_outage(
    error: str, point_roles: Callable[..., None], redis_server: RedisServer, caplog: Any
) -> None:
    point_roles(redis_server.url())
    cache = caches["default"]
    cache.set("other", "still cached", 60)
    loader = Loader(LOADER_ERRORS[error])
    with pytest.raises(type(LOADER_ERRORS[error]())):
        cache.get_or_set("k", loader, 60)
    assert loader.calls == 1  # not run a second time as the "outage" fallback
    assert "Cache Redis unavailable" not in caplog.text
    assert cache.get("other") == "still cached"  # no OUTAGE_BACKOFF: the cache is fine

    @cached(60, key="decorated")
    def decorated() -> Any:
        return loader()

    with pytest.raises(type(LOADER_ERRORS[error]())):
        decorated()
    assert loader.calls == 2


@pytest.mark.parametrize("error", list(LOADER_ERRORS))
async def test_an_async_loaders_error_is_the_callers(
    error: str, point_roles: Callable[..., None], redis_server: RedisServer, caplog: Any
) -> None:
    point_roles(redis_server.url())
    cache = caches["default"]
    await cache.aset("other", "still cached", 60)
    calls = {"n": 0}

    async def loader() -> Any:
        calls["n"] += 1
        if error == "TimeoutError":
            await asyncio.wait_for(asyncio.sleep(1), 0.01)  # its own timeout
        raise _other_redis_error()

    with pytest.raises(TimeoutError if error == "TimeoutError" else redis.ConnectionError):
        await cache.aget_or_set("k", loader, 60)
    assert calls["n"] == 1
    assert "Cache Redis unavailable" not in caplog.text
    assert await cache.aget("other") == "still cached"

    @cached(60, key="adecorated")
    async def decorated() -> Any:
        return await loader()

    with pytest.raises(TimeoutError if error == "TimeoutError" else redis.ConnectionError):
        await decorated()
    assert calls["n"] == 2


def test_threads_waiting_on_a_failing_loader_get_its_error_at_once(
    point_roles: Callable[..., None], redis_server: RedisServer
) -> None:
    point_roles(redis_server.url())
    cache = caches["default"]
    calls = {"n": 0}
    barrier = threading.Barrier(8)

    def loader() -> str:
        calls["n"] += 1
        time.sleep(0.5)
        raise RuntimeError("database down")

    outcomes: list[str] = []

    def caller() -> None:
        barrier.wait()
        try:
            cache.get_or_set("k", loader, 60)
        except RuntimeError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls["n"] == 1
    assert outcomes == ["database down"] * 8


async def test_tasks_waiting_on_a_failing_loader_get_its_error_at_once(
    point_roles: Callable[..., None], redis_server: RedisServer
) -> None:
    point_roles(redis_server.url())
    cache = caches["default"]
    calls = {"n": 0}

    async def loader() -> str:
        calls["n"] += 1
        await asyncio.sleep(0.5)
        raise RuntimeError("database down")

    results = await asyncio.gather(
        *(cache.aget_or_set("k", loader, 60) for _ in range(8)), return_exceptions=True
    )
    assert calls["n"] == 1
    assert [str(r) for r in results] == ["database down"] * 8


WORKER = """
import json, threading, time
import django
django.setup()
from django.core.cache import cache
from django_redisroles.connections import get_redis

# The cache role's own client: a plain, cluster or Sentinel client, as $REDIS_URL says.
r = get_redis("cache")
r.incr("ready")
while not r.get("go"):
    time.sleep(0.005)

def loader():
    r.incr("loader-calls")
    time.sleep(0.5)
    raise RuntimeError("database down")

out = []
def caller():
    started = time.monotonic()
    try:
        cache.get_or_set("hot", loader, 60)
        out.append(["ok", time.monotonic() - started])
    except Exception as exc:
        out.append([type(exc).__name__, time.monotonic() - started])

threads = [threading.Thread(target=caller) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(out))
"""


@pytest.mark.slow
def test_a_failing_loader_is_not_a_queue_across_processes(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    """3 processes x 8 threads, a loader that fails after 0.5 s: it runs once, every
    caller gets the failure, none waits for a queue of loaders run one after another."""
    outputs = run_released(WORKER, 3, redis_server.url(), redis_client)
    results = [row for out, _ in outputs for row in json.loads(out)]
    assert len(results) == 24
    assert int(redis_client.get("loader-calls")) == 1
    # The process that ran it: RuntimeError; the others: LoaderError, as soon as it failed.
    assert {name for name, _ in results} == {"RuntimeError", "LoaderError"}
    assert sum(1 for name, _ in results if name == "RuntimeError") == 8
    # Before: 24 runs one after another, 10 s for the last caller. A bound, not a benchmark.
    assert max(seconds for _, seconds in results) < 5


def test_loader_error_names_the_original(point_roles: Callable[..., None], redis_server: Any):
    point_roles(redis_server.url())
    cache = caches["default"]
    with pytest.raises(ValueError):
        cache.get_or_set("k", Loader(lambda: ValueError("bad row 7")), 60)
    with pytest.raises(LoaderError) as info:
        cache.get_or_set("k", lambda: "never called", 60)
    assert info.value.error_class == "ValueError"
    assert info.value.message == "bad row 7"


LONE_SURROGATE = "user:\ud800"


def test_a_key_with_a_lone_surrogate_is_a_clear_key_error(
    point_roles: Callable[..., None], redis_server: Any
) -> None:
    point_roles(redis_server.url())
    cache = caches["default"]
    for call in (
        lambda: cache.get(LONE_SURROGATE),
        lambda: cache.set(LONE_SURROGATE, 1),
        lambda: cache.get_or_set(LONE_SURROGATE, lambda: 1, 60),
        lambda: cache.delete(LONE_SURROGATE),
    ):
        with pytest.raises(InvalidCacheKey, match="lone surrogate"):
            call()


async def test_a_key_with_a_lone_surrogate_is_a_clear_key_error_async(
    point_roles: Callable[..., None], redis_server: Any
) -> None:
    point_roles(redis_server.url())
    with pytest.raises(InvalidCacheKey, match="lone surrogate"):
        await caches["default"].aget(LONE_SURROGATE)
