"""What a lock stores in Redis: its key names, and who holds it (the lock's value).

Keys of one lock share a ``{name}`` hash tag (same Redis Cluster slot):

- ``<prefix>:locks:{name}:lock``    the lease (``SET NX PX``); its value is the
  owner token, then the owner, one field a line:
  ``token, fence, acquired (server TIME: "seconds microseconds"), ttl ms, host, pid, cmd``
- ``<prefix>:locks:{name}:fence``   the fencing counter (long TTL, refreshed on every acquire)
- ``<prefix>:locks:{name}:waiting`` marker: someone is blocked waiting (short TTL)
- ``<prefix>:locks:{name}:wake``    list a waiter BLPOPs; a release pushes one element (short TTL)
- ``<prefix>:locks:{name}:released`` the token of the last release (``RELEASED_TTL``): a
  release re-sent after a timeout, whose first send did run, finds its own token there

The last renewal is not stored: every renewal resets the lease to its full
ttl, so it was ``ttl - PTTL`` ago.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from .. import conf
from .options import ROLE

__all__ = ["LockKeys", "Owner", "held_pattern", "identity", "lock_keys", "name_of", "parse_owner"]


class LockKeys(NamedTuple):
    lock: str
    fence: str
    waiting: str
    wake: str
    released: str


# "<prefix>:locks", read from settings once (a Lock names its keys when it is made).
_BASE = conf.Resolved(lambda: conf.make_key(ROLE), name="locks key prefix")


# (prefix, name) -> keys: a Lock is usually built per use, under a handful of names.
_known: dict[tuple[str, str], LockKeys] = {}


def lock_keys(name: str) -> LockKeys:
    """The Redis keys of lock ``name`` (one ``{name}`` hash tag: one cluster slot)."""
    prefix = _BASE.get()
    keys = _known.get((prefix, name))
    if keys is None:
        if len(_known) >= 1024:  # unboundedly many names (one per job id): don't grow
            _known.clear()
        base = f"{prefix}:{{{name}}}"
        keys = _known[prefix, name] = LockKeys(
            f"{base}:lock", f"{base}:fence", f"{base}:waiting", f"{base}:wake", f"{base}:released"
        )
    return keys


def held_pattern() -> str:
    """SCAN pattern of every lock's lease key (the prefix escaped: it is literal)."""
    return conf.glob_escape(f"{_BASE.get()}:{{") + "*}:lock"


def name_of(key: bytes) -> str | None:
    """The lock name of a lease key :func:`held_pattern` matched (None: not one of ours)."""
    start = f"{_BASE.get()}:{{"
    text = key.decode(errors="replace")
    if not (text.startswith(start) and text.endswith("}:lock")):
        return None
    return text[len(start) : -len("}:lock")]


# -- the lock's value: who holds it ----------------------------------------------
@dataclass(frozen=True)
class Owner:
    """Who holds a lock, as written by its holder when it acquired it."""

    name: str
    host: str
    pid: int | None
    cmd: str
    acquired_at: datetime | None
    renewed_at: datetime | None
    fence: int | None
    #: The lease length, seconds.
    ttl: float | None
    #: Seconds until the lease runs out (None: the key has no TTL).
    expires_in: float | None

    def describe(self) -> str:
        """``host X, pid N, since 2026-01-01 03:00:00 UTC``."""
        since = f"{self.acquired_at:%Y-%m-%d %H:%M:%S} UTC" if self.acquired_at else "unknown"
        pid = self.pid if self.pid is not None else "?"
        return f"host {self.host or '?'}, pid {pid}, since {since}"


def _utc(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value is not None else None


def _float(value: bytes | str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def parse_owner(name: str, value: bytes | None, pttl: int, now: float | None) -> Owner:
    """Parse a lock value: token, fence, acquired, ttl ms, host, pid, cmd (one a line).

    ``now`` is the server's time: the last renewal was ``ttl - pttl`` before it.
    """
    fields = (value or b"").decode(errors="replace").split("\n", 6)
    fields += [""] * (7 - len(fields))
    _, fence, acquired, ttl_ms, host, pid, cmd = fields
    ttl = _float(ttl_ms)
    seconds, _, micros = acquired.partition(" ")
    acquired_at = _float(seconds)
    if acquired_at is not None and micros.isdigit():
        acquired_at += int(micros) / 1_000_000
    renewed_at = None
    if ttl is not None and now is not None and pttl >= 0:
        renewed_at = max(now - (ttl - pttl) / 1000, acquired_at or 0.0)
    fence_value = _float(fence)
    pid_value = _float(pid)
    return Owner(
        name=name,
        host=host,
        pid=int(pid_value) if pid_value is not None else None,
        cmd=cmd,
        acquired_at=_utc(acquired_at),
        renewed_at=_utc(renewed_at),
        fence=int(fence) if fence.isdigit() else (int(fence_value) if fence_value else None),
        ttl=ttl / 1000 if ttl is not None else None,
        expires_in=pttl / 1000 if pttl >= 0 else None,
    )


# (pid, argv it was made from, "host\npid\ncmd"): recomputed in a forked child
# or when the program rewrote sys.argv.
_identity: tuple[int, list[str], str] | None = None


def identity() -> str:
    """``host\\npid\\ncommand line``: who we are, written into each lock we take.

    The command line is stored in Redis and shown by ``redisroles locks``:
    secret options' values and URL credentials in it are masked.
    """
    global _identity
    pid = os.getpid()
    known = _identity
    if known is None or known[0] != pid or known[1] != sys.argv:
        cmd = conf.mask_argv(sys.argv).replace("\n", " ")
        if len(cmd) > 500:
            cmd = cmd[:497] + "..."
        host = socket.gethostname().replace("\n", " ")
        known = _identity = (pid, list(sys.argv), f"{host}\n{pid}\n{cmd}")
    return known[2]
