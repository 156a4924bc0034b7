from __future__ import annotations

from django.apps import AppConfig


class RedisRolesConfig(AppConfig):
    name = "django_redisroles"
    verbose_name = "Redis roles"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        # The system checks only. Start-up imports no role package and no client
        # library (docs/architecture.md, "Start-up stays light"): connections
        # registers its reset with conf's one setting_changed receiver when it is
        # first imported, and there is no pool to drop before that.
        from . import checks

        checks.register_all()
