"""Demo views of the locks role."""

from __future__ import annotations

from django.urls import URLPattern, path

from . import views_locks

app_name = "locks"

#: (title, url name) pairs listed on the home page.
DEMO_LINKS: list[tuple[str, str]] = [("Held locks, and one to take", "locks:index")]

urlpatterns: list[URLPattern] = [
    path("", views_locks.index, name="index"),
]
