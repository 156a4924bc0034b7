"""Fixtures of the ratelimit tests: a clean limiter state around each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from django_redisroles import conf
from tests.topohelpers import all_keys, calls, commandstats, data_node, masters, reset_stats

__all__ = ["all_keys", "calls", "commandstats", "data_node", "masters", "reset_stats"]


@pytest.fixture(autouse=True)
def _fresh_limiter() -> Iterator[None]:
    # The outage back-off and resolved settings are process-wide; a test that
    # killed Redis must not leave the next one backing off. (What a settings
    # change does: conf's receiver drops them.)
    conf.reset_all("REDISROLES")
    yield
    conf.reset_all("REDISROLES")


@pytest.fixture
def ratelimit_settings(settings):
    """``ratelimit_settings(RULES=[...], ...)``: set the ratelimit role's settings."""

    def configure(**role: object) -> None:
        settings.REDISROLES = {**settings.REDISROLES, "ROLES": {"ratelimit": role}}

    return configure
