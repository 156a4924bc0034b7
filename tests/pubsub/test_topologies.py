"""The layer on a Redis Cluster (sharded pub/sub) and under Sentinel, with faults mid-stream.

Whatever the session's ``--topology``, these start (once per session) the
3-master cluster or the Sentinel group they are about. Mid-stream faults: a
slot moved to another master, a master killed and replaced by its replica.
What a consumer must see: every acknowledged broadcast once, in order, or (a
replay group that cannot fill what it missed) a ``redisroles.gap`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from django_redisroles import connections
from django_redisroles.pubsub import EVENT_GAP, EVENT_LOST, broadcast, status
from django_redisroles.pubsub.names import redis_channel, replay_stream
from django_redisroles.testing import RedisCluster, slot_of
from tests.conftest import session_topology
from tests.pubsub import wire
from tests.pubsub.conftest import receive

pytestmark = pytest.mark.slow


def _on(kind: str, settings: Any, **pubsub: Any) -> Any:
    current = session_topology(kind)
    current.flushall()
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "django_redisroles.pubsub.RedisRolesChannelLayer"}
    }
    settings.REDISROLES = {"URL": current.url(), "ROLES": {"pubsub": pubsub}}
    return current


@pytest.fixture
def cluster(settings: Any) -> Iterator[RedisCluster]:
    current = _on("cluster", settings, REPLAY_GROUPS=["r-*"])
    yield current
    if not current.running:
        current.start()  # the killed master comes back, as a replica
    with contextlib.suppress(Exception):
        connections.reset()


@pytest.fixture
def sentinel(settings: Any) -> Iterator[Any]:
    current = _on("sentinel", settings, REPLAY_GROUPS=["r-*"])
    yield current
    if not current.running:
        current.start()
    with contextlib.suppress(Exception):
        connections.reset()


def groups_on_each_master(cluster: RedisCluster, prefix: str) -> list[str]:
    """One group name per master: names whose channel slots the three masters serve."""
    found: dict[int, str] = {}
    for n in range(1000):
        group = f"{prefix}{n}"
        found.setdefault(cluster.node_for(redis_channel("g", group)).port, group)
        if len(found) == len(cluster.masters()):
            return list(found.values())
    raise AssertionError("no group name for some master")


async def test_groups_on_every_master_reach_every_process(cluster, make_layer) -> None:
    a, b = make_layer(), make_layer()  # two app instances
    groups = groups_on_each_master(cluster, "g-") + groups_on_each_master(cluster, "r-")
    ca, cb = await a.new_channel(), await b.new_channel()
    for group in groups:
        await a.group_add(group, ca)
        await b.group_add(group, cb)
    for group in groups:
        channel = redis_channel("g", group)
        # Sharded: heard on the master of its slot (SSUBSCRIBE), one connection per process.
        assert wire.numsub(cluster, channel) == 2
        with cluster.node_for(channel).admin() as owner:
            assert owner.execute_command("PUBSUB", "NUMSUB", channel)[1] == 0
    # status() (redisroles pubsub) asks every master: PUBSUB SHARDCHANNELS / SHARDNUMSUB.
    seen = await asyncio.to_thread(status)
    assert {g["group"]: g["processes"] for g in seen["groups"]} == dict.fromkeys(groups, 2)
    assert seen["consumer_channels"] == 2
    stats = wire.Stats(cluster)
    for group in groups:
        await b.group_send(group, {"type": "warm-up"})
    for layer, channel in ((a, ca), (b, cb)):
        assert [(await receive(layer, channel))["type"] for _ in groups] == ["warm-up"] * 6
    broadcast(groups[0], {"type": "warm-up"})  # (the sync cluster client's first COMMAND)
    for layer, channel in ((a, ca), (b, cb)):
        await receive(layer, channel)
    stats.reset()
    for n, group in enumerate(groups):
        seq = broadcast(group, {"type": "m", "n": n})
        assert (seq is not None) == group.startswith("r-")
    sent = stats.commands()
    stats.close()
    # One SPUBLISH per plain group send, one script per replay one (its XADD and
    # SPUBLISH inside are counted too), on the master of the group's slot.
    assert sent.get("evalsha") == 3 and sent.get("xadd") == 3, sent
    assert sent.get("spublish") == 3 + 3, sent
    assert "publish" not in sent, sent
    for layer, channel in ((a, ca), (b, cb)):
        got = [(await receive(layer, channel))["n"] for _ in groups]
        # In order per group; groups on different masters arrive on different connections.
        assert sorted(got) == list(range(6))
    # The replay stream of each group is on its channel's master.
    for group in groups[3:]:
        with cluster.node_for(redis_channel("g", group)).admin() as owner:
            assert owner.xlen(replay_stream(group)) == 2  # the warm-up and the message
    # A consumer channel on another master: send() reaches it too.
    await a.send(cb, {"type": "direct"})
    assert (await receive(b, cb))["type"] == "direct"
    seen = await asyncio.to_thread(status)
    assert sorted(r["group"] for r in seen["replay_streams"]) == sorted(groups[3:])


class Publisher:
    """Broadcasts n = 0, 1, ... to ``group`` from a thread; keeps what Redis acknowledged."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.acked: list[int] = []
        self.failed: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(0.01):
            try:
                broadcast(self.group, {"type": "m", "n": n})
            except (redis.RedisError, OSError):
                self.failed.append(n)
            else:
                self.acked.append(n)
            n += 1

    def __enter__(self) -> Publisher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    async def wait_acked(self, count: int, within: float = 60.0) -> None:
        goal = len(self.acked) + count
        deadline = asyncio.get_running_loop().time() + within
        while len(self.acked) < goal:
            assert asyncio.get_running_loop().time() < deadline, "publishes never succeed"
            await asyncio.sleep(0.02)


async def collect(layer: Any, channel: str, group: str) -> tuple[list[int], list[dict]]:
    """Message numbers received until an end marker arrives, and the events.

    The marker is sent again until it arrives: a plain group's message sent
    before the subscriber is back is lost (and reported), not late. One
    receive() at a time, never cancelled (that would end the consumer).
    """
    got: list[int] = []
    events: list[dict] = []
    pending = asyncio.ensure_future(layer.receive(channel))
    try:
        for _ in range(30):
            await asyncio.to_thread(broadcast, group, {"type": "end"})
            while True:
                done, _ = await asyncio.wait({pending}, timeout=2)
                if not done:
                    break  # send the marker again
                message = pending.result()
                pending = asyncio.ensure_future(layer.receive(channel))
                if message["type"] == "end":
                    return got, events
                if message["type"] in (EVENT_GAP, EVENT_LOST):
                    events.append(message)
                else:
                    got.append(message["n"])
        raise AssertionError(f"the subscriber never came back: {got[-5:]}, {events}")
    finally:
        pending.cancel()


def check_replay(publisher: Publisher, got: list[int], events: list[dict]) -> None:
    """Once, in order; every acknowledged message delivered, unless a gap was reported."""
    assert got == sorted(set(got)), "a message delivered twice or out of order"
    missing = sorted(set(publisher.acked) - set(got))
    gaps = [e for e in events if e["type"] == EVENT_GAP]
    assert not missing or gaps, f"acknowledged, never delivered, no gap event: {missing}"


async def _fault_mid_stream(layer: Any, fault: Any, group: str) -> tuple[Publisher, list, list]:
    channel = await layer.new_channel()
    await layer.group_add(group, channel, events=True)
    with Publisher(group) as publisher:
        await publisher.wait_acked(20)
        await asyncio.to_thread(fault)
        await publisher.wait_acked(30)  # published on the new owner
    got, events = await collect(layer, channel, group)
    return publisher, got, events


@pytest.mark.parametrize("group", ["r-moving", "g-moving"])
async def test_a_slot_moved_mid_stream(cluster, make_layer, group: str) -> None:
    layer = make_layer()
    channel = redis_channel("g", group)
    source = cluster.node_for(channel)
    target = next(m for m in cluster.masters() if m is not source)

    publisher, got, events = await _fault_mid_stream(
        layer, lambda: cluster.move_slot(slot_of(channel), target), group
    )
    # The subscriber followed the slot: heard on the new owner only.
    assert wire.numsub(cluster, channel) == 1
    assert cluster.node_for(channel) is target
    if group.startswith("r-"):
        check_replay(publisher, got, events)
        assert not publisher.failed  # MOVED/ASK are followed: no publish fails
    else:
        assert got == sorted(set(got))
        # What was published while nobody listened is reported, not silently lost.
        assert set(publisher.acked) <= set(got) or any(e["type"] == EVENT_LOST for e in events)
    assert layer.stats["moved"] >= 1


@pytest.mark.parametrize("group", ["r-failover", "g-failover"])
async def test_a_cluster_master_fails_mid_stream(cluster, make_layer, group: str) -> None:
    layer = make_layer()
    channel = redis_channel("g", group)
    owner = cluster.node_for(channel)
    publisher, got, events = await _fault_mid_stream(layer, lambda: cluster.failover(owner), group)
    assert cluster.node_for(channel) is not owner
    assert wire.numsub(cluster, channel) == 1  # re-subscribed on the promoted replica
    if group.startswith("r-"):
        check_replay(publisher, got, events)
    else:
        assert got == sorted(set(got))
        assert set(publisher.acked) <= set(got) or any(e["type"] == EVENT_LOST for e in events)


@pytest.mark.parametrize("group", ["r-failover", "g-failover"])
async def test_a_sentinel_failover_mid_stream(sentinel, make_layer, group: str) -> None:
    layer = make_layer()
    old = sentinel.master()
    publisher, got, events = await _fault_mid_stream(layer, sentinel.failover, group)
    assert sentinel.master() is not old
    assert wire.numsub(sentinel, redis_channel("g", group)) == 1  # on the new master
    if group.startswith("r-"):
        check_replay(publisher, got, events)
    else:
        assert got == sorted(set(got))
        assert set(publisher.acked) <= set(got) or any(e["type"] == EVENT_LOST for e in events)


def _serves(cluster: RedisCluster, node: Any, channel: bytes) -> bool:
    with contextlib.suppress(redis.RedisError, OSError, RuntimeError):
        return cluster.node_for(channel) is node
    return False


async def test_replay_entries_lost_with_their_master_are_reported_as_a_gap(
    cluster, make_layer
) -> None:
    # Replication is asynchronous: entries the old master acknowledged and never sent
    # to its replica are gone after the failover. A consumer resuming from one of them
    # is told (redisroles.gap), never handed a silently shortened stream.
    group = "r-lost"
    owner = cluster.node_for(redis_channel("g", group))
    replica = next(r for r in cluster.replicas() if cluster._master_id_of(r) == owner.node_id)
    layer = make_layer()
    live = await layer.new_channel()
    await layer.group_add(group, live, events=True)
    replica.pause()  # it receives nothing from here on (not even what a socket buffers):
    with owner.admin() as master:
        master.execute_command("CLIENT", "KILL", "TYPE", "replica")
    try:
        seqs = [broadcast(group, {"type": "m", "n": n}) for n in range(10)]
        assert [(await receive(layer, live))["n"] for _ in range(10)] == list(range(10))
        owner.kill()  # before the replica could see any of them
    finally:
        replica.resume()
    deadline = asyncio.get_running_loop().time() + 60
    while not await asyncio.to_thread(_serves, cluster, replica, redis_channel("g", group)):
        assert asyncio.get_running_loop().time() < deadline, cluster.describe()
        await asyncio.sleep(0.1)

    for _ in range(50):  # the first publish may still go to the dead master: it raises
        try:
            after = await asyncio.to_thread(broadcast, group, {"type": "m", "n": 10})
            break
        except redis.ConnectionError:
            await asyncio.sleep(0.1)
    # The live consumer re-subscribed on the new master: it cannot prove it missed
    # nothing (the stream it resumes from is not the one it read), so it is told.
    events: list[dict] = []
    got: list[int] = []
    while 10 not in got:
        message = await receive(layer, live, within=30)
        if message["type"] in (EVENT_GAP, EVENT_LOST):
            events.append(message)
        else:
            got.append(message["n"])
    assert any(e["type"] == EVENT_GAP for e in events), events
    # A consumer coming back with the seq of message 5: 6..9 are lost, and it is told.
    other = make_layer()
    channel = await other.new_channel()
    await other.group_add(group, channel, since=seqs[5])
    gap = await receive(other, channel)
    assert gap["type"] == EVENT_GAP and gap["since"] == seqs[5], gap
    resumed = await receive(other, channel)
    assert resumed["n"] == 10 and resumed["seq"] == after
