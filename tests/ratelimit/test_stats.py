"""``ratelimit.stats()``: the limiter's decisions, per process."""

from __future__ import annotations

import pytest

from django_redisroles.ratelimit import RateLimitStats, reset_stats, stats

pytestmark = pytest.mark.urls("tests.ratelimit.urls")


@pytest.fixture(autouse=True)
def _zero() -> None:
    reset_stats()


def test_allowed_limited_and_refused_are_counted(client) -> None:
    codes = [client.get("/ip/").status_code for _ in range(5)]  # 3/m
    assert codes == [200, 200, 200, 429, 429]
    assert stats() == RateLimitStats(
        allowed=3, limited=2, refused=2, failed_open=0, failed_closed=0
    )
    assert stats().checks == 5


def test_limited_but_not_refused_with_block_false(client) -> None:
    for _ in range(3):
        client.get("/advisory/")  # 2/m, block=False: the view always runs
    s = stats()
    assert (s.allowed, s.limited, s.refused) == (2, 1, 0)


async def test_async_views_count_too(async_client) -> None:
    codes = [(await async_client.get("/async-ip/")).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert (stats().allowed, stats().refused) == (3, 1)


def test_outage_counts_failed_open_and_failed_closed(
    client, redis_factory, ratelimit_settings
) -> None:
    server = redis_factory()
    ratelimit_settings(
        URL=server.url(),
        RULES=[
            {"path": "/plain/", "rate": "1/m"},
            {"path": "/api/", "rate": "1/m", "fail": "closed"},
        ],
    )
    server.kill()
    assert client.get("/plain/").status_code == 200
    assert client.get("/api/x/").status_code == 503
    assert client.get("/plain/").status_code == 200  # during OUTAGE_BACKOFF: not even tried
    s = stats()
    assert (s.failed_open, s.failed_closed, s.allowed) == (2, 1, 0)
    assert s.as_dict()["checks"] == 3
