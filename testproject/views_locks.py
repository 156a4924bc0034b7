"""Demo views of the locks role: the held locks, and a lock to take from the browser."""

from __future__ import annotations

import redis
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from django_redisroles.locks import Lock, held_locks
from testproject.views import manage_py

DEMO_LOCK = "demo-page"
DEMO_TTL = 15


@require_http_methods(["GET", "POST"])
def index(request: HttpRequest) -> HttpResponse:
    """List held locks (what `manage.py redisroles locks` shows); POST takes the demo lock.

    The demo lock is taken without renewal and never released, so it simply
    expires after its TTL: a second click meanwhile shows who holds it.
    """
    try:
        return _index(request)
    except redis.RedisError as exc:
        # The locks role's policy is to raise (a lock we cannot take is not
        # held); the page says so instead of a 500.
        return render(
            request,
            "testproject/locks/index.html",
            {
                "error": f"{type(exc).__name__}: {exc}",
                "demo_lock": DEMO_LOCK,
                "demo_ttl": DEMO_TTL,
                "manage_py": manage_py(),
            },
            status=503,
        )


def _index(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        lock = Lock(DEMO_LOCK, ttl=DEMO_TTL, renew=False)
        if lock.acquire():
            messages.success(request, f"Took {DEMO_LOCK!r} for {DEMO_TTL}s (fence {lock.fence}).")
        else:
            who = lock.holder.describe() if lock.holder else "someone"
            messages.error(request, f"{DEMO_LOCK!r} is already held by {who}.")
        return redirect("locks:index")
    return render(
        request,
        "testproject/locks/index.html",
        {
            "locks": held_locks(),
            "demo_lock": DEMO_LOCK,
            "demo_ttl": DEMO_TTL,
            "manage_py": manage_py(),
        },
    )
