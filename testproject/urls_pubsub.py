"""Demo views of the pubsub role."""

from __future__ import annotations

from django.urls import URLPattern, path

from . import views_pubsub

#: (title, url name) pairs listed on the home page.
DEMO_LINKS: list[tuple[str, str]] = [("Live notifications", "pubsub-notifications")]

urlpatterns: list[URLPattern] = [
    path("", views_pubsub.notifications, name="pubsub-notifications"),
]
