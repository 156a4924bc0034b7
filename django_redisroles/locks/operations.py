"""Locks seen from outside their holders: who holds one, every held lock, forced release.

For operators and dashboards (``redisroles locks``); a holder uses its ``Lock``.
"""

from __future__ import annotations

from typing import Any

from ..connections import get_async_redis, get_redis
from . import plan
from .keys import Owner, held_pattern, lock_keys, name_of, parse_owner
from .options import ROLE

__all__ = ["aowner", "force_release", "held_locks", "owner"]


def _owner_of(name: str, replies: list[Any]) -> Owner | None:
    value, pttl, now = replies
    if value is None:
        return None
    return parse_owner(name, value, pttl, int(now[0]) + int(now[1]) / 1_000_000)


def owner(name: str) -> Owner | None:
    """Who holds lock ``name`` right now, or None when it is free."""
    return _owner_of(name, plan.OWNER(get_redis(ROLE), [lock_keys(name).lock], ()))


async def aowner(name: str) -> Owner | None:
    """Async ``owner()``."""
    reply = await plan.OWNER.acall(get_async_redis(ROLE), [lock_keys(name).lock], ())
    return _owner_of(name, reply)


def held_locks(count: int = 500) -> list[Owner]:
    """Every held lock with its owner, found with SCAN (never KEYS), sorted by name."""
    client = get_redis(ROLE)
    names = {
        name
        for key in client.scan_iter(match=held_pattern(), count=count)
        if (name := name_of(key)) is not None
    }
    found = []
    for name in sorted(names):
        info = owner(name)
        if info is not None:
            found.append(info)
    return found


def force_release(name: str) -> bool:
    """Delete lock ``name`` whoever holds it (operators only); wakes a waiter.

    The holder finds out at its next renewal (``LockLost``). True if it was held.
    """
    keys = plan.release_keys(lock_keys(name))
    return bool(plan.RELEASE(get_redis(ROLE), keys, ("", 10_000, 0)))
