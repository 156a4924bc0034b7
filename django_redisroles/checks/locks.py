"""System checks of the locks role (see docs/checks.md)."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Warning, register
from django.core.exceptions import ImproperlyConfigured

from .. import conf

_WHERE = 'REDISROLES["ROLES"]["locks"]'

#: Setting -> (smallest allowed value, example).
_POSITIVE: dict[str, tuple[float, str]] = {
    "TTL": (0.001, '"TTL": 60'),
    "FENCE_TTL": (1.0, '"FENCE_TTL": 24 * 3600'),
    "WAIT_POLL": (0.01, '"WAIT_POLL": 1.0'),
}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@register()
def check_locks(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Lock settings are usable, and lock commands cannot hang forever."""
    try:
        settings = conf.role_settings("locks")
        options = conf.role_options("locks")
    except ImproperlyConfigured:
        return []  # the configuration checks report the malformed setting
    errors: list[CheckMessage] = []
    for name, (minimum, example) in _POSITIVE.items():
        value = settings.get(name)
        if not _number(value) or value < minimum:
            errors.append(
                Error(
                    f"{_WHERE}[{name!r}] must be a number of seconds >= {minimum:g}, "
                    f"got {value!r}.",
                    hint=f"For example {example}.",
                    id="redisroles.E050",
                )
            )
    renew = settings.get("AUTO_RENEW")
    if not isinstance(renew, bool):
        errors.append(
            Error(
                f"{_WHERE}['AUTO_RENEW'] must be True or False, got {renew!r}.",
                hint="Leave it True unless every lock is released well within its TTL.",
                id="redisroles.E050",
            )
        )
    if not options.get("socket_timeout"):
        errors.append(
            Warning(
                "The locks role has no socket_timeout: a renewal stuck on a dead connection "
                "would hold up every lock's watchdog until the leases run out.",
                hint=f'Set {_WHERE}["OPTIONS"]["socket_timeout"] (default 2.0 seconds).',
                id="redisroles.W050",
            )
        )
    return errors
