"""``RedisRolesCache``: the cache role's ``CACHES`` backend.

Built on django-redis's ``RedisCache`` (so ``cache.ttl()``, ``lock()``,
``iter_keys()``, ``delete_pattern()``, ``get_redis_connection()`` ... keep
working) with the cache role's guarantees on top: every key has a TTL,
``clear()`` touches only this cache's namespace, ``get_or_set()`` is
stampede-safe, large values are flagged, and the ``a*`` methods are native
``redis.asyncio`` calls on the cache role's pooled async client.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.exceptions import SynchronousOnlyOperation
from django.core.signals import setting_changed
from django.dispatch import receiver
from django_redis.cache import RedisCache
from redis.exceptions import ResponseError

from .. import conf, connections, errors
from . import stampede
from .client import (
    CACHE_ERRORS,
    INCR_SCRIPT,
    CacheValueTooLarge,
    RedisRolesClient,
    TimeoutRequired,
    failure_of,
    logger,
    unwrap,
)
from .options import BACKEND_PATH, cache_options
from .stats import CacheStats, counters_for, snapshot

T = TypeVar("T")

CLIENT_CLASS_PATH = "django_redisroles.cache.client.RedisRolesClient"

# Bumped when REDISROLES changes: the default KEY_PREFIX derives from it.
_generation = 0


# Servers that failed with a connection error or timeout, by breaker key
# (LOCATION, or the role): until when (monotonic) the caches skip them.
_down_until: dict[str, float] = {}


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    global _generation
    if setting == "REDISROLES":
        _generation += 1
    if setting in ("REDISROLES", "CACHES"):
        _down_until.clear()


def default_key_prefix() -> str:
    """KEY_PREFIX of a RedisRolesCache whose CACHES entry sets none: ``<prefix>:cache``."""
    return conf.make_key("cache")


# Logging a Redis outage once per interval: under load every request would log it.
_OUTAGE_LOG_INTERVAL = 10.0
_last_outage_log = 0.0


def _log_outage(failure: errors.Failure) -> None:
    global _last_outage_log
    now = time.monotonic()
    if now - _last_outage_log >= _OUTAGE_LOG_INTERVAL:
        _last_outage_log = now
        # A refusal (ACL, noeviction, replica) does not heal by itself: louder.
        log = logger.warning if failure.outage else logger.error
        log(
            "Cache Redis unavailable: %s Reads are misses and writes are dropped "
            "(OPTIONS['IGNORE_EXCEPTIONS']). Further errors are logged every %ss.",
            failure.describe(),
            int(_OUTAGE_LOG_INTERVAL),
        )


class _OutageLogger:
    """What django-redis's ``omit_exception`` logs through: our rate-limited warning."""

    def __init__(self, counters: Any) -> None:
        self.counters = counters

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        exc = sys.exc_info()[1]
        failure = failure_of(exc) if exc is not None else None
        if failure is not None:
            self.counters.add("outages")
            _log_outage(failure)


def _policy(cache: RedisRolesCache, exc: BaseException) -> BaseException | None:
    """Apply the failure policy to a Redis error: None when it is handled (logged,
    back-off started), else the exception to raise (a bug, or IGNORE_EXCEPTIONS off)."""
    cause = unwrap(exc)
    failure = errors.classify(cause)
    if failure is None or failure.bug or not cache._ignore_exceptions:
        return cause
    cache.outage(failure)
    return None


def _fail_open(
    default: Any = None, skip: bool = True
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Turn a Redis outage into ``default`` when IGNORE_EXCEPTIONS (the cache is lossy).

    ``skip``: during OUTAGE_BACKOFF after an outage, answer ``default`` at once.
    """

    def decorator(method: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(method)
        def wrapper(self: RedisRolesCache, *args: Any, **kwargs: Any) -> T:
            if skip and _down_until and self.skipping():
                self._counters.add("outages")
                return default() if callable(default) else default
            try:
                return method(self, *args, **kwargs)
            except CACHE_ERRORS as exc:
                error = _policy(self, exc)
                if error is not None:
                    raise error from None
                return default() if callable(default) else default

        return wrapper

    return decorator


def _afail_open(
    default: Any = None,
) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
    def decorator(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        @functools.wraps(method)
        async def wrapper(self: RedisRolesCache, *args: Any, **kwargs: Any) -> T:
            if _down_until and self.skipping():
                self._counters.add("outages")
                return default() if callable(default) else default
            try:
                return await method(self, *args, **kwargs)
            except CACHE_ERRORS as exc:
                error = _policy(self, exc)
                if error is not None:
                    raise error from None
                return default() if callable(default) else default

        return wrapper

    return decorator


class RedisRolesCache(RedisCache):
    """Django cache backend on the cache role's Redis, TTL mandatory.

    ``LOCATION`` is optional (default: the cache role's URL); ``KEY_PREFIX``
    defaults to ``"<REDISROLES KEY_PREFIX>:cache"``. OPTIONS: see docs/cache.md.
    """

    client: RedisRolesClient  # type: ignore[assignment]

    def __init__(self, server: str | None, params: dict[str, Any]) -> None:
        params = dict(params)
        options = dict(params.get("OPTIONS") or {})
        self._alias = self._alias_of(params)
        self._rr = cache_options(self._alias, options)
        # Shared by the per-thread instances Django makes of this alias.
        self._counters = counters_for(self._alias)
        options.setdefault("CLIENT_CLASS", CLIENT_CLASS_PATH)
        options["IGNORE_EXCEPTIONS"] = self._rr["IGNORE_EXCEPTIONS"]
        params["OPTIONS"] = options
        self._explicit_prefix: str | None = None
        self._has_prefix = "KEY_PREFIX" in params
        self._location = server or None
        self._breaker = str(server) if server else "<cache role>"
        super().__init__(server or conf.role_url("cache"), params)
        # django-redis's omit_exception (for the extras we do not override)
        # logs through this logger.
        self._log_ignored_exceptions = True
        self.logger = _OutageLogger(self._counters)  # type: ignore[assignment]

    @staticmethod
    def _alias_of(params: Mapping[str, Any]) -> str:
        for alias, entry in getattr(settings, "CACHES", {}).items():
            # Django pops BACKEND and LOCATION from params before calling us.
            if all(entry.get(k) == params.get(k) for k in ("KEY_PREFIX", "OPTIONS", "TIMEOUT")):
                return str(alias)
        return "?"

    # -- namespace ---------------------------------------------------------

    @property  # type: ignore[override]
    def key_prefix(self) -> str:
        if self._explicit_prefix is not None:
            return self._explicit_prefix
        if self._prefix_generation != _generation:
            self._default_prefix = default_key_prefix()
            self._prefix_generation = _generation
        return self._default_prefix

    @key_prefix.setter
    def key_prefix(self, value: str) -> None:
        # BaseCache.__init__ assigns params.get("KEY_PREFIX", ""): only an
        # explicit KEY_PREFIX overrides the role's namespace.
        self._default_prefix = default_key_prefix()
        self._prefix_generation = _generation
        if getattr(self, "_has_prefix", True):
            self._explicit_prefix = value
        else:
            self._has_prefix = True  # later assignments are explicit

    def make_key(self, key: str, version: int | None = None) -> str:
        return self.client.make_key(key, version=version)

    # -- policies (used by the client) -----------------------------------------

    def skipping(self) -> bool:
        """True while this cache's Redis is in its OUTAGE_BACKOFF after an outage."""
        until = _down_until.get(self._breaker)
        if until is None:
            return False
        if time.monotonic() < until and self._ignore_exceptions:
            return True
        _down_until.pop(self._breaker, None)
        return False

    def outage(self, failure: errors.Failure) -> None:
        """Log a failure (rate-limited); one that fails every command starts the backoff.

        A refusal of some commands only (``OOM``, ``READONLY``, ``NOPERM``) does
        not: reads may still work.
        """
        self._counters.add("outages")
        backoff = self._rr["OUTAGE_BACKOFF"]
        if backoff > 0 and failure.server_down:
            _down_until[self._breaker] = time.monotonic() + backoff
        _log_outage(failure)

    def refuse_no_timeout(self, key: Any, what: str = "timeout=None") -> None:
        """Raise TimeoutRequired unless OPTIONS['ALLOW_NO_TIMEOUT']."""
        if self._rr["ALLOW_NO_TIMEOUT"]:
            return
        raise TimeoutRequired(
            f"RedisRolesCache refuses {what} for key {key!r}: every cache key needs a TTL "
            "(a key without one is never evicted by expiry and grows memory for ever). "
            "Pass a timeout in seconds, or set OPTIONS['ALLOW_NO_TIMEOUT'] = True in this "
            "CACHES entry to allow keys that never expire."
        )

    def large_value(self, nkey: str, size: int) -> bool:
        """Apply ON_LARGE_VALUE to a value of ``size`` bytes; True to store it."""
        limit = self._rr["MAX_VALUE_SIZE"]
        policy = self._rr["ON_LARGE_VALUE"]
        message = (
            f"Cache value for key {nkey!r} is {size} bytes, above MAX_VALUE_SIZE "
            f"({limit} bytes). Large values cost network and memory on every hit; "
            "store big blobs elsewhere (object storage) and cache a reference, "
            "or enable a COMPRESSOR."
        )
        if policy == "raise":
            raise CacheValueTooLarge(message)
        if policy == "refuse":
            logger.warning("%s Not stored (ON_LARGE_VALUE='refuse').", message)
            return False
        logger.warning(message)
        return True

    # -- counters ------------------------------------------------------------

    def stats(self) -> CacheStats:
        """Hits, misses, loads and outages of this alias in this process (see docs/cache.md)."""
        return snapshot(self._counters)

    def reset_stats(self) -> None:
        """Set this alias's counters back to zero (in this process)."""
        self._counters.reset()

    # -- sync API: Django's semantics where django-redis differs ----------------

    @_fail_open(default=False)
    def set(
        self,
        key: str,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: Any = None,
        client: Any = None,
        nx: bool = False,
        xx: bool = False,
    ) -> bool:
        return self.client.set(key, value, timeout, version=version, client=client, nx=nx, xx=xx)

    @_fail_open(default=False)
    def add(
        self,
        key: str,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: Any = None,
        client: Any = None,
    ) -> bool:
        # Sent once: a re-sent SET NX would report "not added" for our own value.
        with connections.send_once():
            return self.client.set(key, value, timeout, version=version, client=client, nx=True)

    @_fail_open(default=list)
    def set_many(
        self,
        data: Mapping[str, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: Any = None,
        client: Any = None,
    ) -> list[str]:
        return self.client.set_many(data, timeout, version=version, client=client)

    @_fail_open(default=False)
    def touch(
        self, key: str, timeout: Any = DEFAULT_TIMEOUT, version: Any = None, client: Any = None
    ) -> bool:
        return self.client.touch(key, timeout, version=version, client=client)

    def get(self, key: str, default: Any = None, version: Any = None, client: Any = None) -> Any:
        # The hot path, inlined: one frame fewer than django-redis's own.
        c = self.client
        counters = self._counters
        if _down_until and self.skipping():
            counters.add("outages")
            counters.add("misses")
            return default
        try:
            raw = (client or c.get_client(write=False)).get(c.make_key(key, version=version))
        except CACHE_ERRORS as exc:
            error = _policy(self, exc)
            if error is not None:
                raise error from None
            counters.add("misses")
            return default
        if raw is None:
            counters.add("misses")
            return default
        counters.add("hits")
        return c.decode(raw)

    def get_many(self, keys: Iterable[str], version: Any = None, client: Any = None) -> dict:
        keys = list(keys)
        found = self._get_many(keys, version=version, client=client)
        self._counters.add("hits", len(found))
        self._counters.add("misses", len(keys) - len(found))
        return found

    @_fail_open(default=dict)
    def _get_many(self, keys: list[str], version: Any = None, client: Any = None) -> dict:
        return self.client.get_many(keys, version=version, client=client)

    @_fail_open(default=False)
    def has_key(self, key: str, version: Any = None, client: Any = None) -> bool:
        return self.client.has_key(key, version=version, client=client)

    @_fail_open(default=False)
    def delete(self, key: str, version: Any = None, prefix: Any = None, client: Any = None) -> bool:
        return bool(self.client.delete(key, version=version, prefix=prefix, client=client))

    @_fail_open()
    def delete_many(self, keys: Iterable[str], version: Any = None, client: Any = None) -> None:
        self.client.delete_many(keys, version=version, client=client)

    @_fail_open(default=0)
    def clear(self) -> int:  # type: ignore[override]
        """Remove this cache's keys only (SCAN + UNLINK), never FLUSHDB."""
        return self.client.clear()

    @_fail_open()
    def incr(
        self,
        key: str,
        delta: int = 1,
        version: Any = None,
        client: Any = None,
        ignore_key_check: bool = False,
    ) -> int:
        return self.client.incr(
            key, delta, version=version, client=client, ignore_key_check=ignore_key_check
        )

    @_fail_open()
    def decr(self, key: str, delta: int = 1, version: Any = None, client: Any = None) -> int:
        return self.client.decr(key, delta, version=version, client=client)

    @_fail_open()
    def incr_version(
        self, key: str, delta: int = 1, version: Any = None, client: Any = None
    ) -> int:
        return self.client.incr_version(key, delta, version=version, client=client)

    def decr_version(self, key: str, delta: int = 1, version: Any = None) -> int:
        return self.incr_version(key, -delta, version)

    # django-redis lets ttl()/pttl() raise on an outage (its client does not
    # wrap the error): here, like any read, an outage is a miss (0: no such key).
    @_fail_open(default=0)
    def ttl(self, key: str, version: Any = None, client: Any = None) -> int | None:
        return self.client.ttl(key, version=version, client=client)

    @_fail_open(default=0)
    def pttl(self, key: str, version: Any = None, client: Any = None) -> int | None:
        return self.client.pttl(key, version=version, client=client)

    @_fail_open(default=False)
    def persist(self, key: str, version: Any = None, client: Any = None) -> bool:
        return self.client.persist(key, version=version, client=client)

    @_fail_open(default=False)
    def expire(self, key: str, timeout: Any, version: Any = None, client: Any = None) -> bool:
        return self.client.expire(key, timeout, version=version, client=client)

    @_fail_open(default=False)
    def pexpire(self, key: str, timeout: Any, version: Any = None, client: Any = None) -> bool:
        return self.client.pexpire(key, timeout, version=version, client=client)

    @_fail_open(skip=False)  # a lock is not lossy: never "skipped" into None
    def lock(
        self, key: str, version: Any = None, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """django-redis's ``lock()`` (a redis-py Lock); ``timeout`` is required like any TTL."""
        if timeout is None:
            self.refuse_no_timeout(key, what="lock() without a timeout")
        return self.client.lock(key, version=version, timeout=timeout, **kwargs)

    def get_or_set(
        self,
        key: str,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        stale: float | None = None,
        early: float | None = None,
        lock_timeout: float | None = None,
        wait: float | None = None,
    ) -> Any:
        """Django's get_or_set, stampede-safe: one caller computes, the others wait.

        ``default`` may be a callable (called at most once per miss across all
        processes sharing the cache). ``stale``: seconds a value is kept and
        served past its timeout while one caller refreshes it; ``early``:
        probabilistic early refresh factor (XFetch beta, 0 = off).
        """
        return stampede.get_or_set(
            self,
            key,
            default,
            timeout,
            version,
            stale=stale,
            early=early,
            lock_timeout=lock_timeout,
            wait=wait,
        )

    # The extras that create keys of other types: give them a TTL if they have none.

    def _ensure_ttl(self, key: str, version: Any = None) -> None:
        ms = self.client.default_ttl_ms()
        if ms:
            nkey = self.client.make_key(key, version=version)
            try:
                self.client.get_client(write=True).execute_command("PEXPIRE", nkey, ms, "NX")
            except CACHE_ERRORS as exc:
                failure = failure_of(exc)
                if failure is None or failure.bug:
                    raise
                _log_outage(failure)

    def _with_ttl(name: str, dest_arg: int = 0) -> Any:  # type: ignore[misc]
        parent = getattr(RedisCache, name)

        @functools.wraps(parent)
        def method(self: RedisRolesCache, *args: Any, **kwargs: Any) -> Any:
            result = parent(self, *args, **kwargs)
            # django-redis makes smove's destination key without the version.
            version = None if name == "smove" else kwargs.get("version_dest", kwargs.get("version"))
            key = kwargs.get("dest") or kwargs.get("destination") or kwargs.get("key")
            if key is None and len(args) > dest_arg:
                key = args[dest_arg]
            if key is not None:
                self._ensure_ttl(key, version)
            return result

        return method

    # Only those the installed django-redis has (the hash/zset ones are newer).
    for _name, _dest in (
        ("sadd", 0),
        ("hset", 0),
        ("zadd", 0),
        ("zincrby", 0),
        ("sdiffstore", 0),
        ("sinterstore", 0),
        ("sunionstore", 0),
        ("smove", 1),
    ):
        if hasattr(RedisCache, _name):
            locals()[_name] = _with_ttl(_name, _dest)
    del _with_ttl, _name, _dest

    # -- async API: redis.asyncio on the cache role's pooled client -------------

    def _aclient(self, write: bool = True) -> Any:
        client = self.client
        if client._single_role:
            return connections.get_async_redis("cache")
        index = client.get_next_client_index(write=write)
        if index in client._role_index:
            return connections.get_async_redis("cache")
        return connections.get_async_redis_at(client._server[index], "cache")

    async def _aencode(self, nkey: str, value: Any) -> Any:
        try:
            return self.client.encode_checked(nkey, value)
        except SynchronousOnlyOperation:
            # Pickling an unevaluated QuerySet runs its query: that must happen
            # in a thread, as Django's default aset() does for every call.
            return await sync_to_async(self.client.encode_checked, thread_sensitive=True)(
                nkey, value
            )

    async def aget(self, key: str, default: Any = None, version: Any = None) -> Any:
        nkey = self.client.make_key(key, version=version)
        counters = self._counters
        if _down_until and self.skipping():
            counters.add("outages")
            counters.add("misses")
            return default
        try:
            raw = await self._aclient(write=False).get(nkey)
        except CACHE_ERRORS as exc:
            error = _policy(self, exc)
            if error is not None:
                raise error from None
            counters.add("misses")
            return default
        if raw is None:
            counters.add("misses")
            return default
        counters.add("hits")
        return self.client.decode(raw)

    async def aget_many(self, keys: Iterable[str], version: Any = None) -> dict[str, Any]:
        keys = list(keys)
        found = await self._aget_many(keys, version=version)
        self._counters.add("hits", len(found))
        self._counters.add("misses", len(keys) - len(found))
        return found

    @_afail_open(default=dict)
    async def _aget_many(self, keys: list[str], version: Any = None) -> dict[str, Any]:
        if not keys:
            return {}
        nkeys = [self.client.make_key(k, version=version) for k in keys]
        values = await self._aclient(write=False).mget(nkeys)
        return {
            key: self.client.decode(raw)
            for key, raw in zip(keys, values, strict=True)
            if raw is not None
        }

    @_afail_open(default=False)
    async def ahas_key(self, key: str, version: Any = None) -> bool:
        nkey = self.client.make_key(key, version=version)
        return bool(await self._aclient(write=False).exists(nkey))

    @_afail_open(default=False)
    async def aset(
        self,
        key: str,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,  # noqa: ASYNC109
        version: Any = None,
        nx: bool = False,
        xx: bool = False,
    ) -> bool:
        client = self.client
        nkey = client.make_key(key, version=version)
        px = client.ttl_ms(key, timeout)
        nvalue = await self._aencode(nkey, value)
        redis_ = self._aclient()
        if nvalue is None:
            if not nx:
                await redis_.delete(nkey)
            return False
        if px is not None and px <= 0:
            if nx:
                return not await redis_.exists(nkey)
            return bool(await redis_.delete(nkey))
        return bool(await redis_.set(nkey, nvalue, nx=nx, xx=xx, px=px))

    async def aadd(
        self,
        key: str,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,  # noqa: ASYNC109
        version: Any = None,
    ) -> bool:
        with connections.send_once():  # see add()
            return await self.aset(key, value, timeout, version, nx=True)

    @_afail_open(default=list)
    async def aset_many(
        self,
        data: Mapping[str, Any],
        timeout: Any = DEFAULT_TIMEOUT,  # noqa: ASYNC109
        version: Any = None,
    ) -> list[str]:
        if not data:
            return []
        client = self.client
        failed: list[str] = []
        pipe = self._aclient().pipeline(transaction=False)
        for key, value in data.items():
            nkey = client.make_key(key, version=version)
            px = client.ttl_ms(key, timeout)
            nvalue = await self._aencode(nkey, value)
            if nvalue is None:
                failed.append(key)
                pipe.delete(nkey)
            elif px is not None and px <= 0:
                pipe.delete(nkey)
            else:
                pipe.set(nkey, nvalue, px=px)
        await pipe.execute()
        return failed

    @_afail_open(default=False)
    async def atouch(
        self,
        key: str,
        timeout: Any = DEFAULT_TIMEOUT,  # noqa: ASYNC109
        version: Any = None,
    ) -> bool:
        client = self.client
        px = client.ttl_ms(key, timeout)
        nkey = client.make_key(key, version=version)
        redis_ = self._aclient()
        if px is None:
            return bool(await redis_.persist(nkey) or await redis_.exists(nkey))
        if px <= 0:
            return bool(await redis_.delete(nkey))
        return bool(await redis_.pexpire(nkey, px))

    @_afail_open(default=False)
    async def adelete(self, key: str, version: Any = None) -> bool:
        return bool(await self._aclient().delete(self.client.make_key(key, version=version)))

    @_afail_open()
    async def adelete_many(self, keys: Iterable[str], version: Any = None) -> None:
        nkeys = [self.client.make_key(k, version=version) for k in keys]
        if nkeys:
            await self._aclient().delete(*nkeys)

    @_afail_open(default=0)
    async def aclear(self) -> int:  # type: ignore[override]
        """Async clear(): this cache's namespace only."""
        redis_ = self._aclient()
        removed = 0
        batch: list[bytes] = []
        regex = self.client.namespace_regex()
        async for key in redis_.scan_iter(match=self.client.namespace_pattern(), count=1000):
            if not regex.fullmatch(key):
                continue  # matched the glob, but is not one of ours
            batch.append(key)
            if len(batch) >= 1000:
                removed += await redis_.unlink(*batch)
                batch = []
        if batch:
            removed += await redis_.unlink(*batch)
        return removed

    @_afail_open()
    async def aincr(
        self, key: str, delta: int = 1, version: Any = None, ignore_key_check: bool = False
    ) -> int:
        client = self.client
        nkey = client.make_key(key, version=version)
        ttl = client.default_ttl_ms()
        redis_ = self._aclient()
        try:
            with connections.send_once():  # a timeout does not mean it did not run
                value = await INCR_SCRIPT.acall(redis_, [nkey], [delta, int(ignore_key_check), ttl])
        except ResponseError as e:
            if errors.error_code(e) != "ERR":  # OOM, NOPERM, READONLY...: not "not an int"
                raise
            pttl = await redis_.pttl(nkey)
            if pttl == -2:
                raise ValueError(f"Key {key!r} not found") from e
            raw = await redis_.get(nkey)
            new = (None if raw is None else client.decode(raw)) + delta
            await self.aset(nkey, new, pttl / 1000 if pttl > 0 else DEFAULT_TIMEOUT)
            return new
        if value is None:
            raise ValueError(f"Key {key!r} not found")
        return int(value)

    async def adecr(self, key: str, delta: int = 1, version: Any = None) -> int:
        return await self.aincr(key, -delta, version)

    @_afail_open()
    async def aincr_version(self, key: str, delta: int = 1, version: Any = None) -> int:
        if version is None:
            version = self.version
        client = self.client
        try:
            with connections.send_once():  # a second RENAME would find no key
                await self._aclient().rename(
                    client.make_key(key, version=version),
                    client.make_key(key, version=version + delta),
                )
        except ResponseError as e:
            if errors.error_code(e) != "ERR":  # READONLY, NOPERM...: not a missing key
                raise
            raise ValueError(f"Key {key!r} not found") from e
        return version + delta

    async def adecr_version(self, key: str, delta: int = 1, version: Any = None) -> int:
        return await self.aincr_version(key, -delta, version)

    @_afail_open(default=0)
    async def attl(self, key: str, version: Any = None) -> int | None:
        """Async ``ttl()``: seconds left, None without expiry, 0 when missing (or Redis is down)."""
        t = await self._aclient(write=False).ttl(self.client.make_key(key, version=version))
        return None if t == -1 else max(t, 0)

    async def aget_or_set(
        self,
        key: str,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,  # noqa: ASYNC109
        version: int | None = None,
        *,
        stale: float | None = None,
        early: float | None = None,
        lock_timeout: float | None = None,
        wait: float | None = None,
    ) -> Any:
        """Async get_or_set(); ``default`` may be a callable returning an awaitable."""
        return await stampede.aget_or_set(
            self,
            key,
            default,
            timeout,
            version,
            stale=stale,
            early=early,
            lock_timeout=lock_timeout,
            wait=wait,
        )

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
