"""Demo views of the ratelimit role."""

from __future__ import annotations

import math

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, URLPattern, path, reverse

from django_redisroles.ratelimit import RateLimitResult, rate_limit


def _budget(request: HttpRequest, result: RateLimitResult | None = None) -> list[dict[str, object]]:
    result = result or getattr(request, "ratelimit", None)
    if result is None:
        return []
    return [
        {
            "policy": r.policy.name,
            "limit": r.policy.rate.limit,
            "period_s": r.policy.rate.period,
            "remaining": r.remaining,
            "allowed": r.allowed,
        }
        for r in result.results
    ]


@rate_limit("60/m", key="ip", algorithm="fixed")
def api(request: HttpRequest) -> JsonResponse:
    """The seed's limit (60 a minute per IP, fixed window), made atomic."""
    return JsonResponse({"ok": True, "limits": _budget(request)})


@rate_limit("30/m", key="ip", name="per-ip")
@rate_limit("10/m", key="user", name="per-user")
def stacked(request: HttpRequest) -> HttpResponse:
    """Per-user and per-IP limits, checked in one Redis round trip."""
    return render(request, "testproject/ratelimit/stacked.html", {"limits": _budget(request)})


@rate_limit("10/m", key="ip", algorithm="sliding")
async def async_api(request: HttpRequest) -> JsonResponse:
    """An async view: the check runs on redis.asyncio, no thread hop."""
    return JsonResponse({"ok": True, "limits": _budget(request)})


def middleware_limited(request: HttpRequest) -> JsonResponse:
    """Limited by the RULES setting (20/m per IP), not by a decorator."""
    return JsonResponse({"ok": True, "limits": _budget(request)})


def too_many_requests(request: HttpRequest, result: RateLimitResult) -> HttpResponse | None:
    """The demo's ``RESPONSE`` hook: the HTML page refuses with an HTML page.

    A browser on the stacked page otherwise gets a bare line of plain text;
    the JSON endpoints keep the default (problem+json / plain text). Returning
    None falls back to it; Retry-After and the RateLimit headers are added
    either way.
    """
    try:
        page = reverse("ratelimit-stacked")
    except NoReverseMatch:  # another URLconf (the library's own tests)
        return None
    if result.failed or request.path_info != page:
        return None
    retry = max(1, math.ceil(result.retry_after))
    context = {"limits": _budget(request, result), "retry": retry}
    return render(request, "testproject/ratelimit/limited.html", context, status=429)


#: (title, url name) pairs listed on the home page. Each names its algorithm:
#: what the RateLimit header's t means depends on it (docs/ratelimit.md).
DEMO_LINKS: list[tuple[str, str]] = [
    ("API view, 60/minute per IP, fixed window (JSON; 429 problem+json)", "ratelimit-api"),
    ("Stacked: 10/minute per user + 30/minute per IP (GCRA)", "ratelimit-stacked"),
    ("Async view, 10/minute per IP (sliding window)", "ratelimit-async"),
    ("Middleware rule, 20/minute per IP (GCRA, the default algorithm)", "ratelimit-middleware"),
]

urlpatterns: list[URLPattern] = [
    path("api/", api, name="ratelimit-api"),
    path("stacked/", stacked, name="ratelimit-stacked"),
    path("async/", async_api, name="ratelimit-async"),
    path("middleware/", middleware_limited, name="ratelimit-middleware"),
]
