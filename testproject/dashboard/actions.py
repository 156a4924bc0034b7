"""The dashboard's buttons: POST only, with the CSRF token, JSON answers.

Signed-in users may run the demos (stampede, clear, the algorithm race,
broadcast, take a lock); staff may start jobs and trigger failure modes
(``faults.py``: demo only).

The staff buttons must keep working while the sessions' Redis is the one
stopped or paused (starting it again is one of them), and who you are lives
in that session. So the page, rendered for a staff user, carries a signed
token (``staff_token()``) bound to that session: these views accept it with
the session's cookie, and ask the session store only whether the session
still exists (a session ended elsewhere no longer opens them); when the store
cannot answer, the token stands in for it.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.core import signing
from django.core.cache import caches
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST

from django_redisroles import conf
from django_redisroles.connections import get_redis
from django_redisroles.locks import Lock
from django_redisroles.pubsub import broadcast as publish
from django_redisroles.sessions import SessionUnavailable

from . import faults, jobs, race
from .sampler import get_sampler

GROUP = "notifications"  # the demo's replay group (testproject.consumers_pubsub)
STAMPEDE_CALLERS = 50
STAMPEDE_LOAD_SECONDS = 0.25
MAX_BURST = 300  # more than the group keeps for replay (200): enough to see a gap


def _deny(status: int, error: str) -> JsonResponse:
    return JsonResponse({"error": error}, status=status)


def signed_in(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if not request.user.is_authenticated:
            return _deny(403, "sign in first (demo / demo)")
        return view(request, *args, **kwargs)

    return require_POST(wrapper)


STAFF_SALT = "testproject.dashboard.staff"
STAFF_TOKEN_SECONDS = 12 * 3600


def _digest(session_key: str) -> str:
    return hashlib.sha256(session_key.encode()).hexdigest()[:32]


def staff_token(request: HttpRequest) -> str:
    """The token a staff user's page carries for the staff buttons (bound to its session)."""
    key = request.session.session_key or ""
    return signing.dumps({"u": request.user.pk, "k": _digest(key)}, salt=STAFF_SALT)


def _staff_error(request: HttpRequest) -> str | None:
    """Why this request may not press a staff button, or None."""
    try:
        token = signing.loads(
            request.POST.get("token", ""), salt=STAFF_SALT, max_age=STAFF_TOKEN_SECONDS
        )
    except signing.BadSignature:
        return "staff only (reload the page if it is older than 12 hours)"
    key = request.COOKIES.get(settings.SESSION_COOKIE_NAME, "")
    if not key or token.get("k") != _digest(key):
        return "staff only: this token belongs to another session"
    try:
        if not request.session.exists(key):
            return "your session has ended: log in again"
    except SessionUnavailable:
        pass  # the store cannot say; the token was issued to this very session
    return None


def staff_only(view: Callable[..., Any]) -> Callable[..., Any]:
    """POST with the CSRF token, the staff token and its session's cookie (see above)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        error = _staff_error(request)
        if error is not None:
            return _deny(403, error)
        return view(request, *args, **kwargs)

    return require_POST(wrapper)


# -- cache -----------------------------------------------------------------------


def _run_together(n: int, target: Callable[[], Any]) -> float:
    """Run ``target`` in ``n`` threads released at once; seconds until the last one ends."""
    barrier = threading.Barrier(n)

    def run() -> None:
        barrier.wait()
        try:
            target()
        finally:
            caches.close_all()

    threads = [threading.Thread(target=run) for _ in range(n)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return round(time.perf_counter() - started, 3)


@signed_in
def stampede(request: HttpRequest) -> JsonResponse:
    """50 callers miss one key at once: ``get_or_set`` loads once, plain cache-aside 50 times."""
    loads = {"protected": 0, "plain": 0}
    lock = threading.Lock()

    def load(kind: str) -> str:
        time.sleep(STAMPEDE_LOAD_SECONDS)  # the slow query a cache is for
        with lock:
            loads[kind] += 1
        return "report"

    key = f"dashboard:stampede:{uuid.uuid4().hex[:8]}"

    def protected() -> None:
        caches["default"].get_or_set(key, lambda: load("protected"), 60)

    def plain() -> None:  # the classic get / compute / set
        cache = caches["default"]
        if cache.get(key + ":plain") is None:
            cache.set(key + ":plain", load("plain"), 60)

    protected_s = _run_together(STAMPEDE_CALLERS, protected)
    plain_s = _run_together(STAMPEDE_CALLERS, plain)
    return JsonResponse(
        {
            "callers": STAMPEDE_CALLERS,
            "protected": {"loads": loads["protected"], "seconds": protected_s},
            "plain": {"loads": loads["plain"], "seconds": plain_s},
        }
    )


def _keys_per_role() -> dict[str, int | None]:
    counts: dict[str, int | None] = {}
    for role in conf.ROLES:
        try:
            client = get_redis(role)
            counts[role] = sum(1 for _ in client.scan_iter(conf.make_key(role) + ":*", count=1000))
        except redis.RedisError:
            counts[role] = None
    return counts


@signed_in
def clear(request: HttpRequest) -> JsonResponse:
    """``cache.clear()``, with every role's key count before and after."""
    before = _keys_per_role()
    removed = caches["default"].clear()
    after = _keys_per_role()
    return JsonResponse({"removed": removed, "before": before, "after": after})


# -- rate limiting ---------------------------------------------------------------


@signed_in
def compare(request: HttpRequest) -> JsonResponse:
    """Fixed vs sliding vs GCRA at a window boundary (``race.py``; about 6 s)."""
    from asgiref.sync import async_to_sync

    return JsonResponse(async_to_sync(race.run)())


# -- pub/sub ---------------------------------------------------------------------


# Open to anyone, like the /pubsub/ page's form: it does not read the session, so
# while Redis is down the answer is broadcast()'s own failure, not a sessions 503.
@require_POST
def send(request: HttpRequest) -> JsonResponse:
    """Broadcast to the replay group; ``count`` > 1 sends a numbered burst."""
    text = (request.POST.get("text") or "").strip()[:200]
    if not text:
        return _deny(400, "empty message")
    try:
        count = min(max(int(request.POST.get("count") or 1), 1), MAX_BURST)
    except ValueError:
        return _deny(400, "count must be a whole number")
    host = request.get_host()
    sent, seq = 0, None
    try:
        for n in range(count):
            body = {"text": text if count == 1 else f"{text} #{n + 1}", "from": host}
            seq = publish(GROUP, {"type": "notify", "message": {**body, "at": time.time()}})
            sent += 1
    except redis.RedisError as exc:
        # broadcast() raises when Redis cannot take the message: the sender knows.
        return JsonResponse(
            {"sent": sent, "error": f"not sent: {type(exc).__name__}: {exc}"}, status=503
        )
    return JsonResponse({"sent": sent, "seq": seq})


# -- locks -----------------------------------------------------------------------

DEMO_LOCK, DEMO_TTL = "demo-page", 15  # the locks page's lock (testproject.views_locks)


@require_POST  # like the /locks/ page's button (and, as send(), without the session)
def take_lock(request: HttpRequest) -> JsonResponse:
    lock = Lock(DEMO_LOCK, ttl=DEMO_TTL, renew=False)
    try:
        if lock.acquire():
            return JsonResponse({"taken": True, "fence": lock.fence, "ttl": DEMO_TTL})
    except redis.RedisError as exc:
        return JsonResponse(
            {"taken": False, "error": f"no lock: {type(exc).__name__}: {exc}"}, status=503
        )
    # Not who holds it (host, pid: for signed-in users, and asking who you are needs the
    # session): only for how long.
    left = lock.holder.expires_in if lock.holder else None
    lease = f"; its lease ends in {left:.0f} s" if left is not None else ""
    return JsonResponse({"taken": False, "error": f"already held{lease}"}, status=409)


@staff_only
def run_job(request: HttpRequest) -> JsonResponse:
    run = jobs.start(duration=20)
    return JsonResponse({"started": run.describe()})


# -- failure modes (demo only) -----------------------------------------------------


@staff_only
def fault(request: HttpRequest) -> JsonResponse:
    """Pause, stop or start a Redis server (``faults.py``)."""
    if not faults.enabled():
        return _deny(403, "failure modes are off (DEBUG is off; set DEMO_FAULTS = True)")
    action, label = request.POST.get("action"), request.POST.get("server", "")
    try:
        if action == "pause":
            until = faults.pause(label, float(request.POST.get("seconds") or 10))
            return JsonResponse({"paused_until": until})
        if action in ("stop", "start"):
            getattr(faults, action)(label)
            return JsonResponse({"done": action})
        if action == "drop":
            dropped = faults.drop_subscribers(label)
            # Sent while the subscribers reconnect: Pub/Sub loses them, replay brings them back.
            for n in (1, 2, 3):
                message = {"text": f"sent during the cut #{n}", "from": request.get_host()}
                publish(GROUP, {"type": "notify", "message": {**message, "at": time.time()}})
            return JsonResponse({"dropped": dropped, "sent": 3})
    except faults.NotOurs as exc:
        return _deny(404, str(exc))  # not a server this demo can stop: say why
    except KeyError:
        return _deny(404, f"no such server here: {label!r}")
    except ValueError:
        return _deny(400, "seconds must be a number")
    except (redis.RedisError, RuntimeError) as exc:
        return _deny(503, f"{type(exc).__name__}: {exc}")
    return _deny(400, "action must be pause, drop, stop or start")


@signed_in
def run_doctor(request: HttpRequest) -> JsonResponse:
    get_sampler().run_doctor_now()
    return JsonResponse({"scheduled": True})
