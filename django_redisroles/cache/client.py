"""The django-redis client under RedisRolesCache, through django-redis's extension points.

django-redis's ``DefaultClient`` keeps doing the (de)serializing, compression
and its extras (``iter_keys``, ``lock``, ``sadd``...). Plugged in as the
backend's ``CLIENT_CLASS`` and ``CONNECTION_FACTORY``, this module:

- gets connections from the cache role's shared pools (``connections``):
  :class:`RoleConnectionFactory`; a cache without ``LOCATION`` follows the
  role's URL as ``REDISROLES`` changes;
- runs every operation whose rule is the cache role's (a TTL on every write,
  ``clear()`` of the namespace only, Django's ``incr`` semantics...) through
  its plan in ``ops``, the one the backend's async methods run too;
- makes keys like Django's backends do (``keys``).

The client reads the backend's ``policy`` and ``namespace`` (set before it is
built) and Django's public cache attributes (``key_func``, ``version``,
``validate_key``); nothing private.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import redis
import redis.asyncio
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache, default_key_func
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from django_redis.client import DefaultClient
from django_redis.compressors.identity import IdentityCompressor
from django_redis.exceptions import CompressorError, ConnectionInterrupted
from django_redis.pool import ConnectionFactory
from django_redis.util import CacheKey

from .. import connections
from ..errors import REDIS_ERRORS
from . import keys, ops
from .keys import MAX_KEY, Namespace
from .policy import CachePolicy

# `X as X`: re-exported where they lived before the re-cut (issue 13).
from .policy import CacheValueTooLarge as CacheValueTooLarge
from .policy import TimeoutRequired as TimeoutRequired
from .runner import Call, Connect, Plan, run, sharded

#: The ``LOCATION`` of a cache whose CACHES entry has none: the cache role's
#: connection, whatever ``REDISROLES`` says at each call.
ROLE_LOCATION = "<cache role>"

T = TypeVar("T")

FACTORY_PATH = "django_redisroles.cache.client.RoleConnectionFactory"


class RoleConnectionFactory(ConnectionFactory):  # type: ignore[misc]  # django-redis: untyped
    """django-redis ``CONNECTION_FACTORY``: the cache role's pooled clients.

    :data:`ROLE_LOCATION` is the role's own client (``connections.get_redis("cache")``);
    any other URL gets a pool of its own with the role's connection options
    (``connections.get_redis_at``). The pools are shared and reset with
    ``REDISROLES``; closing a cache (Django does at the end of each request)
    disconnects nothing.
    """

    def connector(self, url: str) -> Callable[[], redis.Redis]:
        """A call giving the sync client of ``url`` (looked up on each call: cheap)."""
        if url == ROLE_LOCATION:
            return functools.partial(connections.get_redis, "cache")
        return functools.partial(connections.get_redis_at, url, "cache")

    def aconnector(self, url: str) -> Callable[[], redis.asyncio.Redis]:
        """:meth:`connector` for ``redis.asyncio`` (the running loop's client)."""
        if url == ROLE_LOCATION:
            return functools.partial(connections.get_async_redis, "cache")
        return functools.partial(connections.get_async_redis_at, url, "cache")

    def connect(self, url: str) -> redis.Redis:
        return self.connector(url)()

    def disconnect(self, connection: Any) -> None:
        return None  # shared pools: see the class docstring


def split_location(location: str) -> list[str]:
    """The URLs of a ``LOCATION`` (``"primary,replica,..."``), keeping each
    ``redis+cluster://a,b`` / ``redis+sentinel://a,b/svc`` whole: a part without
    ``://`` is one more host of the URL before it."""
    urls: list[str] = []
    for part in location.split(","):
        if urls and "://" not in part:
            urls[-1] += "," + part
        else:
            urls.append(part)
    return urls


def _fixed(client: Any) -> Connect:
    """``connect`` for a call given an explicit ``client=`` (django-redis's argument)."""
    return lambda write: client


class RedisRolesClient(DefaultClient):  # type: ignore[misc]  # django-redis: untyped
    """django-redis client on the cache role's pools, with the cache role's rules."""

    def __init__(self, server: Any, params: dict[str, Any], backend: BaseCache) -> None:
        super().__init__(server, params, backend)
        policy = getattr(backend, "policy", None)
        namespace = getattr(backend, "namespace", None)
        if not isinstance(policy, CachePolicy) or not isinstance(namespace, Namespace):
            raise ImproperlyConfigured("RedisRolesClient works under RedisRolesCache only.")
        factory = self.connection_factory
        if not isinstance(factory, RoleConnectionFactory):
            raise ImproperlyConfigured(
                f"OPTIONS['CONNECTION_FACTORY'] of a RedisRolesCache must be a "
                f"{FACTORY_PATH} (subclass): the cache role's pools come from there."
            )
        self.cache = backend
        self.policy = policy
        self.namespace = namespace
        urls = server if isinstance(server, list | tuple) else split_location(str(server))
        self._server = list(urls)  # django-redis split a cluster's seed list apart
        #: The servers: the primary first, then its replicas (reads go there).
        self.servers: tuple[str, ...] = tuple(urls)
        self._sync = tuple(factory.connector(url) for url in urls)
        self._async = tuple(factory.aconnector(url) for url in urls)
        self._single = self._sync[0] if len(urls) == 1 else None
        self._asingle = self._async[0] if len(urls) == 1 else None
        if not params.get("REVERSE_KEY_FUNCTION"):
            self.reverse_key = self._reverse_key
        threshold = policy.options.compress_min_size
        if threshold is not None:
            _set_compress_min_size(self, threshold)
        # A near-cache hit decodes a value it knows is not an integer (see loads()).
        # Built as DefaultClient builds its own, from the same public classes.
        options = params.get("OPTIONS") or {}
        serializer = options.get("SERIALIZER", "django_redis.serializers.pickle.PickleSerializer")
        self._loads_serializer = import_string(serializer)(options=options)
        compressor = import_string(
            options.get("COMPRESSOR", "django_redis.compressors.identity.IdentityCompressor")
        )(options=options)
        self._loads_compressor = None if type(compressor) is IdentityCompressor else compressor
        #: ``decode()`` for a value that is not an integer: the near cache's hits.
        self.loads: Callable[[Any], Any] = (
            self._loads if type(self).decode is DefaultClient.decode else self.decode
        )

    def _loads(self, raw: Any) -> Any:
        """django-redis's ``decode()`` without its first step, ``int(raw)``: on binary
        data its failure (it formats the value into the error) costs more than
        unpickling the value. Only for a value whose ``decode()`` gave no integer."""
        compressor = self._loads_compressor
        if compressor is not None:
            try:
                raw = compressor.decompress(raw)
            except CompressorError:  # stored uncompressed (under the threshold)
                pass
        return self._loads_serializer.loads(raw)

    # -- connections -------------------------------------------------------------

    def _index(self, write: bool, tried: list[int] | None = None) -> int:
        """Writes go to the primary, reads to a replica (a server not tried yet on a retry)."""
        n = len(self.servers)
        if tried and len(tried) < n:
            return random.choice([i for i in range(n) if i not in tried])
        if write or n == 1:
            return 0
        return random.randint(1, n - 1)

    def get_client(self, write: bool = True, tried: list[int] | None = None) -> redis.Redis:
        single = self._single
        if single is not None:
            return single()
        return self._sync[self._index(write, tried)]()

    def get_client_with_index(
        self, write: bool = True, tried: list[int] | None = None
    ) -> tuple[redis.Redis, int]:
        index = self._index(write, tried)
        return self._sync[index](), index

    def get_async_client(self, write: bool = True) -> redis.asyncio.Redis:
        """The ``redis.asyncio`` client of the running event loop for a write (or a read)."""
        single = self._asingle
        if single is not None:
            return single()
        return self._async[self._index(write)]()

    def connect(self, index: int = 0) -> redis.Redis:
        return self._sync[index]()

    def run_plan(self, plan: Plan[T], client: Any = None) -> T:
        """Run an ``ops`` plan on this cache's sync clients (or ``client``); a Redis
        error is django-redis's ``ConnectionInterrupted``, as from its own methods."""
        try:
            if type(plan) is Call and not plan.once:
                # One command (most operations): sent here, without the runner's
                # frames; what the runner would do for it, not another rule.
                redis_ = self.get_client(plan.write) if client is None else client
                reply = getattr(redis_, plan.name)(*plan.args, **plan.kwargs)
                then = plan.then
                return reply if then is None else then(reply)  # type: ignore[no-any-return]
            return run(plan, self.get_client if client is None else _fixed(client))
        except REDIS_ERRORS as e:
            raise ConnectionInterrupted(connection=client) from e

    # -- keys --------------------------------------------------------------------

    def make_key(self, key: Any, version: int | None = None, prefix: str | None = None) -> CacheKey:
        if isinstance(key, CacheKey):
            return key
        cache = self.cache
        if prefix is None:
            prefix = self.namespace.explicit
            if prefix is None:
                prefix = self.namespace.default()
        if version is None:
            version = cache.version
        key_func = cache.key_func
        if key_func is default_key_func:
            # Django's default KEY_FUNCTION, without its frame (once per key: get_many).
            made = "%s:%s:%s" % (prefix, version, key)  # noqa: UP031 - exactly default_key_func
        else:
            made = key_func(key, prefix, version)
        # Django's key validation is slow: only when a cheap conservative test fails.
        if len(made) > MAX_KEY or " " in made or not made.isprintable():
            keys.validate(cache, key, made)
        return CacheKey(made)

    def _reverse_key(self, key: str) -> str:
        return keys.reverse_key(self.namespace.prefix, key)

    # -- writes: each the plan of ops, the async side runs the same ------------------

    def set(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        client: Any = None,
        nx: bool = False,
        xx: bool = False,
    ) -> bool:
        plan = ops.set_value(self, self.policy, key, value, timeout, version, nx=nx, xx=xx)
        return self.run_plan(plan, client)

    def add(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        client: Any = None,
    ) -> bool:
        plan = ops.set_value(self, self.policy, key, value, timeout, version, nx=True, once=True)
        return self.run_plan(plan, client)

    def set_many(
        self,
        data: Mapping[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        client: Any = None,
    ) -> list[Any]:
        """Like Django's: returns the keys that were not stored (refused as too large)."""
        return self.run_plan(ops.set_many(self, self.policy, data, timeout, version), client)

    def touch(
        self,
        key: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        client: Any = None,
    ) -> bool:
        return self.run_plan(ops.touch(self, self.policy, key, timeout, version), client)

    def persist(self, key: Any, version: int | None = None, client: Any = None) -> bool:
        self.policy.refuse_no_timeout(key, what="persist()")
        return self.run_plan(ops.persist(self.make_key(key, version=version)), client)

    def expire(
        self, key: Any, timeout: Any, version: int | None = None, client: Any = None
    ) -> bool:
        return self._expire("expire", key, timeout, version, client)

    def pexpire(
        self, key: Any, timeout: Any, version: int | None = None, client: Any = None
    ) -> bool:
        return self._expire("pexpire", key, timeout, version, client)

    def _expire(
        self, command: str, key: Any, timeout: Any, version: int | None, client: Any
    ) -> bool:
        if timeout is None:
            self.policy.refuse_no_timeout(key, what=f"{command}(timeout=None)")
            return self.persist(key, version=version, client=client)
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.cache.default_timeout
        return self.run_plan(
            ops.expire(self.make_key(key, version=version), command, timeout), client
        )

    def incr(
        self,
        key: Any,
        delta: int = 1,
        version: int | None = None,
        client: Any = None,
        ignore_key_check: bool = False,
    ) -> int:
        plan = ops.incr(self, self.policy, key, delta, version, ignore_key_check)
        return self.run_plan(plan, client)

    def decr(self, key: Any, delta: int = 1, version: int | None = None, client: Any = None) -> int:
        return self.incr(key, -delta, version=version, client=client)

    def incr_version(
        self, key: Any, delta: int = 1, version: int | None = None, client: Any = None
    ) -> int:
        """Move the value to ``version + delta`` with RENAME: atomic, and the TTL moves with it."""
        plan = ops.incr_version(self, key, delta, version, self.cache.version)
        return self.run_plan(plan, client)

    def delete(
        self, key: Any, version: int | None = None, prefix: str | None = None, client: Any = None
    ) -> int:
        return self.run_plan(ops.delete(self, key, version, prefix), client)

    def delete_many(
        self, keys: Iterable[Any], version: int | None = None, client: Any = None
    ) -> int:
        return self.run_plan(ops.delete_many(self, keys, version), client)

    def clear(self, client: Any = None) -> int:
        """UNLINK this cache's keys (SCAN in batches); never FLUSHDB. Returns the count."""
        return self.run_plan(self.clear_plan(), client)

    def clear_plan(self) -> Plan[int]:
        """The plan of ``clear()``: this cache's namespace, all versions, nothing else."""
        cache, prefix = self.cache, self.namespace.prefix
        return ops.clear(
            keys.namespace_pattern(cache.key_func, prefix),
            keys.namespace_regex(cache.key_func, prefix),
        )

    # -- reads ---------------------------------------------------------------------

    def get_many(
        self, keys: Iterable[Any], version: int | None = None, client: Any = None
    ) -> dict[Any, Any]:
        return self.run_plan(ops.get_many(self, keys, version), client)

    def keys(self, search: str, version: int | None = None, client: Any = None) -> list[Any]:
        """django-redis's ``keys()``; on a Redis Cluster by SCAN over every master
        (its ``KEYS`` would ask one node)."""
        if sharded(client if client is not None else self.get_client(write=False)):
            return list(self.iter_keys(search, version=version))
        return super().keys(search, version=version, client=client)  # type: ignore[no-any-return]

    def has_key(self, key: Any, version: int | None = None, client: Any = None) -> bool:
        return self.run_plan(ops.has_key(self, key, version), client)

    def ttl(self, key: Any, version: int | None = None, client: Any = None) -> int | None:
        return self.run_plan(ops.ttl(self, key, version), client)

    def pttl(self, key: Any, version: int | None = None, client: Any = None) -> int | None:
        return self.run_plan(ops.ttl(self, key, version, "pttl"), client)


def _set_compress_min_size(client: Any, threshold: int) -> None:
    """``COMPRESS_MIN_SIZE``: the compressor's own threshold.

    django-redis builds its compressor from the ``COMPRESSOR`` path with no
    hook for this; its compressors (zlib, gzip, lz4, zstd...) read a
    ``min_length`` attribute, which only the client's private ``_compressor``
    reaches. The one place we touch it.
    """
    compressor: Any = getattr(client, "_compressor", None)
    if hasattr(compressor, "min_length"):
        compressor.min_length = threshold
