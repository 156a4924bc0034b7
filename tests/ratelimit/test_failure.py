"""Redis unreachable: fail open (default) or closed, quickly, never a 500."""

from __future__ import annotations

import os
import signal
import time

import pytest

pytestmark = pytest.mark.urls("tests.ratelimit.urls")

RULES = [
    {"path": "/plain/", "rate": "1/m", "name": "open-rule"},
    {"path": "/api/", "rate": "1/m", "fail": "closed", "name": "closed-rule"},
]


@pytest.fixture
def own_redis(redis_factory, ratelimit_settings):
    server = redis_factory()

    def configure(**role: object) -> None:
        ratelimit_settings(URL=server.url(), RULES=RULES, **role)

    configure()
    return server, configure


def test_redis_killed_fail_open_passes_and_fail_closed_rejects(client, own_redis, caplog) -> None:
    server, _ = own_redis
    assert client.get("/plain/").status_code == 200
    assert client.get("/plain/").status_code == 429  # Redis up: the limit holds
    server.kill()
    with caplog.at_level("WARNING", logger="django_redisroles.ratelimit"):
        opened = [client.get("/plain/") for _ in range(3)]
        closed = [client.get("/api/things/") for _ in range(3)]
        decorated = client.get("/ip/")  # decorator: default fail="open"
    assert [r.status_code for r in opened] == [200, 200, 200]
    assert [r.status_code for r in closed] == [503, 503, 503]
    assert closed[0]["Retry-After"] == "1"
    assert decorated.status_code == 200
    failures = [r for r in caplog.records if "could not use Redis" in r.getMessage()]
    assert len(failures) == 1  # logged once per interval, not per request


def test_fail_closed_status_and_setting_default(client, own_redis) -> None:
    server, configure = own_redis
    configure(FAIL="closed", FAIL_STATUS=429, OUTAGE_BACKOFF=0)
    server.kill()
    assert client.get("/plain/").status_code == 429
    assert client.get("/ip/").status_code == 429


def test_recovers_when_redis_comes_back(client, own_redis) -> None:
    server, configure = own_redis
    configure(OUTAGE_BACKOFF=0)
    server.kill()
    assert client.get("/plain/").status_code == 200
    server.start()
    assert client.get("/plain/").status_code == 200
    assert client.get("/plain/").status_code == 429


def test_outage_backoff_skips_redis(client, own_redis) -> None:
    server, configure = own_redis
    configure(OUTAGE_BACKOFF=30)
    server.kill()
    assert client.get("/plain/").status_code == 200
    server.start()
    # Within the back-off the limiter does not even try (no connection storm).
    assert client.get("/plain/").status_code == 200
    assert client.get("/plain/").status_code == 200
    configure(OUTAGE_BACKOFF=30)  # a settings change (or the interval) ends the back-off
    assert client.get("/plain/").status_code == 200
    assert client.get("/plain/").status_code == 429


@pytest.mark.slow
def test_hung_redis_costs_a_timeout_not_a_stall(client, own_redis) -> None:
    server, configure = own_redis
    configure(OUTAGE_BACKOFF=0)
    assert client.get("/plain/").status_code == 200
    os.kill(server.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        response = client.get("/api/things/")
        elapsed = time.monotonic() - started
    finally:
        os.kill(server.pid, signal.SIGCONT)
    assert response.status_code == 503
    assert elapsed < 2.0  # the role's 0.25 s socket timeout, not redis-py's "forever"


async def test_async_fail_open_and_closed(async_client, own_redis) -> None:
    server, _ = own_redis
    server.kill()
    assert (await async_client.get("/plain/")).status_code == 200
    assert (await async_client.get("/api/things/")).status_code == 503
    assert (await async_client.get("/async-ip/")).status_code == 200


def test_block_false_lets_the_view_decide_even_when_failing_closed(client, own_redis) -> None:
    # block=False promises the view always runs and reads request.ratelimit;
    # fail="closed" then tells it what the limiter could not decide.
    server, _ = own_redis
    server.kill()
    response = client.get("/advisory-closed/")
    assert response.status_code == 200
    assert response.json() == {"failed": True, "blocked": False}


async def test_async_block_false_lets_the_view_decide_when_failing_closed(
    async_client, own_redis
) -> None:
    server, _ = own_redis
    server.kill()
    response = await async_client.get("/async-advisory-closed/")
    assert response.status_code == 200
    assert response.json() == {"failed": True, "blocked": False}
