"""``cache.stats()``: hits, misses, loads and outages, per alias and process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from django.core.cache import caches

from django_redisroles.cache import CacheStats, RedisRolesCache, cached

from .test_stampede import run_threads


def fresh(make_cache: Callable[..., RedisRolesCache], **entry: Any) -> RedisRolesCache:
    cache = make_cache(**entry)
    cache.reset_stats()
    return cache


def test_reads_count_hits_and_misses(make_cache: Callable[..., RedisRolesCache]) -> None:
    cache = fresh(make_cache)
    cache.set("a", 1)
    assert cache.get("a") == 1
    assert cache.get("nope") is None
    assert cache.get_many(["a", "b", "c"]) == {"a": 1}
    stats = cache.stats()
    assert isinstance(stats, CacheStats)
    assert (stats.hits, stats.misses, stats.loads, stats.outages) == (2, 3, 0, 0)
    assert stats.lookups == 5 and stats.hit_ratio == 0.4
    assert stats.as_dict()["layer"] == "redis"


async def test_async_reads_count_too(make_cache: Callable[..., RedisRolesCache]) -> None:
    cache = fresh(make_cache)
    await cache.aset("a", 1)
    assert await cache.aget("a") == 1
    assert await cache.aget("nope") is None
    assert await cache.aget_many(["a", "b"]) == {"a": 1}
    assert await cache.aget_or_set("c", lambda: 3) == 3  # a miss and a load
    assert await cache.aget_or_set("c", lambda: 4) == 3  # a hit
    s = cache.stats()
    assert (s.hits, s.misses, s.loads) == (3, 3, 1)


def test_stats_are_shared_by_the_threads_of_one_alias(
    make_cache: Callable[..., RedisRolesCache],
) -> None:
    cache = fresh(make_cache)
    cache.set("k", 1)

    def read() -> None:
        for _ in range(100):
            caches["default"].get("k")  # each thread gets its own backend instance

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Exact under concurrency, whichever thread's instance counted.
    assert cache.stats().hits == 800


def test_aliases_count_apart(make_cache: Callable[..., RedisRolesCache]) -> None:
    first = fresh(make_cache)
    other = fresh(make_cache, alias="other", KEY_PREFIX="other")
    first.get("x")
    assert first.stats().misses == 1
    assert other.stats().misses == 0


def test_a_stampede_is_many_misses_and_one_load(
    make_cache: Callable[..., RedisRolesCache],
) -> None:
    cache = fresh(make_cache)
    calls = []

    def slow() -> str:
        calls.append(1)
        time.sleep(0.3)
        return "v"

    results = run_threads(50, lambda: caches["default"].get_or_set("hot", slow, 60))
    assert results == ["v"] * 50 and len(calls) == 1
    s = cache.stats()
    assert (s.misses, s.loads) == (50, 1)


def test_cached_counts_its_loads(make_cache: Callable[..., RedisRolesCache]) -> None:
    cache = fresh(make_cache)

    @cached(60)
    def square(n: int) -> int:
        return n * n

    assert [square(2), square(2), square(3)] == [4, 4, 9]
    s = cache.stats()
    assert (s.hits, s.misses, s.loads) == (1, 2, 2)


def test_an_outage_counts_misses_and_outages(
    make_cache: Callable[..., RedisRolesCache], redis_factory: Any
) -> None:
    server = redis_factory()
    cache = fresh(make_cache, LOCATION=server.url())
    server.kill()
    assert cache.get("k") is None  # Redis refused: the failure policy's miss
    assert cache.get("k") is None  # OUTAGE_BACKOFF: not even tried
    assert cache.set("k", 1) is False
    assert cache.get_or_set("k", lambda: "computed") == "computed"
    s = cache.stats()
    assert (s.hits, s.misses, s.loads, s.outages) == (0, 3, 1, 4)


def test_reset_stats(make_cache: Callable[..., RedisRolesCache]) -> None:
    cache = fresh(make_cache)
    cache.get("x")
    cache.reset_stats()
    assert cache.stats() == CacheStats(0, 0, 0, 0)
