"""Stampede-safe cache-aside: ``get_or_set``, its async twin, and ``@cached``.

When many callers miss the same key at once, one of them computes the value
(it holds a short single-flight lock, ``SET NX PX``) while the others poll for
the value with a bounded wait. When a ``stale`` window is set, keys live that
much longer than their timeout; a caller finding a value in that window gets
it at once while one caller (the lock holder) refreshes it
(stale-while-revalidate). ``early`` turns on probabilistic early refresh
(XFetch, Vattani et al. 2015): the closer a value is to expiry, relative to
how long it took to compute, the likelier a reader refreshes it before it
expires, so popular keys rarely expire at all.

The lock key lives in the cache's namespace (``<prefix>:<version>.lock:<key>``)
so ``clear()`` removes it; it always has a TTL (``LOCK_TIMEOUT``), so a
crashed loader only delays the others by that much.

A loader's exception is its caller's, never a cache outage. When the loader
fails, the callers waiting for its value get the failure at once instead of
each running the loader in turn: in this process the same exception, in other
processes a :class:`LoaderError` read from the lock key, which holds the
failure for ``ERROR_TTL`` seconds.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import json
import math
import random
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT

from .. import errors
from ..scripts import Script
from .client import CACHE_ERRORS, logger, seconds, unwrap

if TYPE_CHECKING:
    from .backend import RedisRolesCache

F = TypeVar("F", bound=Callable[..., Any])

RELEASE_LUA = b"""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
RELEASE_SCRIPT = Script(RELEASE_LUA)

# Our lock becomes the record of the loader's failure, for the callers waiting
# on it in other processes. KEYS: lock; ARGV: token, record, ttl ms.
FAIL_LUA = b"""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
FAIL_SCRIPT = Script(FAIL_LUA)

#: Seconds a failed load is kept in the lock key: callers of that key (waiting
#: or arriving) get ``LoaderError`` during that time instead of loading again.
ERROR_TTL = 1.0
# First byte of a failure record (lock tokens are hex).
_FAILED = b"!"


class LoaderError(Exception):
    """The loader of a cache value failed for another caller, in the last ``ERROR_TTL`` s.

    Raised to the callers that waited for that load in other processes (and
    to those arriving while the failure is kept) instead of running the
    loader again one after another. ``error_class`` is the dotted name of the
    exception the loader raised, ``message`` its message. Callers waiting in
    the process that ran the loader get its own exception instead.
    """

    def __init__(self, key: str, error_class: str, message: str) -> None:
        self.key = key
        self.error_class = error_class
        self.message = message
        super().__init__(
            f"the loader of cache key {key!r} failed for another caller less than "
            f"{ERROR_TTL:g}s ago: {error_class}: {message}"
        )


def _failure_record(exc: BaseException) -> bytes:
    cls = type(exc)
    name = cls.__qualname__
    if cls.__module__ != "builtins":
        name = f"{cls.__module__}.{name}"
    return _FAILED + json.dumps({"c": name, "m": str(exc)[:1000]}).encode()


def _loader_error(nkey: str, record: bytes) -> LoaderError:
    try:
        data = json.loads(record[1:])
        return LoaderError(nkey, str(data["c"]), str(data["m"]))
    except (ValueError, KeyError, TypeError):
        return LoaderError(nkey, "Exception", "(unreadable failure record)")


def _error_ttl_ms(p: _Params) -> int:
    return max(1, min(int(ERROR_TTL * 1000), p.lock_ms))


# First and longest pause between two polls of a waiting caller.
POLL_MIN = 0.005
POLL_MAX = 0.05

# Seconds each key's loader took last time, for early refresh (bounded).
_DELTAS_MAX = 10_000
_deltas: dict[str, float] = {}


@dataclass(frozen=True)
class _Params:
    timeout: float | None
    stale_ms: int
    early: float
    lock_ms: int
    wait: float


def check_options(
    stale: float | None, early: float | None, lock_timeout: float | None, wait: float | None
) -> None:
    """ValueError for a bad per-call option (the OPTIONS defaults are checked at start-up)."""
    for name, value, positive, what in (
        ("stale", stale, False, "a number of seconds"),
        ("early", early, False, "a factor (XFetch beta)"),
        ("lock_timeout", lock_timeout, True, "a number of seconds"),
        ("wait", wait, False, "a number of seconds"),
    ):
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
            or (positive and value == 0)
        ):
            bound = "> 0" if positive else ">= 0"
            raise ValueError(f"{name} must be {what} {bound}, got {value!r}.")


def _params(
    cache: RedisRolesCache,
    key: Any,
    timeout: Any,
    stale: float | None,
    early: float | None,
    lock_timeout: float | None,
    wait: float | None,
) -> _Params:
    check_options(stale, early, lock_timeout, wait)
    rr = cache._rr
    if timeout is DEFAULT_TIMEOUT:
        timeout = cache.default_timeout
    if timeout is None:
        cache.refuse_no_timeout(key)  # raises unless ALLOW_NO_TIMEOUT
    else:
        timeout = seconds(timeout)
    lock_timeout = rr["LOCK_TIMEOUT"] if lock_timeout is None else lock_timeout
    if wait is None:
        wait = rr["LOCK_WAIT"] if lock_timeout == rr["LOCK_TIMEOUT"] else lock_timeout
    return _Params(
        timeout=timeout,
        stale_ms=int(1000 * (rr["STALE_TIMEOUT"] if stale is None else stale)),
        early=float(rr["EARLY_REFRESH"] if early is None else early),
        lock_ms=max(1, int(lock_timeout * 1000)),
        wait=float(wait),
    )


def lock_key(cache: RedisRolesCache, key: str, version: int | None) -> str:
    """The single-flight lock of ``key``: in the cache's namespace, not in iter_keys()."""
    v = cache.version if version is None else version
    return cache.key_func(key, cache.key_prefix, f"{v}.lock")


def _watch_ttl(p: _Params) -> bool:
    return p.timeout is not None and p.timeout > 0 and (p.stale_ms > 0 or p.early > 0)


def _needs_refresh(nkey: str, pttl: int, p: _Params) -> bool:
    if pttl < 0:  # no TTL (allowed forever) or just expired
        return False
    fresh_ms = pttl - p.stale_ms
    if fresh_ms <= 0:
        return True
    if p.early > 0:
        delta = _deltas.get(nkey)
        if delta:
            # XFetch: refresh when -delta * beta * ln(U) reaches the time left.
            return -delta * p.early * math.log(1.0 - random.random()) * 1000 >= fresh_ms
    return False


def _remember_delta(nkey: str, elapsed: float) -> None:
    if len(_deltas) >= _DELTAS_MAX:
        try:
            _deltas.pop(next(iter(_deltas)), None)
        except (StopIteration, RuntimeError):  # another thread changed it meanwhile
            pass
    _deltas[nkey] = elapsed


def _store_timeout(p: _Params) -> float | None:
    if p.timeout is None or p.timeout <= 0:
        return p.timeout
    return p.timeout + p.stale_ms / 1000


def _is_outage(exc: BaseException, cache: RedisRolesCache, loader: _Loader) -> bool:
    """Whether ``exc``, raised by get_or_set's own Redis calls, is handled by the policy.

    A loader's exception never is, whatever its class (a ``TimeoutError`` of
    its own, a ``ConnectionError`` of another Redis).
    """
    if loader.error is not None and exc is loader.error:
        return False
    failure = errors.classify(unwrap(exc))
    if failure is None or failure.bug or not cache._ignore_exceptions:
        return False
    cache.outage(failure)
    return True


class _Flight:
    """One in-process miss of a key that other callers of this process wait on."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.ok = False
        self.value: Any = None
        self.stored: bool | None = None
        self.error: BaseException | None = None  # the loader's, handed to the waiters


class _AFlight:
    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.ok = False
        self.value: Any = None
        self.stored: bool | None = None
        self.error: BaseException | None = None


_flights_lock = threading.Lock()
_flights: dict[tuple[Any, ...], _Flight] = {}
# Per event loop: tasks of one loop wait on each other, never across loops.
_aflights: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], _AFlight]] = (
    weakref.WeakKeyDictionary()
)


class _Loader:
    """Calls ``default`` at most once and times it; counts the lookup and the load;
    remembers what it raised."""

    def __init__(self, default: Any, counters: Any) -> None:
        self.default = default
        self.counters = counters
        self.done = False
        self.value: Any = None
        self.elapsed = 0.0
        self.error: BaseException | None = None
        self.looked_up = False  # the hit or miss of this call is counted

    def found(self, hit: bool) -> None:
        """Count this call's lookup (once: a retry after waiting is the same lookup)."""
        if not self.looked_up:
            self.looked_up = True
            self.counters.add("hits" if hit else "misses")

    def __call__(self) -> Any:
        if self.error is not None:
            raise self.error  # never a second run after a failure
        if not self.done:
            start = time.perf_counter()
            try:
                if callable(self.default):
                    self.counters.add("loads")
                    self.value = self.default()
                else:
                    self.value = self.default
            except Exception as exc:  # not a cancellation: that is no failure to share
                self.error = exc
                raise
            self.elapsed = time.perf_counter() - start
            self.done = True
        return self.value

    async def acall(self) -> Any:
        if self.error is not None:
            raise self.error
        if not self.done:
            start = time.perf_counter()
            try:
                if callable(self.default):
                    self.counters.add("loads")
                value = self.default() if callable(self.default) else self.default
                if inspect.isawaitable(value):
                    value = await value
            except Exception as exc:  # not a cancellation: that is no failure to share
                self.error = exc
                raise
            self.value = value
            self.elapsed = time.perf_counter() - start
            self.done = True
        return self.value


# -- sync ------------------------------------------------------------------------


def get_or_set(
    cache: RedisRolesCache,
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
    """See ``RedisRolesCache.get_or_set``."""
    p = _params(cache, key, timeout, stale, early, lock_timeout, wait)
    loader = _Loader(default, cache._counters)
    if cache.skipping():  # OUTAGE_BACKOFF: compute, do not ask Redis
        cache._counters.add("outages")
        loader.found(False)
        return loader()
    try:
        return _get_or_set(cache, key, version, loader, p)
    except CACHE_ERRORS as exc:
        if not _is_outage(exc, cache, loader):
            raise
        loader.found(False)
        return loader()


def _store(cache: RedisRolesCache, key: str, version: int | None, value: Any, p: _Params) -> bool:
    return cache.client.set(key, value, _store_timeout(p), version=version)


def _release(write: Any, lkey: str, token: str) -> None:
    try:
        RELEASE_SCRIPT(write, [lkey], [token])
    except errors.REDIS_ERRORS:
        pass  # the lock expires by itself


def _fail(write: Any, lkey: str, token: str, exc: BaseException, p: _Params) -> None:
    """Our lock becomes the loader's failure, for the callers waiting in other processes."""
    try:
        FAIL_SCRIPT(write, [lkey], [token, _failure_record(exc), _error_ttl_ms(p)])
    except errors.REDIS_ERRORS:
        pass  # they find no value and no lock: one of them loads again


def _took(reply: Any, token: str) -> bool:
    """Whether ``SET lock token NX GET`` gave us the lock.

    No old value: taken now; our own token: a re-sent SET (after a timeout)
    whose first send did take it.
    """
    return reply is None or reply == token.encode()


def _lock_pipe(pipe: Any, lkey: str, token: str, p: _Params) -> Any:
    return pipe.set(lkey, token, nx=True, px=p.lock_ms, get=True)


def _compute(
    cache: RedisRolesCache,
    key: str,
    nkey: str,
    version: int | None,
    loader: _Loader,
    p: _Params,
    flight: _Flight | None = None,
) -> Any:
    value = loader()
    _remember_delta(nkey, loader.elapsed)
    stored = _store(cache, key, version, value, p)
    if flight is not None:
        flight.value, flight.stored = value, stored
    return value


def _get_or_set(
    cache: RedisRolesCache, key: str, version: int | None, loader: _Loader, p: _Params
) -> Any:
    client = cache.client
    nkey = client.make_key(key, version=version)
    read = client.get_client(write=False)
    watch = _watch_ttl(p)
    if watch:
        raw, pttl = read.pipeline(transaction=False).get(nkey).pttl(nkey).execute()
    else:
        raw, pttl = read.get(nkey), -1
    lkey = lock_key(cache, key, version)
    token = uuid.uuid4().hex
    write = client.get_client(write=True)
    loader.found(raw is not None)

    if raw is not None:
        value = client.decode(raw)
        if not watch or not _needs_refresh(nkey, pttl, p):
            return value
        # Stale (or picked for early refresh): one caller refreshes, nobody waits.
        if not _took(_lock_pipe(write, lkey, token, p), token):
            return value
        try:
            return _compute(cache, key, nkey, version, loader, p)
        except Exception:
            if pttl > 0:  # still there: serve it rather than fail (stale-if-error)
                logger.exception("Refreshing cache key %r failed; serving the stale value", nkey)
                return value
            raise
        finally:
            _release(write, lkey, token)

    # Miss. Callers in this process share one trip to Redis (they wait on the
    # first one, then read the value it stored); that one takes the lock or
    # waits for whoever holds it in another process.
    flight_key = (tuple(client._server), nkey)
    with _flights_lock:
        flight = _flights.get(flight_key)
        leader = flight is None
        if flight is None:
            flight = _flights[flight_key] = _Flight()
    if not leader:
        started = time.monotonic()
        if flight.event.wait(p.wait):
            if flight.error is not None:
                raise flight.error  # the leader's loader failed: ours would queue behind it
            if flight.ok:
                raw = read.get(nkey)
                if raw is not None:
                    return client.decode(raw)
                if flight.stored is False:  # refused (too large): share the leader's value
                    return flight.value
        # The leader hit a Redis error or took too long: go to Redis ourselves,
        # within what is left of the bounded wait.
        p = replace(p, wait=max(0.0, p.wait - (time.monotonic() - started)))
        return _miss(cache, key, nkey, lkey, token, write, version, loader, p)
    try:
        value = _miss(cache, key, nkey, lkey, token, write, version, loader, p, flight)
        flight.ok = True
        return value
    except BaseException as exc:
        if exc is loader.error or isinstance(exc, LoaderError):
            flight.error = exc
        raise
    finally:
        with _flights_lock:
            if _flights.get(flight_key) is flight:
                del _flights[flight_key]
        flight.event.set()


def _miss(
    cache: RedisRolesCache,
    key: str,
    nkey: str,
    lkey: str,
    token: str,
    write: Any,
    version: int | None,
    loader: _Loader,
    p: _Params,
    flight: _Flight | None = None,
) -> Any:
    """Take the single-flight lock and compute, or wait for the holder's value."""
    client = cache.client
    deadline = time.monotonic() + p.wait
    pause = POLL_MIN
    while True:
        pipe = write.pipeline(transaction=False).get(nkey)
        raw, held = _lock_pipe(pipe, lkey, token, p).execute()
        got = _took(held, token)
        if raw is not None:  # filled while we looked (double check under the lock)
            if got:
                _release(write, lkey, token)
            return client.decode(raw)
        if got:
            try:
                value = _compute(cache, key, nkey, version, loader, p, flight)
            except BaseException as exc:
                if exc is loader.error:
                    _fail(write, lkey, token, exc, p)
                else:
                    _release(write, lkey, token)
                raise
            _release(write, lkey, token)
            return value
        if held.startswith(_FAILED):
            raise _loader_error(nkey, held)
        if time.monotonic() >= deadline:
            logger.warning(
                "Waited %.1fs for another caller to compute cache key %r; computing it here.",
                p.wait,
                nkey,
            )
            return _compute(cache, key, nkey, version, loader, p, flight)
        time.sleep(pause * random.uniform(0.5, 1.0))
        pause = min(pause * 1.5, POLL_MAX)


# -- async -----------------------------------------------------------------------


async def aget_or_set(
    cache: RedisRolesCache,
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
    """See ``RedisRolesCache.aget_or_set``."""
    p = _params(cache, key, timeout, stale, early, lock_timeout, wait)
    loader = _Loader(default, cache._counters)
    if cache.skipping():  # OUTAGE_BACKOFF: compute, do not ask Redis
        cache._counters.add("outages")
        loader.found(False)
        return await loader.acall()
    try:
        return await _aget_or_set(cache, key, version, loader, p)
    except CACHE_ERRORS as exc:
        if not _is_outage(exc, cache, loader):
            raise
        loader.found(False)
        return await loader.acall()


async def _acompute(
    cache: RedisRolesCache,
    key: str,
    nkey: str,
    version: int | None,
    loader: _Loader,
    p: _Params,
    flight: _AFlight | None = None,
) -> Any:
    value = await loader.acall()
    _remember_delta(nkey, loader.elapsed)
    stored = await cache.aset(key, value, _store_timeout(p), version)
    if flight is not None:
        flight.value, flight.stored = value, stored
    return value


async def _arelease(write: Any, lkey: str, token: str) -> None:
    try:
        await RELEASE_SCRIPT.acall(write, [lkey], [token])
    except errors.REDIS_ERRORS:
        pass


async def _afail(write: Any, lkey: str, token: str, exc: BaseException, p: _Params) -> None:
    try:
        await FAIL_SCRIPT.acall(write, [lkey], [token, _failure_record(exc), _error_ttl_ms(p)])
    except errors.REDIS_ERRORS:
        pass


async def _aget_or_set(
    cache: RedisRolesCache, key: str, version: int | None, loader: _Loader, p: _Params
) -> Any:
    client = cache.client
    nkey = client.make_key(key, version=version)
    read = cache._aclient(write=False)
    watch = _watch_ttl(p)
    if watch:
        raw, pttl = await read.pipeline(transaction=False).get(nkey).pttl(nkey).execute()
    else:
        raw, pttl = await read.get(nkey), -1
    lkey = lock_key(cache, key, version)
    token = uuid.uuid4().hex
    write = cache._aclient(write=True)
    loader.found(raw is not None)

    if raw is not None:
        value = client.decode(raw)
        if not watch or not _needs_refresh(nkey, pttl, p):
            return value
        if not _took(await _lock_pipe(write, lkey, token, p), token):
            return value
        try:
            return await _acompute(cache, key, nkey, version, loader, p)
        except Exception:
            if pttl > 0:
                logger.exception("Refreshing cache key %r failed; serving the stale value", nkey)
                return value
            raise
        finally:
            await _arelease(write, lkey, token)

    flights = _aflights.setdefault(asyncio.get_running_loop(), {})
    flight_key = (tuple(client._server), nkey)
    flight = flights.get(flight_key)
    if flight is not None:
        started = time.monotonic()
        try:
            await asyncio.wait_for(flight.event.wait(), p.wait)
        except TimeoutError:
            pass
        else:
            if flight.error is not None:
                raise flight.error
            if flight.ok:
                raw = await read.get(nkey)
                if raw is not None:
                    return client.decode(raw)
                if flight.stored is False:
                    return flight.value
        p = replace(p, wait=max(0.0, p.wait - (time.monotonic() - started)))
        return await _amiss(cache, key, nkey, lkey, token, write, version, loader, p)
    flight = flights[flight_key] = _AFlight()
    try:
        value = await _amiss(cache, key, nkey, lkey, token, write, version, loader, p, flight)
        flight.ok = True
        return value
    except BaseException as exc:
        if exc is loader.error or isinstance(exc, LoaderError):
            flight.error = exc
        raise
    finally:
        if flights.get(flight_key) is flight:
            del flights[flight_key]
        flight.event.set()


async def _amiss(
    cache: RedisRolesCache,
    key: str,
    nkey: str,
    lkey: str,
    token: str,
    write: Any,
    version: int | None,
    loader: _Loader,
    p: _Params,
    flight: _AFlight | None = None,
) -> Any:
    client = cache.client
    deadline = time.monotonic() + p.wait
    pause = POLL_MIN
    while True:
        raw, held = await _lock_pipe(
            write.pipeline(transaction=False).get(nkey), lkey, token, p
        ).execute()
        got = _took(held, token)
        if raw is not None:
            if got:
                await _arelease(write, lkey, token)
            return client.decode(raw)
        if got:
            try:
                value = await _acompute(cache, key, nkey, version, loader, p, flight)
            except BaseException as exc:
                if exc is loader.error:
                    await _afail(write, lkey, token, exc, p)
                else:
                    await _arelease(write, lkey, token)
                raise
            await _arelease(write, lkey, token)
            return value
        if held.startswith(_FAILED):
            raise _loader_error(nkey, held)
        if time.monotonic() >= deadline:
            logger.warning(
                "Waited %.1fs for another caller to compute cache key %r; computing it here.",
                p.wait,
                nkey,
            )
            return await _acompute(cache, key, nkey, version, loader, p, flight)
        await asyncio.sleep(pause * random.uniform(0.5, 1.0))
        pause = min(pause * 1.5, POLL_MAX)


# -- @cached ---------------------------------------------------------------------

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
) -> Callable[[F], F]:
    """Cache a function's result for ``ttl`` seconds, computing it once per miss.

    ``key``: a format string over the function's arguments
    (``"user:{user_id}"``), a callable taking the same arguments, or None for
    ``<module>.<qualname>:<hash of the arguments' repr>``. Works on sync and
    async functions; the wrapper gains ``.key(*args, **kwargs)``,
    ``.invalidate(*args, **kwargs)`` and ``.ainvalidate(...)``.
    """
    if callable(ttl) and not isinstance(ttl, int | float):
        raise TypeError("@cached needs a TTL: write @cached(300), not @cached.")
    if key is not None and not isinstance(key, str) and not callable(key):
        raise TypeError(f"@cached key must be a format string or a callable, got {key!r}")
    check_options(stale, early, lock_timeout, wait)
    options = {"stale": stale, "early": early, "lock_timeout": lock_timeout, "wait": wait}

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

        def backend() -> Any:
            return caches[cache]

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                c = backend()
                k = make_key(args, kwargs)
                if hasattr(c, "_rr"):
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
                if hasattr(c, "_rr"):
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
