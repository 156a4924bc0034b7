from __future__ import annotations

from django.apps import AppConfig


class RedisRolesConfig(AppConfig):
    name = "django_redisroles"
    verbose_name = "Redis roles"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        # Imported for their side effects: the setting_changed receiver that
        # drops pools, and the system checks.
        from . import checks, connections  # noqa: F401

        checks.register_all()
