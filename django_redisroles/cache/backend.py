"""``RedisRolesCache``: the cache role's ``CACHES`` backend, the Django API.

Built on django-redis's ``RedisCache`` (so ``cache.ttl()``, ``lock()``,
``iter_keys()``, ``delete_pattern()``, ``get_redis_connection()`` ... keep
working) with the cache role's guarantees on top: every key has a TTL,
``clear()`` touches only this cache's namespace, ``get_or_set()`` is
stampede-safe, large values are flagged, and the ``a*`` methods are native
``redis.asyncio`` calls on the cache role's pooled async client.

Each sync method sits beside its async twin and both run the same plan
(``ops``): the sync one through the django-redis client (``client.py``, so a
``CLIENT_CLASS`` subclass sees every call), the async one directly. Around
them, the failure policy (``policy.fail_open``) and the counters. ``get`` and
``aget`` are the hot path, inlined.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT, default_key_func
from django_redis.cache import RedisCache

from . import layers, ops, stampede, tracking
from .client import FACTORY_PATH, ROLE_LOCATION, RedisRolesClient
from .extras import DjangoRedisExtras
from .keys import Namespace, default_key_prefix
from .layers import forgets
from .near import ENCODED, NearCache, NearStats
from .options import BACKEND_PATH, resolve
from .policy import (
    CACHE_ERRORS,
    CachePolicy,
    CacheValueTooLarge,
    OutageLogger,
    TimeoutRequired,
    afail_open,
    fail_open,
)
from .runner import Plan, arun
from .stats import CacheStats, counters_for, snapshot

CLIENT_CLASS_PATH = "django_redisroles.cache.client.RedisRolesClient"

T = TypeVar("T")


def _alias_of(params: Mapping[str, Any]) -> str:
    for alias, entry in getattr(settings, "CACHES", {}).items():
        # Django pops BACKEND and LOCATION from params before calling us.
        if all(entry.get(k) == params.get(k) for k in ("KEY_PREFIX", "OPTIONS", "TIMEOUT")):
            return str(alias)
    return "?"


class RedisRolesCache(DjangoRedisExtras, RedisCache):  # type: ignore[misc]  # django-redis: untyped
    """Django cache backend on the cache role's Redis, TTL mandatory.

    ``LOCATION`` is optional (default: the cache role's URL); ``KEY_PREFIX``
    defaults to ``"<REDISROLES KEY_PREFIX>:cache"``. OPTIONS: see docs/cache.md.
    """

    client: RedisRolesClient

    def __init__(self, server: str | None, params: dict[str, Any]) -> None:
        params = dict(params)
        options = dict(params.get("OPTIONS") or {})
        alias = _alias_of(params)
        resolved = resolve(alias, options)
        options.setdefault("CLIENT_CLASS", CLIENT_CLASS_PATH)
        options.setdefault("CONNECTION_FACTORY", FACTORY_PATH)
        options["IGNORE_EXCEPTIONS"] = resolved.ignore_exceptions
        params["OPTIONS"] = options
        #: This cache's KEY_PREFIX: its own, or the cache role's default.
        self.namespace = Namespace(None)
        self._prefix_given = "KEY_PREFIX" in params
        super().__init__(server or ROLE_LOCATION, params)
        #: The cache's rules: TTLs, value sizes, the failure policy (``policy.py``).
        self.policy = CachePolicy(
            resolved,
            default_timeout=self.default_timeout,
            location=server or ROLE_LOCATION,
            counters=counters_for(alias),  # shared by the per-thread instances of the alias
        )
        self._counters = self.policy.counters
        self._breaker = self.policy.breaker
        # django-redis's omit_exception (around the extras we do not override)
        # logs through these two attributes: its only hook (see OutageLogger).
        self._log_ignored_exceptions = True
        self.logger = OutageLogger(self._counters)
        #: The near cache (L1) of this alias in this process, or None (OPTIONS["NEAR_CACHE"]).
        self.near: NearCache | None = None
        self.near_alias = alias
        self.near_every = False
        #: (key, version) -> made key, for the near cache's hot path (``layers.remember``).
        self.near_keys: dict[tuple[str, int | None], str] = {}
        if resolved.near is not None:
            self.near = self.near_cache()
            self.near_every = resolved.near.every_key

    def near_cache(self) -> NearCache:
        """This alias's near cache in this process (again after a settings change)."""
        options = self.policy.options.near
        if options is None:  # only called when NEAR_CACHE is on
            raise RuntimeError("this cache has no near cache")
        primary = self.client.servers[0]
        # Default keys are "<prefix>:<version>:<key>": tracking covers exactly this
        # namespace. A custom KEY_FUNCTION may put the prefix anywhere: all keys.
        prefix = f"{self.key_prefix}:" if self.key_func is default_key_func else ""
        url = None if primary == ROLE_LOCATION else primary
        return tracking.near_cache(self.near_alias, options, prefix, url)

    # -- namespace -----------------------------------------------------------------

    @property
    def key_prefix(self) -> str:
        return self.namespace.prefix

    @key_prefix.setter
    def key_prefix(self, value: str) -> None:
        # BaseCache.__init__ assigns params.get("KEY_PREFIX", ""): only an
        # explicit KEY_PREFIX overrides the role's namespace.
        if self._prefix_given:
            self.namespace.explicit = value
        else:
            self._prefix_given = True  # later assignments are explicit

    def make_key(self, key: str, version: int | None = None) -> str:
        made: str = self.client.make_key(key, version=version)  # a django-redis CacheKey
        return made

    # -- counters ------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """Hits, misses, loads and outages of this alias in this process (see docs/cache.md)."""
        return snapshot(self._counters)

    def reset_stats(self) -> None:
        """Set this alias's counters back to zero (in this process)."""
        self._counters.reset()
        if self.near is not None:
            self.near.counters.reset()
            self.near.hits = itertools.count()

    def near_stats(self) -> NearStats | None:
        """The near cache's counters, size and invalidation lag (None: NEAR_CACHE off)."""
        return None if self.near is None else self.near.stats()

    def _arun(self, plan: Plan[T]) -> Awaitable[T]:
        # Not a coroutine itself: the caller awaits the runner's (one coroutine fewer).
        return arun(plan, self.client.get_async_client)

    # -- reads ---------------------------------------------------------------------

    def get(
        self,
        key: Any,
        default: Any = None,
        version: Any = None,
        client: Any = None,
        near: bool | None = None,
    ) -> Any:
        """``near``: False reads Redis even with the near cache on; True opts in when
        ``NEAR_CACHE`` has ``EVERY_KEY: False``."""
        # The hot path, inlined: one frame fewer than django-redis's own. The
        # one read path of a key (with aget below); the near cache first.
        c = self.client
        n = self.near
        if n is not None and client is None and (self.near_every if near is None else near):
            nkey = (
                self.near_keys.get((key, version))
                if type(key) is str and (version is None or type(version) is int)
                else None
            )
            if nkey is None:
                nkey = layers.remember(self, key, version)
            entry = n.lookup(nkey)
            if entry is not None:
                next(n.hits)
                value = entry[3]
                return entry[4](entry[0]) if value is ENCODED else value
            return layers.get_through(self, n, key, version, default)
        counters = self._counters
        if self._breaker.until and self.policy.skipping():
            counters.add("outages")
            counters.add("misses")
            return default
        try:
            raw = (client or c.get_client(write=False)).get(c.make_key(key, version=version))
        except CACHE_ERRORS as exc:
            error = self.policy.handle(exc)
            if error is not None:
                raise error from None
            counters.add("misses")
            return default
        if raw is None:
            counters.add("misses")
            return default
        counters.add("hits")
        return c.decode(raw)

    async def aget(
        self, key: Any, default: Any = None, version: Any = None, near: bool | None = None
    ) -> Any:
        # get(), line for line, on the async client.
        c = self.client
        n = self.near
        if n is not None and (self.near_every if near is None else near):
            nkey = (
                self.near_keys.get((key, version))
                if type(key) is str and (version is None or type(version) is int)
                else None
            )
            if nkey is None:
                nkey = layers.remember(self, key, version)
            entry = n.lookup(nkey)
            if entry is not None:
                next(n.hits)
                value = entry[3]
                return entry[4](entry[0]) if value is ENCODED else value
            return await layers.aget_through(self, n, key, version, default)
        counters = self._counters
        if self._breaker.until and self.policy.skipping():
            counters.add("outages")
            counters.add("misses")
            return default
        try:
            raw = await c.get_async_client(write=False).get(c.make_key(key, version=version))
        except CACHE_ERRORS as exc:
            error = self.policy.handle(exc)
            if error is not None:
                raise error from None
            counters.add("misses")
            return default
        if raw is None:
            counters.add("misses")
            return default
        counters.add("hits")
        return c.decode(raw)

    def get_many(
        self, keys: Iterable[Any], version: Any = None, client: Any = None
    ) -> dict[Any, Any]:
        keys = list(keys)
        found = self._get_many(keys, version=version, client=client)
        self._counters.add("hits", len(found))  # inlined, as in get(): the hot path
        self._counters.add("misses", len(keys) - len(found))
        return found

    async def aget_many(self, keys: Iterable[Any], version: Any = None) -> dict[Any, Any]:
        keys = list(keys)
        found = await self._aget_many(keys, version)
        self._counters.add("hits", len(found))
        self._counters.add("misses", len(keys) - len(found))
        return found

    @fail_open(default=dict)
    def _get_many(self, keys: list[Any], version: Any = None, client: Any = None) -> dict[Any, Any]:
        return self.client.get_many(keys, version=version, client=client)

    @afail_open(default=dict)
    async def _aget_many(self, keys: list[Any], version: Any = None) -> dict[Any, Any]:
        return await self._arun(ops.get_many(self.client, keys, version))

    @fail_open(default=False)
    def has_key(self, key: Any, version: Any = None, client: Any = None) -> bool:
        return self.client.has_key(key, version=version, client=client)

    @afail_open(default=False)
    async def ahas_key(self, key: Any, version: Any = None) -> bool:
        return await self._arun(ops.has_key(self.client, key, version))

    # -- writes --------------------------------------------------------------------

    @fail_open(default=False)
    @forgets("key")
    def set(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: Any = None,
        client: Any = None,
        nx: bool = False,
        xx: bool = False,
    ) -> bool:
        return self.client.set(key, value, timeout, version=version, client=client, nx=nx, xx=xx)

    @afail_open(default=False)
    @forgets("key")
    async def aset(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,  # noqa: ASYNC109
        version: Any = None,
        nx: bool = False,
        xx: bool = False,
    ) -> bool:
        c = self.client
        plan = ops.set_value(c, c.policy, key, value, timeout, version, nx=nx, xx=xx)
        return await self._arun(plan)

    @fail_open(default=False)
    @forgets("key")
    def add(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: Any = None,
        client: Any = None,
    ) -> bool:
        return self.client.add(key, value, timeout, version=version, client=client)

    @afail_open(default=False)
    @forgets("key")
    async def aadd(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,  # noqa: ASYNC109
        version: Any = None,
    ) -> bool:
        c = self.client
        plan = ops.set_value(c, c.policy, key, value, timeout, version, nx=True, once=True)
        return await self._arun(plan)

    @fail_open(default=list)
    @forgets("data")
    def set_many(
        self,
        data: Mapping[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: Any = None,
        client: Any = None,
    ) -> list[Any]:
        return self.client.set_many(data, timeout, version=version, client=client)

    @afail_open(default=list)
    @forgets("data")
    async def aset_many(
        self,
        data: Mapping[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,  # noqa: ASYNC109
        version: Any = None,
    ) -> list[Any]:
        c = self.client
        return await self._arun(ops.set_many(c, c.policy, data, timeout, version))

    @fail_open(default=False)
    @forgets("key")
    def touch(
        self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None, client: Any = None
    ) -> bool:
        return self.client.touch(key, timeout, version=version, client=client)

    @afail_open(default=False)
    @forgets("key")
    async def atouch(
        self,
        key: Any,
        timeout: Any = DEFAULT_TIMEOUT,  # noqa: ASYNC109
        version: Any = None,
    ) -> bool:
        c = self.client
        return await self._arun(ops.touch(c, c.policy, key, timeout, version))

    @fail_open(default=False)
    @forgets("key")
    def delete(self, key: Any, version: Any = None, prefix: Any = None, client: Any = None) -> bool:
        return bool(self.client.delete(key, version=version, prefix=prefix, client=client))

    @afail_open(default=False)
    @forgets("key")
    async def adelete(self, key: Any, version: Any = None) -> bool:
        removed: int = await self._arun(ops.delete(self.client, key, version))
        return bool(removed)

    @fail_open()
    @forgets("keys")
    def delete_many(self, keys: Iterable[Any], version: Any = None, client: Any = None) -> None:
        self.client.delete_many(keys, version=version, client=client)

    @afail_open()
    @forgets("keys")
    async def adelete_many(self, keys: Iterable[Any], version: Any = None) -> None:
        await self._arun(ops.delete_many(self.client, keys, version))

    @fail_open(default=0)
    @forgets("all")
    def clear(self) -> int:
        """Remove this cache's keys only (SCAN + UNLINK), never FLUSHDB."""
        return self.client.clear()

    @afail_open(default=0)
    @forgets("all")
    async def aclear(self) -> int:
        """Async clear(): this cache's namespace only."""
        return await self._arun(self.client.clear_plan())

    @fail_open()
    @forgets("key")
    def incr(
        self,
        key: Any,
        delta: int = 1,
        version: Any = None,
        client: Any = None,
        ignore_key_check: bool = False,
    ) -> int:
        return self.client.incr(
            key, delta, version=version, client=client, ignore_key_check=ignore_key_check
        )

    @afail_open()
    @forgets("key")
    async def aincr(
        self, key: Any, delta: int = 1, version: Any = None, ignore_key_check: bool = False
    ) -> int:
        c = self.client
        return await self._arun(ops.incr(c, c.policy, key, delta, version, ignore_key_check))

    @fail_open()
    @forgets("key")
    def decr(self, key: Any, delta: int = 1, version: Any = None, client: Any = None) -> int:
        return self.client.decr(key, delta, version=version, client=client)

    async def adecr(self, key: Any, delta: int = 1, version: Any = None) -> int:
        return await self.aincr(key, -delta, version)

    @fail_open()
    @forgets("all")
    def incr_version(
        self, key: Any, delta: int = 1, version: Any = None, client: Any = None
    ) -> int:
        return self.client.incr_version(key, delta, version=version, client=client)

    @afail_open()
    @forgets("all")
    async def aincr_version(self, key: Any, delta: int = 1, version: Any = None) -> int:
        return await self._arun(ops.incr_version(self.client, key, delta, version, self.version))

    def decr_version(self, key: Any, delta: int = 1, version: Any = None) -> int:
        return self.incr_version(key, -delta, version)

    async def adecr_version(self, key: Any, delta: int = 1, version: Any = None) -> int:
        return await self.aincr_version(key, -delta, version)

    # -- get_or_set: stampede-safe ---------------------------------------------------

    def get_or_set(
        self,
        key: Any,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        stale: float | None = None,
        early: float | None = None,
        lock_timeout: float | None = None,
        wait: float | None = None,
        near: bool | None = None,
    ) -> Any:
        """Django's get_or_set, stampede-safe: one caller computes, the others wait.

        ``default`` may be a callable (called at most once per miss across all
        processes sharing the cache). ``stale``: seconds a value is kept and
        served past its timeout while one caller refreshes it; ``early``:
        probabilistic early refresh factor (XFetch beta, 0 = off). ``near``: as
        for ``get()``; the near cache is looked up first and filled from the
        single-flight read.
        """
        options: dict[str, Any] = {
            "stale": stale,
            "early": early,
            "lock_timeout": lock_timeout,
            "wait": wait,
        }
        fill = layers.near_fill(self, key, version, near)
        if fill is None:
            return stampede.get_or_set(self.client, key, default, timeout, version, **options)
        if fill.hit:
            return fill.value
        try:
            value = stampede.get_or_set(
                self.client, key, default, timeout, version, record=fill.record, **options
            )
        finally:
            fill.done(self.client.decode, self.client.loads)
        return value

    async def aget_or_set(
        self,
        key: Any,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,  # noqa: ASYNC109
        version: int | None = None,
        *,
        stale: float | None = None,
        early: float | None = None,
        lock_timeout: float | None = None,
        wait: float | None = None,
        near: bool | None = None,
    ) -> Any:
        """Async get_or_set(); ``default`` may be a callable returning an awaitable."""
        options: dict[str, Any] = {
            "stale": stale,
            "early": early,
            "lock_timeout": lock_timeout,
            "wait": wait,
        }
        fill = layers.near_fill(self, key, version, near)
        if fill is None:
            return await stampede.aget_or_set(
                self.client, key, default, timeout, version, **options
            )
        if fill.hit:
            return fill.value
        try:
            value = await stampede.aget_or_set(
                self.client, key, default, timeout, version, record=fill.record, **options
            )
        finally:
            fill.done(self.client.decode, self.client.loads)
        return value

    async def aclose(self, **kwargs: Any) -> None:
        # The async client belongs to the role and its event loop, not to us.
        return None


__all__ = [
    "BACKEND_PATH",
    "CacheValueTooLarge",
    "RedisRolesCache",
    "TimeoutRequired",
    "default_key_prefix",
]
