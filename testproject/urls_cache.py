"""Demo views of the cache role."""

from __future__ import annotations

from django.urls import URLPattern, path

from . import views_cache
from .views import members_only

#: (title, url name) pairs listed on the home page.
DEMO_LINKS: list[tuple[str, str]] = [
    ("Cached user (cache-aside getUser)", "cache-user"),
    ("Same, async view", "cache-user-async"),
]

urlpatterns: list[URLPattern] = [
    path("user/", members_only(views_cache.user), name="cache-user"),
    path("user/async/", members_only(views_cache.auser), name="cache-user-async"),
]
