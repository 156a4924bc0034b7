"""The testproject's cached-user page (the seed's getUser)."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import AsyncClient, Client

from testproject import views_cache

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("demo_settings")]


@pytest.fixture
def ada() -> Any:
    return get_user_model().objects.create_user("ada", email="ada@example.com", password="x")


@pytest.fixture(autouse=True)
def _member(request: Any, demo_settings: Any) -> None:
    """The page shows users' data: only to logged-in users (a session of the demo's settings)."""
    if "client" in request.fixturenames:
        viewer = get_user_model().objects.create_user("viewer", password="x")
        request.getfixturevalue("client").force_login(viewer)


async def member_client() -> AsyncClient:
    client = AsyncClient()
    viewer = await get_user_model().objects.acreate(username="viewer")
    await sync_to_async(client.force_login)(viewer)
    return client


def test_anonymous_visitors_are_sent_to_the_login_page(ada: Any) -> None:
    for path in ("/cache/user/", "/cache/user/async/"):
        response = Client().get(f"{path}?id={ada.pk}")
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
        assert b"ada@example.com" not in response.content


def test_first_view_loads_from_the_database_then_hits_the_cache(
    client: Client, ada: Any, redis_client: redis.Redis
) -> None:
    before = views_cache.loads["sync"]
    first = client.get(f"/cache/user/?id={ada.pk}")
    assert first.status_code == 200
    assert b"cache miss" in first.content and b"ada@example.com" in first.content
    second = client.get(f"/cache/user/?id={ada.pk}")
    assert b"cache hit" in second.content and b"ada@example.com" in second.content
    assert views_cache.loads["sync"] == before + 1
    key = f"demo:cache:1:user:{ada.pk}"
    # TTL 300 + 30 s stale window, +/-10 % jitter (testproject settings)
    assert 296 <= redis_client.ttl(key) <= 363


def test_drop_the_cached_copy(client: Client, ada: Any) -> None:
    client.get(f"/cache/user/?id={ada.pk}")
    response = client.post("/cache/user/", {"id": ada.pk})
    assert response.status_code == 302
    assert cache.get(f"user:{ada.pk}") is None
    assert b"cache miss" in client.get(f"/cache/user/?id={ada.pk}").content


def test_missing_user_is_cached_too(client: Client) -> None:
    before = views_cache.loads["sync"]
    for _ in range(3):
        response = client.get("/cache/user/?id=999")
        assert b"No such user" in response.content
    assert views_cache.loads["sync"] == before + 1


@pytest.mark.parametrize("value", ["abc", "-1", "0", "9" * 30, "²"])
def test_bad_id_is_a_400_html_page_not_a_500(client: Client, value: str) -> None:
    for page in ("/cache/user/", "/cache/user/async/"):
        response = client.get(page, {"id": value})
        assert response.status_code == 400
        # Labelled text/html, so an HTML page of the demo, not a bare line of text.
        assert response["Content-Type"].startswith("text/html")
        assert response.content.lstrip().startswith(b"<!doctype html>")
        assert b"must be a positive whole number" in response.content


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("query", ["", "?id=1", "?id=abc"])
def test_async_page_renders_for_a_signed_in_user(ada: Any, query: str) -> None:
    """The layout shows the signed-in user: loading it must not be a sync query on the loop."""
    client = Client()
    client.force_login(ada)
    response = client.get(f"/cache/user/async/{query}")
    assert response.status_code in (200, 400)
    assert b"Signed in as <strong>ada</strong>" in response.content


@pytest.mark.django_db(transaction=True)  # the async ORM runs in another thread
async def test_async_view_shares_the_cache_with_the_sync_one(ada: Any) -> None:
    client = await member_client()
    first = await client.get(f"/cache/user/async/?id={ada.pk}")
    assert first.status_code == 200 and b"cache miss" in first.content
    second = await client.get(f"/cache/user/async/?id={ada.pk}")
    assert b"cache hit" in second.content and b"(async view)" in second.content
    assert await cache.aget(f"user:{ada.pk}") == {
        **{k: getattr(ada, k) for k in ("id", "username", "first_name", "last_name", "email")},
        "date_joined": ada.date_joined,
    }


@pytest.mark.django_db(transaction=True)
async def test_async_view_without_id_shows_the_first_user_like_the_sync_one() -> None:
    # The home page links to both pages without ?id=: user 1 may not exist.
    user_model = get_user_model()
    gone = await user_model.objects.acreate(username="gone")
    await gone.adelete()
    ada = await user_model.objects.acreate(username="ada", email="ada@example.com")
    assert ada.pk != 1
    response = await (await member_client()).get("/cache/user/async/")
    assert response.status_code == 200
    assert b"ada@example.com" in response.content and b"No such user" not in response.content


def test_home_page_links_to_the_demo(client: Client) -> None:
    content = client.get("/").content
    assert b'href="/cache/user/"' in content and b'href="/cache/user/async/"' in content


@pytest.mark.parametrize("path", ["/cache/user/", "/cache/user/async/"])
def test_cache_outage_still_renders_the_page(
    client: Client, ada: Any, settings: Any, redis_factory: Any, path: str
) -> None:
    """The cache role's failure policy: an outage is a miss, never a 500."""
    server = redis_factory()
    roles = {**settings.REDISROLES.get("ROLES", {})}
    roles["cache"] = {**roles.get("cache", {}), "URL": server.url()}
    settings.REDISROLES = {**settings.REDISROLES, "ROLES": roles}
    server.kill()
    response = client.get(f"{path}?id={ada.pk}")
    assert response.status_code == 200
    assert b"ada@example.com" in response.content
