"""Demo views of the cache role."""

from __future__ import annotations

from django.urls import URLPattern

#: (title, url name) pairs listed on the home page.
DEMO_LINKS: list[tuple[str, str]] = []

urlpatterns: list[URLPattern] = []
