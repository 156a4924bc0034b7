"""What each lock operation sends, and what the reply means (pure: no I/O).

Every state change of a lock is one Lua script (``lua/*.lua``), so each is
atomic: acquiring sets the lock with its owner and bumps the fence in one
step; releasing and extending compare the owner token first, so a holder
whose lease ran out can never delete or extend the lock of the next holder.
The sync and async twins of ``Lock`` (and ``force_release``) send what the
functions here build and read the replies with them; scripts go by
``EVALSHA`` and are loaded again on ``NOSCRIPT``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import redis
import redis.asyncio

from ..scripts import Script
from .keys import LockKeys, Owner, identity, parse_owner

__all__ = [
    "ACQUIRE",
    "EXTEND",
    "OWNER",
    "RELEASE",
    "RELEASED_TTL",
    "acquire_args",
    "blpop_timeout",
    "budget",
    "extend_args",
    "holder_of",
    "poll_cap",
    "release_args",
    "release_keys",
]

_LUA = Path(__file__).parent / "lua"
ACQUIRE = Script((_LUA / "acquire.lua").read_text())
EXTEND = Script((_LUA / "extend.lua").read_text())
RELEASE = Script((_LUA / "release.lua").read_text())
OWNER = Script((_LUA / "owner.lua").read_text())

#: Seconds a release's token is kept: longer than redis-py's retries of it take.
RELEASED_TTL = 30


def acquire_args(token: str, ttl: float, fence_ttl_ms: int, block: float | None) -> tuple[Any, ...]:
    """ARGV of ACQUIRE (KEYS: ``keys[:3]``); ``block``: seconds we will wait if it is held."""
    waiting_ms = 0 if block is None else int(block * 1000) + 1000
    return (token, max(1, int(ttl * 1000)), fence_ttl_ms, identity(), waiting_ms)


def holder_of(name: str, reply: list[Any]) -> tuple[Owner, int]:
    """Who holds the lock, and its PTTL, from ACQUIRE's ``{0, pttl, value}``."""
    pttl = int(reply[1])
    return parse_owner(name, reply[2], pttl, None), pttl


def extend_args(token: str | None, ttl: float) -> tuple[Any, ...]:
    """ARGV of EXTEND (KEYS: ``keys[:1]``)."""
    return (token, max(1, int(ttl * 1000)))


def release_keys(keys: LockKeys) -> tuple[str, ...]:
    """KEYS of RELEASE."""
    return (keys.lock, keys.waiting, keys.wake, keys.released)


def release_args(token: str, ttl: float) -> tuple[Any, ...]:
    """ARGV of RELEASE: the token ("" forces), and how long a wake-up waits for a waiter."""
    return (token, max(1000, int(ttl * 1000)), RELEASED_TTL * 1000)


def poll_cap(client: redis.Redis | redis.asyncio.Redis, poll: float) -> float:
    """Longest one BLPOP may block: ``WAIT_POLL``, kept under the socket timeout."""
    # A BLPOP must return before the socket timeout, or redis-py reports
    # a TimeoutError for a wait that was going fine.
    cap = poll
    pool = getattr(client, "connection_pool", None)
    # A Redis Cluster client has a pool per node, and the same kwargs for all.
    kwargs = pool.connection_kwargs if pool is not None else client.get_connection_kwargs()
    sock = kwargs.get("socket_timeout")
    if sock:
        cap = min(cap, float(sock) * 0.75)
    return max(cap, 0.01)


def budget(deadline: float | None, cap: float) -> float | None:
    """Seconds we may block after the next attempt; None: do not wait."""
    if deadline is None:
        return cap
    remaining = deadline - time.monotonic()
    return min(remaining, cap) if remaining > 0 else None


def blpop_timeout(block: float, pttl: int) -> float:
    """How long to wait for a wake-up after a failed attempt (0: try again at once)."""
    if pttl == -2:  # freed between our attempt and now: try again at once
        return 0.0
    if pttl > 0:  # expires by itself then: no need to wait for a wake-up past it
        block = min(block, pttl / 1000 + 0.002)
    return max(block, 0.002)
