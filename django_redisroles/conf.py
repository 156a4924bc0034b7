"""The ``REDISROLES`` setting, resolved per role.

Everything here is read from ``django.conf.settings`` on every access, so
``override_settings`` just works; nothing derived from settings is cached in
this module (connection pools are cached in ``connections`` and dropped on
``setting_changed``).

Shape of the setting::

    REDISROLES = {
        "URL": "redis://127.0.0.1:6379/0",   # default: $REDIS_URL, else this
        "OPTIONS": {...},                     # connection options for every role
        "KEY_PREFIX": "rr",                   # namespace of every key this app writes
        "ROLES": {
            "cache":    {"URL": "...", "OPTIONS": {...}, ...role settings},
            "sessions": {...},
            ...
        },
    }
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

ROLES: tuple[str, ...] = ("cache", "sessions", "ratelimit", "pubsub", "locks")

FALLBACK_URL = "redis://127.0.0.1:6379/0"
URL_SCHEMES: tuple[str, ...] = ("redis", "rediss", "unix")

#: Keys accepted at the top level of ``REDISROLES``.
TOP_LEVEL_KEYS: frozenset[str] = frozenset({"URL", "OPTIONS", "KEY_PREFIX", "ROLES", "DOCTOR"})

#: Keys every role accepts.
COMMON_ROLE_KEYS: frozenset[str] = frozenset({"URL", "OPTIONS"})

#: Connection options, as redis-py keyword arguments plus ``retry_attempts``
#: (our own: how many times a command is retried on a connection error or
#: timeout, with exponential backoff). Explicit timeouts matter: redis-py's
#: default is to wait forever, which turns a Redis outage into stuck workers.
DEFAULT_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 2.0,
    "socket_timeout": 2.0,
    "socket_keepalive": True,
    "retry_attempts": 2,
    "health_check_interval": 30,
    "max_connections": 100,
    # Named connections let `CLIENT LIST` and `redisroles doctor` tell ours apart.
    "client_name": "redisroles",
}

#: Per-role connection option defaults, layered over ``DEFAULT_OPTIONS``.
ROLE_DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    "cache": {},
    "sessions": {},
    # A rate-limit check sits in front of every request: an outage must cost
    # milliseconds, not seconds, before the failure policy kicks in.
    "ratelimit": {"socket_connect_timeout": 0.25, "socket_timeout": 0.25, "retry_attempts": 0},
    "pubsub": {},
    "locks": {},
}

#: Role-specific settings and their defaults. A key not listed here (nor in
#: ``COMMON_ROLE_KEYS``) is reported by the ``redisroles.E004`` check.
ROLE_DEFAULTS: dict[str, dict[str, Any]] = {
    "cache": {},
    "sessions": {
        # Keep the per-user session index (user_sessions, logout_everywhere).
        "USER_INDEX": True,
        # Seconds a user-index entry (its expiry score, "last seen") may lag
        # behind its session: saves within this window skip the index write.
        "INDEX_REFRESH": 60,
        # Retry-After (seconds) of the 503 SessionMiddleware sends on an outage.
        "RETRY_AFTER": 5,
    },
    "ratelimit": {
        "ENABLED": True,  # False: every limit is off (checks still validate settings)
        "RULES": [],  # middleware rules: [{"path": "/api/", "rate": "60/m", "key": "ip"}, ...]
        "ALGORITHM": "gcra",  # default of rules and decorators: "fixed", "sliding", "gcra"
        "FAIL": "open",  # when Redis is unreachable: "open" (let through) or "closed"
        "FAIL_STATUS": 503,  # status of a fail-closed refusal (429 or 503)
        "FAIL_LOG_INTERVAL": 60,  # seconds between two "Redis unreachable" log lines
        "OUTAGE_BACKOFF": 1.0,  # seconds to skip Redis after an error (failure policy applies)
        "SHADOW": False,  # True: count and log/signal, never refuse (dry run)
        "TRUSTED_PROXIES": [],  # networks whose proxy header is believed
        "PROXY_HEADER": "X-Forwarded-For",  # or "Forwarded" (RFC 7239)
        "IPV4_PREFIX": 32,  # clients are grouped by these prefix lengths
        "IPV6_PREFIX": 64,
        "HEADERS": "ietf",  # "ietf" (RateLimit-Policy/RateLimit), "legacy", "both", "none"
        "HEADERS_ON_ALLOWED": False,  # also send them on responses that were let through
        "RESPONSE": None,  # callable or dotted path: (request, result) -> HttpResponse
        "PROBLEM_JSON_PATHS": [],  # path prefixes answered with application/problem+json
    },
    # Channel layer options (each overridable per layer in CHANNEL_LAYERS[...]["CONFIG"],
    # lower-cased); see docs/pubsub.md.
    "pubsub": {
        "CAPACITY": 100,
        "CHANNEL_CAPACITY": {},
        "EXPIRY": 60,
        "GROUP_EXPIRY": 86400,
        "SERIALIZER_FORMAT": "msgpack",
        "SYMMETRIC_ENCRYPTION_KEYS": None,
        "REPLAY_GROUPS": [],
        "REPLAY_MAXLEN": 1000,
        "REPLAY_TTL": 86400,
    },
    "locks": {
        # Lease of a lock, in seconds, when Lock()/command_lock() get no ttl.
        "TTL": 60,
        # Renew held locks every ttl/3 (one watchdog thread per process).
        "AUTO_RENEW": True,
        # Lifetime of a lock's fence counter, refreshed on every acquire (30 days).
        "FENCE_TTL": 30 * 24 * 3600,
        # Longest a waiter blocks on the wake-up list before trying again.
        "WAIT_POLL": 1.0,
    },
}


@dataclass(frozen=True)
class RoleConfig:
    """The resolved configuration of one role."""

    role: str
    url: str
    options: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.settings[name]

    @property
    def connection_key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """Identity of the pool this role uses: same URL + options, same pool."""
        return (self.url, tuple(sorted((k, repr(v)) for k, v in self.options.items())))


def raw() -> dict[str, Any]:
    """The ``REDISROLES`` setting as written (empty dict when absent)."""
    value = getattr(settings, "REDISROLES", None)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(
            f"REDISROLES must be a dict, got {type(value).__name__}: {value!r}"
        )
    return dict(value)


def default_url() -> str:
    """``REDISROLES["URL"]``, else ``$REDIS_URL``, else ``redis://127.0.0.1:6379/0``."""
    url = raw().get("URL")
    if url:
        return str(url)
    return os.environ.get("REDIS_URL") or FALLBACK_URL


_NETLOC = re.compile(
    r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<netloc>[^/?#]*)(?P<rest>.*)$", re.S
)


def mask_url(url: str) -> str:
    """``url`` with its password (``user:PASSWORD@``, ``?password=``) replaced by ``***``.

    For every message and output that shows a Redis URL (checks, errors, CLI).
    Works on malformed URLs too (a check message must not leak a password
    because the URL it reports is broken), and keeps the host as written.
    """
    match = _NETLOC.match(url)
    if match is None:
        return url
    netloc = match["netloc"]
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hostport}"
    rest = re.sub(r"([?&]password=)[^&#]*", r"\1***", match["rest"])
    return f"{match['scheme']}{netloc}{rest}"


def server_of(url: str) -> tuple[str, ...] | None:
    """The Redis server a URL points at, ignoring database and credentials (None: unusable).

    ``localhost`` and ``::1`` count as ``127.0.0.1``; for telling, without
    connecting, whether two settings name the same server.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme == "unix":
        return ("unix", parts.path)
    if parts.scheme not in ("redis", "rediss"):
        return None
    host = (parts.hostname or "").lower()
    if host in ("localhost", "::1", "[::1]"):
        host = "127.0.0.1"
    return ("tcp", host, str(port or 6379))


def url_db(url: str) -> int:
    """The database a Redis URL selects: ``?db=N``, else ``/N``, else 0 (as redis-py reads it).

    Raises ``ValueError`` for a non-numeric ``?db=`` (check ``redisroles.E005``).
    """
    parts = urlsplit(url)
    for item in parts.query.split("&"):
        if item.startswith("db="):
            return int(item[3:] or 0)
    path = parts.path.lstrip("/") if parts.scheme != "unix" else ""
    return int(path) if path.isdigit() else 0


def key_prefix() -> str:
    """Namespace prepended to every key the roles write (``rr`` by default)."""
    return str(raw().get("KEY_PREFIX", "rr"))


#: ``REDISROLES["DOCTOR"]``: how ``redisroles doctor`` and the deploy checks
#: (``redisroles.E1xx``/``W1xx``) look at the servers. See docs/operations.md.
DOCTOR_DEFAULTS: dict[str, Any] = {
    # "deploy": the Redis checks run with `check --deploy` only; "always": with
    # every `check` (runserver too); "never": only `redisroles doctor` runs them.
    "CHECKS": "deploy",
    "TIMEOUT": 1.0,  # connect and per-command timeout, seconds
    "PINGS": 10,  # round trips measured per server (the median is reported)
    "MAX_KEYS": 100_000,  # keys sampled per database, at most
    "MAX_SECONDS": 10.0,  # time budget of the whole key sampling
    "SCAN_COUNT": 1000,  # SCAN ... COUNT per call (never KEYS)
    "EXAMPLES": 5,  # example keys shown per finding
    "LATENCY_WARN_MS": 10.0,  # median PING above this is a warning
    "NEW_CONNECTIONS_WARN": 10.0,  # new connections per second: connect-per-request
    "CLIENT_WINDOW": 0.5,  # seconds over which the new-connection rate is measured
    "STREAM_MAX_LEN": 10_000,  # replay stream cap assumed when the pubsub role sets none
}


def doctor_settings() -> dict[str, Any]:
    """``REDISROLES["DOCTOR"]`` over ``DOCTOR_DEFAULTS`` (validated by check E190)."""
    merged = dict(DOCTOR_DEFAULTS)
    value = raw().get("DOCTOR") or {}
    if isinstance(value, Mapping):
        merged.update(value)
    return merged


def _role_raw(role: str) -> dict[str, Any]:
    if role not in ROLES:
        raise ImproperlyConfigured(
            f"Unknown redisroles role {role!r}; the roles are: {', '.join(ROLES)}."
        )
    roles = raw().get("ROLES") or {}
    if not isinstance(roles, Mapping):
        raise ImproperlyConfigured(f"REDISROLES['ROLES'] must be a dict, got {roles!r}")
    value = roles.get(role) or {}
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(f"REDISROLES['ROLES'][{role!r}] must be a dict, got {value!r}")
    return dict(value)


def role_url(role: str) -> str:
    """The Redis URL a role connects to: its own ``URL`` or the default one."""
    return str(_role_raw(role).get("URL") or default_url())


def role_options(role: str) -> dict[str, Any]:
    """Connection options of a role: defaults < top-level OPTIONS < role OPTIONS."""
    options = dict(DEFAULT_OPTIONS)
    options.update(ROLE_DEFAULT_OPTIONS.get(role, {}))
    options.update(raw().get("OPTIONS") or {})
    options.update(_role_raw(role).get("OPTIONS") or {})
    return options


def role_settings(role: str) -> dict[str, Any]:
    """Role-specific settings, defaults filled in (no URL/OPTIONS)."""
    merged = dict(ROLE_DEFAULTS.get(role, {}))
    merged.update({k: v for k, v in _role_raw(role).items() if k not in COMMON_ROLE_KEYS})
    return merged


def role_config(role: str) -> RoleConfig:
    """Everything about one role, resolved now from settings."""
    return RoleConfig(
        role=role,
        url=role_url(role),
        options=role_options(role),
        settings=role_settings(role),
    )


def get(role: str, name: str) -> Any:
    """One role-specific setting, with its default."""
    return role_settings(role)[name]


def make_key(role: str, *parts: str) -> str:
    """A namespaced key: ``<KEY_PREFIX>:<role>:<parts...>``."""
    return ":".join((key_prefix(), role, *parts))
