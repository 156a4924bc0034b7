"""Rules of the sessions role: never evicted, persisted, not sharing the cache's server."""

from __future__ import annotations

from collections.abc import Iterable

from ..model import Finding, Fix
from .base import Context, Rule, on, pct, reachable


def sessions_policy(ctx: Context) -> Iterable[Finding]:
    for server in reachable(ctx):
        if not on(server, "sessions", ctx):
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
                f"{pct(ratio) if ratio is not None else '?'} of maxmemory"
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


def sessions_persistence(ctx: Context) -> Iterable[Finding]:
    for server in reachable(ctx):
        if not on(server, "sessions", ctx) or server.config_error is not None:
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


def sessions_share_cache(ctx: Context) -> Iterable[Finding]:
    if "sessions" not in ctx.roles:
        return
    for server in reachable(ctx):
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


#: This module's rules, in the order they run.
RULES: tuple[Rule, ...] = (
    sessions_policy,
    sessions_persistence,
    sessions_share_cache,
)
