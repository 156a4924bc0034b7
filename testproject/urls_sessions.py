"""Demo views of the sessions role."""

from __future__ import annotations

from django.urls import URLPattern, path

from . import views_sessions

#: (title, url name) pairs listed on the home page.
DEMO_LINKS: list[tuple[str, str]] = [
    ("Log in", "login"),
    ("Your sessions", "sessions-list"),
    ("… as JSON (async view)", "sessions-json"),
]

urlpatterns: list[URLPattern] = [
    path("", views_sessions.session_list, name="sessions-list"),
    path("logout-others/", views_sessions.logout_others, name="sessions-logout-others"),
    path("api/", views_sessions.session_list_json, name="sessions-json"),
    path("logout-all/", views_sessions.logout_all, name="sessions-logout-all"),
]
