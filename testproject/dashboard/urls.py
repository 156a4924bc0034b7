"""URLs of the dashboard (mounted at the site root: it is the demo's home page)."""

from __future__ import annotations

from django.urls import URLPattern, path

from . import actions, views

urlpatterns: list[URLPattern] = [
    path("", views.index, name="home"),
    path("dashboard/stream/", views.stream, name="dashboard-stream"),
    path("dashboard/snapshot/", views.snapshot, name="dashboard-snapshot"),
    path("dashboard/probe/cache/", views.probe_cache, name="dashboard-probe-cache"),
    path("dashboard/probe/session/", views.probe_session, name="dashboard-probe-session"),
    path("dashboard/probe/ratelimit/", views.probe_ratelimit, name="dashboard-probe-ratelimit"),
    *(
        path(f"dashboard/try/{algorithm}/", view, name=f"dashboard-try-{algorithm}")
        for algorithm, view in views.try_views.items()
    ),
    path("dashboard/actions/stampede/", actions.stampede, name="dashboard-stampede"),
    path("dashboard/actions/clear/", actions.clear, name="dashboard-clear"),
    path("dashboard/actions/compare/", actions.compare, name="dashboard-compare"),
    path("dashboard/actions/send/", actions.send, name="dashboard-send"),
    path("dashboard/actions/lock/", actions.take_lock, name="dashboard-lock"),
    path("dashboard/actions/job/", actions.run_job, name="dashboard-job"),
    path("dashboard/actions/fault/", actions.fault, name="dashboard-fault"),
    path("dashboard/actions/doctor/", actions.run_doctor, name="dashboard-doctor"),
]
