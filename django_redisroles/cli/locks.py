"""``redisroles locks``: list held locks; ``redisroles locks release NAME --force``."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from datetime import UTC, datetime
from typing import Any

import redis

from .. import conf
from ..locks import force_release, held_locks, owner

HELP = "List held locks with owners and TTLs; `locks release NAME --force` frees one."


def add_arguments(parser: ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="locks_action", metavar="action")
    actions.add_parser("list", help="list held locks (the default)")
    release = actions.add_parser(
        "release",
        help="delete a lock whoever holds it (its holder finds out at its next renewal)",
    )
    release.add_argument("name", help="the lock's name, as `redisroles locks` shows it")
    release.add_argument(
        "--force", action="store_true", help="required: releasing lets a second copy run"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "?"
    return f"{(now - moment).total_seconds():.0f}s ago"


def handle(command: Any, options: dict[str, Any]) -> int:
    try:
        if options.get("locks_action") == "release":
            return _release(command, options)
        return _list(command, options)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        url = conf.mask_url(conf.role_url("locks"))
        command.stderr.write(
            f"cannot reach the locks role's Redis at {url}: {type(exc).__name__}: {exc}"
        )
        return 1


def _list(command: Any, options: dict[str, Any]) -> int:
    locks = held_locks()
    if options.get("json"):
        rows = [
            {
                "name": lock.name,
                "host": lock.host,
                "pid": lock.pid,
                "cmd": lock.cmd,
                "acquired_at": lock.acquired_at.isoformat() if lock.acquired_at else None,
                "renewed_at": lock.renewed_at.isoformat() if lock.renewed_at else None,
                "fence": lock.fence,
                "ttl": lock.ttl,
                "expires_in": lock.expires_in,
            }
            for lock in locks
        ]
        command.stdout.write(json.dumps(rows, indent=2))
        return 0
    if not locks:
        command.stdout.write("No locks held.")
        return 0
    now = datetime.now(tz=UTC)
    command.stdout.write(
        f"{'name':<28} {'host':<16} {'pid':>7}  {'since':<20} {'renewed':>9} "
        f"{'expires in':>10} {'fence':>14}  command"
    )
    for lock in locks:
        since = f"{lock.acquired_at:%Y-%m-%d %H:%M:%S}" if lock.acquired_at else "?"
        expires = f"{lock.expires_in:.1f}s" if lock.expires_in is not None else "never!"
        command.stdout.write(
            f"{lock.name:<28} {lock.host:<16} {lock.pid or '?':>7}  {since:<20} "
            f"{_ago(lock.renewed_at, now):>9} {expires:>10} {lock.fence or '?':>14}  {lock.cmd}"
        )
    return 0


def _release(command: Any, options: dict[str, Any]) -> int:
    name = options["name"]
    holder = owner(name)
    if holder is None:
        command.stderr.write(f"Lock {name!r} is not held.")
        return 1
    if not options.get("force"):
        command.stderr.write(
            f"Lock {name!r} is held by {holder.describe()}. Releasing it lets another copy "
            "start while that one may still run; add --force if that holder is gone."
        )
        return 2
    if not force_release(name):
        command.stderr.write(f"Lock {name!r} was released meanwhile.")
        return 1
    command.stdout.write(f"Released lock {name!r} (was held by {holder.describe()}).")
    return 0
