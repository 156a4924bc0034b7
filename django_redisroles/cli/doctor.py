"""``redisroles doctor``: each role's Redis server checked against what the role needs.

Exit status: 0 when no error was found (warnings allowed), 1 when at least one
error was found (an unreachable server is an error), so it can gate a deploy.
The rules and the rendering live in ``django_redisroles.doctor``; ``check --deploy``
runs the same rules.
"""

from __future__ import annotations

import json
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
        command.stdout.write(doctor.render(report))
    return 1 if report.errors else 0
