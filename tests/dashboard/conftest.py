"""Fixtures of the dashboard's tests: no sampler thread outlives a test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from django_redisroles.ratelimit import limiter


@pytest.fixture(autouse=True)
def _the_demos_settings(demo_settings: Any) -> None:
    """The dashboard is the demo's: its tests run with the demo's settings."""


@pytest.fixture(autouse=True)
def _no_sampler_left() -> Iterator[None]:
    from testproject.dashboard import sampler

    limiter.reset_backoff()  # no rate-limit outage back-off from an earlier test
    yield
    sampler.stop_sampler()  # its INFO/SCAN calls would show in other tests' command counts
    sampler.refusals.clear()


@pytest.fixture
def demo_user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("demo", password="demo", is_staff=True)


@pytest.fixture
def faults_on(settings: Any) -> None:
    settings.DEMO_FAULTS = True  # pytest-django runs with DEBUG off, which turns them off
