"""What settings say: which roles the project wires, and where each role's keys live.

The namespaces come from the roles themselves (their ``options`` defaults and
their key-naming functions), never from copies kept here, so the doctor samples
exactly the keys each role writes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from django.conf import settings

from .. import conf
from ..cache import default_key_prefix
from ..cache import options as cache_options
from .model import Namespace

__all__ = [
    "CACHE_BACKEND",
    "cache_namespaces",
    "near_cache_prefixes",
    "role_namespaces",
    "unwired_roles",
]

CACHE_BACKEND = cache_options.BACKEND_PATH


def cache_namespaces() -> list[tuple[str, int, bool]]:
    """(prefix with ":", value size limit, ALLOW_NO_TIMEOUT) of each RedisRolesCache."""
    defaults = cache_options.DEFAULTS
    found: list[tuple[str, int, bool]] = []
    for entry in (getattr(settings, "CACHES", None) or {}).values():
        if not isinstance(entry, Mapping) or entry.get("BACKEND") != CACHE_BACKEND:
            continue
        # As the backend does: only a missing KEY_PREFIX means the role's namespace
        # ("" is an explicit prefix: keys are ":1:<key>").
        prefix = entry["KEY_PREFIX"] if "KEY_PREFIX" in entry else default_key_prefix()
        options = entry.get("OPTIONS") or {}
        limit = int(options.get("MAX_VALUE_SIZE", defaults["MAX_VALUE_SIZE"]) or 0)
        allow = options.get("ALLOW_NO_TIMEOUT", defaults["ALLOW_NO_TIMEOUT"]) is True
        found.append((f"{prefix}:", limit, allow))
    if not found:
        found.append((default_key_prefix() + ":", int(defaults["MAX_VALUE_SIZE"]), False))
    return found


def near_cache_prefixes() -> list[str]:
    """The key prefix (with ":") of each RedisRolesCache with ``OPTIONS["NEAR_CACHE"]`` on."""
    found = []
    for entry in (getattr(settings, "CACHES", None) or {}).values():
        if not isinstance(entry, Mapping) or entry.get("BACKEND") != CACHE_BACKEND:
            continue
        if (entry.get("OPTIONS") or {}).get("NEAR_CACHE"):
            prefix = entry["KEY_PREFIX"] if "KEY_PREFIX" in entry else default_key_prefix()
            found.append(f"{prefix}:")
    return found


def role_namespaces(role: str) -> list[Namespace]:
    """The key prefixes ``role`` writes under (several for a project with several caches)."""
    if role == "cache":
        return [
            Namespace("cache", prefix, limit, allow_no_ttl=allow)
            for prefix, limit, allow in cache_namespaces()
        ]
    if role == "pubsub":
        from ..pubsub import names as pubsub_names  # imports Channels: only when used

        return [Namespace("pubsub", pubsub_names.namespace())]
    return [Namespace(role, conf.make_key(role) + ":")]


def is_ours(path: Any, package: str) -> bool:
    """Whether dotted ``path`` names ``package`` or something in it."""
    return isinstance(path, str) and (path == package or path.startswith(package + "."))


def unwired_roles() -> dict[str, str]:
    """Roles whose Django piece the project does not use -> why (not checked by default).

    Every role's URL defaults to ``REDISROLES["URL"]``, so without this a project
    that keeps sessions in its database would get the sessions' rules (an error
    on an ``allkeys-lru`` cache server) for sessions it does not have. Rate
    limiting and locks are used from code (decorators, ``Lock``), which settings
    cannot show: they are checked unless nothing names a Redis for them (no
    URL of their own, no ``REDISROLES["URL"]``, no ``$REDIS_URL``) and, for rate
    limiting, ``RateLimitMiddleware`` is not in ``MIDDLEWARE`` either.
    """
    unwired: dict[str, str] = {}
    unnamed = not conf.raw().get("URL") and not os.environ.get("REDIS_URL")
    middleware = [str(m) for m in getattr(settings, "MIDDLEWARE", None) or []]
    for role in ("ratelimit", "locks"):
        if not unnamed or conf.role_raw(role).get("URL"):
            continue
        if role == "ratelimit" and any(
            is_ours(m, "django_redisroles.ratelimit") for m in middleware
        ):
            continue
        why = "no Redis URL is configured for it (its own URL, REDISROLES['URL'] or $REDIS_URL)"
        if role == "ratelimit":
            why += " and RateLimitMiddleware is not in MIDDLEWARE"
        unwired[role] = why
    caches = getattr(settings, "CACHES", None) or {}
    if not any(
        isinstance(entry, Mapping) and is_ours(entry.get("BACKEND"), "django_redisroles.cache")
        for entry in caches.values()
    ):
        unwired["cache"] = f"no CACHES entry uses {CACHE_BACKEND}"
    engine = getattr(settings, "SESSION_ENGINE", None)
    if not is_ours(engine, "django_redisroles.sessions"):
        unwired["sessions"] = f"SESSION_ENGINE is {engine!r}, not 'django_redisroles.sessions'"
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    if not any(
        isinstance(layer, Mapping) and is_ours(layer.get("BACKEND"), "django_redisroles.pubsub")
        for layer in layers.values()
    ):
        unwired["pubsub"] = "no CHANNEL_LAYERS entry uses django_redisroles.pubsub"
    return unwired
