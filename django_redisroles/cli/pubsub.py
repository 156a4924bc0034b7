"""``redisroles pubsub``: who listens to which group, and what the replay streams hold."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

import redis

from ..pubsub.status import status

HELP = "Show pub/sub groups with their subscribed processes, and the replay streams."


def add_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def handle(command: Any, options: dict[str, Any]) -> int:
    try:
        data = status()
    except redis.RedisError as exc:
        command.stderr.write(f"cannot reach the pubsub role's Redis: {type(exc).__name__}: {exc}")
        return 1
    if options["json"]:
        command.stdout.write(json.dumps(data, indent=2))
        return 0
    out = command.stdout
    out.write(f"consumer channels subscribed: {data['consumer_channels']}")
    out.write("groups (processes subscribed):")
    for row in data["groups"] or [{"group": "(none)", "processes": ""}]:
        out.write(f"  {row['group']:<40} {row['processes']}")
    out.write("replay streams (entries, ttl s, last seq):")
    for row in data["replay_streams"] or [
        {"group": "(none)", "entries": "", "ttl": "", "last_seq": ""}
    ]:
        out.write(f"  {row['group']:<40} {row['entries']:>6} {row['ttl']:>7} {row['last_seq']}")
    return 0
