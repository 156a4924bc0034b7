"""Fixtures of the fault tests: roles pointed at servers the test may break."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from django_redisroles import conf, connections
from django_redisroles.testing import RedisServer

from .lab import FAST


@pytest.fixture
def victim(redis_factory: Callable[..., RedisServer]) -> RedisServer:
    """A server of this test's own, to stall, pause, fill or kill (AOF: nothing lost)."""
    return redis_factory(persistence=True)


@pytest.fixture
def point_roles(settings: Any) -> Iterator[Callable[..., None]]:
    """``point_roles(url, **options)``: every role on ``url``, with short timeouts.

    Each role gets FAST options (the rate-limit role keeps its own, already
    short, defaults), then ``options``; ``roles={"locks": {...}}`` adds
    per-role entries (``OPTIONS`` merged last, role settings).
    """

    def point(url: str, roles: dict[str, dict[str, Any]] | None = None, **options: Any) -> None:
        entries: dict[str, dict[str, Any]] = {}
        for role in ("cache", "sessions", "ratelimit", "pubsub", "locks"):
            extra = dict((roles or {}).get(role) or {})
            base = {"health_check_interval": 0} if role == "ratelimit" else FAST
            extra["OPTIONS"] = {**base, **options, **(extra.get("OPTIONS") or {})}
            entries[role] = extra
        settings.REDISROLES = {"URL": url, "KEY_PREFIX": "demo", "ROLES": entries}
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "django_redisroles.pubsub.RedisRolesChannelLayer",
                "CONFIG": {"replay_groups": ["replayed"]},
            }
        }

    yield point
    connections.reset()


@pytest.fixture(autouse=True)
def _fresh_backoffs() -> Iterator[None]:
    """No outage back-off or rate-limited log line carried over between tests."""
    from django_redisroles.ratelimit import limiter

    conf.reset_all("CACHES")  # the cache's back-off and outage log (its public reset)
    limiter.reset_backoff()
    yield
    conf.reset_all("CACHES")
    limiter.reset_backoff()
