"""System checks, one module per concern, registered from ``AppConfig.ready()``.

Ids: ``redisroles.E001``-``E009`` configuration (``W00x``: security,
``check --deploy``), ``E01x``/``W01x`` cache,
``E02x``/``W02x`` sessions, ``E03x``/``W03x`` rate limiting, ``E04x``/``W04x``
pub/sub, ``E05x``/``W05x`` locks, ``E1xx``/``W1xx`` deployment checks that
talk to Redis (``check --deploy``). Every id is listed in ``docs/checks.md``.
"""

from __future__ import annotations

import importlib

MODULES: tuple[str, ...] = (
    "config",
    "cache",
    "sessions",
    "ratelimit",
    "pubsub",
    "locks",
    "security",
    "deploy",
)


def register_all() -> None:
    """Import each checks module; each registers its checks with Django."""
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}")
