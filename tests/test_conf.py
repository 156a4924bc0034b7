"""Resolving REDISROLES per role."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_redisroles import conf


def test_default_url_comes_from_redis_url_env(monkeypatch: pytest.MonkeyPatch, settings) -> None:
    del settings.REDISROLES
    monkeypatch.setenv("REDIS_URL", "redis://env-host:6380/3")
    assert conf.default_url() == "redis://env-host:6380/3"
    assert all(conf.role_url(role) == "redis://env-host:6380/3" for role in conf.ROLES)


def test_fallback_url_without_env_or_setting(monkeypatch: pytest.MonkeyPatch, settings) -> None:
    del settings.REDISROLES
    monkeypatch.delenv("REDIS_URL")
    assert conf.role_url("cache") == "redis://127.0.0.1:6379/0"


def test_setting_url_beats_env(monkeypatch: pytest.MonkeyPatch, settings) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://env-host:6379/0")
    settings.REDISROLES = {"URL": "redis://setting-host:6379/1"}
    assert conf.role_url("locks") == "redis://setting-host:6379/1"


def test_per_role_url_override(settings) -> None:
    settings.REDISROLES = {
        "URL": "redis://main:6379/0",
        "ROLES": {"sessions": {"URL": "redis://sessions-host:6379/0"}},
    }
    assert conf.role_url("sessions") == "redis://sessions-host:6379/0"
    assert conf.role_url("cache") == "redis://main:6379/0"


def test_override_settings_is_seen_on_every_access() -> None:
    before = conf.role_url("cache")
    with override_settings(REDISROLES={"URL": "redis://overridden:6379/9"}):
        assert conf.role_url("cache") == "redis://overridden:6379/9"
    assert conf.role_url("cache") == before


def test_options_layering(settings) -> None:
    settings.REDISROLES = {
        "OPTIONS": {"socket_timeout": 5.0, "max_connections": 7},
        "ROLES": {"cache": {"OPTIONS": {"socket_timeout": 0.1}}},
    }
    cache_options = conf.role_options("cache")
    assert cache_options["socket_timeout"] == 0.1  # role beats top level
    assert cache_options["max_connections"] == 7  # top level beats defaults
    assert cache_options["socket_connect_timeout"] == conf.DEFAULT_OPTIONS["socket_connect_timeout"]
    # The rate-limit role has short timeouts of its own unless overridden.
    assert conf.role_options("ratelimit")["socket_connect_timeout"] == 0.25
    assert conf.role_options("sessions")["socket_timeout"] == 5.0


def test_unknown_role_is_a_clear_error() -> None:
    with pytest.raises(ImproperlyConfigured, match="Unknown redisroles role 'queue'"):
        conf.role_config("queue")


def test_non_dict_setting_is_a_clear_error(settings) -> None:
    settings.REDISROLES = "redis://localhost"
    with pytest.raises(ImproperlyConfigured, match="REDISROLES must be a dict"):
        conf.role_url("cache")


def test_make_key_is_namespaced(settings) -> None:
    settings.REDISROLES = {"KEY_PREFIX": "shop"}
    assert conf.make_key("locks", "nightly") == "shop:locks:nightly"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://app:hunter2@host:6379/0", "redis://***@host:6379/0"),
        ("rediss://:hunter2@host", "rediss://***@host"),
        ("redis://app:p@ss@host/0", "redis://***@host/0"),  # '@' in the password
        ("redis://app:hunter2@[::1]:6380/2", "redis://***@[::1]:6380/2"),
        ("redis://host/0?password=hunter2&db=1", "redis://host/0?password=***&db=1"),
        ("redis://app:hunter2@host:notaport/x", "redis://***@host:notaport/x"),
        # Unencoded '/', '#', '?' in a password: no parser finds its end; the last '@' does.
        ("redis://:S3cr/et+Pw@host:6379/0", "redis://***@host:6379/0"),
        ("redis://app:hunter#2@host/0", "redis://***@host/0"),
        ("redis://app:a?b=c@host/0", "redis://***@host/0"),
        ("rediss://host/0?ssl_password=k3y&db=1", "rediss://host/0?ssl_password=***&db=1"),
        ("redis://host/0?pass%77ord=hunter2", "redis://host/0?pass%77ord=***"),
        ("redis://host/0?PASSWORD=hunter2#x", "redis://host/0?PASSWORD=***"),
        ("redis:/app:hunter2@host/0", "***@host/0"),  # no '://': all before the '@' goes
        ("unix:///run/redis.sock?db=3", "unix:///run/redis.sock?db=3"),
    ],
)
def test_mask_url_hides_passwords_and_keeps_the_rest(url: str, shown: str) -> None:
    assert conf.mask_url(url) == shown


@pytest.mark.parametrize(
    ("url", "server", "db"),
    [
        ("redis://127.0.0.1:6379/0", ("tcp", "127.0.0.1", "6379"), 0),
        ("redis://app:pw@localhost/3", ("tcp", "127.0.0.1", "6379"), 3),
        ("rediss://Cache.Example.com:6380?db=2", ("tcp", "cache.example.com", "6380"), 2),
        ("redis://[::1]:6379/1?db=4", ("tcp", "127.0.0.1", "6379"), 4),  # ?db= wins, as in redis-py
        ("unix:///run/redis.sock?db=5", ("unix", "/run/redis.sock"), 5),
    ],
)
def test_server_of_and_url_db(url: str, server: tuple[str, ...], db: int) -> None:
    assert conf.server_of(url) == server
    assert conf.url_db(url) == db


def test_server_of_an_unusable_url_is_none() -> None:
    assert conf.server_of("http://host") is None
    assert conf.server_of("redis://host:notaport") is None


# -- values derived from settings: built once, dropped when their setting changes --


def test_resolved_is_built_once_and_rebuilt_after_its_setting_changes() -> None:
    builds: list[str] = []

    def build() -> str:
        builds.append(conf.key_prefix())
        return builds[-1]

    prefix = conf.key_prefix()
    value = conf.Resolved(build)
    assert value.get() == value.get() == prefix
    assert builds == [prefix]
    with override_settings(REDISROLES={"KEY_PREFIX": "other"}):
        assert value.get() == "other"
    assert value.get() == prefix  # leaving override_settings is a change too
    assert builds == [prefix, "other", prefix]


def test_resolved_ignores_settings_it_does_not_depend_on() -> None:
    builds: list[int] = []
    value = conf.Resolved(lambda: builds.append(1) or len(builds), settings=("CACHES",))
    assert value.get() == 1
    with override_settings(REDISROLES={"KEY_PREFIX": "x"}):
        assert value.get() == 1
    with override_settings(CACHES={}):
        assert value.get() == 2


def test_a_build_that_races_a_reset_is_not_kept() -> None:
    value: conf.Resolved[str]

    def build() -> str:
        value.reset()  # the setting changed while this build read the old one
        return "stale"

    value = conf.Resolved(build)
    assert value.get() == "stale"  # the caller gets what it built...
    assert not value.built  # ...but it is not kept for the next caller


def test_on_settings_change_callbacks_and_reset_all() -> None:
    calls: list[str] = []
    conf.on_settings_change(lambda: calls.append("redisroles"))

    @conf.on_settings_change(settings=("MIDDLEWARE",))
    def on_middleware() -> None:
        calls.append("middleware")

    with override_settings(MIDDLEWARE=[]):
        pass
    assert calls == ["middleware", "middleware"]  # entering and leaving
    calls.clear()
    conf.reset_all()
    assert sorted(calls) == ["middleware", "redisroles"]
