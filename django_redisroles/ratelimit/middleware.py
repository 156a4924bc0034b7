"""``RateLimitMiddleware``: the ``RULES`` setting, one Redis round trip per request.

Every rule that matches a request (:mod:`.rules`) is checked in the same
``EVALSHA``. The middleware runs natively under WSGI and ASGI (no thread hop
on the async path); place it after ``AuthenticationMiddleware`` when a rule
keys on the user.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest

from .enforce import aprocess, mark_disabled, process
from .rules import RULES, matching_policies


class RateLimitMiddleware:
    """Apply the ``RULES`` setting to every request (sync and async capable)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        # Built now, when the server loads its middleware: a bad setting or RULES
        # entry is ImproperlyConfigured at start-up even where system checks
        # never run (gunicorn, uvicorn), not a 500 on every request.
        RULES.get()
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            # Django's handler checks this to await us instead of wrapping us in a thread.
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        compiled = RULES.get()
        opts, rules = compiled.options, compiled.rules
        if not opts.enabled or not rules:
            if not opts.enabled and rules and matching_policies(rules, request):
                mark_disabled(request)
            return self.get_response(request)
        policies = matching_policies(rules, request)
        if not policies:
            return self.get_response(request)
        return process(request, policies, opts, lambda: self.get_response(request), self)

    async def __acall__(self, request: HttpRequest) -> Any:
        compiled = RULES.get()
        opts, rules = compiled.options, compiled.rules
        if not opts.enabled or not rules:
            if not opts.enabled and rules and matching_policies(rules, request):
                mark_disabled(request)
            return await self.get_response(request)
        policies = matching_policies(rules, request)
        if not policies:
            return await self.get_response(request)
        return await aprocess(request, policies, opts, lambda: self.get_response(request), self)
