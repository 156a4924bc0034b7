"""``pubsub.status()``: who listens right now, from Redis, for code."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from django_redisroles.pubsub import broadcast, status
from tests.pubsub.conftest import receive


async def test_status_counts_processes_consumers_and_replay_entries(pubsub_settings) -> None:
    pubsub_settings(REPLAY_GROUPS=["notifications"])
    assert await sync_to_async(status)() == {
        "groups": [],
        "consumer_channels": 0,
        "replay_streams": [],
    }
    layer = get_channel_layer()
    first, second = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("notifications", first)
    await layer.group_add("notifications", second)
    seq = await sync_to_async(broadcast)("notifications", {"type": "notify", "message": "x"})
    data = await sync_to_async(status)()
    # Two consumers, one process: one subscription to the group.
    assert data["groups"] == [{"group": "notifications", "processes": 1}]
    assert data["consumer_channels"] == 2
    [stream] = data["replay_streams"]
    assert (stream["group"], stream["entries"], stream["last_seq"]) == ("notifications", 1, seq)
    assert (await receive(layer, first))["seq"] == seq


async def test_a_second_process_counts_as_a_second_subscriber() -> None:
    # Another event loop in another thread is what another app instance looks like to Redis.
    layer = get_channel_layer()
    mine = await layer.new_channel()
    await layer.group_add("room", mine)
    joined, leave = asyncio.Event(), threading.Event()
    loop = asyncio.get_running_loop()

    async def other_instance() -> None:
        channel = await layer.new_channel()
        await layer.group_add("room", channel)
        loop.call_soon_threadsafe(joined.set)
        await asyncio.to_thread(leave.wait, 30)
        await layer.close()

    thread = asyncio.create_task(asyncio.to_thread(asyncio.run, other_instance()))
    await asyncio.wait_for(joined.wait(), 10)
    try:
        data = await sync_to_async(status)()
        assert {"group": "room", "processes": 2} in data["groups"]
    finally:
        leave.set()
        await thread


def test_status_raises_when_redis_is_unreachable(redis_factory, pubsub_settings) -> None:
    import redis

    server = redis_factory()
    pubsub_settings(URL=server.url(), OPTIONS={"retry_attempts": 0})
    server.kill()
    with pytest.raises(redis.ConnectionError):
        status()
