"""Test settings: the testproject's wiring, an in-memory database.

$REDIS_URL is set by tests/conftest.py to a redis-server it started itself.
"""

from testproject.settings import *  # noqa: F403

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
