"""System checks of the cache role (redisroles.E010-E013, W010)."""

from __future__ import annotations

from typing import Any

import pytest

from django_redisroles.checks.cache import cache_namespace, check_caches, redisroles_caches

BACKEND = "django_redisroles.cache.RedisRolesCache"


def ids(settings: Any, caches: dict[str, Any]) -> list[str]:
    settings.CACHES = caches
    return [e.id for e in check_caches()]


def test_testproject_configuration_is_clean() -> None:
    assert check_caches() == []


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"MAX_VALUE_SIZE": 0}, "MAX_VALUE_SIZE"),
        ({"ON_LARGE_VALUE": "drop"}, "ON_LARGE_VALUE"),
        ({"TIMEOUT_JITTER": 1.5}, "TIMEOUT_JITTER"),
        ({"ALLOW_NO_TIMEOUT": "yes"}, "ALLOW_NO_TIMEOUT"),
        ({"LOCK_TIMEOUT": 0}, "LOCK_TIMEOUT"),
        ({"STALE_TIMEOUT": -1}, "STALE_TIMEOUT"),
        ({"COMPRESS_MIN_SIZE": "1k"}, "COMPRESS_MIN_SIZE"),
        ({"OUTAGE_BACKOFF": -1}, "OUTAGE_BACKOFF"),
    ],
)
def test_bad_options_are_e011(settings: Any, options: dict[str, Any], fragment: str) -> None:
    settings.CACHES = {"default": {"BACKEND": BACKEND, "OPTIONS": options}}
    (error,) = check_caches()
    assert error.id == "redisroles.E011"
    assert fragment in error.msg and "CACHES['default']" in error.msg


def test_unimportable_serializer_and_foreign_client_class_are_e012(settings: Any) -> None:
    assert ids(
        settings,
        {
            "default": {
                "BACKEND": BACKEND,
                "OPTIONS": {
                    "SERIALIZER": "nope.Serializer",
                    "CLIENT_CLASS": "django_redis.client.DefaultClient",
                },
            }
        },
    ) == ["redisroles.E012", "redisroles.E012"]


def test_a_foreign_connection_factory_is_e012_and_refused_at_run_time(settings: Any) -> None:
    """django-redis's own factory would open pools of its own, outside the cache role's."""
    from django.core.cache import caches
    from django.core.exceptions import ImproperlyConfigured

    settings.CACHES = {
        "default": {
            "BACKEND": BACKEND,
            "OPTIONS": {"CONNECTION_FACTORY": "django_redis.pool.ConnectionFactory"},
        }
    }
    (error,) = check_caches()
    assert error.id == "redisroles.E012" and "RoleConnectionFactory" in error.msg
    with pytest.raises(ImproperlyConfigured, match="CONNECTION_FACTORY"):
        caches["default"].get("k")
    settings.CACHES["default"]["OPTIONS"] = {
        "CONNECTION_FACTORY": "django_redisroles.cache.client.RoleConnectionFactory"
    }
    assert check_caches() == []


def test_bad_location_is_e013(settings: Any) -> None:
    assert ids(settings, {"default": {"BACKEND": BACKEND, "LOCATION": "http://x"}}) == [
        "redisroles.E013"
    ]


def test_bad_timeout_type_is_e010(settings: Any) -> None:
    assert ids(settings, {"default": {"BACKEND": BACKEND, "TIMEOUT": "300"}}) == ["redisroles.E010"]


def test_two_caches_sharing_a_namespace_is_w010(settings: Any) -> None:
    caches = {
        "default": {"BACKEND": BACKEND},
        "pages": {"BACKEND": BACKEND},
        "other": {"BACKEND": BACKEND, "KEY_PREFIX": "other"},
        "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    assert ids(settings, caches) == ["redisroles.W010"]
    assert set(redisroles_caches()) == {"default", "pages", "other"}
    assert cache_namespace(caches["default"]) == "rr:cache"
    assert cache_namespace(caches["other"]) == "other"


def test_w010_sees_the_same_redis_however_it_is_written(settings: Any) -> None:
    # One cache on the role's URL (no LOCATION), one naming that server as
    # "localhost" in LOCATION: same server, same database, same default prefix.
    settings.REDISROLES = {"ROLES": {"cache": {"URL": "redis://127.0.0.1:6390/0"}}}
    caches = {
        "default": {"BACKEND": BACKEND},
        "pages": {"BACKEND": BACKEND, "LOCATION": "redis://localhost:6390"},
    }
    assert ids(settings, caches) == ["redisroles.W010"]


def test_w010_is_silent_for_another_database_or_server(settings: Any) -> None:
    settings.REDISROLES = {"ROLES": {"cache": {"URL": "redis://127.0.0.1:6390/0"}}}
    caches = {
        "default": {"BACKEND": BACKEND},
        "pages": {"BACKEND": BACKEND, "LOCATION": "redis://127.0.0.1:6390/1"},
        "remote": {"BACKEND": BACKEND, "LOCATION": "redis://cache-2:6390/0"},
    }
    assert ids(settings, caches) == []
