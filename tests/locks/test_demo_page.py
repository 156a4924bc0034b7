"""The testproject's locks page lists held locks and lets a visitor take the demo lock."""

from __future__ import annotations

import os

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from django_redisroles.locks import Lock, owner

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _member(request) -> None:
    """The page shows lock holders' command lines: only to logged-in users."""
    if "client" in request.fixturenames:
        viewer = get_user_model().objects.create_user("viewer", password="x")
        request.getfixturevalue("client").force_login(viewer)


def test_anonymous_visitors_do_not_see_holders() -> None:
    with Lock("nightly_report", ttl=30):
        response = Client().get("/locks/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert b"nightly_report" not in response.content


def test_page_lists_held_locks_and_takes_the_demo_lock(client: Client) -> None:
    response = client.get("/locks/")
    assert response.status_code == 200
    assert "No locks held." in response.content.decode()

    with Lock("nightly_report", ttl=30) as lock:
        page = client.get("/locks/").content.decode()
        assert "nightly_report" in page and str(os.getpid()) in page and str(lock.fence) in page

    response = client.post("/locks/", follow=True)
    assert "Took &#x27;demo-page&#x27; for 15s" in response.content.decode()
    info = owner("demo-page")
    assert info is not None and info.expires_in is not None and info.expires_in <= 15
    response = client.post("/locks/", follow=True)
    assert "is already held by host" in response.content.decode()


def test_home_page_links_the_locks_page(client: Client) -> None:
    assert 'href="/locks/"' in client.get("/").content.decode()


def test_page_says_so_when_the_locks_redis_is_down(client: Client, settings, redis_factory) -> None:
    """The locks role on its own server, which is down: a 503 that says why, not a 500."""
    server = redis_factory()
    settings.REDISROLES = {
        **settings.REDISROLES,
        "ROLES": {"locks": {"URL": server.url(), "OPTIONS": {"retry_attempts": 0}}},
    }
    server.kill()
    response = client.get("/locks/")
    assert response.status_code == 503
    assert "Redis of the locks role is unreachable" in response.content.decode()
    assert "No locks held." not in response.content.decode()
    response = client.post("/locks/")
    assert response.status_code == 503
