"""The cache role on one server, a 3-master Redis Cluster and under Sentinel.

Multi-key operations group their keys by slot (one command per slot, one
pipeline: one round trip per node), ``clear()`` scans every master and removes
only this cache's keys, the stampede lock lives in its value's slot on a cluster
(and keeps its single-server name elsewhere), and ``incr``/``decr``/``add``/
``incr_version`` and the django-redis extras behave the same everywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from django_redisroles import conf
from django_redisroles.cache import RedisRolesCache
from django_redisroles.testing.cluster import slot_of
from tests.sessions.conftest import round_trips  # noqa: F401 - the fixture, shared

KEYS = [f"item:{i}" for i in range(40)]


def _is_cluster(topology: Any) -> bool:
    return type(topology).__name__ == "RedisCluster"


@pytest.fixture
def cache(topology: Any, make_cache: Callable[..., RedisRolesCache]) -> RedisRolesCache:
    return make_cache()


def test_multi_key_operations_group_keys_by_slot(
    topology: Any,
    cache: RedisRolesCache,
    round_trips: Any,  # noqa: F811
) -> None:
    data = {k: i for i, k in enumerate(KEYS)}
    assert cache.set_many(data) == []
    if _is_cluster(topology):
        nodes = {topology.node_for(cache.make_key(k)).port for k in KEYS}
        assert len(nodes) == 3  # the keys really span every master
    wanted = [*reversed(KEYS), "missing"]
    cache.get("warm-up")  # connections open: count requests, not handshakes
    round_trips.reset()
    found = cache.get_many(wanted)
    assert list(found) == wanted[:-1]  # in the order asked, the missing one left out
    assert found == data
    # One MGET per slot, in one pipeline: one request per master at most.
    assert round_trips.count <= (3 if _is_cluster(topology) else 1)
    cache.delete_many(KEYS[:20])
    assert cache.get_many(KEYS) == {k: data[k] for k in KEYS[20:]}


async def test_async_multi_key_operations_group_keys_by_slot(
    topology: Any, cache: RedisRolesCache
) -> None:
    data = {k: str(i) for i, k in enumerate(KEYS)}
    assert await cache.aset_many(data) == []
    assert await cache.aget_many(KEYS[::-1]) == {k: data[k] for k in KEYS[::-1]}
    await cache.adelete_many(KEYS[1:])
    assert await cache.aget_many(KEYS) == {KEYS[0]: "0"}


def test_clear_scans_every_master_and_keeps_other_roles_keys(
    topology: Any, cache: RedisRolesCache
) -> None:
    cache.set_many({k: 1 for k in KEYS})
    client = topology.client()
    others = [
        conf.make_key("sessions", "s", "s1bxq0ejdnq3xk1e3tq5lmu5yx9i6jsi"),
        conf.make_key("sessions", "u", "{6b86}1"),
        conf.make_key("ratelimit", "ip", "203.0.113.9"),
        "unrelated-app:key",
    ]
    for key in others:
        client.set(key, "keep", ex=600)
    try:
        assert cache.clear() == len(KEYS)
        assert cache.get_many(KEYS) == {}
        assert sorted(k.decode() for k in client.scan_iter("*")) == sorted(others)
        cache.set_many({k: 1 for k in KEYS})
        assert asyncio.run(cache.aclear()) == len(KEYS)
        assert sorted(k.decode() for k in client.scan_iter("*")) == sorted(others)
    finally:
        client.close()


def test_the_stampede_lock_lives_beside_its_value(topology: Any, cache: RedisRolesCache) -> None:
    client = topology.client()
    seen: dict[str, Any] = {}
    nkey = cache.make_key("report")

    def loader() -> str:
        seen["locks"] = [k.decode() for k in client.scan_iter("*.lock:*")]
        return "v"

    try:
        assert cache.get_or_set("report", loader, 60) == "v"
    finally:
        client.close()
    (lock,) = seen["locks"]
    if _is_cluster(topology):
        assert slot_of(lock) == slot_of(nkey)  # one node for the value and its lock
        assert lock == f"{cache.key_prefix}:1.lock:{{{nkey}}}"
    else:  # the name every release used: a rolling deploy shares it
        assert lock == f"{cache.key_prefix}:1.lock:report"


def test_incr_decr_add_and_versions_behave_the_same(topology: Any, cache: RedisRolesCache) -> None:
    with pytest.raises(ValueError, match="not found"):
        cache.incr("counter")
    assert cache.add("counter", 1) is True
    assert cache.add("counter", 5) is False
    assert cache.incr("counter", 10) == 11
    assert cache.decr("counter", 2) == 9
    assert 0 < cache.ttl("counter") <= 60
    cache.set("doc", {"a": 1}, 30)
    # RENAME on one server; across slots on a cluster (DUMP/RESTORE): same result.
    assert cache.incr_version("doc") == 2
    assert cache.get("doc") is None
    assert cache.get("doc", version=2) == {"a": 1}
    assert 0 < cache.ttl("doc", version=2) <= 30
    with pytest.raises(ValueError, match="not found"):
        cache.incr_version("nothing")


def test_django_redis_extras_reach_every_master(topology: Any, cache: RedisRolesCache) -> None:
    cache.set_many({k: 1 for k in KEYS})
    cache.set("other:1", 1)
    assert sorted(cache.keys("item:*")) == sorted(KEYS)
    assert sorted(cache.iter_keys("item:*")) == sorted(KEYS)
    assert cache.delete_pattern("item:*") == len(KEYS)
    assert cache.keys("*") == ["other:1"]


def test_a_location_naming_the_topology_is_one_server_not_a_list(
    topology: Any, make_cache: Callable[..., RedisRolesCache]
) -> None:
    """A cluster's (or Sentinel's) seed list has commas: it is one LOCATION, not a
    primary and its replicas (django-redis splits LOCATION on commas)."""
    cache = make_cache(LOCATION=topology.url())
    assert cache.client.servers == (topology.url(),)
    cache.set_many({k: 1 for k in KEYS})
    assert len(cache.get_many(KEYS)) == len(KEYS)
    assert cache.clear() == len(KEYS)
