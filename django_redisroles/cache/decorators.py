"""``@cached(ttl, key=None)``: a function's result cached, computed once per miss.

On a RedisRolesCache the wrapper calls ``get_or_set``/``aget_or_set`` (stampede
protection, ``stale``/``early``); on any other Django cache it falls back to a
plain cache-aside. Sync functions stay sync, async ones async.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache import BaseCache, caches

from .backend import RedisRolesCache
from .stampede import check_options

F = TypeVar("F", bound=Callable[..., Any])

_MISSING = object()


def cached(
    ttl: float,
    key: str | Callable[..., str] | None = None,
    *,
    cache: str = "default",
    version: int | None = None,
    stale: float | None = None,
    early: float | None = None,
    lock_timeout: float | None = None,
    wait: float | None = None,
    near: bool | None = None,
) -> Callable[[F], F]:
    """Cache a function's result for ``ttl`` seconds, computing it once per miss.

    ``key``: a format string over the function's arguments
    (``"user:{user_id}"``), a callable taking the same arguments, or None for
    ``<module>.<qualname>:<hash of the arguments' repr>``. Works on sync and
    async functions. ``near``: True keeps the result in the alias's near cache
    even when its ``NEAR_CACHE`` has ``EVERY_KEY: False``; False never does
    (None: the alias's setting). The wrapper gains ``.key(*args, **kwargs)``,
    ``.invalidate(*args, **kwargs)`` and ``.ainvalidate(...)``.
    """
    if callable(ttl) and not isinstance(ttl, int | float):
        raise TypeError("@cached needs a TTL: write @cached(300), not @cached.")
    if key is not None and not isinstance(key, str) and not callable(key):
        raise TypeError(f"@cached key must be a format string or a callable, got {key!r}")
    check_options(stale, early, lock_timeout, wait)
    options: dict[str, Any] = {
        "stale": stale,
        "early": early,
        "lock_timeout": lock_timeout,
        "wait": wait,
    }
    if near is not None:
        options["near"] = near

    def decorator(func: F) -> F:
        signature = inspect.signature(func)
        base = f"{func.__module__}.{func.__qualname__}"

        def make_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            if callable(key):
                return str(key(*args, **kwargs))
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            if isinstance(key, str):
                return key.format(**bound.arguments)
            if not bound.arguments:
                return base
            digest = hashlib.blake2b(
                repr(tuple(bound.arguments.items())).encode(), digest_size=16
            ).hexdigest()
            return f"{base}:{digest}"

        def backend() -> BaseCache:
            return caches[cache]

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                c = backend()
                k = make_key(args, kwargs)
                if isinstance(c, RedisRolesCache):
                    return await c.aget_or_set(
                        k, lambda: func(*args, **kwargs), ttl, version, **options
                    )
                # Another backend: plain cache-aside, no stampede protection.
                value = await c.aget(k, _MISSING, version=version)
                if value is _MISSING:
                    value = await func(*args, **kwargs)
                    await c.aset(k, value, ttl, version=version)
                return value

            wrapper: Any = awrapper
        else:

            @functools.wraps(func)
            def swrapper(*args: Any, **kwargs: Any) -> Any:
                c = backend()
                k = make_key(args, kwargs)
                if isinstance(c, RedisRolesCache):
                    return c.get_or_set(k, lambda: func(*args, **kwargs), ttl, version, **options)
                return c.get_or_set(k, lambda: func(*args, **kwargs), ttl, version)

            wrapper = swrapper

        def invalidate(*args: Any, **kwargs: Any) -> bool:
            return bool(backend().delete(make_key(args, kwargs), version=version))

        async def ainvalidate(*args: Any, **kwargs: Any) -> bool:
            return bool(await backend().adelete(make_key(args, kwargs), version=version))

        wrapper.key = lambda *args, **kwargs: make_key(args, kwargs)
        wrapper.invalidate = invalidate
        wrapper.ainvalidate = ainvalidate
        return wrapper  # type: ignore[no-any-return]

    return decorator
