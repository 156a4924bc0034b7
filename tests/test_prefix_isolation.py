"""Every SCAN matches its own prefix only: glob characters escaped, scanned keys re-checked.

Before: tenant ``tenant[1]``'s ``clearsessions`` trimmed tenant ``tenant1``'s
session index, its layer ``flush()`` deleted the other's replay streams, a cache
prefix ``a\\b`` cleared ``ab:1:*`` and left its own keys, and a cache with prefix
``shop`` cleared the sessions and locks of a project whose prefix is ``shop:2``.
"""

from __future__ import annotations

import time
from io import StringIO

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_redisroles import conf
from django_redisroles.pubsub import RedisRolesChannelLayer
from django_redisroles.pubsub import names as pubsub_names
from django_redisroles.sessions import keys as session_keys


def test_glob_escape_covers_every_special_character() -> None:
    assert conf.glob_escape("a*b?c[d]e\\f") == "a\\*b\\?c\\[d\\]e\\\\f"


def test_clearsessions_of_one_tenant_leaves_anothers_index(settings, redis_client) -> None:
    # tenant1's index holds one stale entry: only tenant1's own trim may remove it.
    # The names as the library makes them (hash-tagged on a cluster).
    settings.REDISROLES = {"KEY_PREFIX": "tenant1"}
    index = session_keys.index_key_name(5)
    stale, live = (session_keys.user_tag(5) + c * 28 for c in "kl")
    redis_client.zadd(index, {stale: time.time() - 3600, live: time.time() + 3600})
    settings.REDISROLES = {"KEY_PREFIX": "tenant[1]"}
    call_command("clearsessions")
    assert redis_client.zcard(index) == 2
    settings.REDISROLES = {"KEY_PREFIX": "tenant1"}
    call_command("clearsessions")
    assert redis_client.zrange(index, 0, -1) == [live.encode()]


async def test_layer_flush_leaves_another_prefixs_streams(settings, redis_client) -> None:
    settings.REDISROLES = {"KEY_PREFIX": "a1"}
    theirs = pubsub_names.replay_stream("news")
    redis_client.xadd(theirs, {"d": "x"})
    settings.REDISROLES = {"KEY_PREFIX": "a[1]"}
    ours = pubsub_names.replay_stream("news")
    redis_client.xadd(ours, {"d": "x"})
    layer = RedisRolesChannelLayer()
    await layer.flush()
    assert redis_client.exists(theirs)
    assert not redis_client.exists(ours)


def test_pubsub_command_lists_only_its_own_streams(settings, redis_client) -> None:
    import json

    redis_client.xadd("a1:pubsub:replay:news", {"d": "x"})
    settings.REDISROLES = {"KEY_PREFIX": "a?"}
    out = StringIO()
    call_command("redisroles", "pubsub", "--json", stdout=out)
    assert json.loads(out.getvalue())["replay_streams"] == []


def _two_caches(prefix_a: str, prefix_b: str) -> dict:
    entry = {"BACKEND": "django_redisroles.cache.RedisRolesCache", "TIMEOUT": 60}
    return {
        "default": {**entry},
        "a": {**entry, "KEY_PREFIX": prefix_a},
        "b": {**entry, "KEY_PREFIX": prefix_b},
    }


def test_clear_with_a_backslash_in_the_prefix(redis_client) -> None:
    with override_settings(CACHES=_two_caches("a\\b", "ab")):
        caches["a"].set("mine", 1)
        caches["b"].set("theirs", 2)
        assert caches["a"].clear() == 1
        assert caches["a"].get("mine") is None
        assert caches["b"].get("theirs") == 2


async def test_aclear_with_glob_characters_in_the_prefix(redis_client) -> None:
    with override_settings(CACHES=_two_caches("t[1]", "t1")):
        await caches["a"].aset("mine", 1)
        await caches["b"].aset("theirs", 2)
        assert await caches["a"].aclear() == 1
        assert await caches["b"].aget("theirs") == 2


def test_cache_clear_does_not_reach_into_a_nested_projects_keys(settings, redis_client) -> None:
    """A cache "shop" and a project whose KEY_PREFIX is "shop:2" on one database."""
    from django_redisroles.locks import Lock
    from django_redisroles.sessions import SessionStore

    settings.REDISROLES = {"KEY_PREFIX": "shop:2"}  # the other project, writing its keys
    session = SessionStore()
    session["_auth_user_id"] = "7"
    session.create()
    with Lock("nightly", ttl=60):
        pass
    other = sorted(redis_client.keys("shop:2:*"))
    assert any(b":sessions:" in k for k in other) and any(b":locks:" in k for k in other)

    settings.REDISROLES = {}
    with override_settings(CACHES=_two_caches("shop", "elsewhere")):
        caches["a"].set("page", "x")
        caches["a"].set("odd", "y", version=2)  # a real version 2 key of this cache
        assert caches["a"].clear() == 2
    assert sorted(redis_client.keys("shop:2:*")) == other


def test_clear_skips_keys_the_glob_matches_but_the_version_does_not(redis_client) -> None:
    with override_settings(CACHES=_two_caches("shop", "elsewhere")):
        redis_client.set("shop:2x:foreign", 1, ex=60)
        redis_client.set("shop:-:foreign", 1, ex=60)
        caches["a"].set("k", 1)
        assert caches["a"].clear() == 1
        assert redis_client.exists("shop:2x:foreign", "shop:-:foreign") == 2


@pytest.mark.parametrize("prefix", ["tenant[1]", "a*", "what?", "a\\b"])
def test_a_key_prefix_with_glob_characters_is_an_error(prefix: str) -> None:
    with (
        override_settings(REDISROLES={"KEY_PREFIX": prefix}),
        pytest.raises(SystemCheckError) as excinfo,
    ):
        call_command("check")
    assert "redisroles.E007" in str(excinfo.value)
    entry = {"BACKEND": "django_redisroles.cache.RedisRolesCache", "TIMEOUT": 60}
    with (
        override_settings(CACHES={"default": {**entry, "KEY_PREFIX": prefix}}),
        pytest.raises(SystemCheckError) as excinfo,
    ):
        call_command("check")
    assert "redisroles.E014" in str(excinfo.value)


def test_nested_namespaces_on_one_database_are_a_warning(capsys) -> None:
    entry = {"BACKEND": "django_redisroles.cache.RedisRolesCache", "TIMEOUT": 60}
    with override_settings(
        REDISROLES={"KEY_PREFIX": "shop:2"},
        CACHES={"default": {**entry, "KEY_PREFIX": "shop"}},
    ):
        call_command("check")
    out = capsys.readouterr().err + capsys.readouterr().out
    assert "redisroles.W011" in out
    with override_settings(
        REDISROLES={"KEY_PREFIX": "shop"},
        CACHES={"default": {**entry, "KEY_PREFIX": "shop-cache"}, "b": {**entry}},
    ):
        call_command("check")
    out = capsys.readouterr()
    assert "redisroles.W011" not in out.err + out.out
