"""URLs of the demo: the home page plus one module of demo views per role."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("", include("testproject.dashboard.urls")),  # the dashboard is the home page
    path("pages/", views.home, name="pages"),  # every role's demo pages, as a list
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("cache/", include("testproject.urls_cache")),
    path("sessions/", include("testproject.urls_sessions")),
    path("ratelimit/", include("testproject.urls_ratelimit")),
    path("pubsub/", include("testproject.urls_pubsub")),
    path("locks/", include("testproject.urls_locks")),
]
