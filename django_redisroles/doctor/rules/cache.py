"""Rules of the cache role: a memory cap with an allkeys policy, values under MAX_VALUE_SIZE."""

from __future__ import annotations

from collections.abc import Iterable

from ..model import Finding, Fix, human
from .base import Context, Rule, on, reachable


def cache_memory(ctx: Context) -> Iterable[Finding]:
    for server in reachable(ctx):
        if not on(server, "cache", ctx):
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


def cache_large_values(ctx: Context) -> Iterable[Finding]:
    for server in reachable(ctx):
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


#: This module's rules, in the order they run.
RULES: tuple[Rule, ...] = (
    cache_memory,
    cache_large_values,
)
