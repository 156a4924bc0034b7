"""JSON views readable in a browser: content negotiation on Accept, nothing else changed."""

from __future__ import annotations

import json

import pytest
from django.test import AsyncClient, Client

from testproject.dashboard.middleware import wants_html

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


class Request:
    def __init__(self, accept: str | None) -> None:
        self.headers = {"Accept": accept} if accept is not None else {}


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (BROWSER, True),  # Chromium, Firefox and Safari navigating
        ("*/*", False),  # curl, fetch()
        ("", False),
        (None, False),
        ("application/json", False),
        ("text/html;q=0.5, application/json", False),
        ("application/json;q=0.5, text/html", True),
        ("text/*", True),
        ("text/html;q=0", False),
        ("text/html;q=abc, */*", False),  # a broken q is 0, never a 500
    ],
)
def test_wants_html(accept: str | None, html: bool) -> None:
    assert wants_html(Request(accept)) is html  # type: ignore[arg-type]


def test_a_browser_gets_the_json_as_a_page_with_status_and_headers(client: Client) -> None:
    response = client.get("/ratelimit/api/", HTTP_ACCEPT=BROWSER)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "Accept" in response["Vary"]
    assert "RateLimit" in response  # the limiter's headers are kept
    page = response.content.decode()
    assert "200 OK" in page and "&quot;ok&quot;: true" in page
    assert "RateLimit-Policy" in page  # ... and shown


def test_api_clients_get_the_json_unchanged(client: Client) -> None:
    for accept in ("*/*", "application/json"):
        response = client.get("/ratelimit/api/", HTTP_ACCEPT=accept)
        assert response["Content-Type"] == "application/json"
        assert json.loads(response.content)["ok"] is True
        assert "Accept" in response["Vary"]  # a cache must not mix the two


def test_a_429_problem_json_becomes_a_page_with_a_countdown(client: Client) -> None:
    for _ in range(5):  # /dashboard/try/fixed/: 5 per 20 s
        assert client.get("/dashboard/try/fixed/").status_code == 200
    api = client.get("/dashboard/try/fixed/")
    assert api.status_code == 429 and api["Content-Type"] == "application/problem+json"
    page = client.get("/dashboard/try/fixed/", HTTP_ACCEPT=BROWSER)
    assert page.status_code == 429
    assert page["Retry-After"] == api["Retry-After"]
    html = page.content.decode()
    assert 'id="countdown"' in html and "Too Many Requests" in html


def test_other_responses_pass_untouched(client: Client) -> None:
    response = client.get("/pages/", HTTP_ACCEPT=BROWSER)
    assert response.status_code == 200
    assert b"Held locks" in response.content  # the demo pages list, not a JSON page


async def test_async_views_too() -> None:
    response = await AsyncClient().get("/ratelimit/async/", headers={"Accept": BROWSER})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "&quot;ok&quot;: true" in response.content.decode()
