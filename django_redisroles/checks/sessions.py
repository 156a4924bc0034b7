"""System checks of the sessions role (see docs/checks.md).

- ``redisroles.E020``: ``SESSION_SERIALIZER`` is pickle-based (the store never unpickles).
- ``redisroles.E021``: a sessions role setting has the wrong type or range.
- ``redisroles.W020``: ``SESSION_COOKIE_HTTPONLY = False``.
- ``redisroles.W021``: the sessions role's Redis is also a cache's Redis (eviction risk).
  A deployment check: ``check --deploy`` (and ``redisroles doctor``, as W123) says
  it; a plain ``check``/``runserver``/``migrate`` of the one-instance set-up that
  the README's Quick start recommends for development stays quiet.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from .. import conf

ENGINE = "django_redisroles.sessions"


def _engine_in_use() -> bool:
    return getattr(settings, "SESSION_ENGINE", "") == ENGINE


def _cache_urls() -> Iterator[tuple[str, str]]:
    """(where, url) of each Redis a cache uses: the cache role, and any CACHES LOCATION."""
    caches = getattr(settings, "CACHES", {}) or {}
    for alias, config in caches.items():
        backend = str(config.get("BACKEND", ""))
        location = config.get("LOCATION")
        if backend.startswith("django_redisroles.") and not location:
            # Our cache backend without LOCATION runs on the cache role's URL.
            yield f"the cache role (CACHES[{alias!r}])", conf.role_url("cache")
            continue
        # "primary,replica" strings, as Django's RedisCache and django-redis split them.
        if isinstance(location, str):
            locations: Any = re.split("[;,]", location)
        elif isinstance(location, list | tuple):
            locations = location
        else:
            locations = []
        for loc in locations:
            loc = loc.strip() if isinstance(loc, str) else loc
            if isinstance(loc, str) and loc.startswith(conf.URL_SCHEMES):
                yield f"CACHES[{alias!r}]", loc


def _check_role_settings() -> list[CheckMessage]:
    from ..sessions import options

    try:
        values = options.values()
    except Exception:  # noqa: BLE001 - malformed REDISROLES is reported by E001-E004
        return []
    return [
        Error(message, hint=hint, id="redisroles.E021")
        for message, hint in options.problems(values)
    ]


@register()
def check_sessions(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Safety of the Redis session engine's configuration."""
    if not _engine_in_use():
        return []
    from ..sessions import options

    messages: list[CheckMessage] = _check_role_settings()
    serializer = str(getattr(settings, "SESSION_SERIALIZER", ""))
    if options.pickle_based(serializer):
        messages.append(
            Error(
                f"SESSION_SERIALIZER is {serializer!r}: the Redis session engine never "
                "unpickles (anyone who can write to Redis could run code in your app); "
                "it refuses to load or save sessions.",
                hint="Use SESSION_SERIALIZER = "
                '"django.contrib.sessions.serializers.JSONSerializer" (the default) and '
                "store only JSON-serializable values in sessions.",
                id="redisroles.E020",
            )
        )
    if not getattr(settings, "SESSION_COOKIE_HTTPONLY", True):
        messages.append(
            Warning(
                "SESSION_COOKIE_HTTPONLY is False: any script on your pages (an XSS) "
                "can read the session cookie and take over the session.",
                hint="Remove SESSION_COOKIE_HTTPONLY = False; JavaScript never needs the "
                "session cookie.",
                id="redisroles.W020",
            )
        )
    return messages


@register("redisroles", deploy=True)  # the tag of the deployment checks (checks/deploy.py)
def check_sessions_server(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``redisroles.W021``: sessions on the same server as a cache (``check --deploy``)."""
    if not _engine_in_use():
        return []
    messages: list[CheckMessage] = []
    try:
        sessions_url = conf.role_url("sessions")
        cache_urls = list(_cache_urls())
    except Exception:  # noqa: BLE001 - malformed REDISROLES is reported by E001-E004
        return messages
    sessions_server = conf.server_of(sessions_url)
    if sessions_server is None:
        return messages
    for where, url in cache_urls:
        if conf.server_of(url) == sessions_server:
            messages.append(
                Warning(
                    f"The sessions role uses the same Redis server as {where}. A cache "
                    "instance is normally run with an eviction policy (allkeys-lru, ...): "
                    "when it fills up, Redis evicts sessions too and logs users out. A "
                    "different database number on the same server does not help: "
                    "maxmemory and eviction are per server.",
                    hint='Give sessions their own instance (REDISROLES["ROLES"]["sessions"]'
                    '["URL"]) with maxmemory-policy noeviction and persistence (AOF); or, '
                    "if this one server is configured noeviction, silence redisroles.W021.",
                    id="redisroles.W021",
                )
            )
            break
    return messages
