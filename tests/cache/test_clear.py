"""clear() removes this cache's namespace only: other roles' keys survive."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from django_redisroles import conf
from django_redisroles.cache import RedisRolesCache


def remaining_keys(client: redis.Redis) -> set[str]:
    # A set: SCAN may return a key twice while the keyspace shrinks (rehashing).
    return {k.decode() for k in client.scan_iter("*")}


def flush_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("flushdb", "flushall"))


def other_roles_keys(client: redis.Redis) -> list[str]:
    keys = [
        conf.make_key("sessions", "s1bxq0ejdnq3xk1e3tq5lmu5yx9i6jsi"),  # a session
        conf.make_key("sessions", "user", "1"),  # a user's session index
        conf.make_key("locks", "lock", "nightly-report"),  # a held lock
        conf.make_key("ratelimit", "ip", "203.0.113.9", "60"),  # a rate-limit counter
        conf.make_key("pubsub", "stream", "notifications"),
        "unrelated-app:key",  # not ours at all
    ]
    for key in keys:
        client.set(key, "keep", ex=600)
    return keys


def test_clear_leaves_session_lock_and_ratelimit_keys(
    rr_cache: RedisRolesCache, redis_client: redis.Redis
) -> None:
    survivors = other_roles_keys(redis_client)
    # Enough keys for several SCAN/UNLINK batches.
    rr_cache.set_many({f"k{i}": i for i in range(2500)})
    rr_cache.set("one", 1, version=3)  # other versions are this cache's too
    rr_cache.get_or_set("gos", 1)
    flushes = flush_calls(redis_client)

    removed = rr_cache.clear()

    assert removed == 2502
    assert rr_cache.get("k1") is None and rr_cache.get("one", version=3) is None
    assert remaining_keys(redis_client) == set(survivors)
    assert flush_calls(redis_client) == flushes  # never FLUSHDB


def test_clear_leaves_another_cache_namespace(
    make_cache: Callable[..., RedisRolesCache], redis_client: redis.Redis
) -> None:
    default = make_cache()
    pages = make_cache("pages", KEY_PREFIX="pages")
    default.set("k", 1)
    pages.set("k", 2)
    assert default.get("k") == 1 and pages.get("k") == 2
    default.clear()
    assert default.get("k") is None
    assert pages.get("k") == 2


def test_prefix_with_glob_characters_is_escaped(
    make_cache: Callable[..., RedisRolesCache], redis_client: redis.Redis
) -> None:
    star = make_cache("star", KEY_PREFIX="a*")
    redis_client.set("abc:1:k", "not the star cache's", ex=60)
    star.set("k", 1)
    assert star.clear() == 1
    assert redis_client.get("abc:1:k") == b"not the star cache's"


async def test_aclear_leaves_other_roles(
    rr_cache: RedisRolesCache, redis_client: redis.Redis
) -> None:
    survivors = other_roles_keys(redis_client)
    await rr_cache.aset_many({f"k{i}": i for i in range(1200)})
    assert await rr_cache.aclear() == 1200
    assert remaining_keys(redis_client) == set(survivors)


def test_clear_leaves_keys_the_other_roles_really_write(
    rr_cache: RedisRolesCache, redis_client: redis.Redis, rf: Any
) -> None:
    """Not hand-made names: a session, a held lock and a rate-limit counter, by their roles."""
    from django_redisroles.locks import Lock
    from django_redisroles.ratelimit import check, make_policy
    from django_redisroles.sessions import SessionStore

    session = SessionStore()
    session["user"] = "ada"
    session.create()
    policy = make_policy("10/m", "ip", group="cache-clear-test")
    assert check(rf.get("/", REMOTE_ADDR="203.0.113.9"), [policy]).limited is False
    rr_cache.set_many({f"k{i}": i for i in range(50)})
    with Lock("nightly-report", ttl=30):
        others = {k for k in redis_client.scan_iter("*") if not k.startswith(b"rr:cache:")}
        assert any(b":sessions:" in k for k in others), others
        assert any(b":locks:" in k for k in others), others
        assert any(b":ratelimit:" in k for k in others), others

        assert rr_cache.clear() == 50

        assert set(redis_client.scan_iter("*")) == others
        assert SessionStore(session.session_key).load() == {"user": "ada"}


@pytest.mark.parametrize("prefix", ["demo", "demo:sessions"])
def test_a_key_prefix_overlapping_the_roles_namespace_still_clears_only_the_cache(
    make_cache: Callable[..., RedisRolesCache], redis_client: redis.Redis, prefix: str
) -> None:
    """KEY_PREFIX = the REDISROLES KEY_PREFIX: "demo:*:*" also matched every role's keys."""
    survivors = other_roles_keys(redis_client)
    c = make_cache(KEY_PREFIX=prefix)
    c.set("k", 1)
    c.set("k", 2, version=-3)
    c.get_or_set("gos", 1)
    assert c.clear() == 3
    assert remaining_keys(redis_client) == set(survivors)
