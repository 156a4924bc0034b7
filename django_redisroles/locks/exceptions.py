"""The lock errors: ``LockError``, ``LockHeld``, ``LockLost``, ``LockNotReplicated``."""

from __future__ import annotations

from .keys import Owner

__all__ = ["LockError", "LockHeld", "LockLost", "LockNotReplicated"]


class LockError(Exception):
    """Base class of the lock errors (also: misuse, like releasing an unheld lock)."""


class LockHeld(LockError):
    """The lock is held by someone else (and waiting, if asked, timed out)."""

    def __init__(self, name: str, holder: Owner | None, message: str | None = None) -> None:
        self.name = name
        self.holder = holder
        if message is None:
            who = holder.describe() if holder else "another holder (no owner information)"
            message = f"lock {name!r} is held by {who}"
            if holder and holder.expires_in is not None:
                message += f"; lease expires in {holder.expires_in:.1f}s unless renewed"
        super().__init__(message)


class LockLost(LockError):
    """The lease ran out or was taken over while we believed we held it.

    Whatever ran under the lock may have overlapped with the next holder;
    writes checked against ``lock.fence`` are still safe.
    """


class LockNotReplicated(LockError):
    """The lock was taken but fewer than ``REPLICA_ACKS`` replicas acknowledged it
    within ``REPLICA_TIMEOUT``: it was released again, nothing runs under it."""
