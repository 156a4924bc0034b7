"""Django's ``BaseCacheTests`` (from the installed version's sdist) on RedisRolesCache.

Imported only by ``tests/cache/django_suite.py`` after ``django.setup()``,
with the sdist's ``tests/`` directory on ``sys.path``. Nothing of Django's is
copied here: the class below inherits every test and changes only the ones
that write ``timeout=None``, which must get the documented TimeoutRequired
instead (and pass unchanged when the cache opts out with ALLOW_NO_TIMEOUT).
"""

from __future__ import annotations

import os
import time
from typing import Any

from asgiref.sync import async_to_sync
from cache.tests import BaseCacheTests, caches_setting_for_tests  # type: ignore[import-not-found]
from django.core.cache import cache
from django.test import TestCase, override_settings

from django_redisroles.cache import RedisRolesCache, TimeoutRequired
from django_redisroles.cache.options import BACKEND_PATH

# Redis evicts by itself: no culling caches (as Django's own RedisCacheTests).
EXCLUDED = {"cull", "zero_cull"}

#: REDISROLES_SUITE_NEAR=1: the whole suite again with the near cache on (its
#: heartbeat short, so that a test's reads go through it soon after a settings change).
NEAR = os.environ.get("REDISROLES_SUITE_NEAR") == "1"
OPTIONS: dict[str, Any] = {"NEAR_CACHE": {"HEARTBEAT": 0.05, "MAX_LAG": 0.5}} if NEAR else {}

CACHES = caches_setting_for_tests(
    base={"BACKEND": BACKEND_PATH}, exclude=EXCLUDED, OPTIONS=dict(OPTIONS)
)
CACHES_ALLOWING_NO_TIMEOUT = caches_setting_for_tests(
    base={"BACKEND": BACKEND_PATH},
    exclude=EXCLUDED,
    OPTIONS={**OPTIONS, "ALLOW_NO_TIMEOUT": True},
)


def _tracking(aliases: Any) -> None:
    """With the near cache on: wait until each alias's listener serves copies."""
    from django.core.cache import caches

    if not NEAR:
        return
    for alias in aliases:
        cache = caches[alias]
        deadline = time.monotonic() + 10
        while not (cache.near is not None and cache.near.tracking()):
            if time.monotonic() > deadline:
                raise AssertionError(f"near cache of {alias!r}: no tracking")
            cache.get("-", near=True)
            time.sleep(0.005)


#: Django tests that write keys with timeout=None, and the key each refuses first.
NO_TIMEOUT_TESTS = {"test_forever_timeout": "key1", "test_has_key": "no_expiry"}


def _documented_error_instead(name: str, key: str) -> Any:
    original = getattr(BaseCacheTests, name)

    def test(self: TestCase) -> None:
        # Default: the timeout=None write is refused with the documented error...
        with self.assertRaisesRegex(TimeoutRequired, f"'{key}': every cache key needs a TTL"):
            original(self)
        self.assertIsNone(cache.get(key))
        cache.clear()
        # ... and with the documented opt-out, Django's test passes unchanged.
        with self._allow_no_timeout():
            original(self)
            cache.clear()

    test.__name__ = name
    test.__doc__ = f"{name}: TimeoutRequired by default; Django's semantics with ALLOW_NO_TIMEOUT."
    return test


@override_settings(CACHES=CACHES)
class RedisRolesCacheDjangoTests(BaseCacheTests, TestCase):
    """Every BaseCacheTests test against RedisRolesCache on a real Redis."""

    def _allow_no_timeout(self) -> Any:
        return override_settings(CACHES=CACHES_ALLOWING_NO_TIMEOUT)

    def setUp(self) -> None:
        super().setUp()
        _tracking(CACHES)

    def tearDown(self) -> None:
        super().tearDown()
        # Django's tearDown clears "default"; the other caches have their own namespaces.
        from django.core.cache import caches

        for alias in CACHES:
            caches[alias].clear()

    for _name, _key in NO_TIMEOUT_TESTS.items():
        locals()[_name] = _documented_error_instead(_name, _key)
    del _name, _key


class AsyncBridgeCache(RedisRolesCache):
    """Test-only: each sync method runs the native ``a*`` method in an event loop.

    Lets Django's (sync) suite check that aget/aset/... keep Django's cache API
    semantics. Each call gets a fresh loop, so a fresh pooled async client too.
    """

    def _bridge(name: str) -> Any:  # type: ignore[misc]
        def method(self: AsyncBridgeCache, *args: Any, **kwargs: Any) -> Any:
            return async_to_sync(getattr(self, f"a{name}"))(*args, **kwargs)

        method.__name__ = name
        return method

    for _op in (
        "get",
        "get_many",
        "has_key",
        "set",
        "add",
        "set_many",
        "touch",
        "delete",
        "delete_many",
        "clear",
        "incr",
        "decr",
        "incr_version",
        "decr_version",
        "get_or_set",
    ):
        locals()[_op] = _bridge(_op)
    del _op, _bridge


ASYNC_BRIDGE = "tests.cache.suite_cases.AsyncBridgeCache"


@override_settings(
    CACHES=caches_setting_for_tests(
        base={"BACKEND": ASYNC_BRIDGE}, exclude=EXCLUDED, OPTIONS=dict(OPTIONS)
    )
)
class AsyncRedisRolesCacheDjangoTests(RedisRolesCacheDjangoTests):
    """The same suite through aget/aset/... (native redis.asyncio)."""

    def _allow_no_timeout(self) -> Any:
        return override_settings(
            CACHES=caches_setting_for_tests(
                base={"BACKEND": ASYNC_BRIDGE},
                exclude=EXCLUDED,
                OPTIONS={**OPTIONS, "ALLOW_NO_TIMEOUT": True},
            )
        )
