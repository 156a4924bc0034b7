"""The near cache in the backend's path: the read through both layers, and the
local invalidation of this process's own writes.

``RedisRolesCache.get``/``aget`` look the key up in the near cache (``near``)
themselves (the hot path); on a miss they call :func:`read`/:func:`aread`
here: a token first (``NearCache.begin``), then the value and its PTTL in one
command (``lua/near_fill.lua``, on the primary: a replica may not have a write
whose invalidation already arrived), then the fill, kept only if no
invalidation came in between. Without tracking (start-up, a lost connection)
the read is an ordinary ``GET`` and the listener is (re)started.

:func:`forgets` wraps each write method: once the write returns (or raises: it
may have run), this process drops its own copy of the keys at once, without
waiting for Redis's invalidation to come back through the listener. A
process never reads its own stale value.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from django.core.exceptions import ImproperlyConfigured

from ..scripts import Script
from . import tracking
from .near import ENCODED, NearCache
from .policy import CACHE_ERRORS

F = TypeVar("F", bound=Callable[..., Any])

FILL_SCRIPT = Script((Path(__file__).parent / "lua" / "near_fill.lua").read_text())


class Backend(Protocol):
    """What this module needs of RedisRolesCache."""

    client: Any
    policy: Any
    near: NearCache | None
    near_every: bool
    near_alias: str
    near_keys: dict[tuple[str, int | None], str]

    def make_key(self, key: Any, version: int | None = None) -> str: ...

    def near_cache(self) -> NearCache: ...


# -- reads after a near-cache miss -----------------------------------------------------


def remember(cache: Backend, key: Any, version: Any) -> str:
    """The made key of ``(key, version)``, remembered for the next read of this backend.

    Per backend (Django makes one per alias and thread): what ``make_key`` depends on
    besides the key and version (``VERSION``, ``KEY_FUNCTION``, the prefix) is the
    backend's; two aliases sharing one near cache may differ there. Only ``str`` keys
    and ``None``/``int`` versions: ``1``, ``True`` and ``1.0`` are one dict key but
    three cache keys. Forgotten when the near cache is replaced (settings changed).
    """
    nkey: str = cache.client.make_key(key, version=version)
    if type(key) is str and (version is None or type(version) is int):
        memo = cache.near_keys
        if len(memo) >= 4 * cache.policy.options.near.max_entries:
            memo.clear()
        memo[(key, version)] = nkey
    return nkey


def through(cache: Backend, n: NearCache) -> NearCache | None:
    """A near-cache miss: the near cache to fill (None: the outage breaker is open)."""
    n.counters.add("misses")
    if n.closed:  # REDISROLES or CACHES changed: this alias's new one
        n = cache.near = cache.near_cache()
        cache.near_keys.clear()  # the prefix may have changed
    policy = cache.policy
    if policy.breaker.until and policy.skipping():
        policy.counters.add("outages")
        return None
    return n


def got(cache: Backend, raw: Any, default: Any) -> Any:
    """The Redis layer's answer: counted there, decoded."""
    if raw is None:
        cache.policy.counters.add("misses")
        return default
    cache.policy.counters.add("hits")
    return cache.client.decode(raw)


def get_through(cache: Backend, n: NearCache, key: Any, version: Any, default: Any) -> Any:
    """``get()`` after a near-cache miss: Redis, and the near cache filled."""
    near = through(cache, n)
    if near is None:
        return got(cache, None, default)
    nkey = cache.client.make_key(key, version=version)  # again: settings may have changed
    try:
        filled, raw = read(cache, near, key, nkey)
        if not filled:
            raw = cache.client.get_client(write=False).get(nkey)
    except CACHE_ERRORS as exc:
        error = cache.policy.handle(exc)
        if error is not None:
            raise error from None
        raw = None
    return got(cache, raw, default)


async def aget_through(cache: Backend, n: NearCache, key: Any, version: Any, default: Any) -> Any:
    """``aget()`` after a near-cache miss."""
    near = through(cache, n)
    if near is None:
        return got(cache, None, default)
    nkey = cache.client.make_key(key, version=version)
    try:
        filled, raw = await aread(cache, near, key, nkey)
        if not filled:
            raw = await cache.client.get_async_client(write=False).get(nkey)
    except CACHE_ERRORS as exc:
        error = cache.policy.handle(exc)
        if error is not None:
            raise error from None
        raw = None
    return got(cache, raw, default)


def near_fill(cache: Backend, key: Any, version: int | None, near: bool | None) -> Fill | None:
    """``get_or_set()``'s near-cache side: a hit, or a fill to complete (None: not used)."""
    n = cache.near
    if n is None:
        if near:
            raise ImproperlyConfigured(
                f"near=True, but CACHES[{cache.near_alias!r}] has no near cache: "
                "set OPTIONS['NEAR_CACHE'] (see docs/cache.md)."
            )
        return None
    if not (cache.near_every if near is None else near):
        return None
    nkey = cache.client.make_key(key, version=version)
    entry = n.lookup(nkey)
    if entry is not None:
        next(n.hits)
        value = entry[3]
        return Fill.found(entry[4](entry[0]) if value is ENCODED else value)
    n_ = through(cache, n)
    if n_ is None:
        return None
    return Fill(n_, nkey, start_fill(n_, key, nkey))


def excluded(near: NearCache, key: Any) -> bool:
    return bool(near.exclude) and str(key).startswith(near.exclude)


def start_fill(near: NearCache, key: Any, nkey: str) -> Any:
    """The fill's token, or None: read Redis only (tracking down: the listener is started)."""
    if excluded(near, key):
        return None
    token = near.begin(nkey)
    if token is None:
        tracking.ensure(near)
    return token


def fetched(
    cache: Backend, near: NearCache, nkey: str, token: Any, reply: Any, started: float
) -> Any:
    """The encoded value of a fill's reply (None: missing), kept if still valid."""
    raw, pttl = reply
    near.fill(nkey, token, raw, int(pttl), started, cache.client.decode, cache.client.loads)
    return raw


def read(cache: Backend, near: NearCache, key: Any, nkey: str) -> tuple[bool, Any]:
    """(filled, encoded value or None) of a near-cache miss; filled False: not read."""
    token = start_fill(near, key, nkey)
    if token is None:
        return False, None
    started = time.monotonic()
    try:
        reply = FILL_SCRIPT(cache.client.get_client(write=True), [nkey], [])
    except BaseException:
        near.abandon(nkey, token)
        raise
    return True, fetched(cache, near, nkey, token, reply, started)


async def aread(cache: Backend, near: NearCache, key: Any, nkey: str) -> tuple[bool, Any]:
    """:func:`read` on the async client."""
    token = start_fill(near, key, nkey)
    if token is None:
        return False, None
    started = time.monotonic()
    try:
        reply = await FILL_SCRIPT.acall(cache.client.get_async_client(write=True), [nkey], [])
    except BaseException:
        near.abandon(nkey, token)
        raise
    return True, fetched(cache, near, nkey, token, reply, started)


class Fill:
    """get_or_set()'s near-cache fill: the stampede plan records the value it read
    (and its fresh PTTL) in ``record``; :meth:`done` keeps it if still valid."""

    __slots__ = ("hit", "near", "nkey", "record", "started", "token", "value")

    def __init__(self, near: NearCache | None, nkey: str, token: Any) -> None:
        self.near = near
        self.nkey = nkey
        self.token = token
        self.hit = False
        self.value: Any = None
        self.record: list[tuple[Any, int]] | None = [] if token is not None else None
        self.started = time.monotonic()

    @classmethod
    def found(cls, value: Any) -> Fill:
        fill = cls(None, "", None)
        fill.hit, fill.value = True, value
        return fill

    def done(
        self, decode: Callable[[Any], Any] | None = None, loads: Callable[[Any], Any] | None = None
    ) -> None:
        near, token = self.near, self.token
        if near is None or token is None:
            return
        if self.record:
            raw, pttl = self.record[0]
            near.fill(self.nkey, token, raw, pttl, self.started, decode, loads)
        else:
            # Computed here (or not read): this process wrote it, its own copy goes.
            near.abandon(self.nkey, token)
            near.invalidate([self.nkey])


# -- this process's writes -----------------------------------------------------------

#: Which keys a write changes: "key" (its ``key`` argument), "keys" (``keys``),
#: "data" (``data``'s keys), "all" (anything: the whole copy is dropped).
Which = str


def _nkeys(cache: Backend, which: Which, bound: inspect.BoundArguments) -> Iterable[str] | None:
    args = bound.arguments
    version = args.get("version")
    if which == "all" or args.get("prefix") is not None or args.get("client") is not None:
        return None
    if which == "key":
        return [cache.make_key(args["key"], version=version)]
    source = args["keys"] if which == "keys" else args["data"]
    return [cache.make_key(k, version=version) for k in source]


def _forget(cache: Backend, which: Which, signature: inspect.Signature, args: Any, kw: Any) -> None:
    near = cache.near
    if near is None:
        return
    try:
        nkeys = _nkeys(cache, which, signature.bind(cache, *args, **kw))
    except (TypeError, KeyError):
        nkeys = None
    if nkeys is None:
        near.flush()
    else:
        near.invalidate(nkeys)


def forgets(which: Which) -> Callable[[F], F]:
    """After the write (sync or async method), drop this process's copy of what it changed."""

    def decorator(method: F) -> F:
        signature = inspect.signature(method)
        if inspect.iscoroutinefunction(method):

            @functools.wraps(method)
            async def awrapper(self: Backend, *args: Any, **kwargs: Any) -> Any:
                if self.near is None:
                    return await method(self, *args, **kwargs)
                try:
                    return await method(self, *args, **kwargs)
                finally:
                    _forget(self, which, signature, args, kwargs)

            return cast(F, awrapper)

        @functools.wraps(method)
        def wrapper(self: Backend, *args: Any, **kwargs: Any) -> Any:
            if self.near is None:
                return method(self, *args, **kwargs)
            try:
                return method(self, *args, **kwargs)
            finally:
                _forget(self, which, signature, args, kwargs)

        return cast(F, wrapper)

    return decorator
