"""Distributed locks on the ``locks`` role's Redis (see docs/locks.md).

``Lock(name, ttl=...)`` (``with`` / ``async with``) and ``@command_lock(...)``
for management commands; ``LockHeld`` / ``LockLost``.
"""

from .command import command_lock
from .core import (
    Lock,
    LockError,
    LockHeld,
    LockLost,
    Owner,
    aowner,
    force_release,
    held_locks,
    lock_keys,
    owner,
)

__all__ = [
    "Lock",
    "LockError",
    "LockHeld",
    "LockLost",
    "Owner",
    "aowner",
    "command_lock",
    "force_release",
    "held_locks",
    "lock_keys",
    "owner",
]
