"""Demo views of the sessions role."""

from __future__ import annotations

from django.urls import URLPattern

#: (title, url name) pairs listed on the home page.
DEMO_LINKS: list[tuple[str, str]] = []

urlpatterns: list[URLPattern] = []
