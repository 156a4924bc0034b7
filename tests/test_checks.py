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


# -- topology URLs (issue 14) ---------------------------------------------------------------

SECRET = "s3cr3t-pw"


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        (f"redis+cluster://:{SECRET}@h1:6379,,h3:6379", "empty host in its host list (host 2)"),
        (f"redis+cluster://:{SECRET}@h1:6379,h2:99999", "invalid port in host 2 ('h2:99999')"),
        (f"redis+cluster://:{SECRET}@h1:6379,h2:", "no port after the ':' of host 2"),
        (f"redis+cluster://:{SECRET}@::1:6379", "IPv6 address without brackets"),
        (f"redis+cluster://:{SECRET}@h1:6379/3", "only database 0"),
        (f"redis+cluster://:{SECRET}@h1:6379/app", "has a path"),
        (f"rediss+cluster://:{SECRET}@h1:6379?sentinel_password=x", "sentinel_password"),
        (f"redis+sentinel://:{SECRET}@s1:26379,s2:26379", "names no Sentinel service"),
        (f"redis+sentinel://:{SECRET}@s1:26379/mymaster/zero", "database 'zero'"),
        (f"redis+sentinel://:{SECRET}@s1:26379/a/1/2", "more than /SERVICE/DB"),
        (f"redis+sentinel://:{SECRET}@s1:26379/mymaster?bogus=1", "unknown query parameter"),
    ],
)
def test_malformed_topology_urls_name_the_bad_part_masked(url, needle) -> None:
    for value in ({"URL": url}, {"ROLES": {"locks": {"URL": url}}}):
        with override_settings(REDISROLES=value):
            output = run_check()
        assert "redisroles.E008" in output
        assert needle in output
        assert SECRET not in output
        assert "***@" in output  # the URL is shown, masked
        kind = "cluster" if "+cluster" in url else "sentinel"
        assert f"HINT: The form is redis+{kind}://" in output


def test_good_topology_urls_pass(capsys) -> None:
    for url in (
        "redis+cluster://10.0.0.1:6379,10.0.0.2:6379,[::1]:6380",
        "rediss+cluster://app:pw@clustercfg.example.com:6379",
        "redis+cluster://h1",  # port 6379
        "redis+sentinel://s1:26379,s2:26379,s3:26379/mymaster/0",
        "rediss+sentinel://:pw@s1/mymaster?sentinel_password=x",  # port 26379
    ):
        with override_settings(REDISROLES={"URL": url}):
            call_command("check")
        assert "no issues" in capsys.readouterr().out, url


def test_options_that_do_not_fit_the_topology() -> None:
    cluster = "redis+cluster://h1:6379,h2:6379"
    with override_settings(REDISROLES={"URL": cluster, "ROLES": {"cache": {"OPTIONS": {"db": 2}}}}):
        output = run_check()
    assert "redisroles.E009" in output
    assert "The connection options of the cache role do not fit" in output
    assert "only database 0" in output


def test_sentinel_options_with_another_url_are_ignored_and_said_so(capsys) -> None:
    value = {"URL": "redis://:pw@h:6379/0", "OPTIONS": {"sentinel_password": "x"}}
    with override_settings(REDISROLES=value):
        call_command("check")
    err = capsys.readouterr().err
    assert "redisroles.W004" in err
    assert "sentinel_password" in err
    assert "redis://***@h:6379/0" in err
    assert err.count("redisroles.W004") == 1  # one message for the roles sharing it
    assert "cache, sessions, ratelimit, pubsub, locks roles" in err
    sentinel = {
        "URL": "redis+sentinel://s1:26379/mymaster/0",
        "OPTIONS": {"sentinel_password": "x"},
    }
    with override_settings(REDISROLES=sentinel):
        call_command("check")
    assert "W004" not in capsys.readouterr().err
