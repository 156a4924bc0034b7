"""Stampede-safe cache-aside: 50 concurrent misses run the loader once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from django.core.cache import caches

from django_redisroles.cache import LoaderError, RedisRolesCache, cached, keys
from django_redisroles.cache.flights import ERROR_TTL
from django_redisroles.cache.runner import sharded
from tests.processes import run_released

N = 50


def lock_key(cache: RedisRolesCache, key: str) -> str:
    """The single-flight lock of ``key`` as get_or_set names it on this topology."""
    beside = cache.make_key(key) if sharded(cache.client.get_client()) else None
    return keys.lock_key(cache, key, None, beside)


class Loader:
    """Counts its calls; slow enough that every caller misses while it runs."""

    def __init__(self, value: Any = "fresh", delay: float = 0.3) -> None:
        self.calls = 0
        self.value = value
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        return self.value

    async def acall(self) -> Any:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return self.value


def run_threads(n: int, target: Callable[[], Any]) -> list[Any]:
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = target()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            caches.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    return results


def test_50_threads_missing_one_key_run_the_loader_once(rr_cache: RedisRolesCache) -> None:
    loader = Loader()
    # Each thread gets its own backend instance (Django's caches are per thread).
    results = run_threads(N, lambda: caches["default"].get_or_set("hot", loader, 60))
    assert loader.calls == 1
    assert results == ["fresh"] * N
    assert rr_cache.get("hot") == "fresh"


async def test_50_tasks_missing_one_key_run_the_loader_once(rr_cache: RedisRolesCache) -> None:
    loader = Loader()
    results = await asyncio.gather(
        *(rr_cache.aget_or_set("hot", loader.acall, 60) for _ in range(N))
    )
    assert loader.calls == 1
    assert results == ["fresh"] * N
    assert await rr_cache.aget("hot") == "fresh"


def test_cached_decorator_sync_stampede(rr_cache: RedisRolesCache) -> None:
    loader = Loader()

    @cached(60, key="user:{user_id}")
    def get_user(user_id: int) -> dict[str, Any]:
        loader()
        return {"id": user_id}

    results = run_threads(N, lambda: get_user(7))
    assert loader.calls == 1
    assert results == [{"id": 7}] * N
    assert rr_cache.get("user:7") == {"id": 7}
    assert get_user.key(7) == "user:7"


async def test_cached_decorator_async_stampede(rr_cache: RedisRolesCache) -> None:
    loader = Loader()

    @cached(60)
    async def get_user(user_id: int) -> dict[str, Any]:
        await loader.acall()
        return {"id": user_id}

    results = await asyncio.gather(*(get_user(7) for _ in range(N)))
    assert loader.calls == 1
    assert results == [{"id": 7}] * N
    assert await get_user(8) == {"id": 8}
    assert loader.calls == 2
    assert await get_user.ainvalidate(7) is True
    assert await rr_cache.aget(get_user.key(7)) is None


def test_stale_while_revalidate_one_refreshes_the_rest_get_stale(
    rr_cache: RedisRolesCache,
) -> None:
    rr_cache.get_or_set("k", lambda: "old", timeout=1, stale=30)
    assert 30 <= rr_cache.ttl("k") <= 31  # kept timeout + stale
    time.sleep(1.1)  # past its timeout, inside the stale window
    loader = Loader("new", delay=0.5)
    results = run_threads(
        20, lambda: caches["default"].get_or_set("k", loader, timeout=1, stale=30)
    )
    assert loader.calls == 1
    assert results.count("new") == 1
    assert results.count("old") == 19  # served at once, nobody waited
    assert rr_cache.get("k") == "new"


def test_stale_value_is_served_when_the_refresh_fails(rr_cache: RedisRolesCache) -> None:
    rr_cache.get_or_set("k", lambda: "old", timeout=1, stale=30)
    time.sleep(1.1)

    def broken() -> str:
        raise RuntimeError("database down")

    assert rr_cache.get_or_set("k", broken, timeout=1, stale=30) == "old"


def test_probabilistic_early_refresh_refreshes_before_expiry(
    rr_cache: RedisRolesCache, monkeypatch: Any
) -> None:
    from django_redisroles.cache import stampede

    # The draw U of XFetch fixed at 0.5 (-ln U = 0.69), so the outcome is deterministic.
    monkeypatch.setattr(stampede.random, "random", lambda: 0.5)
    loader = Loader("v", delay=0.05)
    rr_cache.get_or_set("k", loader, timeout=30, early=1.0)
    for _ in range(20):  # 30 s from expiry, a 50 ms loader: no early refresh
        rr_cache.get_or_set("k", loader, timeout=30, early=1.0)
    assert loader.calls == 1
    # A huge beta makes every read a candidate: the next one refreshes early.
    rr_cache.get_or_set("k", loader, timeout=30, early=10_000.0)
    assert loader.calls == 2


def test_a_crashed_lock_holder_only_delays_the_others(
    rr_cache: RedisRolesCache, redis_client: redis.Redis
) -> None:
    # Another process took the lock and died: it expires after 300 ms.
    redis_client.set(lock_key(rr_cache, "k"), "dead-worker", px=300)
    loader = Loader("v", delay=0)
    start = time.monotonic()
    assert rr_cache.get_or_set("k", loader, 60) == "v"
    assert loader.calls == 1
    assert time.monotonic() - start >= 0.25  # it did wait for the lock


def test_the_wait_is_bounded(
    rr_cache: RedisRolesCache, redis_client: redis.Redis, caplog: Any
) -> None:
    redis_client.set(lock_key(rr_cache, "k"), "stuck-worker", px=60_000)
    loader = Loader("v", delay=0)
    assert rr_cache.get_or_set("k", loader, 60, wait=0.2) == "v"
    assert loader.calls == 1
    assert "computing it here" in caplog.text


def test_a_failing_loader_is_shared_briefly_then_loads_again(
    rr_cache: RedisRolesCache, redis_client: redis.Redis
) -> None:
    def broken() -> str:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        rr_cache.get_or_set("k", broken, 60)
    # The lock now holds the failure, for ERROR_TTL at most: callers of the key
    # get it instead of running the loader again one after another.
    lkey = lock_key(rr_cache, "k")
    assert 0 < redis_client.pttl(lkey) <= ERROR_TTL * 1000
    loader = Loader("ok", delay=0)
    with pytest.raises(LoaderError, match="RuntimeError: boom") as info:
        rr_cache.get_or_set("k", loader, 60)
    assert info.value.error_class == "RuntimeError"
    assert loader.calls == 0
    time.sleep(ERROR_TTL + 0.05)
    assert rr_cache.get_or_set("k", loader, 60) == "ok"
    assert loader.calls == 1
    assert redis_client.exists(lkey) == 0


def test_lock_key_is_in_the_namespace_with_a_ttl_but_not_in_iter_keys(
    rr_cache: RedisRolesCache, redis_client: redis.Redis
) -> None:
    seen: dict[str, Any] = {}

    def loader() -> str:
        lk = lock_key(rr_cache, "k")
        seen["lock"] = lk
        seen["pttl"] = redis_client.pttl(lk)
        seen["keys"] = list(rr_cache.iter_keys("*"))
        return "v"

    rr_cache.get_or_set("k", loader, 60)
    assert seen["lock"].startswith(rr_cache.key_prefix + ":")
    assert 0 < seen["pttl"] <= 10_000
    assert seen["keys"] == []
    assert list(rr_cache.iter_keys("*")) == ["k"]


WORKER = """
import time
import django
django.setup()
from django.core.cache import cache
from django_redisroles.connections import get_redis

def loader():
    get_redis("cache").incr("loader-calls")  # counted outside the cache namespace
    time.sleep(0.5)
    return "from one process"

r = get_redis("cache")
cache.get("warm-up")  # connected before the race
r.incr("ready")
while not r.exists("go"):  # everyone starts together
    time.sleep(0.001)
print(cache.get_or_set("hot", loader, 60))
"""


@pytest.mark.slow
def test_processes_missing_one_key_run_the_loader_once(
    redis_server: Any, redis_client: redis.Redis
) -> None:
    """Across processes the single flight is the Redis lock (threads also share in-process)."""
    outputs = run_released(WORKER, 6, redis_server.url(), redis_client)
    assert [out.strip() for out, _ in outputs] == ["from one process"] * 6
    assert int(redis_client.get("loader-calls")) == 1


@pytest.mark.parametrize(
    "option",
    [{"stale": -100}, {"early": -1}, {"lock_timeout": 0}, {"wait": -1}, {"stale": "30"}],
    ids=["stale", "early", "lock_timeout", "wait", "stale-str"],
)
def test_bad_per_call_options_are_a_clear_error(
    rr_cache: RedisRolesCache, option: dict[str, Any]
) -> None:
    # stale=-100 with timeout=60 used to store the value with a negative TTL:
    # deleted at once, so the loader ran on every call.
    (name,) = option
    with pytest.raises(ValueError, match=rf"{name} must be"):
        rr_cache.get_or_set("k", lambda: "v", 60, **option)
    with pytest.raises(ValueError, match=rf"{name} must be"):
        cached(60, **option)
    assert rr_cache.get("k") is None
