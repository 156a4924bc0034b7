"""Fixtures of the cache role's tests: a RedisRolesCache on the shared test Redis."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import caches

from django_redisroles import conf
from django_redisroles.cache import RedisRolesCache
from tests.cache.nearhelp import NEAR, until

BACKEND = "django_redisroles.cache.RedisRolesCache"


@pytest.fixture
def make_cache(settings: Any) -> Callable[..., RedisRolesCache]:
    """``make_cache(TIMEOUT=60, OPTIONS={...})`` -> CACHES["default"] rebuilt with that entry."""

    def make(alias: str = "default", **entry: Any) -> RedisRolesCache:
        entry.setdefault("TIMEOUT", 60)
        settings.CACHES = {**settings.CACHES, alias: {"BACKEND": BACKEND, **entry}}
        return caches[alias]  # type: ignore[return-value]

    return make


@pytest.fixture
def rr_cache(make_cache: Callable[..., RedisRolesCache]) -> RedisRolesCache:
    """The default cache as a RedisRolesCache with TIMEOUT=60."""
    return make_cache()


@pytest.fixture(autouse=True)
def _fresh_outage_log() -> None:
    """Each test sees the first outage warning (rate-limited per process) and no backoff
    left over from another test: what a change of CACHES does (conf's public reset)."""
    conf.reset_all("CACHES")


@pytest.fixture
def near_cache(make_cache: Callable[..., RedisRolesCache]) -> RedisRolesCache:
    """A cache with the near cache on (short heartbeat), its tracking established."""
    cache = make_cache(OPTIONS={"NEAR_CACHE": NEAR})
    cache.get("warm-up")  # starts the listener
    until(lambda: cache.near_stats().tracking)  # type: ignore[union-attr]
    return cache
