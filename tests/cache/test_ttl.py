"""TTL is mandatory: no key the cache writes is left without an expiry."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from django.core.checks import run_checks

from django_redisroles.cache import RedisRolesCache, TimeoutRequired, cached
from django_redisroles.checks.cache import check_caches


def keys_without_ttl(client: redis.Redis) -> dict[bytes, int]:
    return {k: client.ttl(k) for k in client.scan_iter("*") if client.ttl(k) < 0}


def test_every_sync_write_path_leaves_a_ttl(
    rr_cache: RedisRolesCache, redis_client: redis.Redis
) -> None:
    c = rr_cache
    c.set("set", 1)
    c.set("set-explicit", 1, 30)
    c.add("add", 1)
    c.set_many({"many-1": 1, "many-2": "two"})
    c.get_or_set("get_or_set", lambda: "v")
    c.incr("incr-new", ignore_key_check=True)  # django-redis extra: creates the key
    c.set("incr-existing", 1)
    c.incr("incr-existing", 5)
    c.decr("incr-existing")
    c.set("touched", 1, 5)
    c.touch("touched")
    c.set("versioned", 1)
    c.incr_version("versioned")
    c.decr_version("versioned", version=2)
    c.expire("versioned", 100)
    # The set/hash/zset extras exist from django-redis 6 on (5.4 has none):
    # every one the installed version offers is written through.
    extras = 0
    if hasattr(c, "sadd"):
        # Multi-key set commands: one hash tag, so they also run on a Redis Cluster.
        c.sadd("{s}a-set", "x")
        c.sadd("{s}src", "m")
        c.smove("{s}src", "{s}moved", "m")
        c.sadd("{s}src2", "m", version=2)
        # django-redis writes smove's destination under the default version.
        c.smove("{s}src2", "{s}moved2", "m", version=2)
        c.sadd("{s}s1", "a", "b")
        c.sunionstore("{s}union", "{s}s1", "{s}moved")
        c.sinterstore("{s}inter", "{s}s1", "{s}union")
        c.sdiffstore("{s}diff", "{s}s1", "{s}moved")
        extras += 7  # "{s}src"/"{s}src2" are gone once their only member moved
    if hasattr(c, "hset"):
        c.hset("a-hash", "field", "value")
        extras += 1
    if hasattr(c, "zadd"):
        c.zadd("a-zset", {"m": 1.0})
        c.zincrby("z-incr", 1.0, "m")
        extras += 2

    @cached(30, key="deco:{n}")
    def loader(n: int) -> int:
        return n * 2

    assert loader(21) == 42
    with c.lock("a-lock", timeout=10):
        keys = set(redis_client.scan_iter("*"))
    assert len(keys) == 12 + extras, keys
    assert keys_without_ttl(redis_client) == {}
    assert c.ttl("set") == 60
    assert 0 < c.ttl("touched") <= 60  # touch() without timeout: the default, not 5


async def test_every_async_write_path_leaves_a_ttl(
    rr_cache: RedisRolesCache, redis_client: redis.Redis
) -> None:
    c = rr_cache
    await c.aset("aset", 1)
    await c.aadd("aadd", 1)
    await c.aset_many({"amany-1": 1, "amany-2": 2})
    await c.aget_or_set("aget_or_set", lambda: 1)
    await c.aincr("aincr-new", ignore_key_check=True)
    await c.aset("atouch", 1, 5)
    await c.atouch("atouch")
    await c.aset("aversion", 1)
    await c.aincr_version("aversion")

    @cached(30)
    async def loader(n: int) -> int:
        return n

    assert await loader(3) == 3
    keys = set(redis_client.scan_iter("*"))
    assert len(keys) == 9, keys
    assert keys_without_ttl(redis_client) == {}


@pytest.mark.parametrize(
    "write",
    [
        lambda c: c.set("k", 1, None),
        lambda c: c.add("k", 1, None),
        lambda c: c.set_many({"k": 1}, None),
        lambda c: c.get_or_set("k", 1, None),
        lambda c: c.touch("k", None),
        lambda c: c.persist("k"),
        lambda c: c.expire("k", None),
        lambda c: c.lock("k"),
    ],
    ids=["set", "add", "set_many", "get_or_set", "touch", "persist", "expire", "lock"],
)
def test_no_timeout_is_refused_with_the_documented_error(
    rr_cache: RedisRolesCache, redis_client: redis.Redis, write: Callable[[Any], Any]
) -> None:
    rr_cache.set("k", "before", 30)
    with pytest.raises(
        TimeoutRequired, match=r"'k'.*every cache key needs a TTL.*ALLOW_NO_TIMEOUT"
    ):
        write(rr_cache)
    # Nothing was written and the key kept its TTL.
    assert rr_cache.get("k") == "before"
    assert 0 < rr_cache.ttl("k") <= 30
    assert keys_without_ttl(redis_client) == {}


async def test_async_no_timeout_is_refused(rr_cache: RedisRolesCache) -> None:
    for call in (
        lambda: rr_cache.aset("k", 1, None),
        lambda: rr_cache.aadd("k", 1, None),
        lambda: rr_cache.aset_many({"k": 1}, None),
        lambda: rr_cache.aget_or_set("k", 1, None),
        lambda: rr_cache.atouch("k", None),
    ):
        with pytest.raises(TimeoutRequired):
            await call()
    assert await rr_cache.aget("k") is None


def test_allow_no_timeout_opt_out_writes_keys_that_never_expire(
    make_cache: Callable[..., RedisRolesCache], redis_client: redis.Redis
) -> None:
    c = make_cache(OPTIONS={"ALLOW_NO_TIMEOUT": True})
    c.set("forever", 1, None)
    assert c.ttl("forever") is None
    assert redis_client.ttl(c.make_key("forever")) == -1
    c.set("later", 1, 10)
    assert c.persist("later") is True
    assert c.ttl("later") is None


def test_default_timeout_none_is_a_system_check_error(settings: Any) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django_redisroles.cache.RedisRolesCache", "TIMEOUT": None}
    }
    errors = [e for e in run_checks() if e.id == "redisroles.E010"]
    assert len(errors) == 1
    assert "CACHES['default']['TIMEOUT'] is None" in errors[0].msg
    assert "ALLOW_NO_TIMEOUT" in errors[0].hint
    settings.CACHES["default"]["OPTIONS"] = {"ALLOW_NO_TIMEOUT": True}
    assert [e for e in check_caches() if e.id == "redisroles.E010"] == []


def test_default_timeout_none_write_raises_at_runtime_too(
    make_cache: Callable[..., RedisRolesCache],
) -> None:
    c = make_cache(TIMEOUT=None)
    with pytest.raises(TimeoutRequired):
        c.set("k", 1)
    with pytest.raises(TimeoutRequired):
        c.incr("n", ignore_key_check=True)


def test_jitter_spreads_ttls_within_the_fraction(
    make_cache: Callable[..., RedisRolesCache], redis_client: redis.Redis
) -> None:
    c = make_cache(TIMEOUT=100, OPTIONS={"TIMEOUT_JITTER": 0.2})
    started = time.monotonic()
    c.set_many({f"k{i}": i for i in range(100)})
    for i in range(100, 200):
        c.set(f"k{i}", i)
    pttls = [redis_client.pttl(c.make_key(f"k{i}")) for i in range(200)]
    # A key's TTL runs down while the others are written and read: on a loaded
    # machine that is more than a few ms, so the floor allows what elapsed.
    elapsed_ms = (time.monotonic() - started) * 1000
    floor = 80_000 - elapsed_ms - 5
    assert all(floor <= t <= 120_000 for t in pttls), (min(pttls), max(pttls), elapsed_ms)
    # Spread, not all equal: at least 10 s between the earliest and latest expiry.
    assert max(pttls) - min(pttls) > 10_000


def test_no_jitter_by_default(rr_cache: RedisRolesCache, redis_client: redis.Redis) -> None:
    rr_cache.set_many({f"k{i}": i for i in range(20)})
    pttls = {redis_client.pttl(rr_cache.make_key(f"k{i}")) // 1000 for i in range(20)}
    assert pttls <= {59, 60}


def test_incr_gives_a_key_found_without_ttl_the_default(
    rr_cache: RedisRolesCache, redis_client: redis.Redis
) -> None:
    redis_client.set(rr_cache.make_key("counter"), 5)  # written by someone else, no TTL
    assert rr_cache.incr("counter") == 6
    assert 0 < redis_client.ttl(rr_cache.make_key("counter")) <= 60


@pytest.mark.parametrize("timeout", ["300", b"300", [300], float("nan"), float("inf")])
def test_a_timeout_that_is_not_a_number_is_a_clear_error(
    rr_cache: RedisRolesCache, timeout: Any
) -> None:
    rr_cache.set("k", "before", 30)
    # "300" * 1000 is a 3000-digit string: it used to reach Redis as a PX it refused.
    with pytest.raises(TypeError, match=r"timeout must be a finite number of seconds, got"):
        rr_cache.set("k", 1, timeout)
    with pytest.raises(TypeError, match=r"timeout must be a finite number of seconds"):
        rr_cache.get_or_set("k2", 1, timeout)
    assert rr_cache.get("k") == "before"
