"""The dashboard app: listens to the rate limiter's ``ratelimited`` signal."""

from __future__ import annotations

import time
from typing import Any

from django.apps import AppConfig


def _on_ratelimited(sender: Any, request: Any, result: Any, **kwargs: Any) -> None:
    from django_redisroles.ratelimit.options import OPTIONS

    from .sampler import refusals

    default = OPTIONS.get().algorithm
    over = [r for r in result.results if not r.allowed]
    refusals.append(
        {
            "at": time.time(),
            "path": request.path,
            "policies": [r.policy.name for r in over],
            "algorithms": [r.policy.algorithm or default for r in over],
            "retry_after": round(result.retry_after, 1),
            "refused": result.blocked,
            "failed": result.failed,
        }
    )


class DashboardConfig(AppConfig):
    name = "testproject.dashboard"
    label = "dashboard"

    def ready(self) -> None:
        from django_redisroles.ratelimit import ratelimited

        ratelimited.connect(_on_ratelimited, dispatch_uid="dashboard-refusals")
