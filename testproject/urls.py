"""URLs of the demo: the home page plus one module of demo views per role."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("cache/", include("testproject.urls_cache")),
    path("sessions/", include("testproject.urls_sessions")),
    path("ratelimit/", include("testproject.urls_ratelimit")),
    path("pubsub/", include("testproject.urls_pubsub")),
    path("locks/", include("testproject.urls_locks")),
]
