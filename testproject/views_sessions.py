"""Demo views of the sessions role: "your sessions", log out other devices / everywhere."""

from __future__ import annotations

from datetime import datetime, timedelta

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.timesince import timesince
from django.views.decorators.http import require_POST

from django_redisroles.sessions import auser_sessions, logout_everywhere, user_sessions
from django_redisroles.sessions import options as sessions_options


def _ago(when: datetime | None) -> str:
    """ "just now" / "5 minutes ago": timesince alone says "0 minutes" for a fresh login."""
    if when is None:
        return "—"
    if timezone.now() - when < timedelta(minutes=1):
        return "just now"
    return f"{timesince(when)} ago"


@login_required
def session_list(request: HttpRequest) -> HttpResponse:
    """The signed-in user's live sessions: device, IP, last seen."""
    sessions = user_sessions(request.user)
    return render(
        request,
        "testproject/sessions/list.html",
        {
            "rows": [(s, _ago(s.last_seen)) for s in sessions],
            "current": request.session.session_key,
            "index_refresh": sessions_options.OPTIONS.get().index_refresh,
        },
    )


@login_required
@require_POST
def logout_others(request: HttpRequest) -> HttpResponse:
    """End every session of this user but the current one."""
    ended = logout_everywhere(request.user, keep=request.session.session_key)
    messages.success(request, f"Logged out {ended} other session(s).")
    return redirect("sessions-list")


@login_required
@require_POST
def logout_all(request: HttpRequest) -> HttpResponse:
    """End every session of this user, this one included."""
    user = request.user
    ended = logout_everywhere(user, keep=request.session.session_key)
    logout(request)  # this one last, through Django (signals, cookie)
    # Said on the login page (the message outlives the flushed session: messages
    # are kept in a cookie first).
    messages.success(request, f"Logged out everywhere: this browser and {ended} other session(s).")
    return redirect("login")


async def session_list_json(request: HttpRequest) -> HttpResponse:
    """The same list from an async view: session load and index read on redis.asyncio."""
    auser = getattr(request, "auser", None)  # Django 5.0+
    if auser is not None:
        user = await auser()
    else:  # Django 4.2: the lazy user loads the session synchronously
        user = await sync_to_async(lambda: request.user._setup() or request.user._wrapped)()
    if not user.is_authenticated:
        return JsonResponse({"error": "login required"}, status=401)
    sessions = await auser_sessions(user)
    # The session key itself is never echoed back: it is the login cookie, which
    # is HttpOnly so that page scripts cannot read it; a JSON body would undo that.
    return JsonResponse(
        {
            "sessions": [
                {
                    "device": s.device,
                    "ip": s.ip,
                    "created": s.created.isoformat() if s.created else None,
                    "last_seen": s.last_seen.isoformat() if s.last_seen else None,
                    "expires": s.expires.isoformat(),
                    "current": s.session_key == request.session.session_key,
                }
                for s in sessions
            ],
        }
    )
