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
from urllib.parse import parse_qs, unquote_plus, urlsplit

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

#: Connection options passed through to redis-py (plus our ``retry_attempts``);
#: any other name in ``OPTIONS`` is check ``redisroles.E006``.
CONNECTION_OPTIONS: frozenset[str] = frozenset(
    {
        "socket_timeout",
        "socket_connect_timeout",
        "socket_keepalive",
        "socket_keepalive_options",
        "retry_attempts",
        "retry_on_timeout",
        "health_check_interval",
        "max_connections",
        "client_name",
        "username",
        "password",
        "db",
        "protocol",
        "encoding",
        "encoding_errors",
        "lib_name",
        "lib_version",
        "ssl_keyfile",
        "ssl_certfile",
        "ssl_cert_reqs",
        "ssl_ca_certs",
        "ssl_ca_path",
        "ssl_ca_data",
        "ssl_check_hostname",
        "ssl_password",
        "ssl_min_version",
        "ssl_ciphers",
    }
)

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
        # Most live sessions a user may have (None: no cap); a login beyond it
        # ends the user's sessions that expire first, atomically with the index write.
        "MAX_SESSIONS": None,
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
        # Rolling upgrade from database-blind channel names: "publish", then
        # "subscribe", then False (docs/pubsub.md#upgrading-channel-names).
        "LEGACY_CHANNELS": False,
    },
    "locks": {
        # Lease of a lock, in seconds, when Lock()/command_lock() get no ttl.
        "TTL": 60,
        # Renew held locks every ttl/3 (one watchdog thread per process).
        "AUTO_RENEW": True,
        # Lifetime of a lock's fence counter, refreshed on every acquire (a day): one
        # key per lock *name*, so names made from user input must not pile up for long.
        "FENCE_TTL": 24 * 3600,
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

    def __repr__(self) -> str:
        # Shown in tracebacks and error reports (frame variables): no credentials.
        options = {k: MASK if "password" in k else v for k, v in self.options.items()}
        return f"RoleConfig(role={self.role!r}, url={mask_url(self.url)!r}, options={options!r})"

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
            f"REDISROLES must be a dict, got {type(value).__name__}: {safe_repr(value)}"
        )
    return dict(value)


def default_url() -> str:
    """``REDISROLES["URL"]``, else ``$REDIS_URL``, else ``redis://127.0.0.1:6379/0``."""
    url = raw().get("URL")
    if url:
        return str(url)
    return os.environ.get("REDIS_URL") or FALLBACK_URL


#: Characters special in a Redis glob pattern (SCAN MATCH, PUBSUB CHANNELS, PSUBSCRIBE).
GLOB_SPECIAL = "*?[]\\"


def glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis glob pattern (``SCAN MATCH``, ``PUBSUB CHANNELS``).

    Every SCAN of this app builds its pattern with it: a prefix such as
    ``tenant[1]`` must match itself, not ``tenant1``. (django-redis's own
    ``glob_escape`` leaves ``\\`` alone, so ``a\\b`` matched ``ab``.)
    """
    return "".join("\\" + ch if ch in GLOB_SPECIAL else ch for ch in text)


MASK = "***"


def _masked(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k: MASK if isinstance(k, str) and "password" in k.lower() else _masked(v)
            for k, v in value.items()
        }
    return value


def safe_repr(value: Any) -> str:
    """``repr(value)`` for a message: URL credentials and ``*password*`` keys masked."""
    return mask_url(repr(_masked(value)))


def _unquoted(text: str) -> str:
    """``text`` percent-decoded until it stops changing (``pass%2577ord`` -> ``password``)."""
    for _ in range(4):
        decoded = unquote_plus(text)
        if decoded == text:
            break
        text = decoded
    return text


_QUERY_PARAMETERS = CONNECTION_OPTIONS | {"timeout", "socket_read_size", "retry_on_error"}
_QUERY_NAME = re.compile(r"[?&]([^=&?#/@\s]*)=")
_NEXT_PARAM = re.compile(r"&([A-Za-z_][A-Za-z0-9_]*)=")


def mask_url(url: Any) -> str:
    """``url`` fit to print: no credentials, no password-like query values.

    For every message, log line and output that shows a Redis URL (checks,
    errors, CLI). Everything between ``://`` and the *last* ``@`` of the raw
    string is replaced by ``***`` (user name included: with an unencoded
    ``/``, ``?`` or ``#`` in a password no parser finds where it ends), and so
    is the value of every query parameter whose name, percent-decoded,
    contains "password" (``?password=``, ``?ssl_password=``), up to the next
    ``&name=``. Works on any string, malformed or not; keeps the host as
    written unless a masked value runs into it.
    """
    text = str(url)
    hidden = [False] * len(text)
    scheme_end = text.find("://")
    start = scheme_end + 3 if scheme_end >= 0 else 0
    at = text.rfind("@")
    if at >= start:
        hidden[start:at] = [True] * (at - start)
    for match in _QUERY_NAME.finditer(text):
        if "password" not in _unquoted(match.group(1)).lower():
            continue
        # The value runs to the next "&name=" naming a connection parameter
        # (an unencoded "&x=" inside a password is masked with it).
        end = len(text)
        for following in _NEXT_PARAM.finditer(text, match.end()):
            if following.group(1) in _QUERY_PARAMETERS:
                end = following.start()
                break
        hidden[match.end() : end] = [True] * (end - match.end())
    out: list[str] = []
    for i, ch in enumerate(text):
        if not hidden[i]:
            out.append(ch)
        elif i == 0 or not hidden[i - 1]:
            out.append(MASK)
    return "".join(out)


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")


def mask_text(text: Any) -> str:
    """Free text (an exception message) with every URL in it masked like ``mask_url``."""
    return _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), str(text))


#: Option names whose values are secrets (Django's rule for settings, and "credential").
_SECRET_OPTION = re.compile(r"API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|CREDENTIAL", re.I)


def mask_argv(argv: list[str]) -> str:
    """A command line fit to store and print: secret options' values and URL credentials masked.

    ``--password=x``, ``--api-token x``, ``redis://:pw@h`` arguments become
    ``--password=***``, ``--api-token ***``, ``redis://***@h``.
    """
    shown: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next and not arg.startswith("-"):
            shown.append(MASK)
            hide_next = False
            continue
        hide_next = False
        name, eq, _ = arg.partition("=")
        if arg.startswith("-") and _SECRET_OPTION.search(name):
            if eq:
                arg = f"{name}={MASK}"
            else:
                hide_next = True  # "--password VALUE"
        shown.append(mask_text(arg) if "://" in arg else arg)
    return " ".join(shown)


def url_problem(url: Any) -> str | None:
    """Why ``url`` is not a usable Redis URL, or None when it is.

    Shared by the system checks (``redisroles.E005``/``E013``) and the first
    connection of a role (``ImproperlyConfigured``). The URL in the answer is
    masked, and no parser's error text is quoted (it can hold a piece of the
    password).
    """
    if not isinstance(url, str) or not url:
        return f"must be a non-empty string, got {type(url).__name__}"
    shown = repr(mask_url(url))
    scheme, sep, after = url.partition("://")
    if not sep:
        return f"{shown} is not a URL (expected scheme://host...)"
    if scheme not in URL_SCHEMES:
        return f"{shown} has scheme {scheme!r}; use one of " + ", ".join(
            s + "://" for s in URL_SCHEMES
        )
    userinfo = after.rpartition("@")[0]
    if any(ch in userinfo for ch in "/?#"):
        return (
            f"{shown} has a '/', '?' or '#' before its last '@': in a user name or password "
            "they must be percent-encoded (%2F, %3F, %23), or the password moved to "
            'OPTIONS["password"]'
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # its message would quote the bad port: maybe half a password
        return f"{shown} has an invalid host or port"
    if parts.scheme == "unix":
        if not parts.path:
            return f"{shown} names no socket path (unix:///path/to/redis.sock?db=0)"
    elif not parts.hostname:
        return f"{shown} names no host"
    elif port == 0:
        return f"{shown} has port 0"
    db: str | None = None
    path = parts.path.lstrip("/") if parts.scheme != "unix" else ""
    if path:
        db = path
    query = parse_qs(parts.query)
    if query.get("db"):
        db = query["db"][0]
    if db is not None and not db.isdigit():
        return f"{shown} has database {db!r}; the database must be a number"
    parsers = _redis_query_parsers()
    for name, values in query.items():
        if name not in _QUERY_PARAMETERS:
            # redis-py would pass it on as a keyword argument: a TypeError at connect.
            return f"{shown} has an unknown query parameter {name!r}"
        if name.startswith("ssl_") and parts.scheme != "rediss":
            return f"{shown} has {name!r}, which only a rediss:// (TLS) URL takes"
        parser = parsers.get(name)
        if parser is None or not values:
            continue
        try:
            parser(values[0])
        except (TypeError, ValueError):
            return f"{shown} has an invalid value for the query parameter {name!r}"
    return None


def _redis_query_parsers() -> Mapping[str, Any]:
    """The query parameters redis-py converts (and raises ValueError on), by name."""
    try:
        from redis.connection import URL_QUERY_ARGUMENT_PARSERS
    except ImportError:  # pragma: no cover - every supported redis-py has it
        return {}
    return URL_QUERY_ARGUMENT_PARSERS


def url_query(url: str) -> dict[str, str]:
    """The query parameters of a URL as redis-py reads them (first value of each)."""
    try:
        query = urlsplit(url).query
    except ValueError:
        return {}
    return {name: values[0] for name, values in parse_qs(query).items() if values}


@dataclass(frozen=True)
class TLSVerification:
    """What a ``rediss://`` connection verifies, from its URL and options (redis-py's rules)."""

    tls: bool  # a rediss:// URL
    cert_reqs: str  # "required" | "optional" | "none"
    #: Whether the certificate must name the host (None: not set, we set True).
    check_hostname: bool | None
    #: Where verification was turned off: "URL", "OPTIONS" or None.
    turned_off_by: str | None

    @property
    def verified(self) -> bool:
        return self.tls and self.cert_reqs != "none" and self.check_hostname is not False


def _cert_reqs(value: Any) -> str:
    import ssl

    if value is None or value == ssl.CERT_NONE or str(value).lower() == "none":
        return "none"
    if value == ssl.CERT_OPTIONAL or str(value).lower() == "optional":
        return "optional"
    return "required"


def tls_verification(url: str, options: Mapping[str, Any]) -> TLSVerification:
    """How a connection to ``url`` with ``options`` verifies the server (URL query wins)."""
    from redis.connection import to_bool

    tls = url.startswith("rediss://")
    query = url_query(url)
    where: str | None = None
    if "ssl_cert_reqs" in query:
        cert_reqs = _cert_reqs(query["ssl_cert_reqs"])
        where = "URL" if cert_reqs == "none" else None
    else:
        cert_reqs = _cert_reqs(options.get("ssl_cert_reqs", "required"))
        where = "OPTIONS" if cert_reqs == "none" else None
    check_hostname: bool | None = None
    if "ssl_check_hostname" in query:
        check_hostname = to_bool(query["ssl_check_hostname"])
        if check_hostname is False:
            where = where or "URL"
    elif options.get("ssl_check_hostname") is not None:
        check_hostname = bool(options["ssl_check_hostname"])
        if not check_hostname:
            where = where or "OPTIONS"
    return TLSVerification(tls, cert_reqs, check_hostname, where if tls else None)


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


def _url_db_or_none(url: str) -> int | None:
    """The database a URL names (``?db=`` or the path), None when it names none."""
    parts = urlsplit(url)
    query_db = parse_qs(parts.query).get("db")
    if query_db:
        return int(query_db[0] or 0)
    path = parts.path.lstrip("/") if parts.scheme != "unix" else ""
    return int(path) if path.isdigit() else None


def role_db(role: str) -> int:
    """The database a role's connections select: the URL's, else ``OPTIONS["db"]``, else 0.

    (redis-py lets the URL win over keyword arguments.) Raises ``ValueError``
    for a malformed URL (check ``redisroles.E005``).
    """
    db = _url_db_or_none(role_url(role))
    if db is None:
        db = int(role_options(role).get("db") or 0)
    return db


#: ``REDISROLES["KEY_PREFIX"]`` when it is not set: every project's (deploy check W003).
DEFAULT_KEY_PREFIX = "rr"


def key_prefix() -> str:
    """Namespace prepended to every key the roles write (``rr`` by default)."""
    return str(raw().get("KEY_PREFIX", DEFAULT_KEY_PREFIX))


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
        raise ImproperlyConfigured(f"REDISROLES['ROLES'] must be a dict, got {safe_repr(roles)}")
    value = roles.get(role) or {}
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(
            f"REDISROLES['ROLES'][{role!r}] must be a dict, got {safe_repr(value)}"
        )
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
