"""Settings for Django's own cache test suite run against RedisRolesCache.

Used by ``tests/cache/django_suite.py`` in a subprocess: Django's suite needs
its ``cache`` test app (from the Django sdist) installed, which the main test
settings do not have.
"""

from __future__ import annotations

import os

SECRET_KEY = "django-suite"
USE_TZ = False
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_redisroles",
    "cache",  # Django's tests/cache app, from the sdist on sys.path
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
REDISROLES = {"URL": os.environ["REDIS_URL"], "KEY_PREFIX": "suite"}
CACHES = {"default": {"BACKEND": "django_redisroles.cache.RedisRolesCache"}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
