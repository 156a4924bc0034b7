"""RedisRolesCache: the role's connections and namespace, django-redis's API, options."""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
import redis
from django.core.cache import caches
from django_redis import get_redis_connection

from django_redisroles import connections
from django_redisroles.cache import CacheValueTooLarge, RedisRolesCache, cached
from django_redisroles.cache.client import ROLE_LOCATION


def test_location_defaults_to_the_cache_role_and_shares_its_pool(
    rr_cache: RedisRolesCache,
) -> None:
    assert rr_cache.client.servers == (ROLE_LOCATION,)  # no LOCATION: the role's, followed
    assert rr_cache.client.get_client() is connections.get_redis("cache")
    assert get_redis_connection("default") is connections.get_redis("cache")


def test_location_follows_the_cache_role_url(
    settings: Any, make_cache: Callable[..., RedisRolesCache], redis_factory: Any
) -> None:
    other = redis_factory()
    settings.REDISROLES = {**settings.REDISROLES, "ROLES": {"cache": {"URL": other.url()}}}
    c = make_cache()
    c.set("k", "on the cache instance")
    with other.client() as client:
        assert client.get(c.make_key("k")) is not None
    assert c.client.get_client() is connections.get_redis("cache")


def test_a_cache_built_before_redisroles_changed_follows_the_role_url(
    settings: Any,
    make_cache: Callable[..., RedisRolesCache],
    redis_factory: Any,
    redis_client: redis.Redis,
) -> None:
    """Without LOCATION the role's URL is read on use, not captured when the backend is built."""
    c = make_cache()  # built (its client not yet) under the old REDISROLES
    other = redis_factory()
    settings.REDISROLES = {**settings.REDISROLES, "ROLES": {"cache": {"URL": other.url()}}}
    assert caches["default"] is c  # CACHES did not change: Django keeps the instance
    c.set("k", "on the cache instance")
    with other.client() as client:
        assert client.exists(c.make_key("k")) == 1
    assert redis_client.exists(c.make_key("k")) == 0
    assert c.client.get_client() is connections.get_redis("cache")


def test_explicit_location_to_another_server(
    make_cache: Callable[..., RedisRolesCache], redis_factory: Any, redis_client: redis.Redis
) -> None:
    other = redis_factory()
    c = make_cache(LOCATION=other.url(3))
    c.set("k", 1)
    assert c.get("k") == 1
    with other.client(3) as client:
        assert client.exists(c.make_key("k")) == 1
    assert redis_client.exists(c.make_key("k")) == 0


async def test_explicit_location_async(
    make_cache: Callable[..., RedisRolesCache], redis_factory: Any
) -> None:
    other = redis_factory()
    c = make_cache(LOCATION=other.url(2))
    await c.aset("k", {"a": 1})
    assert await c.aget("k") == {"a": 1}
    with other.client(2) as client:
        assert 0 < client.ttl(c.make_key("k")) <= 60


def test_key_prefix_defaults_to_the_role_namespace(
    settings: Any, make_cache: Callable[..., RedisRolesCache]
) -> None:
    c = make_cache()
    assert c.key_prefix == "rr:cache"
    assert c.make_key("user:1") == "rr:cache:1:user:1"
    settings.REDISROLES = {**settings.REDISROLES, "KEY_PREFIX": "shop"}
    assert caches["default"].make_key("x") == "shop:cache:1:x"
    assert make_cache(KEY_PREFIX="mine").make_key("x") == "mine:1:x"


def test_django_redis_extras_work(rr_cache: RedisRolesCache, redis_client: redis.Redis) -> None:
    c = rr_cache
    c.set_many({"user:1": 1, "user:2": 2, "post:1": 3})
    assert sorted(c.iter_keys("user:*")) == ["user:1", "user:2"]
    assert sorted(c.keys("*")) == ["post:1", "user:1", "user:2"]
    assert c.ttl("user:1") == 60
    assert c.expire("user:1", 500) is True and c.ttl("user:1") == 500
    assert 0 < c.pttl("user:1") <= 500_000
    assert c.delete_pattern("user:*") == 2
    assert c.get("post:1") == 3
    with c.lock("job", timeout=5):
        assert redis_client.exists(c.make_key("job")) == 1
    assert redis_client.exists(c.make_key("job")) == 0
    assert c.incr("post:1", 10) == 13


@pytest.mark.parametrize(
    ("serializer", "decode"),
    [
        ("django_redis.serializers.json.JSONSerializer", lambda b: json.loads(b)),
        ("django_redis.serializers.msgpack.MSGPackSerializer", lambda b: msgpack.loads(b)),
    ],
    ids=["json", "msgpack"],
)
def test_non_pickle_serializers(
    make_cache: Callable[..., RedisRolesCache],
    redis_client: redis.Redis,
    serializer: str,
    decode: Callable[[bytes], Any],
) -> None:
    c = make_cache(OPTIONS={"SERIALIZER": serializer})
    value = {"id": 1, "name": "Ada", "tags": ["a", "b"]}
    c.set("user:1", value)
    assert c.get("user:1") == value
    raw = redis_client.get(c.make_key("user:1"))
    assert decode(raw) == value  # plain data in Redis: nothing to unpickle
    assert c.get_or_set("n", 5) == 5 and c.incr("n") == 6


def test_large_value_warns_by_default_with_key_and_size(
    rr_cache: RedisRolesCache, caplog: Any
) -> None:
    big = "x" * (1024 * 1024 + 10)
    with caplog.at_level(logging.WARNING, "django_redisroles.cache"):
        assert rr_cache.set("big", big) is True
    assert rr_cache.get("big") == big
    (record,) = [r for r in caplog.records if "MAX_VALUE_SIZE" in r.getMessage()]
    assert "'rr:cache:1:big'" in record.getMessage()
    assert f"{len(rr_cache.client.encode(big))} bytes" in record.getMessage()


def test_large_value_refused(make_cache: Callable[..., RedisRolesCache], caplog: Any) -> None:
    c = make_cache(OPTIONS={"MAX_VALUE_SIZE": 100, "ON_LARGE_VALUE": "refuse"})
    c.set("k", "small")
    assert c.set("k", "y" * 200) is False
    assert c.get("k") is None  # the old value is gone too, not served as if updated
    assert c.set_many({"a": "ok", "b": "z" * 500}) == ["b"]
    assert c.get("a") == "ok" and c.get("b") is None
    assert c.get_or_set("c", "w" * 500) == "w" * 500  # computed value still returned
    assert c.get("c") is None
    assert "Not stored" in caplog.text


async def test_large_value_refused_async(make_cache: Callable[..., RedisRolesCache]) -> None:
    c = make_cache(OPTIONS={"MAX_VALUE_SIZE": 100, "ON_LARGE_VALUE": "refuse"})
    assert await c.aset("k", "y" * 200) is False
    assert await c.aset_many({"a": 1, "b": "z" * 500}) == ["b"]


def test_large_value_raise(make_cache: Callable[..., RedisRolesCache]) -> None:
    c = make_cache(OPTIONS={"MAX_VALUE_SIZE": 100, "ON_LARGE_VALUE": "raise"})
    with pytest.raises(CacheValueTooLarge, match=r"'rr:cache:1:k' is \d+ bytes"):
        c.set("k", "y" * 200)


def test_compression_above_threshold(
    make_cache: Callable[..., RedisRolesCache], redis_client: redis.Redis
) -> None:
    c = make_cache(
        OPTIONS={
            "COMPRESSOR": "django_redis.compressors.zlib.ZlibCompressor",
            "COMPRESS_MIN_SIZE": 1000,
        }
    )
    c.set("small", "a" * 500)
    c.set("large", "a" * 5000)
    small = redis_client.get(c.make_key("small"))
    large = redis_client.get(c.make_key("large"))
    assert len(small) > 500  # below the threshold: stored as is
    assert len(large) < 200
    zlib.decompress(large)  # really zlib
    assert c.get("small") == "a" * 500 and c.get("large") == "a" * 5000


def test_compression_keeps_a_compressible_value_under_the_limit(
    make_cache: Callable[..., RedisRolesCache], caplog: Any
) -> None:
    c = make_cache(
        OPTIONS={
            "COMPRESSOR": "django_redis.compressors.zlib.ZlibCompressor",
            "MAX_VALUE_SIZE": 1000,
            "ON_LARGE_VALUE": "refuse",
        }
    )
    assert c.set("k", "a" * 100_000) is True  # the size limit applies to what is sent
    assert c.get("k") == "a" * 100_000


def test_bad_options_raise_improperly_configured(
    make_cache: Callable[..., RedisRolesCache],
) -> None:
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match=r"CACHES\['default'\]: .*ON_LARGE_VALUE"):
        make_cache(OPTIONS={"ON_LARGE_VALUE": "ignore"}).get("k")


def test_redis_outage_is_a_miss_not_an_error(
    make_cache: Callable[..., RedisRolesCache], redis_factory: Any, caplog: Any
) -> None:
    server = redis_factory()
    c = make_cache(LOCATION=server.url())
    c.set("k", 1)
    server.kill()
    calls = []
    with caplog.at_level(logging.WARNING, "django_redisroles.cache"):
        assert c.get("k", "default") == "default"
        assert c.set("k", 2) is False
        assert c.get_many(["k"]) == {}
        assert c.ttl("k") == 0 and c.pttl("k") == 0  # a miss, like any read
        assert c.get_or_set("k", lambda: calls.append(1) or "computed") == "computed"

        @cached(60, cache="default")
        def f() -> str:
            calls.append(1)
            return "fresh"

        assert f() == "fresh"
    assert len(calls) == 2
    assert "Cache Redis unavailable" in caplog.text


async def test_redis_outage_async(
    make_cache: Callable[..., RedisRolesCache], redis_factory: Any
) -> None:
    server = redis_factory()
    c = make_cache(LOCATION=server.url())
    await c.aset("k", 1)
    server.kill()
    assert await c.aget("k", "default") == "default"
    assert await c.aset("k", 2) is False
    assert await c.attl("k") == 0  # a miss (None would mean "never expires")
    assert await c.aget_or_set("k", lambda: "computed") == "computed"


def test_outage_raises_when_ignore_exceptions_is_off(
    make_cache: Callable[..., RedisRolesCache], redis_factory: Any
) -> None:
    server = redis_factory()
    c = make_cache(LOCATION=server.url(), OPTIONS={"IGNORE_EXCEPTIONS": False})
    server.kill()
    with pytest.raises(redis.exceptions.ConnectionError):
        c.get("k")


def test_cached_key_forms(rr_cache: RedisRolesCache) -> None:
    @cached(30)
    def plain(a: int, b: int = 2) -> int:
        return a + b

    @cached(30, key=lambda a, b=2: f"sum:{a}:{b}")
    def keyed(a: int, b: int = 2) -> int:
        return a + b

    assert plain(1) == 3 and plain(1, b=2) == 3
    assert plain.key(1) == plain.key(1, 2) == plain.key(a=1, b=2)
    assert plain.key(1).startswith(f"{__name__}.test_cached_key_forms.<locals>.plain:")
    assert keyed(1) == 3 and rr_cache.get("sum:1:2") == 3
    assert plain.invalidate(1) is True
    assert rr_cache.get(plain.key(1)) is None
    with pytest.raises(TypeError, match="needs a TTL"):
        cached(lambda: None)  # type: ignore[arg-type]


def test_outage_is_logged_once_not_per_call(
    make_cache: Callable[..., RedisRolesCache], redis_factory: Any, caplog: Any
) -> None:
    server = redis_factory()
    c = make_cache(LOCATION=server.url(), OPTIONS={"IGNORE_EXCEPTIONS": True})
    server.kill()
    with caplog.at_level(logging.WARNING, "django_redisroles.cache"):
        for _ in range(5):
            assert c.get("k") is None
            assert c.has_key("k") is False
    records = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(records) == 1
    assert "ConnectionError" in records[0].getMessage()


def fill(server: Any) -> None:
    """Write ballast until Redis refuses writes (OOM)."""
    with server.client() as client:
        for i in range(100_000):
            try:
                client.set(f"ballast:{i}", "x" * 1000)
            except redis.exceptions.OutOfMemoryError:
                break
        else:
            pytest.fail("the server never filled up")


@pytest.fixture
def full_redis(redis_factory: Any) -> Any:
    """A Redis at its maxmemory with noeviction (as the sessions role recommends)."""
    server = redis_factory(config={"maxmemory": "4mb", "maxmemory-policy": "noeviction"})
    fill(server)
    return server


def test_a_full_redis_drops_cache_writes_instead_of_failing(
    make_cache: Callable[..., RedisRolesCache], full_redis: Any, caplog: Any
) -> None:
    """OOM is Redis saying "no room": for a lossy cache that is a dropped write, not a 500."""
    c = make_cache(LOCATION=full_redis.url())
    with caplog.at_level(logging.WARNING, "django_redisroles.cache"):
        assert c.set("k", "v") is False
        assert c.add("k", "v") is False
        assert c.set_many({"a": 1, "b": 2}) == []
        assert c.get_or_set("k", lambda: "computed") == "computed"
        assert c.get("k") is None
    assert "OutOfMemoryError" in caplog.text or "OOM" in caplog.text


async def test_a_full_redis_drops_async_cache_writes(
    make_cache: Callable[..., RedisRolesCache], full_redis: Any
) -> None:
    c = make_cache(LOCATION=full_redis.url())
    assert await c.aset("k", "v") is False
    assert await c.aset_many({"a": 1}) == []
    assert await c.aget_or_set("k", lambda: "computed") == "computed"
    assert await c.aget("k") is None


def test_a_full_redis_raises_when_ignore_exceptions_is_off(
    make_cache: Callable[..., RedisRolesCache], full_redis: Any
) -> None:
    c = make_cache(LOCATION=full_redis.url(), OPTIONS={"IGNORE_EXCEPTIONS": False})
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        c.set("k", "v")


def wait_replicated(replica: Any, key: str) -> None:
    with replica.client() as client:
        deadline = time.monotonic() + 10
        while not client.exists(key) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.exists(key), "the replica never synced"


def test_a_read_only_replica_drops_writes_and_does_not_lie(
    make_cache: Callable[..., RedisRolesCache], redis_factory: Any
) -> None:
    """After a failover the old primary is a replica: READONLY is an outage, not 'key not found'."""
    primary = redis_factory(config={"repl-diskless-sync-delay": "0"})  # sync at once
    replica = redis_factory(config={"replicaof": f"127.0.0.1 {primary.port}"})
    writer = make_cache("writer", LOCATION=primary.url(), KEY_PREFIX="x")
    writer.set("k", "v")
    writer.set("n", 1)
    c = make_cache(LOCATION=replica.url(), KEY_PREFIX="x")
    wait_replicated(replica, c.make_key("n"))
    assert c.get("k") == "v"
    assert c.set("k", "w") is False
    assert c.incr("n") is None
    assert c.incr_version("k") is None  # used to raise ValueError("Key 'k' not found")
    assert c.get("k") == "v" and c.get("n") == 1


async def test_a_read_only_replica_drops_async_writes(
    make_cache: Callable[..., RedisRolesCache], redis_factory: Any
) -> None:
    primary = redis_factory(config={"repl-diskless-sync-delay": "0"})  # sync at once
    replica = redis_factory(config={"replicaof": f"127.0.0.1 {primary.port}"})
    writer = make_cache("writer", LOCATION=primary.url(), KEY_PREFIX="x")
    writer.set("k", "v")
    writer.set("n", 1)
    c = make_cache(LOCATION=replica.url(), KEY_PREFIX="x")
    wait_replicated(replica, c.make_key("n"))
    assert await c.aset("k", "w") is False
    assert await c.aincr("n") is None
    assert await c.aincr_version("k") is None
    assert await c.aget("k") == "v" and await c.aget("n") == 1


def test_after_an_outage_redis_is_skipped_for_outage_backoff(
    make_cache: Callable[..., RedisRolesCache], redis_factory: Any
) -> None:
    """A hung Redis costs each call socket_timeout x (retries + 1) (6 s by default): after
    one failure the cache answers misses at once for OUTAGE_BACKOFF seconds."""
    server = redis_factory()
    c = make_cache(LOCATION=server.url(), OPTIONS={"OUTAGE_BACKOFF": 1.5})
    server.kill()
    assert c.get("k") is None  # fails: the backoff starts
    server.start()  # back on the same port
    with server.client() as client:
        client.set(c.make_key("k"), 5)
        client.config_resetstat()
        assert c.get("k") is None  # skipped, not asked
        assert c.set("k2", 1) is False
        assert c.get_or_set("k3", lambda: "computed") == "computed"
        assert c.ttl("k") == 0
        stats = client.info("commandstats")
        assert not {"cmdstat_get", "cmdstat_set", "cmdstat_ttl", "cmdstat_exists"} & set(stats)
        assert client.exists(c.make_key("k2"), c.make_key("k3")) == 0
        with c.lock("job", timeout=5):  # locks are not lossy: never skipped
            assert client.exists(c.make_key("job")) == 1
        time.sleep(1.6)
        assert c.get("k") == 5  # tried again after the backoff


async def test_after_an_async_outage_redis_is_skipped_too(
    make_cache: Callable[..., RedisRolesCache], redis_factory: Any
) -> None:
    server = redis_factory()
    c = make_cache(LOCATION=server.url(), OPTIONS={"OUTAGE_BACKOFF": 30})
    server.kill()
    assert await c.aget("k") is None
    server.start()
    with server.client() as client:
        client.set(c.make_key("k"), 5)
        client.config_resetstat()
        assert await c.aget("k") is None
        assert await c.aset("k2", 1) is False
        assert await c.aget_or_set("k3", lambda: "computed") == "computed"
        assert "cmdstat_get" not in client.info("commandstats")
        assert client.exists(c.make_key("k2"), c.make_key("k3")) == 0


def test_outage_backoff_zero_always_tries(
    make_cache: Callable[..., RedisRolesCache], redis_factory: Any
) -> None:
    server = redis_factory()
    c = make_cache(LOCATION=server.url(), OPTIONS={"OUTAGE_BACKOFF": 0})
    server.kill()
    assert c.get("k") is None
    server.start()
    c.set("k", 5)
    assert c.get("k") == 5


@pytest.mark.django_db(transaction=True)
async def test_async_writes_of_an_unevaluated_queryset_store_its_rows(
    rr_cache: RedisRolesCache,
) -> None:
    """Pickling an unevaluated QuerySet runs its query, which Django refuses on the
    event loop: aset()/aset_many() encode it in a thread instead, like Django's aset()."""
    from asgiref.sync import sync_to_async
    from django.contrib.auth.models import User

    await sync_to_async(User.objects.create)(username="queryset-ada")
    users = User.objects.filter(username="queryset-ada")  # rows other tests left do not match
    assert await rr_cache.aset("users", users)
    assert [u.username for u in await rr_cache.aget("users")] == ["queryset-ada"]
    assert await rr_cache.aset_many({"many": users.all()}) == []
    assert [u.username for u in await rr_cache.aget("many")] == ["queryset-ada"]


@pytest.mark.django_db(transaction=True)
async def test_a_sync_write_of_an_unevaluated_queryset_on_the_event_loop_is_djangos_error(
    rr_cache: RedisRolesCache,
) -> None:
    """The sync set() called on the event loop does not move the encoding to a thread
    (only aset() does): Django's SynchronousOnlyOperation, raised once, nothing stored."""
    from django.contrib.auth.models import User
    from django.core.exceptions import SynchronousOnlyOperation

    users = User.objects.filter(username="queryset-sync")
    with pytest.raises(SynchronousOnlyOperation):
        rr_cache.set("sync-users", users)
    assert await rr_cache.aget("sync-users") is None
