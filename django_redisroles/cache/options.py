"""The ``CACHES[alias]["OPTIONS"]`` keys RedisRolesCache adds to django-redis's.

One place for their names, defaults and validation: the backend resolves them
into a frozen :class:`CacheOptions` with :func:`resolve` (the first problem is
``ImproperlyConfigured``), the system checks (``checks/cache.py``) report every
problem :func:`problems` finds, and ``redisroles doctor`` reads the same names.

Light imports only (no redis, no django-redis): the checks import this module.
The cache role has no settings of its own under ``REDISROLES["ROLES"]["cache"]``
besides ``URL`` and ``OPTIONS`` (connection options): everything else is per
``CACHES`` alias, and Django rebuilds a backend (so its options) when ``CACHES``
changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

BACKEND_PATH = "django_redisroles.cache.RedisRolesCache"

#: Our OPTIONS and their defaults (django-redis's own OPTIONS pass through).
DEFAULTS: dict[str, Any] = {
    # Values above this many bytes (after serializing and compressing) are
    # "large": warned about or refused. The seed: put big blobs in object storage.
    "MAX_VALUE_SIZE": 1024 * 1024,
    "ON_LARGE_VALUE": "warn",
    # Every key gets a TTL unless the project says, here, that it wants keys
    # that never expire.
    "ALLOW_NO_TIMEOUT": False,
    # +/- this fraction of each TTL, so keys written together expire apart.
    "TIMEOUT_JITTER": 0.0,
    # Compress values of at least this many bytes (needs COMPRESSOR); None:
    # the compressor's own threshold.
    "COMPRESS_MIN_SIZE": None,
    # Stampede protection of get_or_set() / @cached.
    "STALE_TIMEOUT": 0,
    "EARLY_REFRESH": 0.0,
    "LOCK_TIMEOUT": 10.0,
    "LOCK_WAIT": None,  # None: LOCK_TIMEOUT
    # A cache is lossy: a Redis outage is a miss, not a 500 (django-redis's
    # own option; its default there is False).
    "IGNORE_EXCEPTIONS": True,
    # After a connection error or timeout, answer misses without trying Redis
    # for this many seconds: a hung Redis costs socket_timeout x (retries + 1)
    # per call otherwise. 0: always try.
    "OUTAGE_BACKOFF": 1.0,
    # The in-process near cache (L1) in front of Redis: False, True (the
    # NEAR_DEFAULTS below) or a dict of NEAR_DEFAULTS' keys. See docs/cache.md.
    "NEAR_CACHE": False,
}

#: ``OPTIONS["NEAR_CACHE"]`` as a dict: its keys and defaults.
NEAR_DEFAULTS: dict[str, Any] = {
    # Bounds of the local copy (LRU beyond either).
    "MAX_ENTRIES": 10_000,
    "MAX_BYTES": 32 * 1024 * 1024,
    # Values larger than this (encoded, bytes) are read from Redis every time.
    "MAX_VALUE_SIZE": 64 * 1024,
    # A local copy lives at most this many seconds (and never past its Redis TTL).
    "MAX_TTL": 300.0,
    # False: only reads that ask for it (``near=True``, ``@cached(near=True)``).
    "EVERY_KEY": True,
    # Keys (as given to the cache) starting with one of these are never kept locally.
    "EXCLUDE": (),
    # Seconds between two PINGs on the invalidation connection, and how long a
    # reply may take before the near cache is flushed and bypassed.
    "HEARTBEAT": 0.5,
    "MAX_LAG": 0.5,
}

ON_LARGE_VALUE_CHOICES: tuple[str, ...] = ("warn", "refuse", "raise")


@dataclass(frozen=True, slots=True)
class CacheOptions:
    """Our OPTIONS of one ``CACHES`` alias, validated, defaults filled in."""

    max_value_size: int
    on_large_value: str
    allow_no_timeout: bool
    timeout_jitter: float
    compress_min_size: int | None
    stale_timeout: float
    early_refresh: float
    lock_timeout: float
    lock_wait: float  # LOCK_TIMEOUT when not set
    ignore_exceptions: bool
    outage_backoff: float
    near: NearOptions | None = None  # None: no near cache


@dataclass(frozen=True, slots=True)
class NearOptions:
    """``OPTIONS["NEAR_CACHE"]`` of one alias, validated, defaults filled in."""

    max_entries: int
    max_bytes: int
    max_value_size: int
    max_ttl: float
    every_key: bool
    exclude: tuple[str, ...]
    heartbeat: float
    max_lag: float


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def problems(options: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(message, hint)`` for each bad value among our OPTIONS."""
    found: list[tuple[str, str]] = []
    size = options.get("MAX_VALUE_SIZE", DEFAULTS["MAX_VALUE_SIZE"])
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        found.append(
            (
                f"OPTIONS['MAX_VALUE_SIZE'] must be a positive number of bytes, got {size!r}.",
                "For example 1048576 (1 MiB, the default).",
            )
        )
    on_large = options.get("ON_LARGE_VALUE", DEFAULTS["ON_LARGE_VALUE"])
    if on_large not in ON_LARGE_VALUE_CHOICES:
        found.append(
            (
                f"OPTIONS['ON_LARGE_VALUE'] is {on_large!r}.",
                "Use one of: " + ", ".join(repr(c) for c in ON_LARGE_VALUE_CHOICES) + ".",
            )
        )
    for name in ("ALLOW_NO_TIMEOUT", "IGNORE_EXCEPTIONS"):
        value = options.get(name, DEFAULTS[name])
        if not isinstance(value, bool):
            found.append((f"OPTIONS[{name!r}] must be True or False, got {value!r}.", ""))
    jitter = options.get("TIMEOUT_JITTER", DEFAULTS["TIMEOUT_JITTER"])
    if not _number(jitter) or not 0 <= jitter < 1:
        found.append(
            (
                f"OPTIONS['TIMEOUT_JITTER'] must be a fraction in [0, 1), got {jitter!r}.",
                "For example 0.1 spreads TTLs over +/-10 %.",
            )
        )
    compress = options.get("COMPRESS_MIN_SIZE")
    if compress is not None and (
        not isinstance(compress, int) or isinstance(compress, bool) or compress < 0
    ):
        found.append(
            (
                f"OPTIONS['COMPRESS_MIN_SIZE'] must be a number of bytes, got {compress!r}.",
                "For example 1024, with OPTIONS['COMPRESSOR'] set.",
            )
        )
    for name in ("STALE_TIMEOUT", "EARLY_REFRESH", "OUTAGE_BACKOFF"):
        value = options.get(name, DEFAULTS[name])
        if not _number(value) or value < 0:
            found.append((f"OPTIONS[{name!r}] must be a number >= 0, got {value!r}.", ""))
    lock = options.get("LOCK_TIMEOUT", DEFAULTS["LOCK_TIMEOUT"])
    if not _number(lock) or lock <= 0:
        found.append(
            (
                f"OPTIONS['LOCK_TIMEOUT'] must be a number of seconds > 0, got {lock!r}.",
                "It bounds how long one loader may hold the single-flight lock; "
                "make it longer than your slowest loader.",
            )
        )
    wait = options.get("LOCK_WAIT")
    if wait is not None and (not _number(wait) or wait < 0):
        found.append((f"OPTIONS['LOCK_WAIT'] must be seconds >= 0, got {wait!r}.", ""))
    return found + _near_problems(options.get("NEAR_CACHE", False))


def _near_problems(near: Any) -> list[tuple[str, str]]:
    if isinstance(near, bool):
        return []
    if not isinstance(near, Mapping):
        return [
            (
                f"OPTIONS['NEAR_CACHE'] must be True, False or a dict, got {near!r}.",
                "For example True, or {'MAX_ENTRIES': 10000, 'MAX_BYTES': 33554432}.",
            )
        ]
    found: list[tuple[str, str]] = []
    unknown = sorted(str(k) for k in near if k not in NEAR_DEFAULTS)
    if unknown:
        found.append(
            (
                f"OPTIONS['NEAR_CACHE'] has unknown keys: {', '.join(unknown)}.",
                "Known: " + ", ".join(NEAR_DEFAULTS) + ".",
            )
        )
    for name in ("MAX_ENTRIES", "MAX_BYTES", "MAX_VALUE_SIZE"):
        value = near.get(name, NEAR_DEFAULTS[name])
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            found.append(
                (f"OPTIONS['NEAR_CACHE'][{name!r}] must be an integer > 0, got {value!r}.", "")
            )
    for name in ("MAX_TTL", "HEARTBEAT", "MAX_LAG"):
        value = near.get(name, NEAR_DEFAULTS[name])
        if not _number(value) or not 0 < value < float("inf"):
            found.append(
                (f"OPTIONS['NEAR_CACHE'][{name!r}] must be seconds > 0, got {value!r}.", "")
            )
    every = near.get("EVERY_KEY", True)
    if not isinstance(every, bool):
        found.append(
            (f"OPTIONS['NEAR_CACHE']['EVERY_KEY'] must be True or False, got {every!r}.", "")
        )
    exclude = near.get("EXCLUDE", ())
    if (
        isinstance(exclude, str)
        or not isinstance(exclude, list | tuple)
        or not all(isinstance(p, str) and p for p in exclude)
    ):
        found.append(
            (
                f"OPTIONS['NEAR_CACHE']['EXCLUDE'] must be a list of key prefixes, "
                f"got {exclude!r}.",
                "For example ['cart:', 'stock:']: keys starting with one are read from Redis.",
            )
        )
    return found


def _near(near: Any) -> NearOptions | None:
    if near is False:
        return None
    v = {**NEAR_DEFAULTS, **(near if isinstance(near, Mapping) else {})}
    return NearOptions(
        max_entries=v["MAX_ENTRIES"],
        max_bytes=v["MAX_BYTES"],
        max_value_size=v["MAX_VALUE_SIZE"],
        max_ttl=float(v["MAX_TTL"]),
        every_key=v["EVERY_KEY"],
        exclude=tuple(v["EXCLUDE"]),
        heartbeat=float(v["HEARTBEAT"]),
        max_lag=float(v["MAX_LAG"]),
    )


def resolve(alias: str, options: Mapping[str, Any]) -> CacheOptions:
    """Our OPTIONS of ``CACHES[alias]``, defaults filled in; ImproperlyConfigured on a bad value."""
    found = problems(options)
    if found:
        message, hint = found[0]
        raise ImproperlyConfigured(f"CACHES[{alias!r}]: {message} {hint}".strip())
    v = {name: options.get(name, default) for name, default in DEFAULTS.items()}
    return CacheOptions(
        max_value_size=v["MAX_VALUE_SIZE"],
        on_large_value=v["ON_LARGE_VALUE"],
        allow_no_timeout=v["ALLOW_NO_TIMEOUT"],
        timeout_jitter=float(v["TIMEOUT_JITTER"]),
        compress_min_size=v["COMPRESS_MIN_SIZE"],
        stale_timeout=float(v["STALE_TIMEOUT"]),
        early_refresh=float(v["EARLY_REFRESH"]),
        lock_timeout=float(v["LOCK_TIMEOUT"]),
        lock_wait=float(v["LOCK_TIMEOUT"] if v["LOCK_WAIT"] is None else v["LOCK_WAIT"]),
        ignore_exceptions=v["IGNORE_EXCEPTIONS"],
        outage_backoff=float(v["OUTAGE_BACKOFF"]),
        near=_near(v["NEAR_CACHE"]),
    )
