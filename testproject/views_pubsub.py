"""Demo views of the pubsub role: a live notifications page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from django_redisroles.pubsub import broadcast
from testproject.consumers_pubsub import GROUP


def notifications(request: HttpRequest) -> HttpResponse:
    """Shows notifications live over a WebSocket; the form broadcasts one."""
    if request.method == "POST":
        text = (request.POST.get("message") or "").strip()[:500]
        if text:
            # A plain sync view: one PUBLISH on the pooled connection, no event loop.
            broadcast(GROUP, {"type": "notify", "message": {"text": text, "from": "web"}})
        return redirect("pubsub-notifications")
    return render(request, "testproject/pubsub/notifications.html", {"group": GROUP})
