"""``run()``: gather the facts of each role's server, apply the rules, return a report."""

from __future__ import annotations

import time
from collections.abc import Iterable

import redis

from .. import conf
from . import facts
from .model import SEVERITIES, Limits
from .report import Report
from .rules import RULES, Context
from .wiring import unwired_roles

__all__ = ["run"]


def run(
    roles: Iterable[str] | None = None,
    limits: Limits | None = None,
    progress: facts.Progress | None = None,
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
    servers, deployments = facts.connect(selected, limits)
    try:
        window_start = facts.open_connection_window(servers)
        for server in servers:
            if server.reachable:
                if progress:
                    progress(f"checking {server.label} ({', '.join(server.roles)})")
                try:
                    facts.gather_server(server, limits)
                except redis.RedisError as exc:
                    server.reachable, server.error = False, f"{type(exc).__name__}: {exc}"
        deadline = time.monotonic() + limits.max_seconds
        databases = [(s, d) for s in servers if s.reachable for d in s.databases]
        for index, (server, database) in enumerate(databases):
            # Each database gets an equal share of what is left of the time budget.
            now = time.monotonic()
            share = now + (deadline - now) / (len(databases) - index)
            try:
                facts.probe_acl(database, limits)
                facts.sample_db(server, database, limits, share, progress)
            except redis.RedisError as exc:
                database.error = f"{type(exc).__name__}: {exc}"
        facts.connection_rate(servers, limits, window_start)
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
    ctx = Context(servers, limits, selected, deployments)
    findings = [finding for check in RULES for finding in check(ctx)]
    order = {severity: rank for rank, severity in enumerate(SEVERITIES)}
    findings.sort(key=lambda f: (order.get(f.severity, len(order)), f.id, f.instance))
    return Report(
        selected, servers, findings, limits, time.monotonic() - started, skipped, deployments
    )
