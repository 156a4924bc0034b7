"""The cache's rules, in one place: TTLs, value sizes, and what a Redis failure means.

One :class:`CachePolicy` per backend instance, built from its OPTIONS
(:class:`~.options.CacheOptions`). The backend, its django-redis client, the
operation plans (``ops``) and ``get_or_set`` (``stampede``) all ask it; none of
them reads another's state.

- TTLs: every key gets one (``timeout=None`` is :class:`TimeoutRequired` unless
  ``ALLOW_NO_TIMEOUT``), spread by ``TIMEOUT_JITTER``.
- Values above ``MAX_VALUE_SIZE``: ``ON_LARGE_VALUE`` (warn, refuse, raise).
- Failures: what Redis raised is classified by ``errors.classify``; an outage
  or a refusal is handled (logged, counted, a miss or a dropped write) when
  ``IGNORE_EXCEPTIONS``, a programming error is always raised. A failure that
  fails every command opens the server's breaker for ``OUTAGE_BACKOFF``
  seconds: calls answer at once without trying Redis.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django_redis.exceptions import ConnectionInterrupted

from .. import conf, errors
from ..counters import Counters
from ..errors import REDIS_ERRORS
from .options import CacheOptions

T = TypeVar("T")

logger = logging.getLogger("django_redisroles.cache")


class TimeoutRequired(ValueError):
    """A write asked for a key without a TTL and the cache does not allow it."""


class CacheValueTooLarge(ValueError):
    """A value above ``MAX_VALUE_SIZE`` with ``ON_LARGE_VALUE = "raise"``."""


#: What a cache call may raise because of Redis: django-redis's wrapper
#: (``ConnectionInterrupted``, raised by its client methods and ours), and the
#: errors of our own calls.
CACHE_ERRORS: tuple[type[BaseException], ...] = (ConnectionInterrupted, *REDIS_ERRORS)


def unwrap(exc: BaseException) -> BaseException:
    """The Redis error behind django-redis's ``ConnectionInterrupted``."""
    if isinstance(exc, ConnectionInterrupted):
        cause: BaseException | None = exc.__cause__
        if cause is not None:
            return cause
    return exc


def failure_of(exc: BaseException) -> errors.Failure | None:
    """The classified Redis failure behind ``exc`` (None: not a Redis error)."""
    return errors.classify(unwrap(exc))


def seconds(timeout: Any) -> float:
    """``timeout`` as a finite number of seconds; TypeError otherwise.

    ``"300" * 1000`` is a string, not 300000: without this a str timeout
    reached Redis as a PX it refused, with a message naming neither.
    """
    if type(timeout) is int:  # the common case, fast
        return timeout
    try:
        if isinstance(timeout, str | bytes):
            raise TypeError
        value = float(timeout)
        if not math.isfinite(value):
            raise ValueError
    except (TypeError, ValueError):
        raise TypeError(
            f"A cache timeout must be a finite number of seconds, got {timeout!r}."
        ) from None
    return timeout if isinstance(timeout, int | float) else value


# -- the outage breaker and log (per server and process) ----------------------------


class Breaker:
    """Until when (monotonic) the caches of one server skip it after an outage."""

    __slots__ = ("name", "until")

    def __init__(self, name: str) -> None:
        self.name = name
        self.until = 0.0  # 0: closed, Redis is tried

    def is_open(self) -> bool:
        until = self.until
        if not until:
            return False
        if time.monotonic() < until:
            return True
        self.until = 0.0
        return False

    def open_for(self, seconds: float) -> None:
        self.until = time.monotonic() + seconds


_breakers: dict[str, Breaker] = {}
_breakers_lock = threading.Lock()


def breaker(name: str) -> Breaker:
    """The breaker of the server ``name`` (a LOCATION, or the cache role), shared by its caches."""
    found = _breakers.get(name)
    if found is None:
        with _breakers_lock:
            found = _breakers.setdefault(name, Breaker(name))
    return found


# Logging a Redis outage once per interval: under load every request would log it.
OUTAGE_LOG_INTERVAL = 10.0
_last_outage_log = 0.0


def log_outage(failure: errors.Failure) -> None:
    """Log ``failure`` (at most once per OUTAGE_LOG_INTERVAL in this process)."""
    global _last_outage_log
    now = time.monotonic()
    if now - _last_outage_log >= OUTAGE_LOG_INTERVAL:
        _last_outage_log = now
        # A refusal (ACL, noeviction, replica) does not heal by itself: louder.
        log = logger.warning if failure.outage else logger.error
        log(
            "Cache Redis unavailable: %s Reads are misses and writes are dropped "
            "(OPTIONS['IGNORE_EXCEPTIONS']). Further errors are logged every %ss.",
            failure.describe(),
            int(OUTAGE_LOG_INTERVAL),
        )


def _reset() -> None:
    """New settings, new servers: no back-off, and the next outage is logged."""
    global _last_outage_log
    _last_outage_log = 0.0
    for b in list(_breakers.values()):
        b.until = 0.0


conf.on_settings_change(_reset, settings=("REDISROLES", "CACHES"))


# -- the policy of one cache ---------------------------------------------------------


class CachePolicy:
    """The rules of one cache alias: TTLs, value sizes, failures. See the module docstring."""

    __slots__ = ("breaker", "counters", "default_timeout", "options")

    def __init__(
        self,
        options: CacheOptions,
        *,
        default_timeout: float | None,
        location: str,
        counters: Counters,
    ) -> None:
        self.options = options
        self.default_timeout = default_timeout
        self.breaker = breaker(location)
        self.counters = counters

    # -- TTLs ---------------------------------------------------------------------

    def refuse_no_timeout(self, key: Any, what: str = "timeout=None") -> None:
        """Raise TimeoutRequired unless OPTIONS['ALLOW_NO_TIMEOUT']."""
        if self.options.allow_no_timeout:
            return
        raise TimeoutRequired(
            f"RedisRolesCache refuses {what} for key {key!r}: every cache key needs a TTL "
            "(a key without one is never evicted by expiry and grows memory for ever). "
            "Pass a timeout in seconds, or set OPTIONS['ALLOW_NO_TIMEOUT'] = True in this "
            "CACHES entry to allow keys that never expire."
        )

    def timeout_seconds(self, key: Any, timeout: Any) -> float | None:
        """A call's ``timeout`` in seconds (DEFAULT_TIMEOUT: the cache's); None: "forever",
        allowed (TimeoutRequired otherwise)."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            self.refuse_no_timeout(key)
            return None
        return seconds(timeout)

    def ttl_ms(self, key: Any, timeout: Any) -> int | None:
        """Milliseconds to give ``key``: jittered, or None when "forever" is allowed."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if type(timeout) is int:  # the common case, fast (what seconds() would give)
            ms = timeout * 1000
        else:
            t = self.timeout_seconds(key, timeout)
            if t is None:
                return None
            ms = int(t * 1000)
        jitter = self.options.timeout_jitter
        if jitter and ms > 0:
            ms = max(1, round(ms * random.uniform(1 - jitter, 1 + jitter)))
        return ms

    def default_ttl_ms(self) -> int:
        """TTL for a key created without one (incr, sadd...); 0 when "forever" is allowed."""
        ms = self.ttl_ms("(a key created by incr/sadd/hset/...)", DEFAULT_TIMEOUT)
        if ms is None:
            return 0
        return max(ms, 1)

    # -- values -------------------------------------------------------------------

    def admit(self, nkey: str, size: int) -> bool:
        """Whether to store a value of ``size`` bytes (ON_LARGE_VALUE above MAX_VALUE_SIZE)."""
        limit = self.options.max_value_size
        if size <= limit:
            return True
        message = (
            f"Cache value for key {nkey!r} is {size} bytes, above MAX_VALUE_SIZE "
            f"({limit} bytes). Large values cost network and memory on every hit; "
            "store big blobs elsewhere (object storage) and cache a reference, "
            "or enable a COMPRESSOR."
        )
        on_large = self.options.on_large_value
        if on_large == "raise":
            raise CacheValueTooLarge(message)
        if on_large == "refuse":
            logger.warning("%s Not stored (ON_LARGE_VALUE='refuse').", message)
            return False
        logger.warning(message)
        return True

    # -- failures -----------------------------------------------------------------

    def skipping(self) -> bool:
        """True while this cache's server is in its OUTAGE_BACKOFF after an outage."""
        return (
            self.breaker.until != 0.0 and self.options.ignore_exceptions and self.breaker.is_open()
        )

    def skipped(self) -> None:
        """Count a call answered by the failure policy without asking Redis (OUTAGE_BACKOFF)."""
        self.counters.add("outages")

    def handle(self, exc: BaseException) -> BaseException | None:
        """Apply the failure policy to what one of our Redis calls raised.

        None: handled (counted, logged, maybe the back-off started): answer the
        policy's default. Otherwise the exception to raise: a programming error,
        or any error with IGNORE_EXCEPTIONS off.
        """
        cause = unwrap(exc)
        failure = errors.classify(cause)
        if failure is None or failure.bug or not self.options.ignore_exceptions:
            return cause
        self.outage(failure)
        return None

    def outage(self, failure: errors.Failure) -> None:
        """Count and log a failure; one that fails every command starts the back-off.

        A refusal of some commands only (``OOM``, ``READONLY``, ``NOPERM``) does
        not: reads may still work.
        """
        self.counters.add("outages")
        backoff = self.options.outage_backoff
        if backoff > 0 and failure.server_down:
            self.breaker.open_for(backoff)
        log_outage(failure)


# -- fail-open: the policy around a backend method ------------------------------------


class HasPolicy(Protocol):
    @property
    def policy(self) -> CachePolicy: ...


def _default(default: Any) -> Any:
    return default() if callable(default) else default


def fail_open(
    default: Any = None, skip: bool = True
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """A Redis failure of the method is ``default`` (called if callable) when the policy
    handles it. ``skip``: during the back-off, answer ``default`` without trying."""

    def decorator(method: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(method)
        def wrapper(self: HasPolicy, *args: Any, **kwargs: Any) -> T:
            policy = self.policy
            # breaker.until first: a closed breaker (almost always) costs no call.
            if skip and policy.breaker.until and policy.skipping():
                policy.skipped()
                return _default(default)  # type: ignore[no-any-return]
            try:
                return method(self, *args, **kwargs)
            except CACHE_ERRORS as exc:
                error = policy.handle(exc)
                if error is not None:
                    raise error from None
                return _default(default)  # type: ignore[no-any-return]

        return wrapper

    return decorator


def afail_open(
    default: Any = None,
) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
    """:func:`fail_open` for a coroutine method."""

    def decorator(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        @functools.wraps(method)
        async def wrapper(self: HasPolicy, *args: Any, **kwargs: Any) -> T:
            policy = self.policy
            if policy.breaker.until and policy.skipping():
                policy.skipped()
                return _default(default)  # type: ignore[no-any-return]
            try:
                return await method(self, *args, **kwargs)
            except CACHE_ERRORS as exc:
                error = policy.handle(exc)
                if error is not None:
                    raise error from None
                return _default(default)  # type: ignore[no-any-return]

        return wrapper

    return decorator


class OutageLogger:
    """What django-redis's ``omit_exception`` logs its ignored errors through.

    django-redis has no public hook for that: its ``RedisCache`` calls
    ``self.logger.exception(...)`` when ``self._log_ignored_exceptions``. The
    backend sets both (in one place); here the error is counted and logged
    like any other outage (no back-off: these are django-redis's extras).
    """

    def __init__(self, counters: Counters) -> None:
        self.counters = counters

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        exc = sys.exc_info()[1]
        failure = failure_of(exc) if exc is not None else None
        if failure is not None:
            self.counters.add("outages")
            log_outage(failure)


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
