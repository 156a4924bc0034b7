"""A doctor run's result: the :class:`Report`, its JSON document and its text.

``redisroles doctor --json`` prints :meth:`Report.as_dict` (schema:
docs/operations.md); without ``--json`` it prints :func:`render`.
"""

from __future__ import annotations

import textwrap
from dataclasses import asdict, dataclass, field
from typing import Any

from .. import conf
from .model import ERROR, WARNING, Deployment, Finding, Limits, Server, human

__all__ = ["JSON_SCHEMA_VERSION", "Report", "human_mem", "render"]

JSON_SCHEMA_VERSION = 1


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
    #: The Redis Clusters and Sentinel services the roles' URLs name.
    deployments: list[Deployment] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

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
            "deployments": [d.as_dict() for d in self.deployments],
            "findings": [f.as_dict() for f in self.findings],
        }


def _wrap(text: str, indent: str, width: int = 100) -> str:
    return "\n".join(
        textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent)
        for line in text.splitlines()
    )


def render(report: Report) -> str:
    """The human-readable report: servers, then findings with their fixes."""
    lines: list[str] = []
    lines.append(
        f"redisroles doctor: {len(report.servers)} server(s) for "
        f"{', '.join(report.roles)} in {report.seconds:.1f}s"
    )
    if report.skipped:
        lines.append(
            "not checked: "
            + "; ".join(f"{role} ({why})" for role, why in report.skipped.items())
            + ". Add --role ROLE to check one anyway."
        )
    lines.append("")
    sw = max([len("SERVER"), *(len(s.shown) for s in report.servers)])
    rw = max([len("ROLES"), *(len(",".join(s.roles)) for s in report.servers)])
    lines.append(
        f"{'SERVER':<{sw}}  {'ROLES':<{rw}}  {'VERSION':<12} {'PING':>8}  {'MEMORY':<26} POLICY"
    )
    pad = " " * (sw + 2)
    for server in report.servers:
        roles = ",".join(server.roles)
        if not server.reachable:
            lines.append(f"{server.shown:<{sw}}  {roles:<{rw}}  unreachable: {server.error}")
            continue
        median = server.ping_median()
        ping = f"{median:.2f}ms" if median is not None else "-"
        mem = human_mem(server)
        lines.append(
            f"{server.shown:<{sw}}  {roles:<{rw}}  {server.describe():<12} "
            f"{ping:>8}  {mem:<26} {server.policy}"
        )
        data = server.as_dict()
        clients = data["clients"]
        persistence = "aof" if server.aof else ""
        if server.rdb:
            persistence += "+rdb" if persistence else "rdb"
        lines.append(
            f"{pad}clients {clients['connected']} (redisroles {clients['ours']}, "
            f"subscribers {clients['subscribers']}/{clients['subscriptions']} subscriptions), "
            f"persistence {persistence or ('?' if server.rdb is None else 'none')}"
        )
        for database in server.databases:
            state = "all" if database.complete else f"stopped by {database.stopped_by}"
            if database.error:
                state = f"error: {database.error}"
            lines.append(
                f"{pad}db{database.db}: sampled {database.scanned:,} of "
                f"{database.keys:,} keys ({state}, {database.seconds:.2f}s)"
            )
    for deployment in report.deployments:
        lines.append(_describe(deployment))
        lines.extend(f"  {note}" for note in deployment.notes)
    lines.append("")
    if not report.findings:
        lines.append("No problems found.")
        return "\n".join(lines)
    fw = max([len("ROLES"), *(len(",".join(f.roles)) for f in report.findings)])
    lines.append(f"{'SEVERITY':<8} {'ID':<5} {'ROLES':<{fw}}  INSTANCE")
    for finding in report.findings:
        roles = ",".join(finding.roles)
        lines.append(f"{finding.severity:<8} {finding.id:<5} {roles:<{fw}}  {finding.instance}")
        lines.append(_wrap(finding.message, "    "))
        lines.append(_wrap("fix: " + finding.fix.text, "    "))
        if finding.fix.config_set:
            lines.append(f"      now:       {finding.fix.config_set}")
        if finding.fix.redis_conf:
            conf_lines = finding.fix.redis_conf.splitlines()
            lines.append(f"      redis.conf: {conf_lines[0]}")
            lines.extend(f"                  {line}" for line in conf_lines[1:])
    lines.append("")
    lines.append(
        f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)."
        + (" Exit status 1." if report.errors else "")
    )
    return "\n".join(lines)


def human_mem(server: Server) -> str:
    used = human(server.used_memory)
    if not server.maxmemory:
        return f"{used} / no maxmemory"
    return f"{used} / {human(server.maxmemory)} ({server.used_memory / server.maxmemory:.0%})"


def _describe(deployment: Deployment) -> str:
    """One line on a Redis Cluster or a Sentinel service as a whole."""
    if deployment.error:
        return f"{deployment.kind} {deployment.label}: {deployment.error}"
    replicas = sum(len(r) for r in deployment.replicas.values())
    if deployment.kind == "cluster":
        state = deployment.cluster.get("cluster_state", "?")
        slots = deployment.cluster.get("cluster_slots_assigned", "?")
        return (
            f"cluster {deployment.label}: state {state}, {slots} slots assigned, "
            f"{len(deployment.masters)} master(s), {replicas} replica(s)"
        )
    answering = [v for v in deployment.sentinels if v.reachable]
    known = max((v.sentinels or 0 for v in answering), default=0)
    quorum = next((v.quorum for v in answering if v.quorum), None)
    ok = any(v.quorum_ok for v in answering)
    return (
        f"sentinel {deployment.label}: service {deployment.service!r}, master "
        f"{', '.join(deployment.masters) or '?'}, {replicas} replica(s), "
        f"{len(answering)}/{len(deployment.sentinels)} Sentinel(s) of the URL answer, "
        f"{known} known, quorum {quorum} ({'reachable' if ok else 'NOT reachable'})"
    )
