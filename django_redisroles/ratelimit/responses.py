"""Rendering: the refusal (429, or the fail-closed status) and the rate-limit header fields.

Headers follow draft-ietf-httpapi-ratelimit-headers (``RateLimit-Policy``
lists every policy, ``RateLimit`` the most constraining one), optionally with
the legacy ``X-RateLimit-Limit/Remaining/Reset`` trio. ``t`` (and
``X-RateLimit-Reset``) is the seconds until more quota is available, the
draft's current definition; on a refusal it equals ``Retry-After``. Both are
whole seconds, rounded up.
"""

from __future__ import annotations

import math
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse

from .limiter import PolicyResult, RateLimitResult
from .options import RateLimitOptions


def ceil_seconds(value: float) -> int:
    """Whole seconds for headers, rounded up (a client retrying early is refused again)."""
    return max(0, math.ceil(value - 1e-9))


def _binding(result: RateLimitResult) -> PolicyResult | None:
    """The policy a client should pace itself by: denied first, then fewest remaining."""
    best: PolicyResult | None = None
    for r in result.results:
        if best is None or (not r.allowed, -r.remaining, r.retry_after) > (
            not best.allowed,
            -best.remaining,
            best.retry_after,
        ):
            best = r
    return best


def _sf_string(value: str) -> str:
    """A structured-field string (RFC 8941): quoted, with quotes and backslashes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def add_headers(response: HttpResponseBase, result: RateLimitResult, mode: str) -> None:
    """Set the rate-limit header fields of ``result`` on ``response``."""
    if mode == "none":
        return
    binding = _binding(result)
    if binding is None:  # no policy applied
        return
    if mode in ("ietf", "both"):
        response.headers["RateLimit-Policy"] = ", ".join(
            f"{_sf_string(r.policy.name)};q={r.policy.rate.limit};w={r.policy.rate.period}"
            for r in result.results
        )
        response.headers["RateLimit"] = (
            f"{_sf_string(binding.policy.name)};r={binding.remaining};"
            f"t={ceil_seconds(binding.reset_after)}"
        )
    if mode in ("legacy", "both"):
        response.headers["X-RateLimit-Limit"] = str(binding.policy.rate.limit)
        response.headers["X-RateLimit-Remaining"] = str(binding.remaining)
        response.headers["X-RateLimit-Reset"] = str(ceil_seconds(binding.reset_after))


def default_response(
    request: HttpRequest, result: RateLimitResult, opts: RateLimitOptions
) -> HttpResponse:
    """429 (or the fail-closed status): plain text, or RFC 9457 problem JSON for API paths."""
    if result.failed:
        status, title = opts.fail_status, "Service Unavailable"
        detail = "Rate limiting is temporarily unavailable; try again shortly."
    else:
        status, title = 429, "Too Many Requests"
        detail = f"Rate limit exceeded; retry in {max(1, ceil_seconds(result.retry_after))} s."
    if request.path_info.startswith(opts.problem_json_paths):
        body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
        body["detail"] = detail
        return JsonResponse(body, status=status, content_type="application/problem+json")
    return HttpResponse(detail + "\n", status=status, content_type="text/plain; charset=utf-8")


def refusal(request: HttpRequest, result: RateLimitResult, opts: RateLimitOptions) -> Any:
    """The refusal: the ``RESPONSE`` callable's (may be a coroutine, or None), else the default."""
    if opts.response is not None:
        response = opts.response(request, result)
        if response is not None:
            return response
    return default_response(request, result, opts)


def finish_refusal(
    request: HttpRequest,
    result: RateLimitResult,
    opts: RateLimitOptions,
    response: HttpResponseBase | None,
) -> HttpResponseBase:
    """Add ``Retry-After`` and the rate-limit headers to a refusal (``None``: the default)."""
    if response is None:  # a RESPONSE callable that declined
        response = default_response(request, result, opts)
    if result.failed:
        response.headers.setdefault("Retry-After", "1")
    else:
        response.headers["Retry-After"] = str(max(1, ceil_seconds(result.retry_after)))
        add_headers(response, result, opts.headers)
    return response
