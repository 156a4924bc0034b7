"""What the doctor knows and says: facts about servers, findings, severities, limits.

Plain data, no Redis calls: :mod:`.facts` fills :class:`Server` /
:class:`Database` / :class:`Namespace` in, the rules (:mod:`.rules`) read them
and return :class:`Finding` objects, :mod:`.report` renders them.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from .. import conf

_OUR_CLIENT_NAME = conf.DEFAULT_OPTIONS["client_name"]

__all__ = [
    "ERROR",
    "SEVERITIES",
    "WARNING",
    "Database",
    "Deployment",
    "Finding",
    "Fix",
    "Limits",
    "Namespace",
    "SentinelView",
    "Server",
    "conf_size",
    "human",
]

#: Severities, most severe first: an error makes ``redisroles doctor`` exit 1.
ERROR = "error"
WARNING = "warning"
SEVERITIES = (ERROR, WARNING)


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
    #: A node of a Redis Cluster or a Sentinel service: ``cluster`` / ``sentinel``, its
    #: role there (``master`` / ``replica``) and a replica's master (``host:port``).
    topology: str | None = None
    node: str | None = None
    master: str | None = None

    @property
    def shown(self) -> str:
        """The label, with the node's place in its deployment: ``host:port (cluster master)``."""
        return f"{self.label} ({self.topology} {self.node})" if self.topology else self.label

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
            "node": (
                {"topology": self.topology, "role": self.node, "master": self.master}
                if self.topology
                else None
            ),
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
                # Our connections carry the default client name (conf.DEFAULT_OPTIONS).
                "ours": sum(1 for c in self.clients if c.get("name") == _OUR_CLIENT_NAME),
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


@dataclass
class SentinelView:
    """What one Sentinel of a ``redis+sentinel://`` URL says about the service."""

    label: str  # "host:port" of the Sentinel
    reachable: bool = False
    error: str | None = None
    master: str | None = None  # the master it names, "host:port"
    quorum: int | None = None
    sentinels: int | None = None  # Sentinels it knows watch the service, itself included
    flags: str = ""
    quorum_ok: bool | None = None  # SENTINEL CKQUORUM
    quorum_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Deployment:
    """A Redis Cluster or a Sentinel service a role's URL names, and what it says of itself."""

    kind: str  # "cluster" | "sentinel"
    label: str  # the URL, masked
    roles: list[str] = field(default_factory=list)
    service: str | None = None  # sentinel
    error: str | None = None  # nobody answered: no node could be found
    asked: str | None = None  # the seed node that answered (cluster)
    cluster: dict[str, str] = field(default_factory=dict)  # CLUSTER INFO
    masters: list[str] = field(default_factory=list)  # "host:port" of each serving master
    replicas: dict[str, list[str]] = field(default_factory=dict)  # master -> healthy replicas
    sentinels: list[SentinelView] = field(default_factory=list)
    #: What could not be asked, and what was done instead (CLUSTER NODES refused...).
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cluster"] = {
            k: self.cluster[k]
            for k in ("cluster_state", "cluster_slots_assigned", "cluster_known_nodes")
            if k in self.cluster
        }
        return data


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
