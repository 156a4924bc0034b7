"""429 responses and the rate-limit header fields.

Headers follow draft-ietf-httpapi-ratelimit-headers (``RateLimit-Policy``
lists every policy, ``RateLimit`` the most constraining one), optionally with
the legacy ``X-RateLimit-Limit/Remaining/Reset`` trio. ``t`` (and
``X-RateLimit-Reset``) is the seconds until more quota is available, the
draft's current definition; on a refusal it equals ``Retry-After``. Both are
whole seconds, rounded up.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from .core import PolicyResult, RateLimitResult, State, acheck, ceil_seconds, check
from .signals import ratelimited

logger = logging.getLogger("django_redisroles.ratelimit")


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


def add_headers(response: HttpResponse, result: RateLimitResult, mode: str) -> None:
    """Set the rate-limit header fields of ``result`` on ``response``."""
    if mode == "none" or not result.results:
        return
    binding = _binding(result)
    assert binding is not None  # results is not empty
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


def _wants_problem_json(st: State, request: HttpRequest) -> bool:
    path = request.path_info
    return any(path.startswith(prefix) for prefix in st.problem_json_paths)


def default_response(request: HttpRequest, result: RateLimitResult, st: State) -> HttpResponse:
    """429 (or the fail-closed status): plain text, or RFC 9457 problem JSON for API paths."""
    if result.failed:
        status, title = st.fail_status, "Service Unavailable"
        detail = "Rate limiting is temporarily unavailable; try again shortly."
    else:
        status, title = 429, "Too Many Requests"
        detail = f"Rate limit exceeded; retry in {max(1, ceil_seconds(result.retry_after))} s."
    if _wants_problem_json(st, request):
        body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
        body["detail"] = detail
        return JsonResponse(body, status=status, content_type="application/problem+json")
    return HttpResponse(detail + "\n", status=status, content_type="text/plain; charset=utf-8")


def finish_limited(
    request: HttpRequest, result: RateLimitResult, st: State, response: Any
) -> HttpResponse:
    """Add Retry-After and the rate-limit headers to a refusal."""
    if result.failed:
        response.headers.setdefault("Retry-After", "1")
    else:
        response.headers["Retry-After"] = str(max(1, ceil_seconds(result.retry_after)))
        add_headers(response, result, st.headers)
    return response


def limited_response(request: HttpRequest, result: RateLimitResult, st: State) -> Any:
    """The refusal: the RESPONSE callable's, else the default (may be a coroutine)."""
    if st.response is not None:
        response = st.response(request, result)
        if response is not None:
            return response
    return default_response(request, result, st)


def notify(request: HttpRequest, result: RateLimitResult, sender: Any) -> None:
    """Send ``ratelimited`` and log shadow hits for a limited request."""
    if not result.limited and not (result.failed and result.blocked):
        return
    if result.shadowed and not result.blocked:
        over = ", ".join(r.policy.name for r in result.results if not r.allowed)
        logger.info(
            "Shadow rate limit: %s %s would be refused (%s).", request.method, request.path, over
        )
    ratelimited.send(sender=sender, request=request, result=result)


async def _await(awaitable: Any) -> Any:
    return await awaitable


def mark_disabled(request: HttpRequest) -> None:
    """``ENABLED=False``: a ``block=False`` view still finds an empty ``request.ratelimit``."""
    if not isinstance(getattr(request, "ratelimit", None), RateLimitResult):
        request.ratelimit = RateLimitResult([])  # type: ignore[attr-defined]


def _attach(request: HttpRequest, result: RateLimitResult) -> None:
    previous = getattr(request, "ratelimit", None)
    request.ratelimit = previous.merge(result) if isinstance(previous, RateLimitResult) else result  # type: ignore[attr-defined]


def _all_results(request: HttpRequest, result: RateLimitResult) -> RateLimitResult:
    # After the view, request.ratelimit also holds what an inner check (a
    # decorator under the middleware) decided: the headers describe every
    # policy of the request and the binding one among all of them.
    merged = getattr(request, "ratelimit", None)
    return merged if isinstance(merged, RateLimitResult) else result


def process_sync(
    request: HttpRequest, policies: Any, st: State, get_response: Any, sender: Any
) -> Any:
    """Check, then call ``get_response(request)`` or refuse (sync views and middleware)."""
    result = check(request, policies, st)
    _attach(request, result)
    if result.limited or result.blocked:
        notify(request, result, sender)
    if result.blocked:
        response = limited_response(request, result, st)
        if inspect.isawaitable(response):  # an async RESPONSE on the sync path
            from asgiref.sync import async_to_sync

            response = async_to_sync(_await)(response)
        if response is None:
            response = default_response(request, result, st)
        return finish_limited(request, result, st, response)
    response = get_response()
    if st.headers_on_allowed and response is not None:
        add_headers(response, _all_results(request, result), st.headers)
    return response


async def process_async(
    request: HttpRequest, policies: Any, st: State, get_response: Any, sender: Any
) -> Any:
    """Check on the native asyncio client, then await ``get_response()`` or refuse."""
    result = await acheck(request, policies, st)
    _attach(request, result)
    if result.limited or result.blocked:
        notify(request, result, sender)
    if result.blocked:
        response = limited_response(request, result, st)
        if inspect.isawaitable(response):
            response = await response
        if response is None:  # an async RESPONSE callable that declined
            response = default_response(request, result, st)
        return finish_limited(request, result, st, response)
    response = await get_response()
    if st.headers_on_allowed and response is not None:
        add_headers(response, _all_results(request, result), st.headers)
    return response
