"""`async with Lock(...)`: native redis.asyncio, renewal task, loss cancels the holder."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
import redis

from django_redisroles.locks import Lock, LockHeld, LockLost, aowner, force_release, lock_keys
from tests.topohelpers import data_node

from .conftest import token_of


async def test_async_with_holds_and_releases(redis_client: redis.Redis) -> None:
    async with Lock("a", ttl=10) as lock:
        assert token_of(redis_client, lock_keys("a").lock) == lock.token
        info = await aowner("a")
        assert info is not None and info.pid == os.getpid() and info.fence == lock.fence
        with pytest.raises(LockHeld, match="held by host"):
            async with Lock("a", ttl=10):
                pass
    assert await aowner("a") is None


async def test_async_waiters_hand_over_in_turn() -> None:
    order: list[tuple[str, int]] = []

    async def job(tag: str) -> None:
        async with Lock("turns", ttl=10, wait=10) as lock:
            order.append((tag, lock.fence or 0))
            await asyncio.sleep(0.05)

    await asyncio.gather(*(job(str(i)) for i in range(5)))
    assert sorted(tag for tag, _ in order) == ["0", "1", "2", "3", "4"]
    fences = [fence for _, fence in order]
    assert fences == sorted(fences) and len(set(fences)) == 5


async def test_async_renewal_keeps_the_lock(redis_client: redis.Redis) -> None:
    async with Lock("r", ttl=0.3) as lock:
        await asyncio.sleep(1.0)
        lock.check()
        assert token_of(redis_client, lock_keys("r").lock) == lock.token


async def test_async_stale_holder_cannot_release_the_next_holders_lock(
    redis_client: redis.Redis,
) -> None:
    stale = Lock("s", ttl=0.2, renew=False)
    assert await stale.aacquire()
    await asyncio.sleep(0.3)
    fresh = Lock("s", ttl=10)
    assert await fresh.aacquire()
    with pytest.raises(LockLost):
        await stale.aextend()
    with pytest.raises(LockLost):
        await stale.arelease()
    assert token_of(redis_client, lock_keys("s").lock) == fresh.token
    assert fresh.fence > stale.fence
    await fresh.arelease()


async def test_async_interrupt_cancels_the_holder_with_lock_lost() -> None:
    started = time.monotonic()
    with pytest.raises(LockLost, match="lost lock 'i'"):
        async with Lock("i", ttl=0.3, interrupt=True):
            await asyncio.to_thread(force_release, "i")
            await asyncio.sleep(10)
    assert time.monotonic() - started < 5
    assert not asyncio.current_task().cancelling()


async def test_async_loss_without_interrupt_is_raised_on_exit() -> None:
    noticed = asyncio.Event()
    with pytest.raises(LockLost):
        async with Lock("e", ttl=0.3, on_lost=lambda lock: noticed.set()) as lock:
            await asyncio.to_thread(force_release, "e")
            await asyncio.wait_for(noticed.wait(), timeout=3)
            assert lock.lost


async def test_cancelled_holder_releases_the_lock(redis_client: redis.Redis) -> None:
    entered = asyncio.Event()

    async def holder() -> None:
        async with Lock("c", ttl=30):
            entered.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(holder())
    await entered.wait()
    assert redis_client.exists(lock_keys("c").lock)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not redis_client.exists(lock_keys("c").lock)


STALL = """
local t0 = redis.call('TIME')
local start = tonumber(t0[1]) * 1000000 + tonumber(t0[2])
while true do
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000000 + tonumber(t[2]) - start > tonumber(ARGV[1]) then return 1 end
end
"""


async def test_cancelled_while_acquiring_leaves_no_lock_behind(redis_client, redis_server) -> None:
    """Cancelled with the acquire in flight (a timeout around it, a shutdown): the server
    may still run it after the cancellation, and nobody would release that lock."""
    import threading

    async with Lock("cx", ttl=30):  # scripts loaded, a pooled connection ready
        pass
    node = data_node(redis_server, lock_keys("cx").lock)  # on a cluster: the lock's master
    stall = threading.Thread(target=node.client().eval, args=(STALL, 0, 500_000))
    stall.start()  # the server runs a 0.5 s script: our acquire waits in its socket
    await asyncio.sleep(0.1)
    task = asyncio.create_task(Lock("cx", ttl=30).aacquire())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.to_thread(stall.join)
    await asyncio.sleep(0.3)
    assert not redis_client.exists(lock_keys("cx").lock)
