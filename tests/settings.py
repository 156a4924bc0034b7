"""The test suite's own settings: the five roles wired with the library's defaults.

Not the demo's (testproject/settings.py): no KEY_PREFIX (the default ``rr``),
no cache jitter or stale window, no rate-limit rules, no replay groups. A test
of the demo (its pages, its checks, its values) asks for them explicitly with
the ``demo_settings`` fixture (tests/conftest.py); a role test sets what it
needs itself (``settings``/``override_settings``).

The demo's apps are installed so that its views, templates and commands can
be tested in process; its URLconf is the default one, and it reads no demo
value at import time. $REDIS_URL is set by tests/conftest.py to a server it
started itself: every role's default URL.
"""

from __future__ import annotations

SECRET_KEY = "redisroles-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_redisroles",
    # The demo's apps: its views, templates and management commands (demo tests).
    "testproject",
    "testproject.dashboard",
]

# Every role on $REDIS_URL, every setting at its default (an empty dict per role, so
# a test can set one role's key with settings.REDISROLES["ROLES"][role][...]).
REDISROLES: dict[str, object] = {
    "ROLES": {role: {} for role in ("cache", "sessions", "ratelimit", "pubsub", "locks")}
}

CACHES = {"default": {"BACKEND": "django_redisroles.cache.RedisRolesCache"}}
SESSION_ENGINE = "django_redisroles.sessions"
CHANNEL_LAYERS = {"default": {"BACKEND": "django_redisroles.pubsub.RedisRolesChannelLayer"}}

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django_redisroles.sessions.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication, so rules can key on the user (redisroles.W033).
    "django_redisroles.ratelimit.RateLimitMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "testproject.urls"
ASGI_APPLICATION = "testproject.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
STATIC_URL = "static/"
