"""System checks of the locks role (see docs/checks.md)."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Warning, register
from django.core.exceptions import ImproperlyConfigured

from .. import conf


@register()
def check_locks(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Lock settings are usable, and lock commands cannot hang forever."""
    from ..locks import options as lock_options

    try:
        values = lock_options.values()
        connection = conf.role_options("locks")
    except ImproperlyConfigured:
        return []  # the configuration checks report the malformed setting
    errors: list[CheckMessage] = [
        Error(message, hint=hint, id="redisroles.E050")
        for message, hint in lock_options.problems(values)
    ]
    if not connection.get("socket_timeout"):
        errors.append(
            Warning(
                "The locks role has no socket_timeout: a renewal stuck on a dead connection "
                "would hold up every lock's watchdog until the leases run out.",
                hint=f'Set {lock_options.WHERE}["OPTIONS"]["socket_timeout"] '
                "(default 2.0 seconds).",
                id="redisroles.W050",
            )
        )
    return errors
