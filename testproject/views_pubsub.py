"""Demo views of the pubsub role: a live notifications page."""

from __future__ import annotations

import logging

import redis.exceptions
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from django_redisroles.pubsub import broadcast
from testproject.consumers_pubsub import GROUP

logger = logging.getLogger(__name__)


def notifications(request: HttpRequest) -> HttpResponse:
    """Shows notifications live over a WebSocket; the form broadcasts one."""
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
                context = {"group": GROUP, "error": "Redis is unreachable: not sent."}
                return render(request, "testproject/pubsub/notifications.html", context, status=503)
        return redirect("pubsub-notifications")
    return render(request, "testproject/pubsub/notifications.html", {"group": GROUP})
