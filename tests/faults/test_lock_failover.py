"""Locks across a failover: the fence never goes back; ``REPLICA_ACKS`` keeps the hold.

Replication is asynchronous. A lock taken on a master that dies before its
replica got the write is gone on the promoted replica: a second holder can
take it. What must hold then is the fence: the second holder's is higher than
every fence the dead master handed out, so a resource that checks fences
refuses the first holder's late writes (docs/locks.md, docs/scaling.md).
``REPLICA_ACKS=1`` makes the acquire wait for the replica (``WAIT``): then the
hold itself survives the failover.

The lost write is real, not simulated: the replica is cut off its master
(``REPLICAOF`` a dead port) before the second acquire, then the master is
killed and the Sentinels promote that replica.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from django_redisroles import connections
from django_redisroles.locks import Lock, LockLost, LockNotReplicated, lock_keys, owner
from tests.conftest import session_topology

pytestmark = pytest.mark.slow


class FencedStore:
    """A resource that checks fences: it refuses a write under a fence older than one it saw."""

    def __init__(self) -> None:
        self.highest = 0
        self.writes: list[tuple[str, int]] = []

    def write(self, who: str, fence: int | None) -> bool:
        assert fence is not None
        if fence < self.highest:
            return False
        self.highest = fence
        self.writes.append((who, fence))
        return True


def _point(settings: Any, url: str, **locks: Any) -> None:
    settings.REDISROLES = {
        "URL": url,
        "ROLES": {
            "locks": {**locks, "OPTIONS": {"socket_timeout": 2, "socket_connect_timeout": 1}}
        },
    }
    connections.reset()


def _wait(done: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _cut_off(replica: Any) -> None:
    """The replica stops receiving the master's writes (they are lost if the master dies)."""
    with replica.client() as client:
        client.execute_command("REPLICAOF", "127.0.0.1", "1")  # nothing listens there


@pytest.fixture
def sentinel(settings: Any) -> Any:
    group = session_topology("sentinel")
    group.flushall()
    yield group
    connections.reset()
    master = group._named_master()
    for node in group.data:  # a replica a test cut off follows the master again
        if master is not None and node is not master and node.running:
            with node.client() as client:
                client.execute_command("REPLICAOF", "127.0.0.1", master.port)
    group.start()  # the killed master comes back as a replica


def test_a_lock_lost_in_a_failover_is_taken_again_with_a_higher_fence(sentinel, settings) -> None:
    _point(settings, sentinel.url())
    store = FencedStore()
    first = Lock("nightly", ttl=60, renew=False)
    assert first.acquire()
    replica = sentinel.replicas()[0]
    with replica.client() as client:  # replicated: the new master will know this fence
        _wait(lambda: client.get(lock_keys("nightly").lock) is not None)
    first.release()

    _cut_off(replica)
    second = Lock("nightly", ttl=60, renew=False)
    assert second.acquire()  # acknowledged by the master, never replicated
    assert second.fence > first.fence
    sentinel.failover()  # kills the master; the Sentinels promote the cut-off replica

    third = Lock("nightly", ttl=60, renew=False)
    assert third.acquire()  # the clients followed the new master; the hold was lost
    assert third.fence > second.fence  # never an old number again
    assert store.write("third", third.fence)
    assert not store.write("second", second.fence)  # the stale holder's late write is refused
    with pytest.raises(LockLost):
        second.release()  # not its lock any more: touches nothing
    assert owner("nightly") is not None and owner("nightly").fence == third.fence
    third.release()


def test_replica_acks_keep_the_lock_across_a_failover(sentinel, settings) -> None:
    _point(settings, sentinel.url(), REPLICA_ACKS=1)
    holder = Lock("nightly", ttl=60, renew=False)
    assert holder.acquire()
    sentinel.failover()
    rival = Lock("nightly", ttl=60, renew=False)
    assert not rival.acquire()  # still held on the promoted replica
    assert rival.holder is not None and rival.holder.fence == holder.fence
    holder.release()  # and released there
    # The promoted master has no replica until the dead one is back: no hold.
    with pytest.raises(LockNotReplicated):
        rival.acquire()
    sentinel.start()  # the old master rejoins as a replica
    assert rival.acquire() and rival.fence > holder.fence
    rival.release()


async def test_replica_acks_refuse_a_hold_no_replica_acknowledged(sentinel, settings) -> None:
    _point(settings, sentinel.url(), REPLICA_ACKS=1, REPLICA_TIMEOUT=0.2)
    _cut_off(sentinel.replicas()[0])
    with pytest.raises(LockNotReplicated, match="REPLICA_ACKS=1"), Lock("nightly", ttl=60):
        pytest.fail("ran without a replicated lock")
    with pytest.raises(LockNotReplicated):
        await Lock("nightly", ttl=60).aacquire()
    assert owner("nightly") is None  # released again, not left for its ttl


def test_a_locked_command_without_acknowledging_replicas_does_not_run(sentinel, settings) -> None:
    from django.core.management import call_command
    from django.core.management.base import BaseCommand, CommandError

    from django_redisroles.locks import command_lock

    ran: list[int | None] = []

    @command_lock(ttl=10)
    class Nightly(BaseCommand):
        def handle(self, *args: Any, **options: Any) -> None:
            ran.append(self.lock.fence)

    _point(settings, sentinel.url(), REPLICA_ACKS=1, REPLICA_TIMEOUT=0.2)
    call_command(Nightly())  # a replica acknowledges: it runs
    assert len(ran) == 1
    _cut_off(sentinel.replicas()[0])
    with pytest.raises(CommandError, match=r"not running.*REPLICA_ACKS=1") as excinfo:
        call_command(Nightly())
    assert excinfo.value.returncode == 1 and len(ran) == 1


def test_on_a_cluster_fences_keep_increasing_and_acks_keep_the_lock(settings) -> None:
    cluster = session_topology("cluster")
    cluster.flushall()
    try:
        _point(settings, cluster.url(), REPLICA_ACKS=1)
        holder = Lock("nightly", ttl=60, renew=False)
        assert holder.acquire()
        cluster.failover(cluster.node_for(lock_keys("nightly").lock))
        rival = Lock("nightly", ttl=60, renew=False)
        _wait(lambda: not rival.acquire() and rival.holder is not None)
        assert rival.holder.fence == holder.fence  # the hold moved with the slot's new master
        holder.release()
        cluster.start()  # the dead master rejoins as the replica of the promoted one

        def acquired() -> bool:
            try:
                return rival.acquire()
            except LockNotReplicated:  # the rejoined replica's first sync is still under way
                return False

        _wait(acquired)
        assert rival.fence > holder.fence
        rival.release()
    finally:
        cluster.start()
        connections.reset()
