"""Failure policy: "Redis unreachable" is not "session not found".

The sessions role runs on its own persistent redis-server here, killed and
restarted mid-test: requests get a 503, the cookie survives, and after the
restart the user is still logged in.
"""

from __future__ import annotations

import threading
import time

import pytest
import redis
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpResponse
from django.test import AsyncClient, RequestFactory

from django_redisroles.sessions import SessionMiddleware, SessionStore, SessionUnavailable

from .conftest import login

FAST_FAIL = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5, "retry_attempts": 1}


@pytest.fixture
def sessions_server(redis_factory, settings):
    server = redis_factory(persistence=True)
    settings.REDISROLES = {
        "KEY_PREFIX": "demo",
        "ROLES": {"sessions": {"URL": server.url(), "OPTIONS": FAST_FAIL}},
    }
    return server


@pytest.mark.slow
def test_redis_killed_mid_session_then_restarted(sessions_server, user, browser) -> None:
    client = browser()
    login(client)
    cookie = client.cookies["sessionid"].value
    assert sessions_server.client().exists(f"demo:sessions:s:{cookie}") == 1

    sessions_server.kill()
    for _ in range(2):
        response = client.get("/sessions/")
        assert response.status_code == 503
        assert response["Retry-After"] == "5"
        assert b"session store cannot be reached" in response.content
        # Neither deleted nor replaced by a new, empty session.
        assert "sessionid" not in response.cookies
        assert client.cookies["sessionid"].value == cookie
    # A request that writes the session fails the same way.
    response = client.post("/sessions/logout-others/")
    assert response.status_code == 503
    assert "sessionid" not in response.cookies

    sessions_server.start()  # same port, same data directory (AOF)
    response = client.get("/sessions/")
    assert response.status_code == 200
    assert b"Signed in as <strong>alice</strong>" in response.content
    assert client.cookies["sessionid"].value == cookie


@pytest.mark.slow
async def test_redis_killed_async_client(sessions_server, async_user) -> None:
    client = AsyncClient(raise_request_exception=False)
    response = await client.post(
        "/accounts/login/", {"username": "alice", "password": "correct horse"}
    )
    assert response.status_code == 302
    cookie = client.cookies["sessionid"].value
    assert (await client.get("/sessions/")).status_code == 200

    sessions_server.kill()
    response = await client.get("/sessions/")
    assert response.status_code == 503
    assert "sessionid" not in response.cookies

    sessions_server.start()
    response = await client.get("/sessions/")
    assert response.status_code == 200
    assert client.cookies["sessionid"].value == cookie


@pytest.mark.slow
def test_outage_between_load_and_save_keeps_the_stored_session(sessions_server) -> None:
    store = SessionStore()
    store["cart"] = [1]
    store.save()

    def view(request):
        assert request.session["cart"] == [1]
        sessions_server.kill()
        request.session["cart"] = [1, 2]
        return HttpResponse("ok")

    request = RequestFactory().get("/", HTTP_COOKIE=f"sessionid={store.session_key}")
    response = SessionMiddleware(view)(request)
    assert response.status_code == 503
    assert "sessionid" not in response.cookies

    sessions_server.start()
    assert SessionStore(store.session_key)["cart"] == [1]  # not lost, not overwritten


@pytest.mark.slow
def test_store_distinguishes_unreachable_from_not_found(sessions_server) -> None:
    store = SessionStore()
    store["x"] = 1
    store.save()
    key = store.session_key
    assert SessionStore("missingkey123").load() == {}  # not found: a new session

    sessions_server.kill()
    unreachable = SessionStore(key)
    with pytest.raises(SessionUnavailable, match=r"sessions role .* is unavailable"):
        unreachable.load()
    assert unreachable.session_key == key  # the key is not dropped
    with pytest.raises(SessionUnavailable):
        store.save()


@pytest.mark.slow
def test_with_djangos_middleware_the_cookie_survives_too(sessions_server, settings, user, browser):
    settings.MIDDLEWARE = [
        "django.contrib.sessions.middleware.SessionMiddleware"
        if m == "django_redisroles.sessions.SessionMiddleware"
        else m
        for m in settings.MIDDLEWARE
    ]
    assert DjangoSessionMiddleware.__module__ == "django.contrib.sessions.middleware"
    client = browser()
    login(client)
    cookie = client.cookies["sessionid"].value
    sessions_server.kill()
    response = client.get("/sessions/")
    assert response.status_code == 500  # the SessionUnavailable exception, through handler500
    assert "sessionid" not in response.cookies
    sessions_server.start()
    assert client.get("/sessions/").status_code == 200
    assert client.cookies["sessionid"].value == cookie


@pytest.mark.slow
def test_a_busy_redis_is_unavailable_not_a_bug(sessions_server, user, browser) -> None:
    """A long script on the sessions instance makes Redis answer BUSY: a 503, like an outage."""
    client = browser()
    login(client)
    admin = sessions_server.client()
    admin.config_set("busy-reply-threshold", 50)  # ms; Redis 7's default is 5 s

    def busy() -> None:
        with pytest.raises(redis.exceptions.ResponseError):
            sessions_server.client().eval("while true do end", 0)

    thread = threading.Thread(target=busy)
    thread.start()
    try:
        time.sleep(0.3)
        response = client.get("/sessions/")
        assert response.status_code == 503
        assert "sessionid" not in response.cookies
    finally:
        admin.script_kill()
        thread.join()
    assert client.get("/sessions/").status_code == 200


@pytest.mark.slow
def test_sessions_command_reports_an_outage_as_a_command_error(sessions_server, user) -> None:
    from django.core.management import call_command
    from django.core.management.base import CommandError

    sessions_server.kill()
    for extra in ([], ["--logout"]):
        with pytest.raises(CommandError, match=r"sessions role .* is unavailable"):
            call_command("redisroles", "sessions", "alice", *extra)
    with pytest.raises(CommandError, match="--keep"):
        call_command("redisroles", "sessions", "alice", "--keep", "abcdefgh12")
