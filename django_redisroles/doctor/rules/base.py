"""What every rule gets, and helpers the rules share.

A rule is a pure function of the gathered facts: ``Context -> Iterable[Finding]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..model import Deployment, Finding, Limits, Server

__all__ = ["Context", "Rule", "on", "pct", "reachable"]


@dataclass
class Context:
    """The facts of one run: the servers, the limits, the roles checked, the deployments."""

    servers: list[Server]
    limits: Limits
    roles: list[str]
    #: The Redis Clusters and Sentinel services behind the roles' URLs (their nodes are
    #: among ``servers``).
    deployments: list[Deployment] = field(default_factory=list)


Rule = Callable[[Context], Iterable[Finding]]


def reachable(ctx: Context) -> Iterable[Server]:
    """The servers that answered."""
    return (s for s in ctx.servers if s.reachable)


def on(server: Server, role: str, ctx: Context) -> bool:
    """Whether ``role`` is checked and lives on ``server``."""
    return role in server.roles and role in ctx.roles


def pct(ratio: float) -> str:
    return f"{ratio * 100:.0f}%"
