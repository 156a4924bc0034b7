"""The dashboard: the page, its live feed (server-sent events), and the probes.

The page (``index``) opens ``stream``, which sends the sampler's latest
snapshot every second as a server-sent event (one ``EventSource`` in the
browser, no WebSocket needed, works through any proxy; on the event loop under
ASGI), and ends the feed with a ``logout`` event when the viewer's session is
ended elsewhere ("log out everywhere"). The probes are small requests the page
makes every few seconds so each panel shows what a real request gets from its
role right now, outages included.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render

from django_redisroles import conf
from django_redisroles.cache import cached
from django_redisroles.ratelimit import parse_rate, rate_limit
from django_redisroles.sessions import SessionUnavailable

from . import faults, jobs
from .actions import staff_token
from .sampler import get_sampler, server_label

TITLES = {
    "cache": "Cache",
    "sessions": "Sessions",
    "ratelimit": "Rate limiting",
    "pubsub": "Pub/Sub",
    "locks": "Locks",
}

#: What each role does when its Redis is unreachable (the README's promises).
POLICIES = {
    "cache": "reads are misses, writes are dropped: the app keeps serving, from the database",
    "sessions": "503 with Retry-After; nobody is logged out, no session is lost",
    "ratelimit": "fail open (requests go through; fail='closed' rules answer 503)",
    "pubsub": "broadcast() raises (nothing is queued); subscribers reconnect and replay",
    "locks": "no lock is taken: @command_lock commands refuse to run",
}

STREAM_SECONDS = 300  # a feed ends after this; EventSource reconnects by itself
SESSION_CHECK_EVERY = 2.0  # seconds between two checks that the viewer's session still exists


@dataclass(frozen=True)
class Viewer:
    pk: Any
    username: str
    authenticated: bool
    staff: bool
    session_key: str | None


def _viewer(request: HttpRequest, user: Any) -> Viewer:
    return Viewer(
        pk=user.pk if user.is_authenticated else None,
        username=user.get_username() if user.is_authenticated else "",
        authenticated=bool(user.is_authenticated),
        staff=bool(user.is_authenticated and user.is_staff),
        session_key=request.session.session_key,
    )


async def _aviewer(request: HttpRequest) -> Viewer:
    auser = getattr(request, "auser", None)  # Django 5.0+
    if auser is not None:
        user = await auser()
    else:  # Django 4.2: the lazy user loads the session synchronously
        user = await sync_to_async(lambda: request.user._setup() or request.user._wrapped)()
    return _viewer(request, user)


def instances(request: HttpRequest) -> list[dict[str, Any]]:
    """The demo's app instances (``$DEMO_INSTANCES``, set by ``testproject.demo``)."""
    here = request.get_host()
    urls = [u for u in os.environ.get("DEMO_INSTANCES", "").split(",") if u]
    return [{"url": u, "current": u.rstrip("/").endswith(here)} for u in urls]


def index(request: HttpRequest) -> HttpResponse:
    """The dashboard: one panel per role, the Redis servers, the failure modes."""
    roles = []
    for role in conf.ROLES:
        module = importlib.import_module(f"testproject.urls_{role}")
        url = conf.role_url(role)
        roles.append(
            {
                "name": role,
                "title": TITLES[role],
                "server": server_label(url),
                "url": conf.mask_url(url),
                # "Log in" only for a visitor who is not signed in yet.
                "links": [
                    (title, name)
                    for title, name in module.DEMO_LINKS
                    if not (name == "login" and request.user.is_authenticated)
                ],
                "policy": POLICIES[role],
            }
        )
    context = {
        "roles": roles,
        "instances": instances(request),
        "pid": os.getpid(),
        "faults_enabled": faults.enabled(),
        "staff_token": staff_token(request) if request.user.is_staff else "",
        "try_rate": TRY_RATE,
        "try_limit": TRY.limit,
        "try_period": TRY.period,
    }
    return render(request, "dashboard/index.html", context)


# -- the live feed ---------------------------------------------------------------


def _session_row(s: Any, viewer: Viewer) -> dict[str, Any]:
    # Never the session key: it is the login cookie, HttpOnly so scripts cannot read it.
    return {
        "device": s.device,
        "ip": s.ip,
        "created": s.created.timestamp() if s.created else None,
        "last_seen": s.last_seen.timestamp() if s.last_seen else None,
        "expires": s.expires.timestamp(),
        "current": s.session_key == viewer.session_key,
    }


def frame(viewer: Viewer, *, full: bool) -> dict[str, Any]:
    """One update of the page, as this viewer may see it."""
    sampler = get_sampler()
    snap = sampler.snapshot()
    sources = snap["sources"]
    sessions = dict(sources["sessions"])
    if sessions["data"] is not None:
        data = sessions["data"]
        mine = data["per_user"].get(viewer.pk, {}).get("sessions", []) if viewer.pk else []
        sessions["data"] = {
            "total": data["total"],
            "users": data["users"],
            "mine": [_session_row(s, viewer) for s in mine],
        }
    locks = dict(sources["locks"])
    if locks["data"] is not None and not viewer.authenticated:
        # Who holds a lock (host, pid, command line) is for signed-in users only.
        hidden = ("host", "pid", "cmd")
        held = locks["data"]["locks"]
        shown = [{k: v for k, v in lock.items() if k not in hidden} for lock in held]
        locks["data"] = {**locks["data"], "locks": shown}
    out = {
        "seq": snap["seq"],
        "time": snap["time"],
        "viewer": {
            "username": viewer.username,
            "authenticated": viewer.authenticated,
            "staff": viewer.staff,
        },
        "cache": sources["cache"],
        "sessions": sessions,
        "ratelimit": sources["ratelimit"],
        "pubsub": sources["pubsub"],
        "locks": locks,
        "instances": sources["instances"],
        "doctor": sources["doctor"],
        "faults": {"enabled": faults.enabled(), "servers": faults.describe()},
        "jobs": jobs.describe(),  # in this process: shown whatever Redis does
        "charts": sampler.charts(None if full else 1),
        "full": full,
    }
    return out


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, default=str)}\n\n"


class Feed:
    """One viewer's events: a ``frame`` per sampler reading, ``logout`` if the session ends.

    Async under ASGI (the event loop serves any number of feeds); a plain
    generator under WSGI (``runserver`` without daphne), holding a worker thread.
    """

    def __init__(self, request: HttpRequest, viewer: Viewer) -> None:
        self.request = request
        self.viewer = viewer
        self.sampler = get_sampler()
        self.last_seq = self.sampler.seq
        self.ends = time.monotonic() + STREAM_SECONDS

    def first(self) -> list[str]:
        return ["retry: 2000\n\n", _event("frame", frame(self.viewer, full=True))]

    def newer(self) -> str | None:
        """The next frame, if the sampler has read since the last one."""
        if self.sampler.seq == self.last_seq:
            return None
        self.last_seq = self.sampler.seq
        return _event("frame", frame(self.viewer, full=False))

    def logout(self) -> str:
        return _event("logout", {"username": self.viewer.username})

    def _session_key(self) -> str | None:
        return self.viewer.session_key if self.viewer.authenticated else None

    async def aevents(self) -> AsyncIterator[str]:
        for event in self.first():
            yield event
        check: asyncio.Task[bool] | None = None
        last_check = time.monotonic()
        try:
            while time.monotonic() < self.ends:
                await asyncio.sleep(0.1)
                # The session check runs beside the frames: a Redis that hangs must
                # not hold the other panels back.
                key = self._session_key()
                if key and check is None and time.monotonic() - last_check >= SESSION_CHECK_EVERY:
                    check = asyncio.ensure_future(self.request.session.aexists(key))
                if check is not None and check.done():
                    last_check = time.monotonic()
                    done, check = check, None
                    # An error (SessionUnavailable: Redis down) is "unknown", not "logged out".
                    if not done.exception() and done.result() is False:
                        yield self.logout()
                        return
                event = self.newer()
                if event:
                    yield event
        finally:
            if check is not None:
                check.cancel()

    def events(self) -> Iterator[str]:
        yield from self.first()
        last_check = time.monotonic()
        while time.monotonic() < self.ends:
            time.sleep(0.1)
            key = self._session_key()
            if key and time.monotonic() - last_check >= SESSION_CHECK_EVERY:
                last_check = time.monotonic()
                try:
                    if not self.request.session.exists(key):
                        yield self.logout()
                        return
                except SessionUnavailable:
                    pass  # unknown, not "logged out"
            event = self.newer()
            if event:
                yield event


def stream(request: HttpRequest) -> StreamingHttpResponse:
    """Server-sent events: ``frame`` every second, ``logout`` when the session is ended."""
    feed = Feed(request, _viewer(request, request.user))
    events = feed.aevents() if isinstance(request, ASGIRequest) else feed.events()
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy must not hold the events back
    return response


async def snapshot(request: HttpRequest) -> JsonResponse:
    """What one event of the feed carries, as JSON (readable in a browser too)."""
    viewer = await _aviewer(request)
    return JsonResponse(frame(viewer, full=False), json_dumps_params={"default": str})


# -- probes: what a real request gets from each role right now ---------------------

_probe = threading.local()


def _off_the_request_thread(view: Any) -> Any:
    """An async view running the sync ``view`` in a thread of its own (GET only).

    Under ASGI, Django runs every sync view in ONE thread (``thread_sensitive``): while
    Redis hangs, one probe waiting out its timeouts (2 s x 3) held up the next, and a
    probe could start only after the pause was over, showing nothing of it. Each
    probe shows what its own request got, as it would in a threaded WSGI server.
    """

    async def probe(request: HttpRequest) -> HttpResponse:
        if request.method != "GET":
            return HttpResponse(status=405, headers={"Allow": "GET"})
        response: HttpResponse = await sync_to_async(view, thread_sensitive=False)(request)
        return response

    probe.__name__ = probe.__qualname__ = view.__name__
    probe.__doc__ = view.__doc__
    return probe


@cached(5, key="dashboard:probe")
def _probe_value() -> float:
    _probe.loaded = True  # this call missed and ran the loader
    return time.time()


@_off_the_request_thread
def probe_cache(request: HttpRequest) -> JsonResponse:
    """A ``@cached`` read: a hit, a miss (every 5 s), or an outage answered as a miss."""
    outages = cache.stats().outages
    _probe.loaded = False
    started = time.perf_counter()
    value = _probe_value()
    ms = round((time.perf_counter() - started) * 1000, 1)
    outage = cache.stats().outages > outages
    return JsonResponse(
        {"hit": not _probe.loaded, "outage": outage, "ms": ms, "age": round(time.time() - value, 1)}
    )


@_off_the_request_thread
def probe_session(request: HttpRequest) -> JsonResponse:
    """Touch the session (a write): 503 from SessionMiddleware while its Redis is down."""
    if not request.user.is_authenticated:
        return JsonResponse({"user": None})
    visits = request.session.get("dashboard_visits", 0) + 1
    request.session["dashboard_visits"] = visits
    return JsonResponse({"user": request.user.get_username(), "visits": visits})


@_off_the_request_thread
# Keyed on the address, not the user: the user lives in the session, and this probe
# shows the limiter alone (a sessions outage would turn it into a 503).
@rate_limit("600/m", key="ip", block=False, group="dashboard-probe", name="probe")
def probe_ratelimit(request: HttpRequest) -> JsonResponse:
    """Counted by the limiter; ``failed``: Redis could not be asked and the request went through."""
    result = request.ratelimit  # type: ignore[attr-defined]
    return JsonResponse({"failed": result.failed, "remaining": result.remaining})


# -- "try it": one endpoint per algorithm, small enough to hit 429 by hand -------

#: Small enough to hit a 429 by hand. ``$DEMO_TRY_RATE`` sets another (the browser
#: tests use 5/60s: a slower refill than any loaded machine's clicks).
TRY_RATE = os.environ.get("DEMO_TRY_RATE") or "5/20s"
TRY = parse_rate(TRY_RATE)


def _try_view(algorithm: str) -> Any:
    @rate_limit(TRY_RATE, key="ip", algorithm=algorithm, group=f"dashboard-try-{algorithm}")
    def view(request: HttpRequest) -> JsonResponse:
        result = request.ratelimit  # type: ignore[attr-defined]
        return JsonResponse(
            {
                "ok": True,
                "algorithm": algorithm,
                "rate": TRY_RATE,
                "remaining": result.remaining,
                "failed": result.failed,
            }
        )

    view.__name__ = view.__qualname__ = f"try_{algorithm}"
    return view


try_views = {algorithm: _try_view(algorithm) for algorithm in ("fixed", "sliding", "gcra")}
