"""Rules for a Redis Cluster or a Sentinel service as a whole (``E160``-``W164``).

The per-server rules run on each of their nodes already (every master and
replica is a :class:`~..model.Server`); these read what the deployment says of
itself: ``CLUSTER INFO``, which master has a replica, and each Sentinel's view.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..model import Finding, Fix
from .base import Context, Rule

__all__ = ["RULES"]

#: Slots a Redis Cluster has; every one must be served.
SLOTS = 16384


def cluster_state(ctx: Context) -> Iterable[Finding]:
    for deployment in ctx.deployments:
        if deployment.kind != "cluster" or deployment.error or not deployment.cluster:
            continue
        state = deployment.cluster.get("cluster_state", "?")
        assigned = int(deployment.cluster.get("cluster_slots_assigned", SLOTS) or 0)
        failing = int(deployment.cluster.get("cluster_slots_fail", 0) or 0)
        if state == "ok" and assigned == SLOTS and not failing:
            continue
        yield Finding(
            "E160",
            "error",
            deployment.roles,
            deployment.label,
            f"the Redis Cluster is not serving every slot: cluster_state:{state}, "
            f"{assigned} of {SLOTS} slots assigned, {failing} failing (CLUSTER INFO on "
            f"{deployment.asked}): commands on the keys of those slots fail with CLUSTERDOWN.",
            Fix(
                "Bring the failed masters back or let their replicas take over "
                "(redis-cli --cluster check / --cluster fix HOST:PORT); assign unassigned "
                "slots (CLUSTER ADDSLOTSRANGE)."
            ),
            {"cluster": dict(deployment.cluster)},
        )


def masters_without_replica(ctx: Context) -> Iterable[Finding]:
    for deployment in ctx.deployments:
        if deployment.error:
            continue
        for master in deployment.masters:
            if deployment.replicas.get(master):
                continue
            what = (
                "its slots are down until it comes back"
                if deployment.kind == "cluster"
                else "Sentinel has nothing to promote"
            )
            yield Finding(
                "W161",
                "warning",
                deployment.roles,
                master,
                f"this {deployment.kind} master has no healthy replica: if it fails, {what}, "
                "and what it held since its last save is lost.",
                Fix(
                    "Give each master a replica (on another host): replicaof MASTER_HOST PORT"
                    + (" / CLUSTER REPLICATE MASTER_ID" if deployment.kind == "cluster" else "")
                    + "."
                ),
            )


def sentinel_quorum(ctx: Context) -> Iterable[Finding]:
    for deployment in ctx.deployments:
        if deployment.kind != "sentinel" or deployment.error:
            continue
        views = [v for v in deployment.sentinels if v.reachable]
        if views and not any(v.quorum_ok for v in views):
            reasons = "; ".join(f"{v.label}: {v.quorum_error}" for v in views)
            yield Finding(
                "E162",
                "error",
                deployment.roles,
                deployment.label,
                f"the Sentinels of service {deployment.service!r} cannot reach the quorum "
                f"or a majority to authorize a failover (SENTINEL CKQUORUM): {reasons}. "
                "A failed master would not be replaced.",
                Fix(
                    "Start the missing Sentinels (or fix their network), so that at least "
                    "the quorum and a majority of them see the master."
                ),
            )
        known = max((v.sentinels or 0 for v in views), default=0)
        if views and known < 3:
            yield Finding(
                "W163",
                "warning",
                deployment.roles,
                deployment.label,
                f"{known} Sentinel(s) watch service {deployment.service!r}: with fewer than "
                "3 (on separate hosts), losing one host can leave no majority to fail over.",
                Fix(
                    "Run at least 3 Sentinels on separate hosts (quorum 2), and list them all "
                    "in the redis+sentinel:// URL."
                ),
                {"sentinels": known},
            )


def sentinels_unreachable(ctx: Context) -> Iterable[Finding]:
    for deployment in ctx.deployments:
        if deployment.kind != "sentinel":
            continue
        down = [v for v in deployment.sentinels if not v.reachable]
        if down and len(down) < len(deployment.sentinels):  # none at all: E100 says so
            yield Finding(
                "W164",
                "warning",
                deployment.roles,
                deployment.label,
                "Sentinel(s) of the URL do not answer: "
                + "; ".join(f"{v.label}: {v.error}" for v in down)
                + ". Clients ask the others, but a failover needs a majority.",
                Fix("Start them again, or remove retired ones from the URL."),
            )


#: This module's rules, in the order they run.
RULES: tuple[Rule, ...] = (
    cluster_state,
    masters_without_replica,
    sentinel_quorum,
    sentinels_unreachable,
)
