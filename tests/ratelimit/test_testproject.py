"""The demo project's rate-limit pages behave as their titles say."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("demo_settings")]


def test_seed_api_view_60_per_minute_per_ip(client) -> None:
    codes = [client.get("/ratelimit/api/").status_code for _ in range(60)]
    assert codes == [200] * 60
    refused = client.get("/ratelimit/api/")
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/problem+json"  # PROBLEM_JSON_PATHS
    assert json.loads(refused.content)["status"] == 429
    assert int(refused["Retry-After"]) >= 1
    # another address has its own minute
    assert client.get("/ratelimit/api/", REMOTE_ADDR="198.51.100.3").status_code == 200


def test_allowed_responses_carry_the_headers(client) -> None:
    response = client.get("/ratelimit/api/")
    assert response["RateLimit-Policy"] == '"ip-60-per-60s";q=60;w=60'
    assert response["RateLimit"].startswith('"ip-60-per-60s";r=59;t=')


def test_stacked_per_user_and_per_ip(client) -> None:
    user = User.objects.create_user("erin", password="pw")
    client.force_login(user)
    codes = [client.get("/ratelimit/stacked/").status_code for _ in range(11)]
    assert codes == [200] * 10 + [429]
    page = client.get("/ratelimit/stacked/", REMOTE_ADDR="198.51.100.4")
    assert page.status_code == 429  # the per-user limit follows the user
    client.logout()
    assert client.get("/ratelimit/stacked/").status_code == 200  # anonymous: per-IP, 10 of 30


def test_stacked_page_refuses_with_an_html_page_the_api_with_problem_json(client) -> None:
    for _ in range(30):
        client.get("/ratelimit/stacked/")
    page = client.get("/ratelimit/stacked/")
    assert page.status_code == 429 and page["Content-Type"].startswith("text/html")
    assert b"Too many requests" in page.content and b"per-ip" in page.content
    assert int(page["Retry-After"]) >= 1 and page["RateLimit"].startswith('"per-ip";r=0')
    for _ in range(60):
        client.get("/ratelimit/api/")
    api = client.get("/ratelimit/api/")  # the hook declines: the default stays
    assert api.status_code == 429 and api["Content-Type"] == "application/problem+json"


def test_middleware_rule(client) -> None:
    codes = [client.get("/ratelimit/middleware/").status_code for _ in range(21)]
    assert codes == [200] * 20 + [429]
    assert (
        json.loads(client.get("/ratelimit/middleware/", REMOTE_ADDR="198.51.100.5").content)[
            "limits"
        ][0]["policy"]
        == "demo-mw"
    )


async def test_async_demo_view(async_client) -> None:
    codes = [(await async_client.get("/ratelimit/async/")).status_code for _ in range(11)]
    assert codes == [200] * 10 + [429]


def test_home_page_lists_the_demos(client) -> None:
    page = client.get("/").content.decode()
    for url in ("/ratelimit/api/", "/ratelimit/stacked/", "/ratelimit/async/"):
        assert url in page
