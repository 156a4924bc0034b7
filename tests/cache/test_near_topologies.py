"""The near cache on one server, a 3-master Redis Cluster and under Sentinel.

Tracking is per node: on a cluster each master reports only its own keys'
writes, so the near cache listens to every master and serves copies only
while all of them are heard from. A failover or a moved slot changes which
node takes a key's writes: the near cache is flushed and bypassed, then
serves again (fresh values) once it listens to the current masters. Under
Sentinel the listener follows the master the Sentinels name.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import redis

from django_redisroles.cache import RedisRolesCache
from django_redisroles.testing.cluster import slot_of
from tests.cache.nearhelp import NEAR, filled, served, until
from tests.processes import ROOT

KEYS = [f"near:{i}" for i in range(12)]

WRITER = """
import sys, django
from django.conf import settings
settings.configure(INSTALLED_APPS=["django_redisroles"], REDISROLES={"URL": sys.argv[1]},
    CACHES={"default": {"BACKEND": "django_redisroles.cache.RedisRolesCache", "TIMEOUT": 60}})
django.setup()
from django.core.cache import cache
cache.set_many({k: "from-B" for k in sys.argv[2:]})
"""


def _is_cluster(topology: Any) -> bool:
    return type(topology).__name__ == "RedisCluster"


def _near(cache: RedisRolesCache) -> Any:
    stats = cache.near_stats()
    assert stats is not None
    return stats


@pytest.fixture
def cache(topology: Any, make_cache: Callable[..., RedisRolesCache]) -> RedisRolesCache:
    cache = make_cache(OPTIONS={"NEAR_CACHE": NEAR})
    cache.get("warm-up")  # starts the listeners
    until(lambda: _near(cache).tracking, 30)
    return cache


def _fill_all(cache: RedisRolesCache, value: str) -> None:
    for key in KEYS:
        filled(cache, key, value)


def _write_all(cache: RedisRolesCache, topology: Any, value: str) -> None:
    """Another client writes ``value`` to every key (retried: right after a failover
    the Sentinels or the slot map may still be settling for a new client)."""

    def written() -> bool:
        client = topology.client()
        try:
            for key in KEYS:
                client.set(cache.make_key(key), cache.client.encode(value), ex=60)
            return True
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    until(written, 60)


def _bypassed_then_serving_fresh(cache: RedisRolesCache, topology: Any, flushes: int) -> None:
    """After a layout change: flushed (``flushes``: the count before), then fresh
    values served again from the near cache."""
    until(lambda: _near(cache).flushes > flushes, 60)
    _write_all(cache, topology, "fresh")  # while (or right after) the listeners move
    assert until(lambda: all(cache.get(k) == "fresh" for k in KEYS), 60)
    until(lambda: _near(cache).tracking, 60)
    for key in KEYS:
        until(lambda key=key: served(cache, key, "fresh"), 30)  # type: ignore[misc]
    # And the new listeners report writes again, on every master.
    _write_all(cache, topology, "again")
    assert until(lambda: all(cache.get(k) == "again" for k in KEYS), 30)


def test_a_write_in_another_process_invalidates_on_every_node(
    topology: Any, cache: RedisRolesCache
) -> None:
    if _is_cluster(topology):
        nodes = {topology.node_for(cache.make_key(k)).port for k in KEYS}
        assert len(nodes) == 3  # the keys really live on every master
    _fill_all(cache, "from-A")
    subprocess.run(
        [sys.executable, "-c", WRITER, topology.url(), *KEYS],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
        timeout=60,
    )
    assert until(lambda: all(cache.get(k) == "from-B" for k in KEYS))
    assert _near(cache).invalidations >= len(KEYS)


def test_one_listener_per_master(topology: Any, cache: RedisRolesCache) -> None:
    """What Redis sees: one tracking connection per master, subscribed, BCAST on the prefix."""
    masters = topology.masters() if _is_cluster(topology) else [_master(topology)]
    for node in masters:
        with node.client() as admin:
            listeners = [c for c in admin.client_list() if "t" in c["flags"]]
        assert len(listeners) == 1, node
        assert int(listeners[0]["sub"]) == 1  # __redis__:invalidate


def _master(topology: Any) -> Any:
    return topology.master() if hasattr(topology, "master") else topology


@pytest.mark.parametrize("topology", ["cluster"], indirect=True)
@pytest.mark.parametrize("kill", [True, False], ids=["crash", "switch"])
def test_a_cluster_master_failover_flushes_bypasses_then_serves_fresh_values(
    topology: Any, cache: RedisRolesCache, kill: bool
) -> None:
    _fill_all(cache, "old")
    flushes = _near(cache).flushes
    victim = topology.node_for(cache.make_key(KEYS[0]))
    if kill:
        topology.failover(victim)
    else:  # CLUSTER FAILOVER: the old master lives on as a replica, our connection open
        _switch(topology, victim)
    _bypassed_then_serving_fresh(cache, topology, flushes)


def _switch(topology: Any, master: Any) -> None:
    replica = next(n for n in topology.replicas() if topology._master_id_of(n) == master.node_id)
    with replica.admin() as admin:
        admin.execute_command("CLUSTER", "FAILOVER")
    until(lambda: topology.node_for(KEYS[0]) is not None and master not in topology.masters(), 30)
    topology.wait_ok()


@pytest.mark.parametrize("topology", ["cluster"], indirect=True)
def test_a_moved_slot_flushes_bypasses_then_serves_fresh_values(
    topology: Any, cache: RedisRolesCache
) -> None:
    _fill_all(cache, "old")
    flushes = _near(cache).flushes
    nkey = cache.make_key(KEYS[0])
    source = topology.node_for(nkey)
    target = next(n for n in topology.masters() if n is not source)
    topology.move_slot(slot_of(nkey), target)
    _bypassed_then_serving_fresh(cache, topology, flushes)
    assert topology.node_for(nkey) is target


@pytest.mark.parametrize("topology", ["sentinel"], indirect=True)
@pytest.mark.parametrize("kill", [True, False], ids=["crash", "switch"])
def test_a_sentinel_failover_flushes_bypasses_then_serves_fresh_values(
    topology: Any, cache: RedisRolesCache, kill: bool
) -> None:
    _fill_all(cache, "old")
    flushes = _near(cache).flushes
    old = topology.master()
    new = topology.failover(kill=kill)
    assert new is not old
    _bypassed_then_serving_fresh(cache, topology, flushes)
    with new.client() as admin:  # the listener moved to the new master
        assert any("t" in c["flags"] for c in admin.client_list())
