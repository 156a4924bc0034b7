"""What a client sees: 429s, headers, responses, decorators, middleware, async views."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse

from django_redisroles.ratelimit import RateLimitResult, rate_limit, ratelimited

from . import urls
from .conftest import all_keys, calls, reset_stats

pytestmark = [pytest.mark.urls("tests.ratelimit.urls"), pytest.mark.django_db]


def statuses(client, path: str, n: int, **kwargs) -> list[int]:
    return [client.get(path, **kwargs).status_code for _ in range(n)]


def test_429_with_retry_after_and_ietf_headers(client) -> None:
    assert statuses(client, "/ip/", 3) == [200, 200, 200]
    response = client.get("/ip/")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response["RateLimit-Policy"] == '"ip-3-per-60s";q=3;w=60'
    name, *params = response["RateLimit"].split(";")
    assert name == '"ip-3-per-60s"'
    assert params[0] == "r=0" and 1 <= int(params[1].removeprefix("t=")) <= 60
    assert "X-RateLimit-Limit" not in response
    assert response["Content-Type"].startswith("text/plain")


def test_headers_on_allowed_and_legacy(client, ratelimit_settings) -> None:
    ratelimit_settings(HEADERS="both", HEADERS_ON_ALLOWED=True)
    response = client.get("/ip/")
    assert response.status_code == 200
    assert response["RateLimit"].startswith('"ip-3-per-60s";r=2;')
    assert response["X-RateLimit-Limit"] == "3"
    assert response["X-RateLimit-Remaining"] == "2"
    ratelimit_settings(HEADERS="none", HEADERS_ON_ALLOWED=True)
    assert "RateLimit" not in client.get("/ip/")


def test_problem_json_for_api_paths(client, ratelimit_settings) -> None:
    ratelimit_settings(
        PROBLEM_JSON_PATHS=["/api/"], RULES=[{"path": "/api/", "rate": "1/m", "name": "api"}]
    )
    assert client.get("/api/things/").status_code == 200
    response = client.get("/api/things/")
    assert response.status_code == 429
    assert response["Content-Type"] == "application/problem+json"
    body = json.loads(response.content)
    assert body["status"] == 429 and body["title"] == "Too Many Requests"
    assert "retry in" in body["detail"]
    assert response["RateLimit-Policy"] == '"api";q=1;w=60'


def custom_response(request, result: RateLimitResult) -> HttpResponse:
    return HttpResponse(f"slow down {len(result.results)}", status=429)


def test_custom_response_callable(client, ratelimit_settings) -> None:
    ratelimit_settings(RESPONSE="tests.ratelimit.test_http.custom_response")
    statuses(client, "/ip/", 3)
    response = client.get("/ip/")
    assert response.content == b"slow down 1"
    assert "Retry-After" in response  # still added


def test_middleware_rules_match_path_url_name_and_methods(client, ratelimit_settings) -> None:
    ratelimit_settings(
        RULES=[
            {"path": "/api/", "rate": "2/m"},
            {"url_name": "named", "rate": "1/m"},
            {"path": "/plain/", "rate": "1/m", "methods": ["POST"]},
        ]
    )
    assert statuses(client, "/api/things/", 3) == [200, 200, 429]
    assert client.get("/named/1/").status_code == 200
    assert client.get("/named/2/").status_code == 429  # same URL name, same budget
    assert statuses(client, "/plain/", 3) == [200, 200, 200]  # GET not counted
    assert [client.post("/plain/").status_code for _ in range(2)] == [200, 429]


def test_middleware_rules_are_one_round_trip(
    client, ratelimit_settings, redis_client, redis_server
) -> None:
    ratelimit_settings(
        RULES=[
            {"path": "/api/", "rate": "10/m", "name": "burst"},  # its key outlives a slow run
            {"path": "/api/things/", "rate": "100/h", "algorithm": "sliding", "name": "hourly"},
        ]
    )
    client.get("/api/things/")
    reset_stats(redis_server)
    response = client.get("/api/things/")
    assert calls(redis_server) == 1
    assert response.status_code == 200 and "RateLimit" not in response  # only on refusals
    keys = all_keys(redis_client)
    assert len(keys) == 2
    assert len({k.split(b"{")[1].split(b"}")[0] for k in keys}) == 1  # one cluster slot


def test_stacked_decorators_per_user_and_per_ip(client, redis_server) -> None:
    alice = User.objects.create_user("alice", password="pw")
    bob = User.objects.create_user("bob", password="pw")
    client.force_login(alice)
    reset_stats(redis_server)
    assert statuses(client, "/stacked/", 3) == [200, 200, 429]  # alice's 2/m
    assert calls(redis_server) == 3  # one each
    client.force_login(bob)
    # bob has his own 2/m, but the per-IP 5/m only had 2 taken (the 429 took none)
    assert statuses(client, "/stacked/", 3) == [200, 200, 429]
    client.logout()
    assert statuses(client, "/stacked/", 2) == [200, 429]  # anonymous: per-IP only, 4 of 5 used


def test_block_false_sets_request_ratelimit(client) -> None:
    bodies = [json.loads(client.get("/advisory/").content) for _ in range(3)]
    assert [b["limited"] for b in bodies] == [False, False, True]
    assert [b["remaining"] for b in bodies] == [1, 0, 0]


def test_methods_on_decorator(client) -> None:
    assert statuses(client, "/post-only/", 3) == [200, 200, 200]
    assert [client.post("/post-only/").status_code for _ in range(3)] == [200, 200, 429]


def test_class_based_views(client) -> None:
    assert statuses(client, "/class/", 3) == [200, 200, 429]
    assert statuses(client, "/method/", 3) == [200, 200, 429]  # method_decorator


def test_middleware_and_decorator_results_are_merged(client, ratelimit_settings) -> None:
    ratelimit_settings(RULES=[{"path": "/both/", "rate": "9/m", "name": "rule"}])
    assert json.loads(client.get("/both/").content) == {"policies": ["decorator", "rule"]}


def test_a_decorator_refusal_under_a_middleware_rule_keeps_its_headers(
    client, ratelimit_settings
) -> None:
    # The 429 comes from the decorator's 5/m; the middleware's 9/m still has
    # room. The headers must name the limit that refused, with r=0, not r=3.
    ratelimit_settings(
        RULES=[{"path": "/both/", "rate": "9/m", "name": "rule"}], HEADERS_ON_ALLOWED=True
    )
    allowed = [client.get("/both/") for _ in range(5)]
    assert allowed[-1]["RateLimit"].startswith('"decorator";r=0;')
    assert allowed[-1]["RateLimit-Policy"].count('"decorator"') == 1
    refused = client.get("/both/")
    assert refused.status_code == 429
    assert refused["RateLimit"].startswith('"decorator";r=0;')
    policy = refused["RateLimit-Policy"]
    assert policy.count('"decorator";q=5;w=60') == 1 and policy.count('"rule";q=9;w=60') == 1


async def test_async_decorator_refusal_under_a_middleware_rule_keeps_its_headers(
    async_client, ratelimit_settings
) -> None:
    ratelimit_settings(
        RULES=[{"path": "/async-ip/", "rate": "9/m", "name": "rule"}], HEADERS_ON_ALLOWED=True
    )
    for _ in range(3):
        await async_client.get("/async-ip/")
    refused = await async_client.get("/async-ip/")
    assert refused.status_code == 429
    assert refused["RateLimit"].startswith('"ip-3-per-60s";r=0;')
    assert refused["RateLimit-Policy"].count('"ip-3-per-60s"') == 1


def test_shadow_mode_counts_logs_and_signals_but_never_refuses(
    client, ratelimit_settings, caplog
) -> None:
    ratelimit_settings(SHADOW=True)
    seen: list[RateLimitResult] = []

    def receiver(sender, request, result, **kwargs) -> None:
        seen.append(result)

    ratelimited.connect(receiver)
    try:
        with caplog.at_level("INFO", logger="django_redisroles.ratelimit"):
            assert statuses(client, "/ip/", 5) == [200] * 5
    finally:
        ratelimited.disconnect(receiver)
    assert len(seen) == 2 and all(r.limited and r.shadowed and not r.blocked for r in seen)
    assert sum("would be refused" in r.getMessage() for r in caplog.records) == 2


def test_signal_on_refusal(client) -> None:
    seen: list[tuple[str, RateLimitResult]] = []

    def receiver(sender, request, result, **kwargs) -> None:
        seen.append((request.path, result))

    ratelimited.connect(receiver)
    try:
        statuses(client, "/ip/", 4)
    finally:
        ratelimited.disconnect(receiver)
    assert len(seen) == 1
    assert seen[0][0] == "/ip/" and seen[0][1].blocked


def test_disabled(client, ratelimit_settings) -> None:
    ratelimit_settings(ENABLED=False)
    assert statuses(client, "/ip/", 5) == [200] * 5
    # a block=False view still finds request.ratelimit (never limited), not a 500
    assert json.loads(client.get("/advisory/").content) == {"limited": False, "remaining": None}


def test_disabled_block_false_rule(client, ratelimit_settings) -> None:
    rule = {"path": "/rule-advisory/", "rate": "1/m", "block": False}
    ratelimit_settings(RULES=[rule])
    bodies = [json.loads(client.get("/rule-advisory/").content) for _ in range(2)]
    assert bodies == [{"limited": False}, {"limited": True}]
    ratelimit_settings(RULES=[rule], ENABLED=False)
    assert json.loads(client.get("/rule-advisory/").content) == {"limited": False}


async def test_disabled_async(async_client, ratelimit_settings) -> None:
    ratelimit_settings(ENABLED=False)
    response = await async_client.get("/async-advisory-closed/")
    assert response.json() == {"failed": False, "blocked": False}


async def async_key(request) -> str:
    return "k"


def test_bad_arguments_fail_at_decoration_time() -> None:
    def view(request):
        return HttpResponse()

    for kwargs, needle in [
        ({"rate": "60/fortnight"}, "unknown unit"),
        ({"rate": "sixty/m"}, "Invalid rate"),
        ({"rate": "0/m"}, "at least 1"),
        ({"rate": "5/m", "key": "cookie:x"}, "Unknown rate-limit key"),
        ({"rate": "5/m", "key": "header:"}, "Unknown rate-limit key"),
        ({"rate": "5/m", "algorithm": "leaky"}, "Unknown rate-limit algorithm"),
        ({"rate": "5/m", "fail": "maybe"}, "fail must be"),
        ({"rate": "5/m", "name": "per\nuser"}, "printable ASCII"),
        ({"rate": "5/m", "block": "yes"}, "block must be"),
        # an async key would return a coroutine: a new bucket per request, no limit at all
        ({"rate": "5/m", "key": async_key}, "plain function"),
    ]:
        with pytest.raises(ImproperlyConfigured, match=needle):
            rate_limit(**kwargs)(view)


@pytest.mark.parametrize(
    ("rate", "limit", "period"),
    [
        ("60/m", 60, 60),
        ("5/s", 5, 1),
        ("1000/h", 1000, 3600),
        ("100/10m", 100, 600),
        ("7/2d", 7, 172800),
        ("3 / minutes", 3, 60),
    ],
)
def test_rate_strings(rate: str, limit: int, period: int) -> None:
    from django_redisroles.ratelimit import parse_rate

    parsed = parse_rate(rate)
    assert (parsed.limit, parsed.period) == (limit, period)


@pytest.mark.parametrize("rate", ["60/ms", "5/ss", "10/hs", "1/ds", "0/m", "5/0s", "5", "m/5"])
def test_bad_rate_strings(rate: str) -> None:
    # "60/ms" must not quietly become 60 a minute ("ms" is no plural of "m")
    from django_redisroles.ratelimit import InvalidRate, parse_rate

    with pytest.raises(InvalidRate):
        parse_rate(rate)


# -- async --------------------------------------------------------------------


async def test_async_view(async_client) -> None:
    codes = [(await async_client.get("/async-ip/")).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


async def test_async_check_runs_on_the_event_loop_thread(async_client) -> None:
    urls.seen_threads.clear()
    loop_thread = threading.current_thread().name
    codes = [(await async_client.get("/async-thread/")).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    # key function (inside the limiter) and the view ran on the loop: no thread hop
    assert set(urls.seen_threads) == {loop_thread}


async def test_async_middleware(async_client, ratelimit_settings) -> None:
    ratelimit_settings(RULES=[{"path": "/plain/", "rate": "2/m"}])
    codes = [(await async_client.get("/plain/")).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


async def test_async_headers_on_allowed(async_client, ratelimit_settings) -> None:
    ratelimit_settings(HEADERS_ON_ALLOWED=True)
    response = await async_client.get("/async-ip/")
    assert response["RateLimit"].startswith('"ip-3-per-60s";r=2;')


async def test_async_class_based_view(async_client) -> None:
    codes = [(await async_client.get("/async-class/")).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


async def test_async_user_key(async_client) -> None:
    from asgiref.sync import sync_to_async

    user = await sync_to_async(User.objects.create_user)("carol", password="pw")
    await sync_to_async(async_client.force_login)(user)
    codes = [(await async_client.get("/async-user/")).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


async def test_async_user_key_without_auser(rf) -> None:
    # Django 4.2 has no request.auser(): the lazy user is then loaded in a
    # thread (it may query the database), never on the event loop.
    from django.utils.functional import SimpleLazyObject

    from django_redisroles.ratelimit import acheck, make_policy

    # Not a database user: rows written from the test's executor thread outlive its rollback.
    user = SimpleNamespace(pk=4242, is_authenticated=True)
    loaded_in: list[str] = []

    def load() -> SimpleNamespace:
        loaded_in.append(threading.current_thread().name)
        return user

    policy = make_policy("1/m", "user", group="no-auser")
    limited = []
    for _ in range(2):
        request = rf.get("/", REMOTE_ADDR="198.51.100.9")
        request.user = SimpleLazyObject(load)
        assert not hasattr(request, "auser")
        limited.append((await acheck(request, [policy])).limited)
    assert limited == [False, True]
    assert len(loaded_in) == 2 and threading.current_thread().name not in loaded_in
    # a user policy that does not apply to the method does not load the user
    post_only = make_policy("1/m", "user", group="no-auser-post", methods=["POST"])
    request = rf.get("/", REMOTE_ADDR="198.51.100.9")
    request.user = SimpleLazyObject(load)
    assert (await acheck(request, [post_only])).results == []
    assert len(loaded_in) == 2


def test_bad_rules_fail_when_middleware_loads(ratelimit_settings) -> None:
    from django_redisroles.ratelimit import RateLimitMiddleware

    ratelimit_settings(RULES=[{"path": "/api/", "rate": "lots"}])
    with pytest.raises(ImproperlyConfigured, match="RULES\\[0\\]: Invalid rate 'lots'"):
        RateLimitMiddleware(lambda request: HttpResponse())


async def async_response(request, result: RateLimitResult) -> HttpResponse:
    return HttpResponse("async refusal", status=429)


def test_async_response_callable_on_a_sync_view(client, ratelimit_settings) -> None:
    ratelimit_settings(RESPONSE=async_response)
    statuses(client, "/ip/", 3)
    response = client.get("/ip/")
    assert response.content == b"async refusal" and "Retry-After" in response


async def test_async_response_callable_on_an_async_view(async_client, ratelimit_settings) -> None:
    ratelimit_settings(RESPONSE=async_response)
    for _ in range(3):
        await async_client.get("/async-ip/")
    response = await async_client.get("/async-ip/")
    assert response.content == b"async refusal" and "Retry-After" in response


def test_a_decorator_reapplied_per_request_reuses_its_policy() -> None:
    # method_decorator applies the decorator again on every request; building
    # the policy (rate parsing, key compilation, hashing) each time cost ~20 µs.
    from functools import partial, wraps

    decorate = rate_limit("2/m", key="ip")

    def get(request):
        return HttpResponse("ok")

    first = decorate(wraps(get)(partial(get)))
    second = decorate(wraps(get)(partial(get)))
    assert first is not second
    assert first._ratelimit_policies[0] is second._ratelimit_policies[0]


def test_compiled_rules_are_rebuilt_when_settings_change(settings, ratelimit_settings) -> None:
    from django_redisroles.ratelimit.rules import RULES

    ratelimit_settings(RULES=[{"path": "/plain/", "rate": "1/m"}])
    compiled = RULES.get()
    assert RULES.get() is compiled  # built once, not per request
    for name in ("MIDDLEWARE", "ROOT_URLCONF", "REDISROLES"):
        setattr(settings, name, getattr(settings, name))
        assert RULES.get() is not compiled, name
        compiled = RULES.get()
