"""The doctor against what the roles really write, in the testproject's wiring.

The other doctor tests plant keys by hand; these let each role write its own
keys (cache entries and stampede locks, sessions with the user index,
rate-limit counters with hash tags, a replay stream, a lock and its fence),
so a change of a role's key layout that the doctor does not follow fails here.
"""

from __future__ import annotations

import copy

import pytest
from django.core.cache import cache
from django.test import Client

from django_redisroles.locks import Lock
from django_redisroles.pubsub import broadcast

from .test_doctor import check

ROLES = ("cache", "sessions", "ratelimit", "pubsub", "locks")


@pytest.fixture
def trio(redis_factory, demo_settings):
    """The testproject's settings, its roles split over three well-configured servers."""
    settings = demo_settings
    cache_server = redis_factory(config={"maxmemory": "64mb", "maxmemory-policy": "allkeys-lru"})
    sessions_server = redis_factory(persistence=True)  # noeviction, appendonly yes
    rest = redis_factory()  # noeviction
    value = copy.deepcopy(settings.REDISROLES)
    urls = {"cache": cache_server, "sessions": sessions_server}
    for role in ROLES:
        value["ROLES"][role]["URL"] = urls.get(role, rest).url()
    value["DOCTOR"] = {"CLIENT_WINDOW": 0.2}
    settings.REDISROLES = value
    settings.CACHES = copy.deepcopy(settings.CACHES)  # a fresh backend on the new URL
    return cache_server, sessions_server, rest


@pytest.mark.django_db
def test_what_the_roles_write_gives_no_findings(trio, doctor, django_user_model) -> None:
    cache_server, sessions_server, rest = trio
    cache.set("page", "x" * 1000)
    assert cache.get_or_set("computed", lambda: 42) == 42  # stampede-safe path
    client = Client()
    client.force_login(django_user_model.objects.create_user("alice", password="pw"))
    assert client.get("/ratelimit/middleware/").status_code == 200
    assert client.get("/ratelimit/api/").status_code == 200
    broadcast("notifications", {"type": "notify", "text": "hello"})  # a replay group
    with Lock("nightly_report", ttl=30):
        run = check(doctor())
    # Each role wrote to its own server, under its own namespace.
    for server, prefixes in (
        (cache_server, {"demo:cache"}),
        (sessions_server, {"demo:sessions"}),
        (rest, {"demo:ratelimit", "demo:pubsub", "demo:locks"}),
    ):
        found = {":".join(k.decode().split(":")[:2]) for k in server.client().scan_iter()}
        assert found == prefixes
    assert run.ids == [], [f["message"] for f in run.data["findings"]]
    sampled = {
        ns["role"]: ns["sampled"]
        for inst in run.data["instances"]
        for db in inst["databases"]
        for ns in db["namespaces"]
    }
    # Each role's keys were found where the doctor looks (its own namespace).
    assert all(sampled[role] >= 1 for role in ROLES), sampled
    assert sampled["sessions"] >= 2  # the session and the user's index
    assert sampled["locks"] >= 2  # the lock and its fence counter
    streams = [
        ns["streams"]
        for inst in run.data["instances"]
        for db in inst["databases"]
        for ns in db["namespaces"]
        if ns["role"] == "pubsub"
    ]
    assert streams == [1]


def test_roles_the_project_does_not_wire_are_not_checked(redis_factory, settings, doctor) -> None:
    """A cache-only project on a server set up for a cache: no sessions/pubsub findings.

    Every role's URL defaults to REDISROLES["URL"], so the sessions role "is" on
    this allkeys-lru server; but sessions live in the database here, and an
    E120 would fail `check --deploy` for a problem the project does not have.
    """
    server = redis_factory(config={"maxmemory": "64mb", "maxmemory-policy": "allkeys-lru"})
    settings.REDISROLES = {
        "URL": server.url(),
        "ROLES": {"locks": {"URL": redis_factory().url()}},  # locks on a noeviction server
        "DOCTOR": {"CLIENT_WINDOW": 0.2},
    }
    settings.CACHES = {"default": {"BACKEND": "django_redisroles.cache.RedisRolesCache"}}
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    settings.CHANNEL_LAYERS = {}
    run = check(doctor())
    assert run.ids == []
    assert set(run.data["roles"]) == {"cache", "ratelimit", "locks"}
    assert set(run.data["skipped"]) == {"sessions", "pubsub"}
    assert "SESSION_ENGINE" in run.data["skipped"]["sessions"]
    table = doctor(json_=False)
    assert "not checked: sessions (SESSION_ENGINE is" in table.stdout
    # Asked for by name, a role is checked whatever the wiring.
    assert check(doctor("--role", "sessions")).ids == ["E120", "W122"]


def test_cache_keys_without_ttl_are_fine_when_the_cache_allows_them(
    redis_factory, roles_on, doctor, settings
) -> None:
    """ALLOW_NO_TIMEOUT=True: the cache itself writes keys that never expire, on purpose.

    On an allkeys-lru server they are evicted like any other; W112 ("these come
    from other code") would be wrong. Another cache without the option keeps it.
    """
    server = redis_factory(config={"maxmemory": "64mb", "maxmemory-policy": "allkeys-lru"})
    roles_on(cache=server)
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redisroles.cache.RedisRolesCache",
            "KEY_PREFIX": "forever",
            "OPTIONS": {"ALLOW_NO_TIMEOUT": True},
        },
        "strict": {"BACKEND": "django_redisroles.cache.RedisRolesCache", "KEY_PREFIX": "strict"},
    }
    from django.core.cache import caches

    caches["default"].set("config", "x", timeout=None)
    assert server.client().pttl("forever:1:config") == -1
    assert check(doctor("--role", "cache")).ids == []
    server.client().set("strict:1:stray", "x")
    run = check(doctor("--role", "cache"))
    assert run.ids == ["W112"]
    assert run.finding("W112")["details"]["prefix"] == "strict:"


def test_an_empty_cache_key_prefix_is_the_namespace_the_cache_uses(
    redis_factory, roles_on, doctor, settings
) -> None:
    """KEY_PREFIX "" is explicit: the backend writes ":1:<key>", so that is where to look."""
    server = redis_factory(config={"maxmemory": "64mb", "maxmemory-policy": "allkeys-lru"})
    roles_on(cache=server)
    settings.CACHES = {
        "default": {"BACKEND": "django_redisroles.cache.RedisRolesCache", "KEY_PREFIX": ""}
    }
    from django.core.cache import caches

    caches["default"].set("home", "x", 60)
    assert server.client().pttl(":1:home") > 0
    server.client().set(":1:stray", "x")
    run = check(doctor("--role", "cache"))
    assert run.ids == ["W112"]
    assert run.finding("W112")["details"]["examples"] == [":1:stray"]


def test_unconfigured_ratelimit_and_locks_are_not_reported_unreachable(
    redis_factory, settings, doctor, monkeypatch
) -> None:
    """A cache-only project names only the cache's Redis: the roles it does not use fall
    back to 127.0.0.1:6379, where nothing may listen. That is no E100 (exit 1)."""
    from django_redisroles.testing import free_port

    server = redis_factory(config={"maxmemory": "64mb", "maxmemory-policy": "allkeys-lru"})
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setattr("django_redisroles.conf.FALLBACK_URL", f"redis://127.0.0.1:{free_port()}/0")
    settings.REDISROLES = {
        "ROLES": {"cache": {"URL": server.url()}},
        "DOCTOR": {"CLIENT_WINDOW": 0.2, "TIMEOUT": 0.3},
    }
    settings.CACHES = {"default": {"BACKEND": "django_redisroles.cache.RedisRolesCache"}}
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    settings.CHANNEL_LAYERS = {}
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "ratelimit" not in m]
    run = check(doctor())
    assert run.status == 0 and run.ids == []
    assert set(run.data["roles"]) == {"cache"}
    assert set(run.data["skipped"]) == {"sessions", "pubsub", "ratelimit", "locks"}
    assert "no Redis URL is configured" in run.data["skipped"]["locks"]
    # With the middleware, rate limiting is wired: checked (and unreachable here).
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django_redisroles.ratelimit.RateLimitMiddleware"]
    run = check(doctor())
    assert run.ids == ["E100"] and run.finding("E100")["roles"] == ["ratelimit"]


def test_large_values_are_measured_as_the_cache_measures_them(
    redis_factory, roles_on, doctor, settings, caplog
) -> None:
    """MAX_VALUE_SIZE is about the encoded value the cache stores: a value the cache let
    through silently is not reported, one it warned about (ON_LARGE_VALUE "warn") is."""
    server = redis_factory(config={"maxmemory": "64mb", "maxmemory-policy": "allkeys-lru"})
    roles_on(cache=server)
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redisroles.cache.RedisRolesCache",
            "OPTIONS": {"MAX_VALUE_SIZE": 10_000},
        }
    }
    from django.core.cache import caches

    caches["default"].set("under", b"x" * 9_900, 60)  # MEMORY USAGE > 10 000, payload under
    assert "above MAX_VALUE_SIZE" not in caplog.text
    caches["default"].set("over", b"x" * 20_000, 60)
    assert "above MAX_VALUE_SIZE" in caplog.text
    run = check(doctor("--role", "cache"))
    assert run.ids == ["W113"]
    assert list(run.finding("W113")["details"]["keys"]) == ["rr:cache:1:over"]
