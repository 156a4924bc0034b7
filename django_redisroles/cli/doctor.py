"""``redisroles doctor``: each role's Redis server checked against what the role needs.

Exit status: 0 when no error was found (warnings allowed), 1 when at least one
error was found (an unreachable server is an error), so it can gate a deploy.
The rules live in ``django_redisroles.doctor``; ``check --deploy`` runs the same.
"""

from __future__ import annotations

import json
import textwrap
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from .. import conf, doctor

HELP = (
    "Check each role's Redis server (memory policy, persistence, TTLs, big values, "
    "latency, clients...) and print the fixes. Exit status 1 when an error is found."
)


def add_arguments(parser: ArgumentParser) -> None:
    d = conf.DOCTOR_DEFAULTS
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--role",
        action="append",
        choices=conf.ROLES,
        dest="roles",
        help="only this role (repeatable); default: all five",
    )
    parser.add_argument(
        "--max-keys",
        type=int,
        help=f"keys sampled per database, at most (default {d['MAX_KEYS']:,})",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        help=f"time budget of the key sampling, all databases together (default "
        f"{d['MAX_SECONDS']:g})",
    )
    parser.add_argument(
        "--scan-count", type=int, help=f"SCAN ... COUNT per call (default {d['SCAN_COUNT']})"
    )
    parser.add_argument(
        "--pings", type=int, help=f"PINGs per server for the latency median (default {d['PINGS']})"
    )
    parser.add_argument(
        "--timeout", type=float, help=f"connect/command timeout, seconds (default {d['TIMEOUT']})"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress messages on stderr while sampling"
    )


def limits_from_options(options: dict[str, Any]) -> doctor.Limits:
    return doctor.Limits.from_settings(
        max_keys=options.get("max_keys"),
        max_seconds=options.get("max_seconds"),
        scan_count=options.get("scan_count"),
        pings=options.get("pings"),
        timeout=options.get("timeout"),
    )


def handle(command: Any, options: dict[str, Any]) -> int:
    from ..checks.deploy import validate_doctor_setting

    problems = validate_doctor_setting()
    if problems:
        raise CommandError("; ".join(problems) + " (see docs/operations.md).")
    for flag in ("max_keys", "max_seconds", "scan_count", "pings", "timeout"):
        if options.get(flag) is not None and options[flag] <= 0:
            raise CommandError(f"--{flag.replace('_', '-')} must be positive, got {options[flag]}")
    limits = limits_from_options(options)
    stderr = getattr(command, "stderr", None)

    def progress(message: str) -> None:
        if stderr is not None:
            stderr.write(f"doctor: {message}")
            stderr.flush()

    report = doctor.run(
        options.get("roles"), limits, progress=None if options.get("quiet") else progress
    )
    if options.get("json"):
        command.stdout.write(json.dumps(report.as_dict(), indent=2))
    else:
        command.stdout.write(render(report))
    return 1 if report.errors else 0


def _wrap(text: str, indent: str, width: int = 100) -> str:
    return "\n".join(
        textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent)
        for line in text.splitlines()
    )


def render(report: doctor.Report) -> str:
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
    sw = max([len("SERVER"), *(len(s.label) for s in report.servers)])
    rw = max([len("ROLES"), *(len(",".join(s.roles)) for s in report.servers)])
    lines.append(
        f"{'SERVER':<{sw}}  {'ROLES':<{rw}}  {'VERSION':<12} {'PING':>8}  {'MEMORY':<26} POLICY"
    )
    pad = " " * (sw + 2)
    for server in report.servers:
        roles = ",".join(server.roles)
        if not server.reachable:
            lines.append(f"{server.label:<{sw}}  {roles:<{rw}}  unreachable: {server.error}")
            continue
        median = server.ping_median()
        ping = f"{median:.2f}ms" if median is not None else "-"
        mem = human_mem(server)
        lines.append(
            f"{server.label:<{sw}}  {roles:<{rw}}  {server.describe():<12} "
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


def human_mem(server: doctor.Server) -> str:
    used = doctor.human(server.used_memory)
    if not server.maxmemory:
        return f"{used} / no maxmemory"
    return (
        f"{used} / {doctor.human(server.maxmemory)} ({server.used_memory / server.maxmemory:.0%})"
    )
