"""Malformed REDISROLES is reported by `manage.py check`, naming the bad value."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings


def run_check() -> str:
    with pytest.raises(SystemCheckError) as excinfo:
        call_command("check")
    return str(excinfo.value)


def test_valid_settings_pass(capsys) -> None:
    call_command("check")
    assert "no issues" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("value", "code", "needle"),
    [
        ("redis://x", "redisroles.E001", "REDISROLES must be a dict, got str"),
        ({"URLS": "redis://x"}, "redisroles.E002", "unknown key 'URLS'"),
        ({"ROLES": {"queue": {}}}, "redisroles.E003", "unknown role 'queue'"),
        ({"ROLES": {"cache": {"TTL": 5}}}, "redisroles.E004", "unknown key 'TTL'"),
        ({"ROLES": {"cache": "redis://x"}}, "redisroles.E004", "must be a dict"),
        ({"URL": "http://localhost:6379"}, "redisroles.E005", "scheme 'http'"),
        ({"URL": "localhost:6379"}, "redisroles.E005", "is not a URL"),
        ({"URL": "redis://localhost:notaport/0"}, "redisroles.E005", "invalid host or port"),
        ({"URL": "redis://localhost:6379/zero"}, "redisroles.E005", "database 'zero'"),
        ({"URL": "unix://"}, "redisroles.E005", "names no socket path"),
        ({"ROLES": {"sessions": {"URL": "memcached://h"}}}, "redisroles.E005", "memcached"),
        ({"OPTIONS": {"sock_timeout": 1}}, "redisroles.E006", "unknown connection option"),
        ({"OPTIONS": {"decode_responses": True}}, "redisroles.E006", "decode_responses"),
        ({"ROLES": {"locks": {"OPTIONS": []}}}, "redisroles.E006", "must be a dict"),
    ],
)
def test_malformed_settings_are_errors(value, code, needle) -> None:
    with override_settings(REDISROLES=value):
        output = run_check()
    assert code in output
    assert needle in output
    assert "HINT" in output


def test_good_urls_pass() -> None:
    for url in (
        "redis://127.0.0.1:6379/0",
        "rediss://user:pass@redis.example.com:6380/1",
        "unix:///run/redis/redis.sock?db=3",
        "redis://:password@host",
    ):
        with override_settings(REDISROLES={"URL": url}):
            call_command("check")


def test_a_bad_url_is_reported_without_its_password() -> None:
    # `manage.py check` output lands in CI logs: the URL is shown, its secret is not.
    with override_settings(REDISROLES={"URL": "redis://app:s3cret@db.internal:6379/zero"}):
        output = run_check()
    assert "redisroles.E005" in output
    assert "redis://***@db.internal:6379/zero" in output
    assert "s3cret" not in output


def test_a_role_whose_defaults_moved_to_its_options_module_keeps_its_keys(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 13 moves each role's entry of conf.ROLE_DEFAULTS to <role>/options.py's
    # DEFAULTS: E004 (unknown role keys) reads it there, imported when the check runs.
    from django_redisroles import conf
    from django_redisroles.checks.config import check_settings, role_defaults

    monkeypatch.delitem(conf.ROLE_DEFAULTS, "locks", raising=False)
    fake = types.ModuleType("django_redisroles.locks.options")
    fake.DEFAULTS = {"TTL": 60.0}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "django_redisroles.locks.options", fake)
    assert role_defaults("locks") == {"TTL": 60.0}
    settings.REDISROLES = {"ROLES": {"locks": {"TTL": 5, "NOPE": 1}}}
    errors = [e for e in check_settings() if e.id == "redisroles.E004"]
    assert [e.msg for e in errors] == [
        """REDISROLES["ROLES"]['locks'] has an unknown key 'NOPE'."""
    ]
    assert errors[0].hint == "Keys the locks role accepts: OPTIONS, TTL, URL."
    assert role_defaults("cache") == {}  # its options are per CACHES alias
