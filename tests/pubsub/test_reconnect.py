"""Redis goes away mid-test: subscriptions come back by themselves, consumers are told."""

from __future__ import annotations

import asyncio

import pytest
import redis

from django_redisroles.pubsub import EVENT_GAP, EVENT_LOST, SEQ_KEY, broadcast
from django_redisroles.pubsub.layer import redis_channel
from tests.pubsub.conftest import nothing, receive, wait_for


def subscribers(server, group: str) -> int:
    with server.client() as client:
        return dict(client.pubsub_numsub(redis_channel("g", group).decode()))[
            redis_channel("g", group)
        ]


async def test_restart_resubscribes_and_tells_the_consumer(
    redis_factory, pubsub_settings, make_layer
) -> None:
    server = redis_factory()
    pubsub_settings(URL=server.url())
    layer = make_layer()
    channel = await layer.new_channel()
    await layer.group_add("room", channel, events=True)
    await layer.group_send("room", {"type": "m", "n": 1})
    assert (await receive(layer, channel))["n"] == 1

    server.kill()
    await asyncio.sleep(0.3)
    # Joining while Redis is down does not fail: it is subscribed when Redis is back.
    late = await layer.new_channel()
    await layer.group_add("later", late)
    server.start()

    await wait_for(lambda: subscribers(server, "room") == 1 and subscribers(server, "later") == 1)
    lost = await receive(layer, channel)
    assert lost["type"] == EVENT_LOST and lost["reason"] == "reconnect"
    assert lost["groups"] == ["room"]
    assert layer.stats["reconnects"] >= 1
    await asyncio.to_thread(broadcast, "room", {"type": "m", "n": 2})
    await layer.group_send("later", {"type": "m", "n": 3})
    assert (await receive(layer, channel))["n"] == 2
    assert (await receive(layer, late))["n"] == 3


async def test_consumers_without_events_just_keep_receiving(
    redis_factory, pubsub_settings, make_layer
) -> None:
    server = redis_factory()
    pubsub_settings(URL=server.url())
    layer = make_layer()
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    server.restart(kill=True)
    await wait_for(lambda: subscribers(server, "room") == 1)
    await layer.group_send("room", {"type": "m", "n": 1})
    assert (await receive(layer, channel)) == {"type": "m", "n": 1}


async def test_replay_fills_what_was_published_while_the_subscriber_was_away(
    pubsub_settings, make_layer, redis_client
) -> None:
    pubsub_settings(REPLAY_GROUPS=["news"])
    layer = make_layer()
    channel = await layer.new_channel()
    await layer.group_add("news", channel, events=True)
    seq0 = broadcast("news", {"type": "m", "n": 0})
    assert (await receive(layer, channel))[SEQ_KEY] == seq0
    # Drop only our subscriber connection and publish before it can come back:
    # live Pub/Sub loses these, the replay stream must not.
    pipe = redis_client.pipeline(transaction=False)
    pipe.client_kill_filter(_type="pubsub")
    pipe.execute()
    for n in range(1, 6):
        broadcast("news", {"type": "m", "n": n})
    got = []
    while len(got) < 5:
        message = await receive(layer, channel)
        if message["type"] == EVENT_LOST:  # news is replayed: not listed as lost
            assert message["groups"] == []
            continue
        got.append(message)
    assert [m["n"] for m in got] == [1, 2, 3, 4, 5]
    assert all(m["type"] != EVENT_GAP for m in got)
    await wait_for(lambda: layer.stats["reconnects"] >= 1)
    assert await nothing(layer, channel)


async def test_replay_over_a_redis_restart_with_persistence(
    redis_factory, pubsub_settings, make_layer
) -> None:
    server = redis_factory(persistence=True)
    pubsub_settings(URL=server.url(), REPLAY_GROUPS=["news"])
    layer = make_layer()
    channel = await layer.new_channel()
    await layer.group_add("news", channel)
    for n in range(3):
        await asyncio.to_thread(broadcast, "news", {"type": "m", "n": n})
    assert [(await receive(layer, channel))["n"] for _ in range(3)] == [0, 1, 2]
    server.kill()
    server.start()
    for n in range(3, 6):
        await asyncio.to_thread(broadcast, "news", {"type": "m", "n": n})
    got = [await receive(layer, channel) for _ in range(3)]
    assert [m["n"] for m in got] == [3, 4, 5]  # exactly once, in order, no gap event
    assert await nothing(layer, channel)


async def test_restart_that_lost_the_stream_reports_a_gap(
    redis_factory, pubsub_settings, make_layer
) -> None:
    server = redis_factory()  # no persistence: the replay stream dies with Redis
    pubsub_settings(URL=server.url(), REPLAY_GROUPS=["news"])
    layer = make_layer()
    channel = await layer.new_channel()
    await layer.group_add("news", channel)
    await asyncio.to_thread(broadcast, "news", {"type": "m", "n": 0})
    assert (await receive(layer, channel))["n"] == 0
    server.kill()
    server.start()
    await wait_for(lambda: subscribers(server, "news") == 1)
    seq1 = await asyncio.to_thread(broadcast, "news", {"type": "m", "n": 1})
    # The reconnect catch-up finds the stream gone: it cannot prove nothing was lost.
    gap = await receive(layer, channel)
    assert gap["type"] == EVENT_GAP and gap["group"] == "news" and gap["resumed_at"] in (None, seq1)
    assert (await receive(layer, channel))["n"] == 1
    assert await nothing(layer, channel)  # n=1 once, though both replay and live had it


async def test_joining_a_replay_group_while_redis_is_down(
    redis_factory, pubsub_settings, make_layer
) -> None:
    server = redis_factory()
    pubsub_settings(URL=server.url(), REPLAY_GROUPS=["news"])
    layer = make_layer()
    channel = await layer.new_channel()
    other = await layer.new_channel()
    server.kill()
    await layer.group_add("news", channel)  # live-only until Redis is back: no error
    with pytest.raises(redis.exceptions.ConnectionError):
        await layer.group_add("news", other, since="1-0")  # a replay cannot be read now
    server.start()
    await wait_for(lambda: subscribers(server, "news") == 1)
    await asyncio.to_thread(broadcast, "news", {"type": "m", "n": 1})
    assert (await receive(layer, channel))["n"] == 1


async def test_consumers_joining_while_the_subscriber_reconnects(
    redis_factory, pubsub_settings, make_layer
) -> None:
    # The subscriber connection drops and, at that very moment, clients connect:
    # none of them may fail, and all end up on the one subscriber connection.
    server = redis_factory()
    pubsub_settings(URL=server.url())
    layer = make_layer()
    first = await layer.new_channel()
    await layer.group_add("room", first)
    with server.client() as client:
        client.client_kill_filter(_type="pubsub")
    channels = await asyncio.gather(*(layer.new_channel() for _ in range(20)))
    await asyncio.gather(*(layer.group_add("room", c) for c in channels))
    await wait_for(lambda: layer.stats["reconnects"] >= 1)
    await wait_for(lambda: subscribers(server, "room") == 1)

    def subscriber_connections() -> list[dict]:
        with server.client() as client:
            return [c for c in client.client_list() if int(c["sub"]) > 0]

    await wait_for(lambda: [int(c["sub"]) for c in subscriber_connections()] == [22])
    for n, channel in enumerate(channels):
        await layer.send(channel, {"type": "direct", "n": n})
    await layer.group_send("room", {"type": "group"})
    for n, channel in enumerate(channels):
        got = [await receive(layer, channel), await receive(layer, channel)]
        assert sorted(got, key=str) == sorted(
            [{"type": "direct", "n": n}, {"type": "group"}], key=str
        )
    assert (await receive(layer, first)) == {"type": "group"}
