"""Rules for every role: reachability, CONFIG, ACL, latency, version, clients, memory, TTLs."""

from __future__ import annotations

from collections.abc import Iterable

from ... import conf
from ..model import Finding, Fix, conf_size, human
from .base import Context, Rule, pct, reachable

#: The oldest Redis each role is supported on, and why.
_BASELINE = (
    "the supported baseline: django-redisroles is tested on Redis 7.0+ and Valkey (whose "
    "every release implements Redis 7.2) only: its Lua scripts rely on 7.0's script "
    "semantics; older servers are untested"
)
ROLE_MIN_VERSION: dict[str, tuple[tuple[int, int], str]] = {
    role: ((7, 0), _BASELINE) for role in ("cache", "sessions", "ratelimit", "pubsub", "locks")
}


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


def config_unavailable(ctx: Context) -> Iterable[Finding]:
    for server in reachable(ctx):
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


def _pubsub_channels() -> str:
    """The ACL channel pattern of the pub/sub role's channels."""
    from ...pubsub.names import namespace  # imports Channels: only when used

    return namespace() + "*"


def acl(ctx: Context) -> Iterable[Finding]:
    for server in reachable(ctx):
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
                        f"~{conf.key_prefix()}:* &{_pubsub_channels()}"
                    ),
                    {"refused": refused},
                )


def latency(ctx: Context) -> Iterable[Finding]:
    for server in reachable(ctx):
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


def version(ctx: Context) -> Iterable[Finding]:
    for server in reachable(ctx):
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


def clients(ctx: Context) -> Iterable[Finding]:
    for server in reachable(ctx):
        connected = int(server.info.get("connected_clients", 0) or 0)
        maxclients = server.maxclients
        pool_max = max(int(conf.role_options(r).get("max_connections") or 0) for r in server.roles)
        if maxclients and connected >= 0.8 * maxclients:
            yield Finding(
                "W104",
                "warning",
                server.roles,
                server.label,
                f"{connected} clients connected, {pct(connected / maxclients)} of maxclients "
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


def memory(ctx: Context) -> Iterable[Finding]:
    for server in reachable(ctx):
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
            f"used_memory {human(server.used_memory)} is {pct(ratio)} of maxmemory "
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


def keys_without_ttl(ctx: Context) -> Iterable[Finding]:
    for server in reachable(ctx):
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


#: This module's rules, in the order they run.
RULES: tuple[Rule, ...] = (
    unreachable,
    config_unavailable,
    acl,
    latency,
    version,
    clients,
    memory,
    keys_without_ttl,
)
