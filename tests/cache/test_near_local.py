"""The near cache's local side: bounds, opt-in and opt-out, decoding, keys, options,
the doctor's probe. Real Redis servers throughout (test_near.py: invalidation, faults)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from django_redisroles.cache import RedisRolesCache, cached
from django_redisroles.checks.cache import check_caches
from django_redisroles.testing import RedisServer
from tests.cache.nearhelp import NEAR, filled, near_hit, served, until


def test_off_by_default(rr_cache: RedisRolesCache) -> None:
    assert rr_cache.near is None and rr_cache.near_stats() is None


def test_memory_bounds(make_cache: Callable[..., RedisRolesCache]) -> None:
    cache = make_cache(
        OPTIONS={
            "NEAR_CACHE": {**NEAR, "MAX_ENTRIES": 10, "MAX_BYTES": 4000, "MAX_VALUE_SIZE": 500}
        }
    )
    cache.get("warm-up")
    until(lambda: cache.near_stats().tracking)  # type: ignore[union-attr]
    for i in range(50):
        cache.set(f"k{i}", i)
        cache.get(f"k{i}")
        assert cache.near_stats().entries <= 10  # type: ignore[union-attr]
    for i in range(40, 50):  # refill what this process's own invalidations dropped
        until(lambda i=i: served(cache, f"k{i}", i))
    assert cache.near_stats().entries == 10  # type: ignore[union-attr]
    until(lambda: served(cache, "k49", 49))  # the most recent stay (LRU)
    assert cache.make_key("k0") not in cache.near.entries  # type: ignore[union-attr]
    cache.set("big", "x" * 1000)
    until(lambda: cache.get("big") and cache.near_stats().too_large == 1)  # type: ignore[union-attr]
    assert cache.make_key("big") not in cache.near.entries  # type: ignore[union-attr]
    for i in range(10):
        cache.set(f"m{i}", "y" * 400)
        cache.get(f"m{i}")
    assert cache.near_stats().bytes <= 4000  # type: ignore[union-attr]


def test_per_key_opt_out_and_per_call_opt_in(make_cache: Callable[..., RedisRolesCache]) -> None:
    cache = make_cache(OPTIONS={"NEAR_CACHE": {**NEAR, "EXCLUDE": ["cart:"]}})
    cache.get("warm-up")
    until(lambda: cache.near_stats().tracking)  # type: ignore[union-attr]
    cache.set("cart:1", 1)
    cache.set("page", 2)
    for _ in range(3):
        cache.get("cart:1")
        cache.get("page", near=False)
    assert cache.near_stats().entries == 0  # type: ignore[union-attr]

    optin = make_cache("optin", OPTIONS={"NEAR_CACHE": {**NEAR, "EVERY_KEY": False}})
    optin.get("x")
    optin.get("x", near=True)
    until(lambda: optin.near_stats().tracking)  # type: ignore[union-attr]
    calls = []

    @cached(60, key="f", cache="optin", near=True)
    def f() -> int:
        calls.append(1)
        return 42

    optin.set("plain", 1)
    assert [f(), f(), f()] == [42, 42, 42] and calls == [1]
    optin.get("plain")
    optin.get("plain")
    assert optin.near.entries.keys() == {optin.make_key("f")}  # type: ignore[union-attr]
    assert optin.near_stats().hits >= 1  # type: ignore[union-attr]


def test_near_true_without_a_near_cache_is_a_clear_error(rr_cache: RedisRolesCache) -> None:
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="NEAR_CACHE"):
        rr_cache.get_or_set("k", 1, near=True)


@pytest.mark.parametrize(
    "value",
    ["yes", {"MAX_ENTRIES": 0}, {"MAX_TTL": -1}, {"EXCLUDE": "cart:"}, {"SIZE": 1}],
)
def test_bad_near_cache_options_are_a_system_check(settings: Any, value: Any) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redisroles.cache.RedisRolesCache",
            "OPTIONS": {"NEAR_CACHE": value},
        }
    }
    ids = [m.id for m in check_caches() if "NEAR_CACHE" in m.msg]
    assert ids == ["redisroles.E011"]


def test_the_doctor_finds_a_user_who_may_not_track_keys(
    redis_factory: Callable[..., RedisServer], settings: Any
) -> None:
    from django_redisroles import doctor

    server = redis_factory()
    server.client().acl_setuser(
        "app", enabled=True, passwords=["+app-pw"], keys=["*"], channels=["*"],
        commands=["+@all", "-client|tracking"],
    )  # fmt: skip
    settings.REDISROLES = {"URL": f"redis://app:app-pw@127.0.0.1:{server.port}/0"}
    settings.CACHES = {
        "default": {"BACKEND": "django_redisroles.cache.RedisRolesCache", "TIMEOUT": 60}
    }
    assert [f for f in doctor.run(roles=["cache"]).findings if f.id == "E107"] == []
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redisroles.cache.RedisRolesCache",
            "TIMEOUT": 60,
            "OPTIONS": {"NEAR_CACHE": True},
        }
    }
    refused = [f for f in doctor.run(roles=["cache"]).findings if f.id == "E107"]
    assert [f.roles for f in refused] == [["cache"]]
    assert "track its keys for the near cache (CLIENT TRACKING" in refused[0].message


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"SERIALIZER": "django_redis.serializers.json.JSONSerializer"},
        {"COMPRESSOR": "django_redis.compressors.zlib.ZlibCompressor", "COMPRESS_MIN_SIZE": 50},
    ],
    ids=["pickle", "json", "zlib"],
)
def test_hits_decode_like_redis_does(
    make_cache: Callable[..., RedisRolesCache], options: dict[str, Any]
) -> None:
    cache = make_cache(OPTIONS={"NEAR_CACHE": NEAR, **options})
    cache.get("warm-up")
    until(lambda: cache.near_stats().tracking)  # type: ignore[union-attr]
    values = {
        "int": 7,
        "big-int": 2**70,
        "float": 1.5,
        "str": "héllo",
        "numeric-str": "123",
        "dict": {"a": [1, 2, {"b": "c"}]},
        "list": ["x"] * 100,  # compressed with zlib (over COMPRESS_MIN_SIZE)
        "none": None,
    }
    for key, value in values.items():
        cache.set(key, value)
        until(lambda k=key, v=value: served(cache, k, v))
    got = cache.get("dict")
    got["a"].append("mutated")  # a caller changing its copy changes nobody else's
    assert near_hit(cache, "dict") == {"a": [1, 2, {"b": "c"}]}


def test_keys_equal_in_python_but_not_in_redis_stay_apart(near_cache: RedisRolesCache) -> None:
    near_cache.set(1, "int")
    near_cache.set(True, "bool")
    near_cache.set(1.0, "float")
    near_cache.set("k", "v1", version=1)
    near_cache.set("k", "vTrue", version=True)
    for _ in range(3):  # the second and third reads are near hits
        assert [near_cache.get(1), near_cache.get(True), near_cache.get(1.0)] == [
            "int",
            "bool",
            "float",
        ]
        assert [near_cache.get("k", version=1), near_cache.get("k", version=True)] == [
            "v1",
            "vTrue",
        ]


def test_aliases_sharing_a_namespace_with_other_versions_stay_apart(settings: Any) -> None:
    from django.core.cache import caches

    # Same KEY_PREFIX, OPTIONS and TIMEOUT: one near cache for both (Django's own suite
    # has such a pair); VERSION differs, so get("answer") names another key in each.
    entry = {"BACKEND": "django_redisroles.cache.RedisRolesCache", "TIMEOUT": 60}
    settings.CACHES = {
        "default": {**entry, "OPTIONS": {"NEAR_CACHE": NEAR}},
        "v2": {**entry, "OPTIONS": {"NEAR_CACHE": NEAR}, "VERSION": 2},
    }
    v1, v2 = caches["default"], caches["v2"]
    assert v1.near is v2.near
    v1.get("warm-up")
    until(lambda: v1.near_stats().tracking)  # type: ignore[union-attr]
    filled(v1, "answer", 42)
    for _ in range(3):
        assert v2.get("answer") is None
        assert v1.get("answer") == 42
