"""Settings of the locks role: ``REDISROLES["ROLES"]["locks"]``.

One place for names, defaults and validation: ``Lock`` reads :data:`OPTIONS`
(built once from settings, dropped by conf's ``setting_changed`` receiver) and
the system check (``checks/locks.py``, ``redisroles.E050``) reports what
:func:`problems` finds. Light imports only: the checks import this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .. import conf

__all__ = ["DEFAULTS", "OPTIONS", "WHERE", "LockOptions", "problems", "resolve", "values"]

ROLE = "locks"
WHERE = 'REDISROLES["ROLES"]["locks"]'

#: The role's settings and their defaults (docs/settings.md, "locks").
DEFAULTS: dict[str, Any] = {
    # Lease of a lock, in seconds, when Lock()/command_lock() get no ttl.
    "TTL": 60,
    # Renew held locks every ttl/3 (one watchdog thread per process).
    "AUTO_RENEW": True,
    # Lifetime of a lock's fence counter, refreshed on every acquire (a day): one
    # key per lock *name*, so names made from user input must not pile up for long.
    "FENCE_TTL": 24 * 3600,
    # Longest a waiter blocks on the wake-up list before trying again.
    "WAIT_POLL": 1.0,
    # Replicas that must have a new hold (WAIT) before acquire() returns it: 0 = off.
    # With 1, a lock taken before a failover is still held after it.
    "REPLICA_ACKS": 0,
    # Longest acquire() waits for them (seconds); not acknowledged in time = not taken.
    "REPLICA_TIMEOUT": 0.5,
}

#: Setting -> (smallest allowed value, example).
_POSITIVE: dict[str, tuple[float, str]] = {
    "TTL": (0.001, '"TTL": 60'),
    "FENCE_TTL": (1.0, '"FENCE_TTL": 24 * 3600'),
    "WAIT_POLL": (0.01, '"WAIT_POLL": 1.0'),
    "REPLICA_TIMEOUT": (0.001, '"REPLICA_TIMEOUT": 0.5'),
}


@dataclass(frozen=True, slots=True)
class LockOptions:
    """The locks role's settings, validated."""

    #: Default lease, seconds.
    ttl: float
    auto_renew: bool
    #: Lifetime of a fence counter, milliseconds.
    fence_ttl_ms: int
    #: Longest one wait on the wake-up list, seconds.
    wait_poll: float
    #: Replicas that must acknowledge a new hold (0: no WAIT).
    replica_acks: int = 0
    #: Longest WAIT for them, milliseconds.
    replica_timeout_ms: int = 500


def problems(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(message, hint)`` per unusable value of the role's settings (defaults filled in)."""
    found: list[tuple[str, str]] = []
    for name, (minimum, example) in _POSITIVE.items():
        value = values.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            found.append(
                (
                    f"{WHERE}[{name!r}] must be a number of seconds >= {minimum:g}, got {value!r}.",
                    f"For example {example}.",
                )
            )
    acks = values.get("REPLICA_ACKS")
    if isinstance(acks, bool) or not isinstance(acks, int) or acks < 0:
        found.append(
            (
                f"{WHERE}['REPLICA_ACKS'] must be a whole number >= 0, got {acks!r}.",
                "0 (the default) turns it off; 1 keeps a lock across a failover.",
            )
        )
    renew = values.get("AUTO_RENEW")
    if not isinstance(renew, bool):
        found.append(
            (
                f"{WHERE}['AUTO_RENEW'] must be True or False, got {renew!r}.",
                "Leave it True unless every lock is released well within its TTL.",
            )
        )
    return found


def values() -> dict[str, Any]:
    """The role's settings as written, over :data:`DEFAULTS` (URL/OPTIONS left out)."""
    return conf.role_settings(ROLE, DEFAULTS)


def resolve() -> LockOptions:
    """The validated settings; ``ImproperlyConfigured`` for the first problem."""
    merged = values()
    found = problems(merged)
    if found:
        message, hint = found[0]
        raise ImproperlyConfigured(f"{message} {hint}")
    return LockOptions(
        ttl=float(merged["TTL"]),
        auto_renew=merged["AUTO_RENEW"],
        fence_ttl_ms=max(1, int(float(merged["FENCE_TTL"]) * 1000)),
        wait_poll=float(merged["WAIT_POLL"]),
        replica_acks=int(merged["REPLICA_ACKS"]),
        replica_timeout_ms=max(1, int(float(merged["REPLICA_TIMEOUT"]) * 1000)),
    )


#: The current :class:`LockOptions` (``OPTIONS.get()``).
OPTIONS: conf.Resolved[LockOptions] = conf.Resolved(resolve, name="locks options")
