"""Demo views of the locks role."""

from __future__ import annotations

from django.urls import URLPattern, path

from . import views_locks
from .views import members_only

app_name = "locks"

#: (title, url name) pairs listed on the home page.
DEMO_LINKS: list[tuple[str, str]] = [("Held locks, and one to take", "locks:index")]

urlpatterns: list[URLPattern] = [
    # Lock holders' host, pid and command line: for logged-in users only.
    path("", members_only(views_locks.index), name="index"),
]
