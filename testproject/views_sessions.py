"""Demo views of the sessions role: "your sessions", log out other devices / everywhere."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from django_redisroles.sessions import logout_everywhere, user_sessions


@login_required
def session_list(request: HttpRequest) -> HttpResponse:
    """The signed-in user's live sessions: device, IP, last seen."""
    sessions = user_sessions(request.user)
    return render(
        request,
        "testproject/sessions/list.html",
        {"sessions": sessions, "current": request.session.session_key},
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
    logout_everywhere(user, keep=request.session.session_key)
    logout(request)  # this one last, through Django (signals, cookie)
    return redirect("login")
