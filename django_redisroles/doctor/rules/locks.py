"""Rules of the locks role: a held lock is never evicted."""

from __future__ import annotations

from collections.abc import Iterable

from ..model import Finding, Fix
from .base import Context, Rule, on, reachable


def locks_policy(ctx: Context) -> Iterable[Finding]:
    for server in reachable(ctx):
        if not on(server, "locks", ctx):
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


#: This module's rules, in the order they run.
RULES: tuple[Rule, ...] = (locks_policy,)
