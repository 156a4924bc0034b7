"""The request flow: check, tell, then refuse or call the view.

The middleware and ``@rate_limit`` call :func:`process` (sync) or
:func:`aprocess` (asyncio) with the policies that apply; the flow asks the
limiter, records the result on ``request.ratelimit``, sends the
``ratelimited`` signal, and either has :mod:`.responses` render the refusal
or calls the view (adding the headers to its response when configured).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from django.http import HttpRequest

from .limiter import RateLimitResult, acheck, check
from .options import RateLimitOptions
from .policy import Policy
from .responses import add_headers, finish_refusal, refusal
from .signals import ratelimited

logger = logging.getLogger("django_redisroles.ratelimit")


def mark_disabled(request: HttpRequest) -> None:
    """``ENABLED=False``: a ``block=False`` view still finds an empty ``request.ratelimit``."""
    if not isinstance(getattr(request, "ratelimit", None), RateLimitResult):
        request.ratelimit = RateLimitResult([])  # type: ignore[attr-defined]


def _record(request: HttpRequest, result: RateLimitResult, sender: object) -> None:
    """Put ``result`` on ``request.ratelimit`` (merged with an earlier check) and tell."""
    previous = getattr(request, "ratelimit", None)
    request.ratelimit = previous.merge(result) if isinstance(previous, RateLimitResult) else result  # type: ignore[attr-defined]
    if result.limited or result.blocked:
        _notify(request, result, sender)


def _notify(request: HttpRequest, result: RateLimitResult, sender: object) -> None:
    """Send ``ratelimited`` and log shadow hits for a limited request."""
    if not result.limited and not (result.failed and result.blocked):
        return
    if result.shadowed and not result.blocked:
        over = ", ".join(r.policy.name for r in result.results if not r.allowed)
        logger.info(
            "Shadow rate limit: %s %s would be refused (%s).", request.method, request.path, over
        )
    ratelimited.send(sender=sender, request=request, result=result)


def _allowed_headers(
    request: HttpRequest, result: RateLimitResult, opts: RateLimitOptions, response: Any
) -> None:
    """``HEADERS_ON_ALLOWED``: the headers on the view's response too."""
    # After the view, request.ratelimit also holds what an inner check (a
    # decorator under the middleware) decided: the headers describe every
    # policy of the request and the binding one among all of them.
    merged = getattr(request, "ratelimit", None)
    add_headers(response, merged if isinstance(merged, RateLimitResult) else result, opts.headers)


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def process(
    request: HttpRequest,
    policies: Sequence[Policy],
    opts: RateLimitOptions,
    get_response: Callable[[], Any],
    sender: object,
) -> Any:
    """Check, then return ``get_response()`` or the refusal (sync views and middleware)."""
    result = check(request, policies, opts)
    _record(request, result, sender)
    if result.blocked:
        response = refusal(request, result, opts)
        if inspect.isawaitable(response):  # an async RESPONSE on the sync path
            from asgiref.sync import async_to_sync

            response = async_to_sync(_await)(response)
        return finish_refusal(request, result, opts, response)
    response = get_response()
    if opts.headers_on_allowed and response is not None:
        _allowed_headers(request, result, opts, response)
    return response


async def aprocess(
    request: HttpRequest,
    policies: Sequence[Policy],
    opts: RateLimitOptions,
    get_response: Callable[[], Awaitable[Any]],
    sender: object,
) -> Any:
    """Check on the native asyncio client, then await ``get_response()`` or refuse."""
    result = await acheck(request, policies, opts)
    _record(request, result, sender)
    if result.blocked:
        response = refusal(request, result, opts)
        if inspect.isawaitable(response):
            response = await response
        return finish_refusal(request, result, opts, response)
    response = await get_response()
    if opts.headers_on_allowed and response is not None:
        _allowed_headers(request, result, opts, response)
    return response
