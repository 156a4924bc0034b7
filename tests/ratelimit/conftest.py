"""Fixtures of the ratelimit tests: a clean limiter state around each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from django_redisroles import conf


@pytest.fixture(autouse=True)
def _fresh_limiter() -> Iterator[None]:
    # The outage back-off and resolved settings are process-wide; a test that
    # killed Redis must not leave the next one backing off. (What a settings
    # change does: conf's receiver drops them.)
    conf.reset_all("REDISROLES")
    yield
    conf.reset_all("REDISROLES")


def commandstats(client) -> dict[str, int]:
    """Calls per command, from INFO commandstats."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


@pytest.fixture
def ratelimit_settings(settings):
    """``ratelimit_settings(RULES=[...], ...)``: set the ratelimit role's settings."""

    def configure(**role: object) -> None:
        settings.REDISROLES = {**settings.REDISROLES, "ROLES": {"ratelimit": role}}

    return configure
