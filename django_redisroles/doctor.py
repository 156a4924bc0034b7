"""Each role's Redis server checked against what the role needs.

One engine, two front ends: ``manage.py redisroles doctor`` (a table or JSON,
exit status 1 on an error) and ``manage.py check --deploy`` (system checks
``redisroles.E1xx``/``W1xx``). Both call :func:`run`.

How it works:

1. Every role's URL is resolved from ``REDISROLES``; one connection is opened
   per distinct URL (roles sharing a URL share it), with a short timeout and
   the client name ``redisroles-doctor`` (so it is not counted as the app's).
2. Servers are told apart by ``INFO``'s ``run_id``: two URLs naming the same
   server (another database, ``localhost`` vs ``127.0.0.1``) are one server,
   whose configuration is checked once and reported for every role on it.
3. Facts are gathered: ``INFO``, a few ``CONFIG GET`` (optional: managed
   services often disable ``CONFIG``), ``CLIENT LIST``, N ``PING`` round trips,
   and a bounded key sample per database: ``SCAN`` with ``COUNT`` (never
   ``KEYS``), at most ``MAX_KEYS`` keys per database and ``MAX_SECONDS`` in all,
   with ``PTTL`` / ``MEMORY USAGE`` / ``TYPE`` pipelined per batch on the keys
   in a role's namespace. Each command is short, so Redis keeps answering other
   clients between them.
4. Rules (pure functions of those facts) produce :class:`Finding` objects, each
   with a severity, the roles it concerns, the server, a message and the exact
   fix (``CONFIG SET`` and the ``redis.conf`` line, or the settings change).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from . import conf
from .connections import pool_from_url, pool_kwargs

__all__ = [
    "CACHE_BACKEND",
    "JSON_SCHEMA_VERSION",
    "RULES",
    "Finding",
    "Fix",
    "Limits",
    "Report",
    "Rule",
    "run",
]

CACHE_BACKEND = "django_redisroles.cache.RedisRolesCache"
DEFAULT_MAX_VALUE_SIZE = 1_048_576
JSON_SCHEMA_VERSION = 1
DOCTOR_CLIENT_NAME = "redisroles-doctor"

#: The oldest Redis each role is supported on, and why.
_BASELINE = (
    "the supported baseline: django-redisroles is tested on Redis 7.0+ and Valkey (whose "
    "every release implements Redis 7.2) only: its Lua scripts rely on 7.0's script "
    "semantics; older servers are untested"
)
ROLE_MIN_VERSION: dict[str, tuple[tuple[int, int], str]] = {
    role: ((7, 0), _BASELINE) for role in ("cache", "sessions", "ratelimit", "pubsub", "locks")
}


# --------------------------------------------------------------------------
# Findings
# --------------------------------------------------------------------------


@dataclass
class Fix:
    """How to fix a finding: prose, and the exact commands where there are some."""

    text: str
    config_set: str | None = None  # run now, e.g. "CONFIG SET maxmemory-policy noeviction"
    redis_conf: str | None = None  # make it survive a restart: the redis.conf line


@dataclass
class Finding:
    """One problem the doctor found."""

    id: str  # "W110"; the system check id is "redisroles." + id
    severity: str  # "error" | "warning"
    roles: list[str]
    instance: str  # "host:port" (server-wide) or "host:port/db" (a database's keys)
    message: str
    fix: Fix
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def check_id(self) -> str:
        return f"redisroles.{self.id}"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["check_id"] = self.check_id
        return data


@dataclass
class Limits:
    """Bounds and thresholds (``REDISROLES["DOCTOR"]`` overridden by CLI flags)."""

    # Defaults: conf.DOCTOR_DEFAULTS (the constants, not settings), kept in one place.
    timeout: float = conf.DOCTOR_DEFAULTS["TIMEOUT"]
    pings: int = conf.DOCTOR_DEFAULTS["PINGS"]
    max_keys: int = conf.DOCTOR_DEFAULTS["MAX_KEYS"]
    max_seconds: float = conf.DOCTOR_DEFAULTS["MAX_SECONDS"]
    scan_count: int = conf.DOCTOR_DEFAULTS["SCAN_COUNT"]
    examples: int = conf.DOCTOR_DEFAULTS["EXAMPLES"]
    latency_warn_ms: float = conf.DOCTOR_DEFAULTS["LATENCY_WARN_MS"]
    new_connections_warn: float = conf.DOCTOR_DEFAULTS["NEW_CONNECTIONS_WARN"]
    client_window: float = conf.DOCTOR_DEFAULTS["CLIENT_WINDOW"]
    stream_max_len: int = conf.DOCTOR_DEFAULTS["STREAM_MAX_LEN"]

    @classmethod
    def from_settings(cls, **overrides: Any) -> Limits:
        values = conf.doctor_settings()
        kwargs = {
            name: values[name.upper()]
            for name in cls.__dataclass_fields__
            if name.upper() in values
        }
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kwargs)


# --------------------------------------------------------------------------
# What we know about the roles (from settings) and the servers (from Redis)
# --------------------------------------------------------------------------


@dataclass
class Namespace:
    """A key prefix one role writes under, in one database."""

    role: str
    prefix: str  # with the trailing ":"
    max_value_size: int | None = None  # cache only
    #: The role writes keys without a TTL here on purpose (a cache with ALLOW_NO_TIMEOUT).
    allow_no_ttl: bool = False
    sampled: int = 0
    no_ttl: int = 0
    no_ttl_examples: list[str] = field(default_factory=list)
    large: list[tuple[str, int]] = field(default_factory=list)  # (key, bytes)
    streams: list[dict[str, Any]] = field(default_factory=list)  # pubsub replay streams


@dataclass
class Database:
    """The keys of one database, sampled."""

    db: int
    roles: list[str]
    namespaces: list[Namespace]
    keys: int = 0  # DBSIZE
    scanned: int = 0
    complete: bool = False
    seconds: float = 0.0
    stopped_by: str | None = None  # "max_keys" | "max_seconds"
    error: str | None = None
    client: redis.Redis | None = None  # connected to this database (its URL's db)
    #: role -> what its (ACL) user was refused, found by harmless probes.
    refused: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Server:
    """One redis-server, however many URLs and roles point at it."""

    label: str
    urls: list[str]
    roles: list[str]
    client: redis.Redis | None = None
    reachable: bool = False
    error: str | None = None
    run_id: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    config: dict[str, str] = field(default_factory=dict)
    config_error: str | None = None
    pings_ms: list[float] = field(default_factory=list)
    clients: list[dict[str, str]] = field(default_factory=list)
    new_connections_per_s: float | None = None
    connections_base: int = 0  # total_connections_received when the window opened
    databases: list[Database] = field(default_factory=list)
    #: Subscribed pub/sub channels named without a database (django-redisroles before
    #: channel names carried it): ``<prefix>:pubsub:g:...`` / ``:c:...``.
    legacy_channels: list[str] = field(default_factory=list)

    # -- derived -----------------------------------------------------------
    @property
    def version(self) -> tuple[int, ...]:
        """The Redis version it implements (Valkey reports Redis 7.2.4 here)."""
        raw = str(self.info.get("redis_version", "0"))
        return tuple(int(p) for p in raw.split(".")[:3] if p.isdigit())

    @property
    def product(self) -> str:
        """``"valkey"`` or ``"redis"``: Valkey says so in INFO's ``server_name``."""
        return "valkey" if self.info.get("server_name") == "valkey" else "redis"

    @property
    def product_version(self) -> str:
        """Its own version: ``valkey_version`` for Valkey (its ``redis_version`` is 7.2.4)."""
        key = "valkey_version" if self.product == "valkey" else "redis_version"
        return str(self.info.get(key) or self.info.get("redis_version") or "?")

    def describe(self) -> str:
        """``redis 7.0.15`` / ``valkey 9.1.2``."""
        return f"{self.product} {self.product_version}"

    @property
    def maxmemory(self) -> int:
        return int(self.info.get("maxmemory", 0) or 0)

    @property
    def policy(self) -> str:
        return str(self.info.get("maxmemory_policy", "noeviction"))

    @property
    def used_memory(self) -> int:
        return int(self.info.get("used_memory", 0) or 0)

    @property
    def memory_ratio(self) -> float | None:
        return self.used_memory / self.maxmemory if self.maxmemory else None

    @property
    def aof(self) -> bool:
        return bool(int(self.info.get("aof_enabled", 0) or 0))

    @property
    def rdb(self) -> bool | None:
        if "save" not in self.config:
            return None
        return bool(self.config["save"].strip())

    @property
    def maxclients(self) -> int | None:
        value = self.info.get("maxclients", self.config.get("maxclients"))
        return int(value) if value not in (None, "") else None

    def pubsub_buffer_limit(self) -> tuple[int, int, int] | None:
        """``client-output-buffer-limit`` of the pubsub class: (hard, soft, seconds)."""
        raw = self.config.get("client-output-buffer-limit")
        if raw is None:
            return None
        parts = raw.split()
        for i in range(0, len(parts) - 3, 4):
            if parts[i] == "pubsub":
                return (_bytes(parts[i + 1]), _bytes(parts[i + 2]), int(parts[i + 3]))
        return None

    def ping_median(self) -> float | None:
        return statistics.median(self.pings_ms) if self.pings_ms else None

    def subscribers(self) -> list[dict[str, str]]:
        return [
            c
            for c in self.clients
            if int(c.get("sub", 0)) + int(c.get("psub", 0)) + int(c.get("ssub", 0) or 0) > 0
        ]

    def as_dict(self) -> dict[str, Any]:
        subs = self.subscribers()
        return {
            "instance": self.label,
            "urls": self.urls,
            "roles": self.roles,
            "reachable": self.reachable,
            "error": self.error,
            "redis_version": self.info.get("redis_version"),
            "server": (
                {"name": self.product, "version": self.product_version} if self.reachable else None
            ),
            "ping_ms": (
                {
                    "median": round(statistics.median(self.pings_ms), 3),
                    "max": round(max(self.pings_ms), 3),
                    "samples": len(self.pings_ms),
                }
                if self.pings_ms
                else None
            ),
            "memory": {
                "used": self.used_memory,
                "maxmemory": self.maxmemory,
                "policy": self.policy if self.reachable else None,
                "evicted_keys": self.info.get("evicted_keys"),
            },
            "persistence": {"aof": self.aof, "rdb": self.rdb},
            "config_available": self.config_error is None,
            "clients": {
                "connected": self.info.get("connected_clients"),
                "maxclients": self.maxclients,
                "ours": sum(1 for c in self.clients if c.get("name") == "redisroles"),
                "subscribers": len(subs),
                "subscriptions": sum(
                    int(c.get("sub", 0)) + int(c.get("psub", 0)) + int(c.get("ssub", 0) or 0)
                    for c in subs
                ),
                "new_per_second": (
                    round(self.new_connections_per_s, 2)
                    if self.new_connections_per_s is not None
                    else None
                ),
            },
            "databases": [
                {
                    "db": d.db,
                    "roles": d.roles,
                    "keys": d.keys,
                    "scanned": d.scanned,
                    "complete": d.complete,
                    "seconds": round(d.seconds, 3),
                    "stopped_by": d.stopped_by,
                    "error": d.error,
                    "namespaces": [
                        {
                            "role": ns.role,
                            "prefix": ns.prefix,
                            "sampled": ns.sampled,
                            "no_ttl": ns.no_ttl,
                            "large_values": len(ns.large),
                            "streams": len(ns.streams),
                        }
                        for ns in d.namespaces
                    ],
                }
                for d in self.databases
            ],
        }


def _bytes(value: str) -> int:
    """A redis.conf size (``32mb``, ``8388608``) in bytes."""
    value = value.strip().lower()
    units = {"kb": 1024, "mb": 1024**2, "gb": 1024**3, "k": 1000, "m": 1000**2, "g": 1000**3}
    for suffix, mult in units.items():
        if value.endswith(suffix):
            return int(float(value[: -len(suffix)]) * mult)
    return int(value)


def human(n: float) -> str:
    """Bytes for people: ``5.0 MB``."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def conf_size(n: int) -> str:
    """Bytes as a redis.conf size, rounded up to whole MB (``4mb``, ``2048mb``)."""
    mb = -(-n // (1024 * 1024))
    return f"{mb // 1024}gb" if mb % 1024 == 0 else f"{mb}mb"


def url_label(url: str) -> str:
    """``host:port`` (or ``unix:path``) of a URL; the masked URL when it is malformed."""
    if conf.url_problem(url) is not None:
        return conf.mask_url(url)
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    return f"{parts.hostname or '?'}:{parts.port or 6379}"


# --------------------------------------------------------------------------
# Role namespaces, from settings
# --------------------------------------------------------------------------


def cache_namespaces() -> list[tuple[str, int, bool]]:
    """(prefix with ":", value size limit, ALLOW_NO_TIMEOUT) of each RedisRolesCache."""
    found: list[tuple[str, int, bool]] = []
    for entry in (getattr(settings, "CACHES", None) or {}).values():
        if not isinstance(entry, Mapping) or entry.get("BACKEND") != CACHE_BACKEND:
            continue
        # As the backend does: only a missing KEY_PREFIX means the role's namespace
        # ("" is an explicit prefix: keys are ":1:<key>").
        prefix = entry["KEY_PREFIX"] if "KEY_PREFIX" in entry else conf.make_key("cache")
        options = entry.get("OPTIONS") or {}
        limit = int(options.get("MAX_VALUE_SIZE", DEFAULT_MAX_VALUE_SIZE) or 0)
        found.append((f"{prefix}:", limit, options.get("ALLOW_NO_TIMEOUT") is True))
    if not found:
        found.append((conf.make_key("cache") + ":", DEFAULT_MAX_VALUE_SIZE, False))
    return found


def pubsub_stream_cap(default: int) -> tuple[int, bool]:
    """The replay streams' configured length cap, and whether one is configured.

    The pubsub role's ``REPLAY_MAXLEN``, or the largest ``replay_maxlen`` of a
    redisroles channel layer's CONFIG (a layer may raise it for its groups).
    """
    caps: list[int] = []
    from .pubsub import options as pubsub_options

    value = pubsub_options.role_values().get("REPLAY_MAXLEN")
    if type(value) is int and value > 0:
        caps.append(value)
    for layer in (getattr(settings, "CHANNEL_LAYERS", None) or {}).values():
        if not str(layer.get("BACKEND", "")).startswith("django_redisroles.pubsub"):
            continue
        value = (layer.get("CONFIG") or {}).get("replay_maxlen")
        if type(value) is int and value > 0:
            caps.append(value)
    return (max(caps), True) if caps else (default, False)


def _ours(path: Any, package: str) -> bool:
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
        if role == "ratelimit" and any(_ours(m, "django_redisroles.ratelimit") for m in middleware):
            continue
        why = "no Redis URL is configured for it (its own URL, REDISROLES['URL'] or $REDIS_URL)"
        if role == "ratelimit":
            why += " and RateLimitMiddleware is not in MIDDLEWARE"
        unwired[role] = why
    caches = getattr(settings, "CACHES", None) or {}
    if not any(
        isinstance(entry, Mapping) and _ours(entry.get("BACKEND"), "django_redisroles.cache")
        for entry in caches.values()
    ):
        unwired["cache"] = f"no CACHES entry uses {CACHE_BACKEND}"
    engine = getattr(settings, "SESSION_ENGINE", None)
    if not _ours(engine, "django_redisroles.sessions"):
        unwired["sessions"] = f"SESSION_ENGINE is {engine!r}, not 'django_redisroles.sessions'"
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    if not any(
        isinstance(layer, Mapping) and _ours(layer.get("BACKEND"), "django_redisroles.pubsub")
        for layer in layers.values()
    ):
        unwired["pubsub"] = "no CHANNEL_LAYERS entry uses django_redisroles.pubsub"
    return unwired


def role_namespaces(role: str) -> list[Namespace]:
    if role == "cache":
        return [
            Namespace("cache", prefix, limit, allow_no_ttl=allow)
            for prefix, limit, allow in cache_namespaces()
        ]
    return [Namespace(role, conf.make_key(role) + ":")]


# --------------------------------------------------------------------------
# Gathering facts
# --------------------------------------------------------------------------

Progress = Callable[[str], None]


def _client(url: str, options: Mapping[str, Any], timeout: float) -> redis.Redis:
    """A private, short-timeout client: the doctor must not wait on a dead server.

    Built from the role's options (password, TLS) through ``connections.pool_kwargs``
    so it connects exactly as the role does, but never retried, with a small pool
    and its own client name (not counted among the app's connections).
    """
    opts = dict(options)
    opts.update(
        socket_connect_timeout=timeout,
        socket_timeout=max(timeout, 1.0),
        retry_attempts=0,
        max_connections=2,
        client_name=DOCTOR_CLIENT_NAME,
    )
    opts.pop("health_check_interval", None)
    pool = pool_from_url(redis.ConnectionPool, url, pool_kwargs(opts, url), "this role")
    return redis.Redis(connection_pool=pool)


def _connect(roles: Iterable[str], limits: Limits) -> list[Server]:
    """One connection per distinct URL, merged into one ``Server`` per run_id."""
    by_url: dict[str, list[str]] = {}
    for role in roles:
        by_url.setdefault(conf.role_url(role), []).append(role)
    servers: dict[str, Server] = {}
    for url, url_roles in by_url.items():
        label = url_label(url)
        client: redis.Redis | None = None
        try:
            client = _client(url, conf.role_options(url_roles[0]), limits.timeout)
            info = client.info()
        except (redis.RedisError, ImproperlyConfigured, OSError) as exc:  # a bad URL too
            if client is not None:
                client.connection_pool.disconnect()
            key = f"unreachable:{label}"
            server = servers.setdefault(key, Server(label, [], []))
            server.urls.append(conf.mask_url(url))
            server.roles += url_roles
            server.error = f"{type(exc).__name__}: {conf.mask_text(exc)}"
            continue
        db = Database(conf.url_db(url), list(url_roles), [], client=client)
        for role in url_roles:
            db.namespaces += role_namespaces(role)
        run_id = str(info.get("run_id"))
        server = servers.get(run_id)
        if server is None:
            server = servers[run_id] = Server(
                label, [], [], client=client, reachable=True, run_id=run_id, info=info
            )
        server.urls.append(conf.mask_url(url))
        server.roles += url_roles
        same_db = next((d for d in server.databases if d.db == db.db), None)
        if same_db is None:
            server.databases.append(db)  # keeps its client: it is SELECTed on that db
        else:  # another URL for the same database: one connection is enough
            same_db.roles += db.roles
            same_db.namespaces += db.namespaces
            if client is not server.client:
                client.connection_pool.disconnect()
    return list(servers.values())


def _gather_server(server: Server, limits: Limits) -> None:
    client = server.client
    assert client is not None
    try:
        server.config = {
            k: v
            for name in ("save", "appendonly", "client-output-buffer-limit", "maxclients")
            for k, v in _str_dict(client.config_get(name)).items()
        }
    except redis.ResponseError as exc:  # CONFIG renamed/disabled (managed services)
        server.config_error = str(exc)
    for _ in range(max(1, limits.pings)):
        start = time.perf_counter()
        client.ping()
        server.pings_ms.append((time.perf_counter() - start) * 1000)
    try:
        server.clients = [{k: str(v) for k, v in c.items()} for c in client.client_list()]
    except redis.ResponseError:
        server.clients = []
    if "pubsub" in server.roles:
        legacy: list[str] = []
        for kind in ("g", "c"):
            prefix = conf.make_key("pubsub", kind, "")
            for name in client.pubsub_channels(conf.glob_escape(prefix) + "*"):
                text = name.decode(errors="backslashreplace")
                if text.startswith(prefix):
                    legacy.append(text)
        server.legacy_channels = sorted(legacy)


# No script has this SHA1: EVALSHA answers NOSCRIPT once the ACL let it through.
_NO_SCRIPT = "0" * 40


def _probe_acl(database: Database, limits: Limits) -> None:
    """Whether each role's user may run what the role needs (NOPERM found now, not at 3 am).

    Harmless probes with the role's own credentials: an ``EVALSHA`` of a script
    that does not exist, declaring a key of the role's namespace (the ACL checks
    the command and the key before Redis looks for the script), and for the
    pub/sub role a ``SUBSCRIBE`` to a group channel on a connection of its own.
    """
    client = database.client
    assert client is not None
    for role in database.roles:
        refused: list[str] = []
        key = conf.make_key(role, DOCTOR_CLIENT_NAME)
        try:
            client.evalsha(_NO_SCRIPT, 1, key)
        except redis.exceptions.NoScriptError:
            pass
        except redis.exceptions.NoPermissionError as exc:
            refused.append(f"run its Lua scripts on its keys (EVALSHA on {key}: {exc})")
        if role == "pubsub":
            from .pubsub.names import redis_channel  # the layer's own channel names

            channel = redis_channel("g", DOCTOR_CLIENT_NAME).decode()
            pubsub = client.pubsub()
            try:
                pubsub.subscribe(channel)
                pubsub.get_message(timeout=max(limits.timeout, 1.0))
            except redis.exceptions.NoPermissionError as exc:
                refused.append(f"subscribe to its group channels (SUBSCRIBE {channel}: {exc})")
            finally:
                pubsub.close()
        if refused:
            database.refused[role] = refused


def _str_dict(value: Mapping[Any, Any]) -> dict[str, str]:
    def s(x: Any) -> str:
        return x.decode() if isinstance(x, bytes) else str(x)

    return {s(k): s(v) for k, v in value.items()}


def _sample_db(
    server: Server, database: Database, limits: Limits, deadline: float, progress: Progress | None
) -> None:
    """SCAN one database (bounded), checking TTL/size/type of our namespaces' keys."""
    client = database.client
    assert client is not None
    started = time.monotonic()
    # Longest prefix first, so a nested namespace wins over an enclosing one.
    namespaces = sorted(database.namespaces, key=lambda ns: len(ns.prefix), reverse=True)
    prefixes = [(ns.prefix.encode(), ns) for ns in namespaces]
    database.keys = int(client.dbsize())
    cursor = 0
    last_progress = started  # first progress line after a second: small databases stay quiet
    streams: list[tuple[bytes, Namespace]] = []
    where = f"{server.label}/{database.db}"
    while True:
        cursor, keys = client.scan(cursor=cursor, count=limits.scan_count)
        database.scanned += len(keys)
        ours: list[tuple[bytes, Namespace]] = []
        for key in keys:
            for prefix, ns in prefixes:
                if key.startswith(prefix):
                    ours.append((key, ns))
                    break
        if ours:
            pipe = client.pipeline(transaction=False)
            for key, ns in ours:
                pipe.pttl(key)
                if ns.max_value_size is not None:
                    pipe.memory_usage(key)
                if ns.role == "pubsub":
                    pipe.type(key)
            results = iter(pipe.execute(raise_on_error=False))
            for key, ns in ours:
                ttl = next(results)
                usage = next(results) if ns.max_value_size is not None else None
                kind = next(results) if ns.role == "pubsub" else None
                if ttl == -2:  # expired between SCAN and PTTL
                    continue
                ns.sampled += 1
                name = key.decode(errors="backslashreplace")
                if kind in (b"stream", "stream"):
                    streams.append((key, ns))
                    continue  # replay streams have their own rule
                if ttl == -1:
                    ns.no_ttl += 1
                    if len(ns.no_ttl_examples) < limits.examples:
                        ns.no_ttl_examples.append(name)
                if (
                    ns.max_value_size
                    and isinstance(usage, int)
                    and usage > ns.max_value_size
                    and len(ns.large) < 1000
                ):
                    ns.large.append((name, usage))
        now = time.monotonic()
        if progress and now - last_progress >= 1.0:
            last_progress = now
            pct = f" ({100 * database.scanned / database.keys:.0f}%)" if database.keys else ""
            progress(f"sampling {where}: {database.scanned:,} keys{pct}")
        if cursor == 0:
            database.complete = True
            break
        if database.scanned >= limits.max_keys:
            database.stopped_by = "max_keys"
            break
        if now >= deadline:
            database.stopped_by = "max_seconds"
            break
    # Large values: MEMORY USAGE rounds up to the allocator's size class, so a
    # string is confirmed with STRLEN (the payload size the cache limit is about).
    for ns in database.namespaces:
        if ns.large:
            pipe = client.pipeline(transaction=False)
            for name, _ in ns.large:
                pipe.strlen(name.encode())
            confirmed = []
            for (name, usage), strlen in zip(
                ns.large, pipe.execute(raise_on_error=False), strict=True
            ):
                size = strlen if isinstance(strlen, int) and strlen > 0 else usage
                if ns.max_value_size and size > ns.max_value_size:
                    confirmed.append((name, size))
            ns.large = confirmed
    if streams:
        pipe = client.pipeline(transaction=False)
        for key, _ in streams[:1000]:
            pipe.pttl(key)
            pipe.xlen(key)
        results = iter(pipe.execute(raise_on_error=False))
        for key, ns in streams[:1000]:
            ttl, length = next(results), next(results)
            if isinstance(ttl, int) and isinstance(length, int):
                ns.streams.append(
                    {"key": key.decode(errors="backslashreplace"), "ttl_ms": ttl, "length": length}
                )
    database.seconds = time.monotonic() - started
    if progress:
        state = "all" if database.complete else f"stopped by {database.stopped_by}"
        progress(
            f"sampled {where}: {database.scanned:,} of {database.keys:,} keys "
            f"({state}) in {database.seconds:.2f}s"
        )


def _connection_rate(servers: list[Server], limits: Limits, since: float) -> None:
    """New connections per second over at least ``client_window`` seconds."""
    remaining = limits.client_window - (time.monotonic() - since)
    if remaining > 0:
        time.sleep(remaining)
    for server in servers:
        if not server.reachable or server.client is None:
            continue
        before = server.connections_base
        try:
            stats = server.client.info("stats")
        except redis.RedisError:
            continue
        elapsed = max(time.monotonic() - since, 1e-3)
        new = int(stats.get("total_connections_received", before)) - before
        server.new_connections_per_s = max(new, 0) / elapsed


# --------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------


@dataclass
class Context:
    servers: list[Server]
    limits: Limits
    roles: list[str]


Rule = Callable[[Context], Iterable[Finding]]
RULES: list[Rule] = []


def rule(fn: Rule) -> Rule:
    RULES.append(fn)
    return fn


def _reachable(ctx: Context) -> Iterable[Server]:
    return (s for s in ctx.servers if s.reachable)


def _on(server: Server, role: str, ctx: Context) -> bool:
    return role in server.roles and role in ctx.roles


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.0f}%"


@rule
def unreachable(ctx: Context) -> Iterable[Finding]:
    for server in ctx.servers:
        if not server.reachable:
            yield Finding(
                "E100",
                "error",
                server.roles,
                server.label,
                f"cannot reach Redis at {', '.join(server.urls)}: {server.error}",
                Fix(
                    "Check the URL in REDISROLES, that redis-server runs and listens on that "
                    "address (bind/protected-mode), the firewall, and the password/ACL user."
                ),
            )


@rule
def config_unavailable(ctx: Context) -> Iterable[Finding]:
    for server in _reachable(ctx):
        if server.config_error is not None:
            yield Finding(
                "W101",
                "warning",
                server.roles,
                server.label,
                "CONFIG GET is not allowed here (managed Redis or ACL), so persistence, "
                f"client and output-buffer rules were skipped: {server.config_error}",
                Fix(
                    "Check persistence (appendonly/save) and client-output-buffer-limit in "
                    "your provider's console, or grant the doctor's user +config|get."
                ),
            )


@rule
def acl(ctx: Context) -> Iterable[Finding]:
    for server in _reachable(ctx):
        for database in server.databases:
            for role, refused in database.refused.items():
                if role not in ctx.roles:
                    continue
                yield Finding(
                    "E107",
                    "error",
                    [role],
                    f"{server.label}/{database.db}",
                    f"the {role} role's Redis user may not " + "; nor ".join(refused),
                    Fix(
                        "Grant that ACL user what the role needs (docs/failures.md, "
                        "'ACL users'), e.g. ACL SETUSER <user> +@scripting "
                        f"~{conf.key_prefix()}:* &{conf.key_prefix()}:pubsub:*"
                    ),
                    {"refused": refused},
                )


@rule
def latency(ctx: Context) -> Iterable[Finding]:
    for server in _reachable(ctx):
        median = server.ping_median()
        if median is not None and median > ctx.limits.latency_warn_ms:
            yield Finding(
                "W102",
                "warning",
                server.roles,
                server.label,
                f"median PING round trip is {median:.1f} ms over {len(server.pings_ms)} "
                f"pings (threshold {ctx.limits.latency_warn_ms:g} ms): every cache read, "
                "session load and rate-limit check pays it.",
                Fix(
                    "Run Redis in the same region/zone (or host) as the app; check for a "
                    "busy server (SLOWLOG GET, LATENCY DOCTOR) or a saturated network."
                ),
                {"median_ms": round(median, 3), "max_ms": round(max(server.pings_ms), 3)},
            )


@rule
def version(ctx: Context) -> Iterable[Finding]:
    for server in _reachable(ctx):
        have = server.version
        for role in server.roles:
            if role not in ctx.roles:
                continue
            need, feature = ROLE_MIN_VERSION[role]
            if have and have[:2] < need:
                yield Finding(
                    "E103",
                    "error",
                    [role],
                    server.label,
                    f"{server.product.capitalize()} {server.product_version} is older than "
                    f"{need[0]}.{need[1]}, which the {role} role needs: {feature}.",
                    Fix(f"Upgrade this server to Redis {need[0]}.{need[1]} or later."),
                )


@rule
def clients(ctx: Context) -> Iterable[Finding]:
    for server in _reachable(ctx):
        connected = int(server.info.get("connected_clients", 0) or 0)
        maxclients = server.maxclients
        pool_max = max(int(conf.role_options(r).get("max_connections") or 0) for r in server.roles)
        if maxclients and connected >= 0.8 * maxclients:
            yield Finding(
                "W104",
                "warning",
                server.roles,
                server.label,
                f"{connected} clients connected, {_pct(connected / maxclients)} of maxclients "
                f"{maxclients}; each app process may open up to max_connections={pool_max} "
                "per pool, so new connections will soon be refused.",
                Fix(
                    "Raise maxclients (and the open-files limit), or lower max_connections in "
                    "REDISROLES OPTIONS / run fewer processes.",
                    f"CONFIG SET maxclients {maxclients * 2}",
                    f"maxclients {maxclients * 2}",
                ),
                {"connected": connected, "maxclients": maxclients},
            )
        rate = server.new_connections_per_s
        if rate is not None and rate > ctx.limits.new_connections_warn:
            yield Finding(
                "W105",
                "warning",
                server.roles,
                server.label,
                f"{rate:.0f} new connections per second while the doctor ran: a sign of "
                "connect-per-request (a client built per request instead of a pooled one; "
                f"pools keep up to max_connections={pool_max} open per process).",
                Fix(
                    "Use django_redisroles.connections.get_redis(role) / get_async_redis(role) "
                    "(pooled) instead of redis.Redis(...) per request; CLIENT LIST shows who "
                    "connects (our pools are named 'redisroles')."
                ),
                {"new_connections_per_second": round(rate, 1)},
            )


@rule
def memory(ctx: Context) -> Iterable[Finding]:
    for server in _reachable(ctx):
        ratio = server.memory_ratio
        if ratio is None or ratio < 0.9:
            continue
        if set(server.roles) <= {"cache"} and server.policy.startswith("allkeys-"):
            continue  # a full cache evicting is a cache doing its job
        yield Finding(
            "W106",
            "warning",
            server.roles,
            server.label,
            f"used_memory {human(server.used_memory)} is {_pct(ratio)} of maxmemory "
            f"{human(server.maxmemory)} (policy {server.policy}): "
            + (
                "writes will fail with OOM errors when it is full."
                if server.policy == "noeviction"
                else "keys are being or will be evicted."
            ),
            Fix(
                "Give it more memory, or find what grows (keys without TTL: see the other "
                "findings; redis-cli --bigkeys).",
                f"CONFIG SET maxmemory {conf_size(server.maxmemory * 2)}",
                f"maxmemory {conf_size(server.maxmemory * 2)}",
            ),
            {"used_memory": server.used_memory, "maxmemory": server.maxmemory},
        )


@rule
def cache_memory(ctx: Context) -> Iterable[Finding]:
    for server in _reachable(ctx):
        if not _on(server, "cache", ctx):
            continue
        if not server.maxmemory:
            yield Finding(
                "W110",
                "warning",
                ["cache"],
                server.label,
                "maxmemory is not set on the cache's server: the cache grows until the "
                "machine runs out of memory instead of evicting old entries.",
                Fix(
                    "Cap the cache's memory, sized to what you give it, with an allkeys "
                    "eviction policy.",
                    "CONFIG SET maxmemory 2gb",
                    "maxmemory 2gb",
                ),
            )
        if not server.policy.startswith("allkeys-"):
            effect = (
                "once maxmemory is reached every cache write fails with an OOM error"
                if server.policy == "noeviction"
                else "only keys with a TTL are evicted, so entries cached with timeout=None "
                "are never evicted"
            )
            yield Finding(
                "W111",
                "warning",
                ["cache"],
                server.label,
                f"maxmemory-policy is {server.policy} on the cache's server: {effect}.",
                Fix(
                    "A cache should evict its least recently used keys.",
                    "CONFIG SET maxmemory-policy allkeys-lru",
                    "maxmemory-policy allkeys-lru",
                ),
            )


_NO_TTL_IDS = {
    "cache": "W112",
    "sessions": "W124",
    "ratelimit": "W130",
    "pubsub": "W140",
    "locks": "W150",
}
_NO_TTL_WHY = {
    "cache": "they are never expired and, unless the policy is allkeys-*, never evicted",
    "sessions": "sessions that never expire keep users logged in forever and grow memory",
    "ratelimit": "a counter without a TTL keeps a client limited forever and grows memory",
    "pubsub": "they are never cleaned up",
    "locks": "a lock key without a TTL is held forever if its owner dies",
}


@rule
def keys_without_ttl(ctx: Context) -> Iterable[Finding]:
    for server in _reachable(ctx):
        for database in server.databases:
            for ns in database.namespaces:
                if ns.role not in ctx.roles or not ns.no_ttl:
                    continue
                if ns.allow_no_ttl:
                    # Written so on purpose; whether they can be evicted is W111's business.
                    continue
                scope = (
                    f"all {database.scanned:,} keys of db{database.db} scanned"
                    if database.complete
                    else f"sampled {database.scanned:,} of the {database.keys:,} keys of "
                    f"db{database.db}"
                )
                estimate = ""
                if not database.complete and database.scanned:
                    estimate = (
                        f" (about {ns.no_ttl * database.keys // database.scanned:,} in the "
                        "whole database)"
                    )
                yield Finding(
                    _NO_TTL_IDS[ns.role],
                    "warning",
                    [ns.role],
                    f"{server.label}/{database.db}",
                    f"{ns.no_ttl:,} of {ns.sampled:,} keys under '{ns.prefix}' have no TTL "
                    f"({scope}){estimate}: {_NO_TTL_WHY[ns.role]}. Examples: "
                    + ", ".join(ns.no_ttl_examples),
                    Fix(
                        "Every key the role writes has a TTL, so these come from other code or "
                        "an older version: give them one (EXPIRE key seconds) or delete them, "
                        f"e.g. redis-cli -n {database.db} --scan --pattern "
                        f"'{conf.glob_escape(ns.prefix)}*' and "
                        "UNLINK the ones PTTL reports -1 for."
                    ),
                    {
                        "prefix": ns.prefix,
                        "count": ns.no_ttl,
                        "sampled": ns.sampled,
                        "examples": ns.no_ttl_examples,
                        "complete": database.complete,
                    },
                )


@rule
def cache_large_values(ctx: Context) -> Iterable[Finding]:
    for server in _reachable(ctx):
        for database in server.databases:
            for ns in database.namespaces:
                if ns.role != "cache" or "cache" not in ctx.roles or not ns.large:
                    continue
                biggest = sorted(ns.large, key=lambda kv: -kv[1])[: ctx.limits.examples]
                yield Finding(
                    "W113",
                    "warning",
                    ["cache"],
                    f"{server.label}/{database.db}",
                    f"{len(ns.large)} sampled cache values under '{ns.prefix}' are larger than "
                    f"MAX_VALUE_SIZE ({human(ns.max_value_size or 0)}): "
                    + ", ".join(f"{k} ({human(v)})" for k, v in biggest)
                    + ". Large values block Redis while they are read/written and evict "
                    "many small entries.",
                    Fix(
                        "Cache smaller pieces (a page fragment, not a whole queryset), compress "
                        "them, or keep big blobs in storage and cache their location; delete "
                        "these with UNLINK."
                    ),
                    {"prefix": ns.prefix, "limit": ns.max_value_size, "keys": dict(biggest)},
                )


@rule
def sessions_policy(ctx: Context) -> Iterable[Finding]:
    for server in _reachable(ctx):
        if not _on(server, "sessions", ctx):
            continue
        policy = server.policy
        fix = Fix(
            "Sessions must never be evicted: give them a non-evicting server (and the cache "
            "its own, with allkeys-lru).",
            "CONFIG SET maxmemory-policy noeviction",
            "maxmemory-policy noeviction",
        )
        if policy.startswith("allkeys-"):
            yield Finding(
                "E120",
                "error",
                ["sessions"],
                server.label,
                f"maxmemory-policy is {policy} on the sessions' server: when memory fills, "
                "Redis evicts sessions and logs users out.",
                fix,
            )
        elif policy.startswith("volatile-"):
            evicted = int(server.info.get("evicted_keys", 0) or 0)
            ratio = server.memory_ratio
            pressure = evicted > 0 or (ratio is not None and ratio >= 0.9)
            detail = (
                f"{evicted} keys evicted since start, used_memory at "
                f"{_pct(ratio) if ratio is not None else '?'} of maxmemory"
            )
            if pressure:
                yield Finding(
                    "E121",
                    "error",
                    ["sessions"],
                    server.label,
                    f"maxmemory-policy is {policy} and memory is under pressure ({detail}): "
                    "sessions all have a TTL, so they are being evicted and users logged out.",
                    fix,
                    {"evicted_keys": evicted, "memory_ratio": ratio},
                )
            elif server.maxmemory:
                yield Finding(
                    "W121",
                    "warning",
                    ["sessions"],
                    server.label,
                    f"maxmemory-policy is {policy}: no pressure yet ({detail}), but sessions "
                    "have a TTL, so they will be evicted (users logged out) once memory fills.",
                    fix,
                )


@rule
def sessions_persistence(ctx: Context) -> Iterable[Finding]:
    for server in _reachable(ctx):
        if not _on(server, "sessions", ctx) or server.config_error is not None:
            continue
        if not server.aof and server.rdb is False:
            yield Finding(
                "W122",
                "warning",
                ["sessions"],
                server.label,
                "persistence is off (appendonly no, no save points): a Redis restart "
                "logs every user out.",
                Fix(
                    "Turn on the append-only file (fsync every second loses at most ~1 s).",
                    "CONFIG SET appendonly yes",
                    "appendonly yes\nappendfsync everysec",
                ),
            )


@rule
def sessions_share_cache(ctx: Context) -> Iterable[Finding]:
    if "sessions" not in ctx.roles:
        return
    for server in _reachable(ctx):
        if "sessions" not in server.roles or "cache" not in server.roles:
            continue
        dbs = {d.db for d in server.databases if "sessions" in d.roles} & {
            d.db for d in server.databases if "cache" in d.roles
        }
        reason = (
            "a cache wants maxmemory with allkeys-lru (which evicts sessions: users logged "
            "out) while sessions want noeviction (which makes a full cache fail its writes); "
            "one policy cannot serve both, and the cache's growth takes the sessions' memory"
        )
        if dbs:
            reason += f"; they also share database {min(dbs)}, so FLUSHDB on the cache logs "
            reason += "everyone out"
        yield Finding(
            "W123",
            "warning",
            ["sessions", "cache"],
            server.label,
            f"sessions share this Redis server with the cache: {reason}.",
            Fix(
                "Give sessions their own server (noeviction, appendonly yes): "
                'REDISROLES["ROLES"]["sessions"] = {"URL": "redis://sessions-host:6379/0"} '
                "(see docs/operations.md)."
            ),
        )


@rule
def pubsub_streams(ctx: Context) -> Iterable[Finding]:
    if "pubsub" not in ctx.roles:
        return
    cap, configured = pubsub_stream_cap(ctx.limits.stream_max_len)
    # XADD MAXLEN ~ trims whole radix-tree nodes (100 entries by default): allow slack.
    threshold = cap + max(1000, cap // 10)
    for server in _reachable(ctx):
        for database in server.databases:
            for ns in database.namespaces:
                if ns.role != "pubsub":
                    continue
                no_ttl = [s for s in ns.streams if s["ttl_ms"] == -1]
                if no_ttl:
                    yield Finding(
                        "W141",
                        "warning",
                        ["pubsub"],
                        f"{server.label}/{database.db}",
                        f"{len(no_ttl)} replay streams under '{ns.prefix}' have no TTL: a "
                        "group nobody publishes to any more keeps its stream forever. Examples: "
                        + ", ".join(s["key"] for s in no_ttl[: ctx.limits.examples]),
                        Fix(
                            "Replay streams are given a TTL on every publish; set one on these "
                            "(EXPIRE key seconds) or UNLINK them."
                        ),
                        {"streams": [s["key"] for s in no_ttl[: ctx.limits.examples]]},
                    )
                long = [s for s in ns.streams if s["length"] > threshold]
                if long:
                    longest = sorted(long, key=lambda s: -s["length"])[: ctx.limits.examples]
                    cap_text = (
                        f"the configured cap {cap:,}"
                        if configured
                        else f"{cap:,} (no cap configured: replay streams are uncapped?)"
                    )
                    yield Finding(
                        "W142",
                        "warning",
                        ["pubsub"],
                        f"{server.label}/{database.db}",
                        f"{len(long)} replay streams under '{ns.prefix}' are far longer than "
                        f"{cap_text}: "
                        + ", ".join(f"{s['key']} ({s['length']:,} entries)" for s in longest)
                        + ". Untrimmed streams grow memory without bound.",
                        Fix(
                            "Trim them (XTRIM key MAXLEN ~ N) and publish with XADD ... "
                            "MAXLEN ~ N (the pubsub role's replay cap)."
                        ),
                        {"streams": {s["key"]: s["length"] for s in longest}, "cap": cap},
                    )


@rule
def pubsub_clients(ctx: Context) -> Iterable[Finding]:
    for server in _reachable(ctx):
        if not _on(server, "pubsub", ctx) or server.config_error is not None:
            continue
        limit = server.pubsub_buffer_limit()
        if limit is not None and limit[0] == 0 and limit[1] == 0:
            yield Finding(
                "W143",
                "warning",
                ["pubsub"],
                server.label,
                "client-output-buffer-limit for pubsub clients is unlimited (pubsub 0 0 0): "
                "one slow subscriber can make Redis buffer messages until it runs out of memory.",
                Fix(
                    "Restore the default: a subscriber more than 32 MB (or 8 MB for 60 s) "
                    "behind is disconnected.",
                    "CONFIG SET client-output-buffer-limit 'pubsub 32mb 8mb 60'",
                    "client-output-buffer-limit pubsub 32mb 8mb 60",
                ),
            )
        soft = limit[1] if limit else 8 * 1024 * 1024
        slow = [c for c in server.subscribers() if soft and int(c.get("omem", 0) or 0) >= soft // 2]
        if slow:
            yield Finding(
                "W144",
                "warning",
                ["pubsub"],
                server.label,
                f"{len(slow)} subscribers have large pending output (a slow consumer): "
                + ", ".join(f"{c.get('addr')} ({human(int(c.get('omem', 0)))})" for c in slow[:5])
                + "; Redis disconnects them at the output-buffer limit and they miss messages.",
                Fix(
                    "Make the consumers faster (do the work outside the receive loop) or "
                    "publish less; Pub/Sub is fire-and-forget, not a queue."
                ),
            )


@rule
def pubsub_legacy_channels(ctx: Context) -> Iterable[Finding]:
    for server in _reachable(ctx):
        if not _on(server, "pubsub", ctx) or not server.legacy_channels:
            continue
        examples = server.legacy_channels[: ctx.limits.examples]
        yield Finding(
            "W145",
            "warning",
            ["pubsub"],
            server.label,
            f"{len(server.legacy_channels)} pub/sub channels with subscribers are named without "
            "a database (" + ", ".join(examples) + "): processes of an older django-redisroles. "
            "They and this version do not hear each other's broadcasts, and every project with "
            "this KEY_PREFIX on this server hears theirs, whatever its database.",
            Fix(
                "Finish the deploy (restart the old processes), or upgrade the other project; "
                "give each project its own KEY_PREFIX (see docs/security.md)."
            ),
            {"channels": examples, "count": len(server.legacy_channels)},
        )


@rule
def locks_policy(ctx: Context) -> Iterable[Finding]:
    for server in _reachable(ctx):
        if not _on(server, "locks", ctx):
            continue
        if server.policy != "noeviction":
            yield Finding(
                "W151",
                "warning",
                ["locks"],
                server.label,
                f"maxmemory-policy is {server.policy} on the locks' server: a held lock "
                "has a TTL, so under memory pressure it can be evicted and a second owner "
                "acquires it while the first still runs.",
                Fix(
                    "Put locks on a non-evicting server (with ratelimit/pubsub, not the cache).",
                    "CONFIG SET maxmemory-policy noeviction",
                    "maxmemory-policy noeviction",
                ),
            )


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------


@dataclass
class Report:
    """The result of one doctor run."""

    roles: list[str]
    servers: list[Server]
    findings: list[Finding]
    limits: Limits
    seconds: float
    #: Roles left out because the project does not wire them -> why.
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` document (schema: docs/operations.md)."""
        role_map = {}
        for role in self.roles:
            server = next((s for s in self.servers if role in s.roles), None)
            url = conf.role_url(role)
            try:
                db: int | None = conf.url_db(url)
            except ValueError:  # a malformed URL: the E100 finding says why
                db = None
            role_map[role] = {
                "url": conf.mask_url(url),
                "instance": server.label if server else None,
                "db": db,
            }
        return {
            "schema": JSON_SCHEMA_VERSION,
            "ok": not self.errors,
            "summary": {"errors": len(self.errors), "warnings": len(self.warnings)},
            "seconds": round(self.seconds, 3),
            "limits": asdict(self.limits),
            "roles": role_map,
            "skipped": dict(self.skipped),
            "instances": [s.as_dict() for s in self.servers],
            "findings": [f.as_dict() for f in self.findings],
        }


def run(
    roles: Iterable[str] | None = None,
    limits: Limits | None = None,
    progress: Progress | None = None,
) -> Report:
    """Check the servers of ``roles`` and return a report.

    Default: every role the project wires (see ``unwired_roles``); roles named
    in ``roles`` are checked whatever the wiring.
    """
    started = time.monotonic()
    limits = limits or Limits.from_settings()
    skipped = unwired_roles() if roles is None else {}
    wanted = set(conf.ROLES) - set(skipped) if roles is None else set(roles)
    selected = [r for r in conf.ROLES if r in wanted]
    servers = _connect(selected, limits)
    try:
        window_start = time.monotonic()
        for server in servers:
            if server.reachable and server.client is not None:
                try:
                    stats = server.client.info("stats")
                    server.connections_base = int(stats.get("total_connections_received", 0))
                except redis.RedisError:
                    pass
        for server in servers:
            if server.reachable:
                if progress:
                    progress(f"checking {server.label} ({', '.join(server.roles)})")
                try:
                    _gather_server(server, limits)
                except redis.RedisError as exc:
                    server.reachable, server.error = False, f"{type(exc).__name__}: {exc}"
        deadline = time.monotonic() + limits.max_seconds
        databases = [(s, d) for s in servers if s.reachable for d in s.databases]
        for index, (server, database) in enumerate(databases):
            # Each database gets an equal share of what is left of the time budget.
            now = time.monotonic()
            share = now + (deadline - now) / (len(databases) - index)
            try:
                _probe_acl(database, limits)
                _sample_db(server, database, limits, share, progress)
            except redis.RedisError as exc:
                database.error = f"{type(exc).__name__}: {exc}"
        _connection_rate(servers, limits, window_start)
    finally:
        for server in servers:
            for client in {
                id(c): c
                for c in [server.client, *(d.client for d in server.databases)]
                if c is not None
            }.values():
                client.connection_pool.disconnect()
            server.client = None
            for database in server.databases:
                database.client = None
    ctx = Context(servers, limits, selected)
    findings = [finding for check in RULES for finding in check(ctx)]
    order = {"error": 0, "warning": 1}
    findings.sort(key=lambda f: (order.get(f.severity, 2), f.id, f.instance))
    return Report(selected, servers, findings, limits, time.monotonic() - started, skipped)
