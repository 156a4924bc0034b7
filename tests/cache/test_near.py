"""The near cache (OPTIONS["NEAR_CACHE"]): an in-process copy invalidated by Redis.

Every test runs on real redis-server processes: writes come from other
connections and other processes, the invalidation connection is killed,
the server is paused and restarted.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from django_redisroles.cache import RedisRolesCache, cached
from django_redisroles.checks.cache import check_caches
from django_redisroles.testing import RedisServer
from tests.processes import ROOT

NEAR = {"HEARTBEAT": 0.1, "MAX_LAG": 0.3}


def until(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError("condition not met in time")


@pytest.fixture
def near_cache(make_cache: Callable[..., RedisRolesCache]) -> RedisRolesCache:
    cache = make_cache(OPTIONS={"NEAR_CACHE": NEAR})
    cache.get("warm-up")  # starts the listener
    until(lambda: cache.near_stats().tracking)  # type: ignore[union-attr]
    return cache


def near_hit(cache: RedisRolesCache, key: str) -> Any:
    """The value, asserting it came from the near cache."""
    before = cache.near_stats().hits  # type: ignore[union-attr]
    value = cache.get(key)
    assert cache.near_stats().hits == before + 1  # type: ignore[union-attr]
    return value


def filled(cache: RedisRolesCache, key: str, value: Any) -> None:
    """Write ``value``, then read until it is served from the near cache (the
    invalidation of this very write, coming back from Redis, may drop the first fill)."""
    cache.set(key, value)
    until(lambda: served(cache, key, value))


def served(cache: RedisRolesCache, key: str, value: Any) -> bool:
    """Whether a read of ``key`` (asserted to give ``value``) was a near-cache hit."""
    before = cache.near_stats().hits  # type: ignore[union-attr]
    assert cache.get(key) == value
    return cache.near_stats().hits > before  # type: ignore[union-attr]


def test_off_by_default(rr_cache: RedisRolesCache) -> None:
    assert rr_cache.near is None and rr_cache.near_stats() is None


def test_a_write_from_another_connection_is_seen_when_its_invalidation_arrives(
    near_cache: RedisRolesCache, redis_client: redis.Redis
) -> None:
    filled(near_cache, "k", "old")
    redis_client.set(near_cache.make_key("k"), near_cache.client.encode("new"), ex=60)
    assert until(lambda: near_cache.get("k") == "new")
    assert near_cache.near_stats().invalidations >= 1  # type: ignore[union-attr]


WRITER = """
import sys, django
from django.conf import settings
settings.configure(INSTALLED_APPS=["django_redisroles"], REDISROLES={"URL": sys.argv[1]},
    CACHES={"default": {"BACKEND": "django_redisroles.cache.RedisRolesCache", "TIMEOUT": 60}})
django.setup()
from django.core.cache import cache
op = sys.argv[2]
if op == "set": cache.set("k", "from-B")
elif op == "delete": cache.delete("k")
elif op == "incr": cache.incr("n")
elif op == "touch": cache.touch("k", 1)
elif op == "expire": cache.expire("k", 0)
elif op == "clear": cache.clear()
"""


def _in_other_process(url: str, op: str) -> None:
    subprocess.run(
        [sys.executable, "-c", WRITER, url, op],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
        timeout=60,
    )


@pytest.mark.parametrize("op", ["set", "delete", "expire", "clear"])
def test_a_write_in_another_process_invalidates(
    near_cache: RedisRolesCache, redis_server: RedisServer, op: str
) -> None:
    filled(near_cache, "k", "from-A")
    _in_other_process(redis_server.url(), op)
    expected = "from-B" if op == "set" else None
    assert until(lambda: near_cache.get("k") == expected)


def test_incr_and_touch_in_another_process(
    near_cache: RedisRolesCache, redis_server: RedisServer
) -> None:
    filled(near_cache, "n", 1)
    _in_other_process(redis_server.url(), "incr")
    assert until(lambda: near_cache.get("n") == 2)
    filled(near_cache, "k", "v")
    _in_other_process(redis_server.url(), "touch")  # TTL now 1 s: the copy must follow
    time.sleep(1.2)
    assert near_cache.get("k") is None


def test_async_reads_are_invalidated_too(
    near_cache: RedisRolesCache, redis_client: redis.Redis
) -> None:
    async def scenario() -> None:
        await near_cache.aset("k", "old")
        deadline = time.monotonic() + 10
        while True:  # until served from the near cache (see filled())
            hits = near_cache.near_stats().hits  # type: ignore[union-attr]
            assert await near_cache.aget("k") == "old"
            if near_cache.near_stats().hits > hits:  # type: ignore[union-attr]
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.001)
        redis_client.set(near_cache.make_key("k"), near_cache.client.encode("new"), ex=60)
        deadline = time.monotonic() + 10
        while await near_cache.aget("k") != "new":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.001)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "write",
    [
        lambda c, i: c.set("k", i),
        lambda c, i: asyncio.run(c.aset("k", i)),
        lambda c, i: c.set_many({"k": i}),
        lambda c, i: (c.delete("k"), c.add("k", i)),
        lambda c, i: c.incr("k") if i else c.set("k", 0),
    ],
    ids=["set", "aset", "set_many", "delete+add", "incr"],
)
def test_the_writing_process_never_reads_its_own_stale_value(
    near_cache: RedisRolesCache, write: Callable[[RedisRolesCache, int], Any]
) -> None:
    write(near_cache, 0)
    for i in range(1, 200):
        near_cache.get("k")
        near_cache.get("k")  # a near hit of the value before the write
        write(near_cache, i)
        assert near_cache.get("k") == i  # at once: not after the invalidation


def test_a_fill_that_read_before_an_invalidation_is_not_kept(
    near_cache: RedisRolesCache, redis_client: redis.Redis
) -> None:
    near = near_cache.near
    assert near is not None
    nkey = near_cache.make_key("k")
    near_cache.set("k", "old")
    token = near.begin(nkey)  # a reader starts its fill...
    assert token is not None
    raw = redis_client.get(nkey)  # ... and reads "old"
    seen = near.stats().invalidations
    redis_client.set(nkey, near_cache.client.encode("new"), ex=60)  # another process writes
    until(lambda: near.stats().invalidations > seen)  # the invalidation arrives first
    assert near.fill(nkey, token, raw, 60_000, time.monotonic()) is False
    assert near_cache.get("k") == "new"


def test_killing_the_invalidation_connection_flushes_and_bypasses(
    near_cache: RedisRolesCache, redis_client: redis.Redis
) -> None:
    filled(near_cache, "k", "v")
    redis_client.client_kill_filter(_type="pubsub")
    until(lambda: not near_cache.near_stats().tracking)  # type: ignore[union-attr]
    stats = near_cache.near_stats()
    assert stats is not None and stats.entries == 0
    # A write while nobody listens is still seen: reads bypass the near cache...
    redis_client.set(near_cache.make_key("k"), near_cache.client.encode("w"), ex=60)
    assert near_cache.get("k") == "w"
    # ... and tracking comes back by itself.
    until(lambda: near_cache.near_stats().tracking)  # type: ignore[union-attr]
    near_cache.get("k")
    assert near_hit(near_cache, "k") == "w"


def test_a_stalled_server_stops_the_near_cache_within_heartbeat_plus_max_lag(
    near_cache: RedisRolesCache, redis_server: RedisServer
) -> None:
    filled(near_cache, "k", "v")
    assert redis_server.pid is not None
    os.kill(redis_server.pid, signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        until(lambda: not near_cache.near.tracking())  # type: ignore[union-attr]
        # HEARTBEAT 0.1 + MAX_LAG 0.3: copies stop being served by then (slack for load).
        assert time.monotonic() - stopped < 0.4 + 2.0
        # The read path stops serving at once; the listener flushes right after.
        assert near_cache.near.lookup(near_cache.make_key("k")) is None  # type: ignore[union-attr]
        until(lambda: near_cache.near_stats().entries == 0)  # type: ignore[union-attr]
    finally:
        os.kill(redis_server.pid, signal.SIGCONT)
    until(lambda: near_cache.near_stats().tracking)  # type: ignore[union-attr]


def test_redis_restart(near_cache: RedisRolesCache, redis_server: RedisServer) -> None:
    filled(near_cache, "k", "before")
    redis_server.restart(kill=True)  # no persistence: the value is gone
    assert until(lambda: near_cache.get("k", "gone") == "gone")
    until(lambda: near_cache.near_stats().tracking)  # type: ignore[union-attr]
    filled(near_cache, "k", "after")
    redis.Redis.from_url(redis_server.url()).set(
        near_cache.make_key("k"), near_cache.client.encode("changed"), ex=60
    )
    assert until(lambda: near_cache.get("k") == "changed")


def test_clear_empties_the_copy(near_cache: RedisRolesCache) -> None:
    filled(near_cache, "k", "v")
    near_cache.clear()
    assert near_cache.near_stats().entries == 0  # type: ignore[union-attr]
    assert near_cache.get("k") is None


def test_a_copy_never_outlives_the_redis_ttl(near_cache: RedisRolesCache) -> None:
    near_cache.set("k", "v", timeout=0.5)
    until(lambda: served(near_cache, "k", "v"), 0.4)
    entry = near_cache.near.entries[near_cache.make_key("k")]  # type: ignore[union-attr]
    assert entry[1] - time.monotonic() <= 0.5
    time.sleep(0.55)
    assert near_cache.get("k") is None


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


def test_stampede_with_the_near_cache_on(near_cache: RedisRolesCache) -> None:
    calls: list[int] = []

    def loader() -> str:
        calls.append(1)
        time.sleep(0.1)
        return "computed"

    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(near_cache.get_or_set("hot", loader)))
        for _ in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["computed"] * 20 and calls == [1]
    near_cache.get_or_set("hot", loader)  # fills the near cache from Redis
    hits = near_cache.near_stats().hits  # type: ignore[union-attr]
    assert near_cache.get_or_set("hot", loader) == "computed"
    assert near_cache.near_stats().hits == hits + 1 and calls == [1]  # type: ignore[union-attr]


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
