"""ASGI: the session is read, listed and saved on redis.asyncio, without thread hops to Redis."""

from __future__ import annotations

import django
from django.http import HttpResponse
from django.test import AsyncClient, RequestFactory

from django_redisroles.sessions import SessionMiddleware, SessionStore

from .conftest import PASSWORD


async def test_async_view_reads_session_and_index_natively(async_user, round_trips) -> None:
    client = AsyncClient()
    response = await client.post(
        "/accounts/login/",
        {"username": "alice", "password": PASSWORD},
        headers={"User-Agent": "Mozilla/5.0 (Macintosh; Mac OS X 14_0) Safari/605"},
    )
    assert response.status_code == 302
    key = client.cookies["sessionid"].value

    round_trips.reset()
    response = await client.get("/sessions/api/")
    assert response.status_code == 200
    body = response.json()
    assert key not in response.content.decode()  # the HttpOnly cookie stays unreadable
    assert [s["device"] for s in body["sessions"]] == ["Safari on macOS"]
    assert body["sessions"][0]["current"] is True
    # Load (1) + listing (2), all on the asyncio client; nothing on the sync one.
    # (Django 4.2 has no request.auser(): the user, so the session, loads sync.)
    assert (round_trips.sync, round_trips.async_) == ((0, 3) if django.VERSION >= (5,) else (1, 2))


async def test_async_middleware_saves_natively(redis_client, round_trips) -> None:
    async def view(request):
        await request.session.aset("cart", [7])
        return HttpResponse("ok")

    middleware = SessionMiddleware(view)
    await SessionStore().aexists("warmup-connection")  # connect (handshake) first
    round_trips.reset()
    response = await middleware(RequestFactory().get("/"))
    key = response.cookies["sessionid"].value
    assert SessionStore(key)["cart"] == [7]
    # The new session was created with one SET NX on the asyncio client.
    assert round_trips.async_ == 1

    async def change(request):
        await request.session.aset("cart", [7, 8])
        return HttpResponse("ok")

    round_trips.reset()
    response = await SessionMiddleware(change)(
        RequestFactory().get("/", HTTP_COOKIE=f"sessionid={key}")
    )
    assert response.cookies["sessionid"].value == key
    assert (round_trips.sync, round_trips.async_) == (0, 2)  # load + save
    assert SessionStore(key)["cart"] == [7, 8]


async def test_anonymous_async_request_touches_no_redis(round_trips) -> None:
    round_trips.reset()
    response = await AsyncClient().get("/sessions/api/")
    assert response.status_code == 401
    assert round_trips.count == 0


async def test_async_accessors_on_every_django_version(redis_client) -> None:
    """The whole async session API of Django 5+, on Django 4.2 too (test cookie included)."""
    store = SessionStore()
    await store.aset_test_cookie()
    await store.aset("cart", [1, 2])
    await store.asave()
    again = SessionStore(store.session_key)
    assert await again.atest_cookie_worked()
    await again.adelete_test_cookie()
    assert not await again.atest_cookie_worked()
    assert await again.aget("cart") == [1, 2]
    assert await again.apop("cart") == [1, 2]
    assert await again.asetdefault("n", 1) == 1
    assert list(await again.aitems()) == [("n", 1)]
