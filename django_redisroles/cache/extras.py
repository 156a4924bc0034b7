"""django-redis's extras on RedisRolesCache, with the cache role's rules.

``ttl``/``pttl`` (and ``attl``), ``persist``/``expire``/``pexpire``, ``lock``
and the extras that create keys of other types (``sadd``, ``hset``, ``zadd``...)
are django-redis's API; here they follow the failure policy like every other
call (an outage is a miss, or a dropped write), ``timeout=None`` is refused
like any TTL-less write, and a key an extra creates gets the default TTL.
The other extras (``iter_keys``, ``keys``, ``delete_pattern``, ``expire_at``...)
are django-redis's own, unchanged.
"""

from __future__ import annotations

import functools
from typing import Any

from django_redis.cache import RedisCache

from . import ops
from .client import RedisRolesClient
from .layers import forgets
from .policy import CACHE_ERRORS, CachePolicy, afail_open, fail_open, failure_of, log_outage
from .runner import arun


class DjangoRedisExtras:
    """Mixed into RedisRolesCache, before django-redis's ``RedisCache``."""

    client: RedisRolesClient
    policy: CachePolicy

    # django-redis lets ttl()/pttl() raise on an outage (its client does not
    # wrap the error): here, like any read, an outage is a miss (0: no such key).
    @fail_open(default=0)
    def ttl(self, key: Any, version: Any = None, client: Any = None) -> int | None:
        return self.client.ttl(key, version=version, client=client)

    @afail_open(default=0)
    async def attl(self, key: Any, version: Any = None) -> int | None:
        """Async ``ttl()``: seconds left, None without expiry, 0 when missing (or Redis is down)."""
        return await arun(ops.ttl(self.client, key, version), self.client.get_async_client)

    @fail_open(default=0)
    def pttl(self, key: Any, version: Any = None, client: Any = None) -> int | None:
        return self.client.pttl(key, version=version, client=client)

    @fail_open(default=False)
    @forgets("key")
    def persist(self, key: Any, version: Any = None, client: Any = None) -> bool:
        return self.client.persist(key, version=version, client=client)

    @fail_open(default=False)
    @forgets("key")
    def expire(self, key: Any, timeout: Any, version: Any = None, client: Any = None) -> bool:
        return self.client.expire(key, timeout, version=version, client=client)

    @fail_open(default=False)
    @forgets("key")
    def pexpire(self, key: Any, timeout: Any, version: Any = None, client: Any = None) -> bool:
        return self.client.pexpire(key, timeout, version=version, client=client)

    @fail_open(skip=False)  # a lock is not lossy: never "skipped" into None
    def lock(
        self, key: Any, version: Any = None, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """django-redis's ``lock()`` (a redis-py Lock); ``timeout`` is required like any TTL."""
        if timeout is None:
            self.policy.refuse_no_timeout(key, what="lock() without a timeout")
        return self.client.lock(key, version=version, timeout=timeout, **kwargs)

    # django-redis's own, unchanged but for this process's near-cache copy.
    @forgets("all")
    def delete_pattern(self, *args: Any, **kwargs: Any) -> Any:
        return RedisCache.delete_pattern(self, *args, **kwargs)

    @forgets("key")
    def expire_at(self, *args: Any, **kwargs: Any) -> Any:
        return RedisCache.expire_at(self, *args, **kwargs)

    @forgets("key")
    def pexpire_at(self, *args: Any, **kwargs: Any) -> Any:
        return RedisCache.pexpire_at(self, *args, **kwargs)

    # -- the extras that create keys of other types: a TTL if they have none --------

    def _ensure_ttl(self, key: Any, version: Any = None) -> None:
        ms = self.policy.default_ttl_ms()
        if ms:
            try:
                self.client.run_plan(ops.ensure_ttl(self.client.make_key(key, version=version), ms))
            except CACHE_ERRORS as exc:
                failure = failure_of(exc)
                if failure is None or failure.bug:
                    raise
                log_outage(failure)

    def _with_ttl(name: str, dest_arg: int = 0) -> Any:  # type: ignore[misc]
        parent = getattr(RedisCache, name)

        @functools.wraps(parent)
        def method(self: DjangoRedisExtras, *args: Any, **kwargs: Any) -> Any:
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
