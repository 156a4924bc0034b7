"""Distributed locks on the ``locks`` role's Redis (see docs/locks.md).

``Lock(name, ttl=...)`` (``with`` / ``async with``) and ``@command_lock(...)``
for management commands; ``LockHeld`` / ``LockLost`` / ``LockNotReplicated``; ``owner``,
``held_locks`` and ``force_release`` for operators.

Modules (docs/architecture.md), imports flowing one way: ``command`` ->
``core`` (``Lock``: sync and async twins) -> ``lease`` (the hold's state, no
I/O), ``watchdog``, ``interruption`` -> ``plan`` (what each script call sends
and what its reply means) -> ``keys`` (key names, the owner value) ->
``options``; ``replicas`` (``REPLICA_ACKS``: acquire + ``WAIT``); ``operations``
(owner, held_locks, force_release) uses ``plan``
and ``keys``; Lua in ``lua/*.lua``.
"""

from .command import command_lock
from .core import Lock
from .exceptions import LockError, LockHeld, LockLost, LockNotReplicated
from .keys import Owner, lock_keys
from .operations import aowner, force_release, held_locks, owner

__all__ = [
    "Lock",
    "LockError",
    "LockHeld",
    "LockLost",
    "LockNotReplicated",
    "Owner",
    "aowner",
    "command_lock",
    "force_release",
    "held_locks",
    "lock_keys",
    "owner",
]
