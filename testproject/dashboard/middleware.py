"""JSON endpoints readable in a browser: content negotiation on ``Accept``.

A browser navigating to a JSON view (``/ratelimit/api/``, ``/sessions/api/``,
a 429's ``application/problem+json``) asks for ``text/html`` first; it gets
the same body, pretty-printed in a page, with the status and the rate-limit
headers (and a countdown when there is a ``Retry-After``). ``fetch()``,
``curl`` and API clients (``Accept: */*`` or ``application/json``) get the
JSON unchanged. The status code and every header are kept either way.
"""

from __future__ import annotations

import json
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.cache import patch_vary_headers

JSON_TYPES = ("application/json", "application/problem+json")
SHOWN_HEADERS = ("Retry-After", "RateLimit-Policy", "RateLimit", "Content-Type")


def _quality(accept: str, media_type: str) -> float:
    """The q-value ``accept`` gives ``media_type`` (exact type, ``type/*`` or ``*/*``)."""
    best, best_specificity = 0.0, -1
    major = media_type.split("/")[0]
    for item in accept.split(","):
        name, *params = (p.strip() for p in item.split(";"))
        specificity = {media_type: 2, f"{major}/*": 1, "*/*": 0}.get(name.lower())
        if specificity is None or specificity < best_specificity:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        best, best_specificity = q, specificity
    return best


def wants_html(request: HttpRequest) -> bool:
    """A browser navigation: ``text/html`` preferred over JSON."""
    accept = request.headers.get("Accept", "")
    html = _quality(accept, "text/html")
    return html > 0 and html > _quality(accept, "application/json")


def render_json_page(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    try:
        body = json.dumps(json.loads(response.content), indent=2, ensure_ascii=False)
    except ValueError:
        return response
    page = HttpResponse(
        render_to_string(
            "dashboard/json.html",
            {
                "request": request,
                "status": response.status_code,
                "reason": response.reason_phrase,
                "body": body,
                "headers": [(h, response[h]) for h in SHOWN_HEADERS if h in response],
                "retry_after": response.get("Retry-After"),
            },
            request=request,
        ),
        status=response.status_code,
    )
    for name, value in response.items():
        if name.lower() not in ("content-type", "content-length"):
            page[name] = value
    page.cookies = response.cookies
    patch_vary_headers(page, ("Accept",))
    return page


class BrowsableJSONMiddleware:
    """Render JSON responses as a page for browsers; everything else passes untouched."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def _process(self, request: HttpRequest, response: Any) -> Any:
        content_type = response.get("Content-Type", "").split(";")[0].strip()
        if content_type not in JSON_TYPES or getattr(response, "streaming", False):
            return response
        if not wants_html(request):
            patch_vary_headers(response, ("Accept",))
            return response
        return render_json_page(request, response)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        return self._process(request, self.get_response(request))

    async def __acall__(self, request: HttpRequest) -> Any:
        return self._process(request, await self.get_response(request))
