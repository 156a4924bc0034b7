"""Demo views of the pubsub role: a live notifications page."""

from __future__ import annotations

import logging

import redis.exceptions
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render

from django_redisroles.pubsub import broadcast
from testproject.consumers_pubsub import GROUP
from testproject.views import manage_py

logger = logging.getLogger(__name__)


def _wants_json(request: HttpRequest) -> bool:
    # The page's script posts with fetch() and Accept: application/json, so the
    # page (and its WebSocket) stays open and the sender sees the message arrive
    # too; without JavaScript the form posts and redirects as usual.
    return "application/json" in request.headers.get("Accept", "")


def notifications(request: HttpRequest) -> HttpResponse:
    """Shows notifications live over a WebSocket; the form broadcasts one."""
    context = {"group": GROUP, "manage_py": manage_py()}
    if request.method == "POST":
        text = (request.POST.get("message") or "").strip()[:500]
        if text:
            try:
                # A plain sync view: one PUBLISH on the pooled connection, no event loop.
                broadcast(GROUP, {"type": "notify", "message": {"text": text, "from": "web"}})
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                # broadcast() raises when Redis is unreachable, so the caller knows the
                # message was not sent: say so, rather than fail with a 500.
                logger.warning("notification not sent: %s", exc)
                error = "Redis is unreachable: not sent."
                if _wants_json(request):
                    return JsonResponse({"sent": False, "error": error}, status=503)
                context["error"] = error
                return render(request, "testproject/pubsub/notifications.html", context, status=503)
        if _wants_json(request):
            return JsonResponse({"sent": bool(text)})
        return redirect("pubsub-notifications")
    return render(request, "testproject/pubsub/notifications.html", context)
