"""The dashboard's page, its live feed and its probes, through Django's test clients."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient, Client

from django_redisroles import conf
from django_redisroles.sessions import logout_everywhere
from testproject.dashboard.sampler import get_sampler

pytestmark = pytest.mark.django_db(transaction=True)  # the sampler reads from its own threads


def wait_for_data(*sources: str, timeout: float = 10) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + timeout
    while True:
        snap = get_sampler().snapshot()
        if all(snap["sources"][s]["data"] is not None for s in sources):
            return snap
        assert time.monotonic() < deadline, snap
        time.sleep(0.05)


def test_home_is_the_dashboard(client: Client) -> None:
    page = client.get("/").content.decode()
    for role in conf.ROLES:
        assert f'id="panel-{role}"' in page
    # Each role's Redis, and its demo pages (the old home page's list is at /pages/).
    assert conf.mask_url(conf.role_url("cache")) in page
    for url in ("/ratelimit/api/", "/sessions/", "/locks/", "/pubsub/", "/cache/user/"):
        assert f'href="{url}' in page
    assert 'href="/admin/"' in page
    assert "Log in" in page and 'id="staff-token"' not in page
    assert 'id="faults"' not in page  # staff only


def test_the_try_it_panel_names_the_rate_its_endpoint_applies(client: Client) -> None:
    from testproject.dashboard import views

    page = client.get("/").content.decode()
    # What the page says and what its script counts against ($DEMO_TRY_RATE may change it).
    assert f'<code>@rate_limit("{views.TRY_RATE}")</code>' in page
    assert f'data-limit="{views.TRY.limit}"' in page
    assert f"budget: {views.TRY.limit} requests per {views.TRY.period} s" in page
    answer = client.get("/dashboard/try/sliding/", HTTP_ACCEPT="application/json").json()
    assert answer["rate"] == views.TRY_RATE and answer["remaining"] == views.TRY.limit - 1


def test_staff_get_the_failure_modes_and_a_token(client: Client, demo_user: Any, faults_on) -> None:
    client.force_login(demo_user)
    page = client.get("/").content.decode()
    assert 'id="faults"' in page and "DEMO ONLY" in page
    assert re.search(r'id="staff-token" value="[^"]+"', page)


def test_snapshot_shows_viewers_their_own_sessions_and_never_a_session_key(
    client: Client, demo_user: Any
) -> None:
    client.force_login(demo_user)
    other = Client()
    other.force_login(demo_user)
    wait_for_data("sessions", "cache", "ratelimit", "pubsub", "locks", "instances")
    body = client.get("/dashboard/snapshot/", HTTP_ACCEPT="application/json").json()
    sessions = body["sessions"]["data"]
    assert sessions["total"] == 2 and sessions["users"] == 1
    assert sorted(s["current"] for s in sessions["mine"]) == [False, True]
    text = json.dumps(body)
    for key in (client.cookies["sessionid"].value, other.cookies["sessionid"].value):
        assert key not in text  # the login cookie is HttpOnly; no JSON gives it away
    assert body["viewer"] == {"username": "demo", "authenticated": True, "staff": True}
    label = next(iter(body["instances"]["data"]))
    assert body["instances"]["data"][label]["up"] is True
    assert body["cache"]["data"]["layers"][0]["layer"] == "redis"


def test_anonymous_viewers_do_not_see_lock_holders(client: Client) -> None:
    from django_redisroles.locks import Lock

    with Lock("report", ttl=30):
        get_sampler()
        wait_for_data("locks")
        import time

        time.sleep(1.2)  # a reading taken after the lock was
        body = client.get("/dashboard/snapshot/", HTTP_ACCEPT="application/json").json()
    [lock] = body["locks"]["data"]["locks"]
    assert lock["name"] == "report" and lock["fence"] and 0 < lock["expires_in"] <= 30
    assert not {"host", "pid", "cmd"} & set(lock)
    assert body["sessions"]["data"]["mine"] == []


async def _events(response: Any, until: str, seconds: float = 10) -> list[tuple[str, Any]]:
    """Server-sent events of a streaming response, up to the first ``until`` event."""
    events: list[tuple[str, Any]] = []
    buffer = ""
    chunks = response.streaming_content.__aiter__()
    while True:
        buffer += (await asyncio.wait_for(chunks.__anext__(), seconds)).decode()
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
            if "event" in fields:
                events.append((fields["event"], json.loads(fields["data"])))
                if fields["event"] == until:
                    return events


async def test_the_feed_sends_frames_then_logout_when_the_session_is_ended(demo_user: Any) -> None:
    client = AsyncClient()
    await sync_to_async(client.force_login)(demo_user)
    response = await client.get("/dashboard/stream/")
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    events = await _events(response, "frame")
    first = events[0][1]
    assert first["full"] is True and set(first) >= {"cache", "sessions", "charts", "faults"}
    frames = await _events(response, "frame")  # the next one: only the newest chart points
    assert frames[-1][1]["full"] is False and frames[-1][1]["seq"] > first["seq"]
    # "Log out everywhere" from another device: this feed says so, then ends.
    assert await sync_to_async(logout_everywhere)(demo_user) == 1
    events = await _events(response, "logout")
    assert events[-1] == ("logout", {"username": "demo"})


def test_the_feed_works_under_wsgi_too(client: Client, demo_user: Any) -> None:
    # runserver without daphne: a plain generator (Django would otherwise buffer an
    # async one whole, and the page would never see a frame).
    client.force_login(demo_user)
    response = client.get("/dashboard/stream/")
    assert response["Content-Type"] == "text/event-stream"
    chunks = iter(response.streaming_content)
    assert next(chunks) == b"retry: 2000\n\n"
    assert next(chunks).startswith(b"event: frame\n")
    assert b'"full": false' in next(chunks)  # the next reading, a second later
    logout_everywhere(demo_user)
    rest = b"".join(chunks)  # ends by itself: the session is gone
    assert rest.endswith(b'event: logout\ndata: {"username": "demo"}\n\n')


def test_probes(client: Client, demo_user: Any) -> None:
    first = client.get("/dashboard/probe/cache/").json()
    second = client.get("/dashboard/probe/cache/").json()
    assert (first["hit"], second["hit"], second["outage"]) == (False, True, False)
    counted = [client.get("/dashboard/probe/ratelimit/").json() for _ in range(2)]
    assert counted == [{"failed": False, "remaining": n} for n in (599, 598)]  # 600/min
    assert client.get("/dashboard/probe/session/").json() == {"user": None}
    client.force_login(demo_user)
    assert client.get("/dashboard/probe/session/").json() == {"user": "demo", "visits": 1}
    assert client.get("/dashboard/probe/session/").json()["visits"] == 2


def test_session_probe_is_a_503_when_the_sessions_redis_is_down(
    settings: Any, redis_factory: Any, demo_user: Any
) -> None:
    server = redis_factory()
    roles = dict(settings.REDISROLES["ROLES"])
    roles["sessions"] = {**roles["sessions"], "URL": server.url(), "OPTIONS": {"retry_attempts": 0}}
    settings.REDISROLES = {**settings.REDISROLES, "ROLES": roles}
    client = Client()
    client.force_login(demo_user)  # the session lives on that server
    server.kill()
    response = client.get("/dashboard/probe/session/")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert "sessionid" not in response.cookies  # not logged out: the cookie is left alone
    # The cache and the limiter do not need the session: they answer by their own policy.
    assert client.get("/dashboard/probe/cache/").status_code == 200
    assert client.get("/dashboard/probe/ratelimit/").status_code == 200
