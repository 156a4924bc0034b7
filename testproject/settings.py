"""Settings of the demo/test project: all five roles wired from REDISROLES.

Redis comes from $REDIS_URL (the demo and the test suite start a throwaway
redis-server and set it); each role can be moved to its own instance with
$REDIS_CACHE_URL, $REDIS_SESSIONS_URL, ... without touching code.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
# A known key only in the demo's own DEBUG mode; anything else must bring its own.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or ("redisroles-demo-not-secret" if DEBUG else "")
if not SECRET_KEY:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("DJANGO_DEBUG=0 needs DJANGO_SECRET_KEY (a long random string).")
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_redisroles",
    "testproject",
    "testproject.dashboard",  # the demo's home page: every role live (testproject/dashboard/)
]
# With daphne installed (the test extra), `manage.py runserver` serves the ASGI
# application, WebSockets included; the demo extra does not install it (the demo
# serves with uvicorn), and then runserver is Django's WSGI one.
if importlib.util.find_spec("daphne") and not os.environ.get("REDISROLES_NO_DAPHNE"):
    INSTALLED_APPS.insert(0, "daphne")

# --- redisroles: one instance by default, any role movable by settings ---------
REDISROLES = {
    "KEY_PREFIX": "demo",
    "ROLES": {
        # Each role may get its own URL: $REDIS_<ROLE>_URL when set.
        role: (
            {"URL": os.environ[f"REDIS_{role.upper()}_URL"]}
            if os.environ.get(f"REDIS_{role.upper()}_URL")
            else {}
        )
        for role in ("cache", "sessions", "ratelimit", "pubsub", "locks")
    },
}

# --- role: cache ----------------------------------------------------------------
# LOCATION defaults to the cache role's URL (and its pooled connections);
# KEY_PREFIX defaults to "<REDISROLES KEY_PREFIX>:cache" ("demo:cache"), the
# namespace clear() is limited to. Every key gets a TTL.
CACHES = {
    "default": {
        "BACKEND": "django_redisroles.cache.RedisRolesCache",
        "TIMEOUT": 300,
        "OPTIONS": {
            "TIMEOUT_JITTER": 0.1,  # keys written together do not expire together
            "STALE_TIMEOUT": 30,  # serve a just-expired value while one caller refreshes it
        },
    }
}

# --- role: sessions -------------------------------------------------------------
SESSION_ENGINE = "django_redisroles.sessions"
# The demo runs every role on one throwaway redis-server (noeviction): the
# "sessions share a server with the cache" warning is known and accepted here.
# A production settings file gives sessions their own instance instead.
SILENCED_SYSTEM_CHECKS = [*globals().get("SILENCED_SYSTEM_CHECKS", []), "redisroles.W021"]

# --- role: ratelimit -----------------------------------------------------------
# Rules for RateLimitMiddleware (added to MIDDLEWARE below); per-view limits
# are @rate_limit decorators in testproject/urls_ratelimit.py.
REDISROLES["ROLES"]["ratelimit"].update(
    {
        "RULES": [
            {"path": "/ratelimit/middleware/", "rate": "20/m", "key": "ip", "name": "demo-mw"},
        ],
        "HEADERS_ON_ALLOWED": True,  # the demo shows its budget on every response
        "PROBLEM_JSON_PATHS": ["/ratelimit/api/", "/dashboard/try/"],
        # An HTML 429 page for the stacked (HTML) demo page; None elsewhere = the default.
        "RESPONSE": "testproject.urls_ratelimit.too_many_requests",
    }
)
# Behind a reverse proxy, list its networks, e.g. ["10.0.0.0/8"] (the client
# address rate limits count and the sessions index shows: django_redisroles.clientip).
REDISROLES["TRUSTED_PROXIES"] = []

# --- role: pubsub ---------------------------------------------------------------
# One Channels layer on the pubsub role's Redis (REDISROLES, no separate host);
# broadcast() from any sync code (views, commands, tasks) uses it too.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "django_redisroles.pubsub.RedisRolesChannelLayer",
        # "notifications" keeps its last 200 broadcasts for clients that come back
        # (/ws/notifications/replay/?since=<seq>); capacity holds a full catch-up,
        # which can be up to 100 longer: XADD MAXLEN ~ trims whole 100-entry nodes.
        "CONFIG": {"capacity": 300, "replay_groups": ["notifications"], "replay_maxlen": 200},
    }
}
if os.environ.get("REDISROLES_DEMO_CHANNEL_LAYER"):
    # benchmarks/pubsub.py runs this project on channels_redis's layers for comparison.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": os.environ["REDISROLES_DEMO_CHANNEL_LAYER"],
            "CONFIG": {"hosts": [os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")]},
        }
    }

# --- role: locks ----------------------------------------------------------------
# Locks need nothing but a Redis: `Lock("name", ttl=...)` and `@command_lock()`
# (see testproject/management/commands/nightly_report.py). The default lease
# is overridable from the environment so the process-level tests can use short ones.
REDISROLES["ROLES"]["locks"]["TTL"] = float(os.environ.get("REDISROLES_LOCKS_TTL", "60"))

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # The demo's JSON views as readable pages in a browser (Accept: text/html).
    "testproject.dashboard.middleware.BrowsableJSONMiddleware",
    "django_redisroles.sessions.SessionMiddleware",  # Django's + a 503 on a Redis outage
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication, so rules can key on the user.
    "django_redisroles.ratelimit.RateLimitMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "testproject.urls"
WSGI_APPLICATION = "testproject.wsgi.application"
ASGI_APPLICATION = "testproject.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Before the apps' templates: the demo's registration/ pages win over the
        # admin's (django.contrib.admin comes first in INSTALLED_APPS).
        "DIRS": [BASE_DIR / "testproject" / "templates"],
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

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB", str(BASE_DIR / "db.sqlite3")),
    }
}

AUTH_PASSWORD_VALIDATORS: list[dict[str, str]] = []
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"  # not the admin's "logged out" page

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_redisroles": {"handlers": ["console"], "level": "INFO"}},
}
