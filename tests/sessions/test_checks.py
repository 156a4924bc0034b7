"""System checks of the sessions role, through `manage.py check`."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from django_redisroles.checks.sessions import check_sessions_server


def check_output(capsys) -> str:
    try:
        call_command("check")
    except SystemCheckError as exc:
        return str(exc)
    captured = capsys.readouterr()
    return captured.out + captured.err


def test_testproject_is_clean(capsys) -> None:
    assert "no issues" in check_output(capsys)


def test_httponly_off_warns(settings, capsys) -> None:
    settings.SESSION_COOKIE_HTTPONLY = False
    output = check_output(capsys)
    assert "redisroles.W020" in output
    assert "SESSION_COOKIE_HTTPONLY is False" in output
    assert "HINT" in output


def test_pickle_serializer_is_an_error(settings, capsys) -> None:
    settings.SESSION_SERIALIZER = "myproject.serializers.PickleSerializer"
    output = check_output(capsys)
    assert "redisroles.E020" in output
    assert "never unpickles" in output


@pytest.mark.parametrize(
    ("redisroles", "caches", "warns"),
    [
        # One server for everything, the cache role wired: warned.
        ({}, {"default": {"BACKEND": "django_redisroles.cache.RedisRolesCache"}}, True),
        # Another database on the same server is the same memory: warned.
        (
            {"ROLES": {"sessions": {"URL": "redis://localhost:6379/1"}}},
            {
                "default": {
                    "BACKEND": "django_redis.cache.RedisCache",
                    "LOCATION": "redis://127.0.0.1:6379/0",
                }
            },
            True,
        ),
        # Sessions on their own instance: fine.
        (
            {"ROLES": {"sessions": {"URL": "redis://sessions-host:6379/0"}}},
            {"default": {"BACKEND": "django_redisroles.cache.RedisRolesCache"}},
            False,
        ),
        # The cache role's backend with an explicit LOCATION on the sessions server: warned.
        (
            {"ROLES": {"sessions": {"URL": "redis://sessions-host:6379/0"}}},
            {
                "default": {
                    "BACKEND": "django_redisroles.cache.RedisRolesCache",
                    "LOCATION": "redis://sessions-host:6379/2",
                }
            },
            True,
        ),
        # ... and with an explicit LOCATION elsewhere, though the role URLs are shared: fine.
        (
            {},
            {
                "default": {
                    "BACKEND": "django_redisroles.cache.RedisRolesCache",
                    "LOCATION": "redis://cache-host:6379/0",
                }
            },
            False,
        ),
        # A replicated LOCATION string ("primary,replica"), one of them the sessions server.
        (
            {"ROLES": {"sessions": {"URL": "redis://sessions-host:6379/0"}}},
            {
                "default": {
                    "BACKEND": "django_redis.cache.RedisCache",
                    "LOCATION": "redis://cache-host:6379/0,redis://sessions-host:6379/1",
                }
            },
            True,
        ),
        # No Redis cache at all: fine.
        ({}, {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}, False),
    ],
)
def test_sessions_sharing_a_server_with_a_cache_warns(settings, redisroles, caches, warns) -> None:
    settings.SILENCED_SYSTEM_CHECKS = []
    settings.REDISROLES = {"URL": "redis://127.0.0.1:6379/0", **redisroles}
    settings.CACHES = caches
    # Called directly: Django's own cache checks would import the cache role's
    # backend, which is not what this test is about.
    messages = check_sessions_server()
    assert [m.id for m in messages] == (["redisroles.W021"] if warns else [])
    if warns:
        assert "evicts sessions too" in messages[0].msg
        assert "noeviction" in messages[0].hint


def test_one_instance_is_quiet_in_check_and_warned_in_check_deploy(settings, capsys) -> None:
    """The README's one-instance start: W021 belongs to `check --deploy` (and doctor)."""
    settings.SILENCED_SYSTEM_CHECKS = []
    settings.REDISROLES = {"URL": "redis://127.0.0.1:6379/0"}
    settings.CACHES = {
        "default": {"BACKEND": "django_redisroles.cache.RedisRolesCache", "TIMEOUT": 300}
    }
    assert "redisroles.W021" not in check_output(capsys)
    call_command("check", "--deploy", "--tag", "redisroles")
    assert "redisroles.W021" in capsys.readouterr().err


def test_other_engines_are_not_checked(settings, capsys) -> None:
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    settings.SESSION_COOKIE_HTTPONLY = False
    assert "redisroles.W020" not in check_output(capsys)


@pytest.mark.parametrize(
    ("role", "needle"),
    [
        ({"USER_INDEX": "yes"}, "['USER_INDEX'] must be True or False, got 'yes'"),
        ({"INDEX_REFRESH": -1}, "['INDEX_REFRESH'] must be a whole number of seconds >= 0"),
        ({"RETRY_AFTER": "5"}, "['RETRY_AFTER'] must be a whole number of seconds >= 0"),
    ],
)
def test_bad_role_settings_are_errors(settings, capsys, role, needle) -> None:
    settings.REDISROLES = {"ROLES": {"sessions": role}}
    output = check_output(capsys)
    assert "redisroles.E021" in output
    assert needle in output
