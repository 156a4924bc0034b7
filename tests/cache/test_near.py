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

from django_redisroles.cache import RedisRolesCache
from django_redisroles.testing import RedisServer
from tests.cache.nearhelp import filled, near_hit, served, until
from tests.processes import ROOT


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


@pytest.mark.topologies(
    "single", "cluster", reason="a stall past down-after-milliseconds is a Sentinel failover"
)
def test_a_stalled_server_stops_the_near_cache_within_heartbeat_plus_max_lag(
    near_cache: RedisRolesCache, redis_server: Any
) -> None:
    filled(near_cache, "k", "v")
    if hasattr(redis_server, "node_for"):  # a cluster: the master holding the key
        redis_server = redis_server.node_for(near_cache.make_key("k"))
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


@pytest.mark.topologies("single", reason="restarts the server; failovers: test_near_topologies.py")
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
