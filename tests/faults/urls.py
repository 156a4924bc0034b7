"""Views that use the request-facing roles, as a project's views would (sync and async).

``ROOT_URLCONF = "tests.faults.urls"`` in the fault tests: what a user sees
is the status code and the body of these.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth import authenticate, login
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from django_redisroles.ratelimit import rate_limit

try:
    from django.contrib.auth import aauthenticate, alogin
except ImportError:  # Django 4.2
    aauthenticate = sync_to_async(authenticate)
    alogin = sync_to_async(login)

#: Calls of the cache view's loader (per process).
LOADS = {"n": 0}


def _load() -> str:
    LOADS["n"] += 1
    return "computed"


def cache_view(request: HttpRequest) -> HttpResponse:
    """Read a key set before the fault, write one, count, and get_or_set a missing one."""
    # incr first: under an outage the first call starts OUTAGE_BACKOFF and the
    # others answer at once; the increment is the one whose duplicates count.
    return JsonResponse(
        {
            "incr": cache.incr("counter") if "incr" in request.GET else "skipped",
            "get": cache.get("kept", "miss"),
            "set": cache.set("written", "v", 60),
            "get_or_set": cache.get_or_set("missing", _load, 60),
        }
    )


async def acache_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse(
        {
            "incr": await cache.aincr("counter") if "incr" in request.GET else "skipped",
            "get": await cache.aget("kept", "miss"),
            "set": await cache.aset("written", "v", 60),
            "get_or_set": await cache.aget_or_set("missing", _load, 60),
        }
    )


def warm(request: HttpRequest) -> HttpResponse:
    """One cache read: opens the role's connection, as in a process that has been serving."""
    return JsonResponse({"warm": cache.get("warm", "miss")})


async def awarm(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"warm": await cache.aget("warm", "miss")})


def session_read(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"n": request.session.get("n", 0), "user": request.user.get_username()})


def session_write(request: HttpRequest) -> HttpResponse:
    request.session["n"] = request.session.get("n", 0) + 1
    return JsonResponse({"n": request.session["n"]})


async def asession_read(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"n": await _aget(request.session, "n", 0)})


async def asession_write(request: HttpRequest) -> HttpResponse:
    n = await _aget(request.session, "n", 0) + 1
    await request.session.aset("n", n)
    return JsonResponse({"n": n})


async def _aget(session: Any, key: str, default: Any) -> Any:
    return await session.aget(key, default)


def login_view(request: HttpRequest) -> HttpResponse:
    user = authenticate(
        request, username=request.POST["username"], password=request.POST["password"]
    )
    if user is None:
        return HttpResponse("bad credentials", status=400)
    login(request, user)
    return HttpResponse("logged in")


async def alogin_view(request: HttpRequest) -> HttpResponse:
    user = await aauthenticate(
        request, username=request.POST["username"], password=request.POST["password"]
    )
    if user is None:
        return HttpResponse("bad credentials", status=400)
    await alogin(request, user)
    return HttpResponse("logged in")


@rate_limit("100/m", key="ip", algorithm="fixed")
def limited_open(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"failed": request.ratelimit.failed})


@rate_limit("100/m", key="ip", algorithm="fixed", fail="closed")
def limited_closed(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"failed": request.ratelimit.failed})


@rate_limit("100/m", key="ip", algorithm="fixed")
async def alimited_open(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"failed": request.ratelimit.failed})


@rate_limit("100/m", key="ip", algorithm="fixed", fail="closed")
async def alimited_closed(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"failed": request.ratelimit.failed})


urlpatterns = [
    path("warm/", warm),
    path("awarm/", awarm),
    path("cache/", cache_view),
    path("acache/", acache_view),
    path("session/", session_read),
    path("session/write/", session_write),
    path("asession/", asession_read),
    path("asession/write/", asession_write),
    path("login/", login_view),
    path("alogin/", alogin_view),
    path("limited/open/", limited_open),
    path("limited/closed/", limited_closed),
    path("alimited/open/", alimited_open),
    path("alimited/closed/", alimited_closed),
]
