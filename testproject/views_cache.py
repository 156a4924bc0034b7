"""Demo of the cache role: the seed's ``getUser`` as a one-liner.

The seed::

    async function getUser(id) {
      const cached = await redis.get(`user:${id}`);
      if (cached) return JSON.parse(cached);
      const u = await db.query("SELECT * FROM users WHERE id=$1", [id]);
      await redis.setex(`user:${id}`, 300, JSON.stringify(u));
      return u;
    }

Here: ``@cached(300, key="user:{user_id}")`` on the loader. The TTL is
mandatory, a stampede of misses runs the query once, and a missing user is
cached too (as None) so probing ids does not hammer the database.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from django_redisroles.cache import cached
from testproject.views import arender

BAD_ID = "testproject/cache/bad_id.html"
FIELDS = ("id", "username", "first_name", "last_name", "email", "date_joined")

#: How many times each loader hit the database in this process (shown on the page).
loads = {"sync": 0, "async": 0}


@cached(300, key="user:{user_id}")
def get_user(user_id: int) -> dict[str, Any] | None:
    """The seed's getUser: the database row of one user, cached for 5 minutes."""
    loads["sync"] += 1
    return get_user_model().objects.filter(pk=user_id).values(*FIELDS).first()


@cached(300, key="user:{user_id}")
async def aget_user(user_id: int) -> dict[str, Any] | None:
    """The same, for async views (shares the cache key with ``get_user``)."""
    loads["async"] += 1
    return await get_user_model().objects.filter(pk=user_id).values(*FIELDS).afirst()


def _user_id(request: HttpRequest) -> int | None:
    raw = request.GET.get("id") or request.POST.get("id")
    if raw is None:
        first = get_user_model().objects.order_by("pk").values_list("pk", flat=True).first()
        return first or 1
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if 0 < value < 2**63 else None


def _bad_id_context(request: HttpRequest) -> dict[str, Any]:
    return {"raw": request.GET.get("id") or request.POST.get("id") or ""}


def _bad_id(request: HttpRequest) -> HttpResponse:
    """400 as an HTML page of the demo (it is labelled text/html, so it must be HTML)."""
    return render(request, BAD_ID, _bad_id_context(request), status=400)


def _options() -> dict[str, Any]:
    """What the page explains: the key's TTL is not just the 300 of ``@cached(300)``."""
    options = settings.CACHES["default"].get("OPTIONS", {})
    return {
        "stale": options.get("STALE_TIMEOUT", 0),
        "jitter_pct": round(100 * options.get("TIMEOUT_JITTER", 0)),
    }


def _context(user_id: int, user: Any, before: int, after: int, mode: str) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "row": user,
        "hit": before == after,
        "mode": mode,
        "key": cache.make_key(get_user.key(user_id)),
        "ttl": cache.ttl(get_user.key(user_id)),
        "loads": loads,
        **_options(),
    }


@require_http_methods(["GET", "POST"])
def user(request: HttpRequest) -> HttpResponse:
    """Show one user through the cache; POST drops the cached copy."""
    user_id = _user_id(request)
    if user_id is None:
        return _bad_id(request)
    if request.method == "POST":
        get_user.invalidate(user_id)
        return redirect(f"{request.path}?id={user_id}")
    before = loads["sync"]
    row = get_user(user_id)
    return render(
        request,
        "testproject/cache/user.html",
        _context(user_id, row, before, loads["sync"], "sync"),
    )


async def auser(request: HttpRequest) -> HttpResponse:
    """The same page from an async view (native redis.asyncio)."""
    raw = request.GET.get("id")
    if raw is None:  # like the sync view: the first user, not a hard-coded 1
        first = await get_user_model().objects.order_by("pk").values_list("pk", flat=True).afirst()
        raw = str(first or 1)
    # str.isdigit() accepts "²", which int() refuses: parse, do not pre-check.
    try:
        user_id = int(raw)
    except ValueError:
        user_id = 0
    if not 0 < user_id < 2**63:
        return await arender(request, BAD_ID, _bad_id_context(request), status=400)
    before = loads["async"]
    row = await aget_user(user_id)
    context = {
        "user_id": user_id,
        "row": row,
        "hit": before == loads["async"],
        "mode": "async",
        "key": cache.make_key(aget_user.key(user_id)),
        "ttl": await cache.attl(aget_user.key(user_id)),
        "loads": loads,
        **_options(),
    }
    return await arender(request, "testproject/cache/user.html", context)
