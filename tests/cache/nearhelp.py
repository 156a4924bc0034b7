"""Helpers of the near cache's tests (test_near.py, test_near_local.py); the
``near_cache`` fixture is in conftest.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django_redisroles.cache import RedisRolesCache

NEAR = {"HEARTBEAT": 0.1, "MAX_LAG": 0.3}


def until(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError("condition not met in time")


def near_hit(cache: RedisRolesCache, key: str) -> Any:
    """The value, asserting it came from the near cache."""
    before = cache.near_stats().hits  # type: ignore[union-attr]
    value = cache.get(key)
    assert cache.near_stats().hits == before + 1  # type: ignore[union-attr]
    return value


def filled(cache: RedisRolesCache, key: str, value: Any) -> None:
    """Write ``value``, then read until it is served from the near cache (the
    invalidation of this very write, coming back from Redis, may drop the first fill)."""
    cache.set(key, value)
    until(lambda: served(cache, key, value))


def served(cache: RedisRolesCache, key: str, value: Any) -> bool:
    """Whether a read of ``key`` (asserted to give ``value``) was a near-cache hit."""
    before = cache.near_stats().hits  # type: ignore[union-attr]
    assert cache.get(key) == value
    return cache.near_stats().hits > before  # type: ignore[union-attr]
