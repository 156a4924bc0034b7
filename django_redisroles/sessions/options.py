"""Settings of the sessions role: ``REDISROLES["ROLES"]["sessions"]``.

One place for names, defaults and validation: the store, the index and the
middleware read :data:`OPTIONS` (built once from settings, dropped by conf's
``setting_changed`` receiver), and the system checks (``checks/sessions.py``,
``redisroles.E020``/``E021``) report what :func:`problems` and
:func:`pickle_based` find. Light imports only: the checks import this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .. import conf

__all__ = ["DEFAULTS", "OPTIONS", "WHERE", "SessionOptions", "pickle_based", "problems", "resolve"]

ROLE = "sessions"
WHERE = 'REDISROLES["ROLES"]["sessions"]'

#: The role's settings and their defaults (docs/settings.md, "sessions").
DEFAULTS: dict[str, Any] = {
    # Keep the per-user session index (user_sessions, logout_everywhere).
    "USER_INDEX": True,
    # Seconds a user-index entry (its expiry score, "last seen") may lag
    # behind its session: saves within this window skip the index write.
    "INDEX_REFRESH": 60,
    # Retry-After (seconds) of the 503 SessionMiddleware sends on an outage.
    "RETRY_AFTER": 5,
    # Most live sessions a user may have (None: no cap); a login beyond it
    # ends the user's sessions that expire first, atomically with the index write.
    "MAX_SESSIONS": None,
    # Replicas a new session / login waits for (WAIT) before the response, so it
    # survives a failover; None: 1 under Sentinel and on a cluster, 0 on one server.
    "WAIT_REPLICAS": None,
    # Seconds that WAIT may take; fewer replicas by then: a warning, the login stands.
    "WAIT_TIMEOUT": 0.5,
}


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """The sessions role's settings, validated."""

    user_index: bool
    #: Seconds an index entry may lag its session (``INDEX_REFRESH``).
    index_refresh: int
    retry_after: int
    #: Most live sessions per user; 0: no cap.
    max_sessions: int
    #: Replicas a new session waits for (None: by topology, see ``durable``).
    wait_replicas: int | None
    #: Seconds the WAIT may take.
    wait_timeout: float


def _seconds(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def problems(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(message, hint)`` per unusable value of the role's settings (defaults filled in)."""
    found: list[tuple[str, str]] = []
    index = values.get("USER_INDEX")
    if not isinstance(index, bool):
        found.append(
            (
                f"{WHERE}['USER_INDEX'] must be True or False, got {index!r}.",
                '"USER_INDEX": True keeps the per-user session index.',
            )
        )
    for name, example in (("INDEX_REFRESH", 60), ("RETRY_AFTER", 5)):
        value = values.get(name)
        if not _seconds(value):
            found.append(
                (
                    f"{WHERE}[{name!r}] must be a whole number of seconds >= 0, got {value!r}.",
                    f'For example "{name}": {example}.',
                )
            )
    cap = values.get("MAX_SESSIONS")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        found.append(
            (
                f"{WHERE}['MAX_SESSIONS'] must be None or a whole number >= 1, got {cap!r}.",
                'For example "MAX_SESSIONS": 10 (a login beyond it ends the oldest).',
            )
        )
    elif cap is not None and not index:
        found.append(
            (
                f"{WHERE}['MAX_SESSIONS'] needs the user index (USER_INDEX = True): without "
                "it a user's sessions cannot be counted.",
                'Set "USER_INDEX": True, or remove MAX_SESSIONS.',
            )
        )
    replicas = values.get("WAIT_REPLICAS")
    if replicas is not None and not _seconds(replicas):
        found.append(
            (
                f"{WHERE}['WAIT_REPLICAS'] must be None or a whole number >= 0, got {replicas!r}.",
                'For example "WAIT_REPLICAS": 1 (0: do not wait; None: by topology).',
            )
        )
    wait = values.get("WAIT_TIMEOUT")
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 < wait <= 60:
        found.append(
            (
                f"{WHERE}['WAIT_TIMEOUT'] must be a number of seconds > 0 and <= 60, got {wait!r}.",
                'For example "WAIT_TIMEOUT": 0.5.',
            )
        )
    return found


def pickle_based(serializer_path: str) -> bool:
    """Whether a ``SESSION_SERIALIZER`` path names a pickle-based serializer (``E020``)."""
    return "pickle" in serializer_path.lower()


def values() -> dict[str, Any]:
    """The role's settings as written, over :data:`DEFAULTS` (URL/OPTIONS left out)."""
    return conf.role_settings(ROLE, DEFAULTS)


def resolve() -> SessionOptions:
    """The validated settings; ``ImproperlyConfigured`` for the first problem."""
    merged = values()
    found = problems(merged)
    if found:
        message, hint = found[0]
        raise ImproperlyConfigured(f"{message} {hint}")
    return SessionOptions(
        user_index=merged["USER_INDEX"],
        index_refresh=merged["INDEX_REFRESH"],
        retry_after=merged["RETRY_AFTER"],
        max_sessions=merged["MAX_SESSIONS"] or 0,
        wait_replicas=merged["WAIT_REPLICAS"],
        wait_timeout=float(merged["WAIT_TIMEOUT"]),
    )


#: The current :class:`SessionOptions` (``OPTIONS.get()``).
OPTIONS: conf.Resolved[SessionOptions] = conf.Resolved(resolve, name="sessions options")
