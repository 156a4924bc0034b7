"""Distributed locks on the ``locks`` role's Redis (see docs/locks.md).

``Lock(name, ttl=...)`` (``with`` / ``async with``) and ``@command_lock(...)``
for management commands; ``LockHeld`` / ``LockLost``; ``owner``,
``held_locks`` and ``force_release`` for operators.
"""

from .command import command_lock
from .core import Lock
from .exceptions import LockError, LockHeld, LockLost
from .keys import Owner, lock_keys
from .operations import aowner, force_release, held_locks, owner

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
