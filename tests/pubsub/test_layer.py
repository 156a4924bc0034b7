"""The layer's own behaviour: one PUBLISH per group send, capacity, expiry, errors, encryption."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import pytest
from channels.exceptions import ChannelFull
from django.core.exceptions import ImproperlyConfigured

from django_redisroles import conf
from django_redisroles.pubsub import (
    EVENT_LOST,
    MessageNotSerializable,
    RedisRolesChannelLayer,
    abroadcast,
    broadcast,
)
from django_redisroles.pubsub.layer import redis_channel
from tests.pubsub import wire
from tests.pubsub.conftest import nothing, receive, wait_for


async def test_group_send_is_one_publish_at_any_group_size(make_layer, redis_server) -> None:
    layer = make_layer()
    # On a Redis Cluster: one SPUBLISH, to the master of the group's slot.
    publish = "spublish" if layer.names.listen("g", "x")[0].endswith(b"}") else "publish"
    stats = wire.Stats(redis_server)
    for size in (1, 100, 1000):
        group = f"size-{size}"
        channels = [await layer.new_channel() for _ in range(size)]
        for channel in channels:
            await layer.group_add(group, channel)
        await layer.group_send(group, {"type": "warm-up"})  # the pooled connection is open
        for channel in channels:
            assert (await receive(layer, channel))["type"] == "warm-up"
        stats.reset()
        await layer.group_send(group, {"type": "hello", "size": size})
        sent = stats.commands()
        # CONFIG RESETSTAT leaves its own call; INFO is not counted until it returns.
        # (A PING may be a subscriber connection's health check, due every 30 s.)
        assert sent.get(publish) == 1, sent
        assert set(sent) <= {publish, "config|resetstat", "ping"}, sent
        for channel in channels:
            assert (await receive(layer, channel)) == {"type": "hello", "size": size}
        for channel in channels:
            await layer.group_discard(group, channel)


async def test_redis_names_are_under_the_pubsub_key_prefix(make_layer, redis_server) -> None:
    layer = make_layer()
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    prefix = conf.make_key("pubsub", "")
    # (Under Sentinel the master also has the Sentinels' __sentinel__:hello.)
    names = {n.decode() for n in wire.channels(redis_server, "*pubsub*")}
    assert names == {redis_channel("c", channel).decode(), redis_channel("g", "room").decode()}
    assert all(n.startswith(prefix) for n in names)


async def test_capacity_drops_and_counts_instead_of_growing(make_layer) -> None:
    layer = make_layer(capacity=5)
    channel = await layer.new_channel()
    await layer.group_add("busy", channel, events=True)
    for n in range(20):
        await layer.group_send("busy", {"type": "m", "n": n})
    await wait_for(lambda: layer.stats["dropped_full"] == 15)
    got = [(await receive(layer, channel))["n"] for _ in range(5)]
    assert got == [0, 1, 2, 3, 4]
    lost = await receive(layer, channel)
    assert lost == {"type": EVENT_LOST, "reason": "capacity", "count": 15}
    # Room again: new messages flow.
    await layer.group_send("busy", {"type": "m", "n": 99})
    assert (await receive(layer, channel))["n"] == 99


async def test_channel_capacity_patterns(make_layer) -> None:
    layer = make_layer(capacity=100, channel_capacity={"small.*": 2})
    small = await layer.new_channel("small.")
    big = await layer.new_channel("big.")
    for channel in (small, big):
        await layer.group_add("g", channel)
    for n in range(4):
        await layer.group_send("g", {"type": "m", "n": n})
    await wait_for(lambda: layer.stats["dropped_full"] == 2)
    assert [(await receive(layer, big))["n"] for _ in range(4)] == [0, 1, 2, 3]
    assert [(await receive(layer, small))["n"] for _ in range(2)] == [0, 1]


async def test_send_to_a_full_local_channel_raises_channel_full(make_layer) -> None:
    layer = make_layer(capacity=1)
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "m"})
    await wait_for(lambda: layer._get_layer().channels[channel].count == 1)
    with pytest.raises(ChannelFull):
        await layer.send(channel, {"type": "m"})


async def test_expiry_drops_messages_not_received_in_time(make_layer) -> None:
    layer = make_layer(expiry=0.2)
    channel = await layer.new_channel()
    for n in range(3):
        await layer.send(channel, {"type": "old", "n": n})
    await asyncio.sleep(0.4)
    await layer.send(channel, {"type": "fresh"})
    assert (await receive(layer, channel))["type"] == "fresh"
    assert layer.stats["expired"] == 3


async def test_group_expiry_ends_old_memberships(make_layer, redis_server) -> None:
    layer = make_layer(group_expiry=0.2)
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    await asyncio.sleep(0.3)
    await layer.group_send("g", {"type": "late"})
    assert await nothing(layer, channel)
    assert layer.stats["group_expired"] == 1
    # The group has no member left in this process: it is unsubscribed too.
    group = redis_channel("g", "g")
    await wait_for(lambda: wire.numsub(redis_server, group) == 0)
    assert "g" not in layer._get_layer().groups


async def test_two_layers_two_processes_worth_of_subscribers(make_layer) -> None:
    # Two layer objects stand for two app instances: each gets the message once.
    a, b = make_layer(), make_layer()
    ca, cb = await a.new_channel(), await b.new_channel()
    await a.group_add("all", ca)
    await b.group_add("all", cb)
    await a.group_send("all", {"type": "x", "n": 1})
    assert (await receive(a, ca))["n"] == 1
    assert (await receive(b, cb))["n"] == 1
    assert await nothing(a, ca)


async def test_broadcast_from_sync_code_reaches_consumers(make_layer, redis_server) -> None:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    assert isinstance(layer, RedisRolesChannelLayer)
    channel = await layer.new_channel()
    await layer.group_add("news", channel)
    stats = wire.Stats(redis_server)
    broadcast("warm-up", {"type": "notify"})  # (a cluster client opens its connections)
    before = stats.connections()
    for n in range(50):
        assert broadcast("news", {"type": "notify", "message": n}) is None
    after = stats.connections()
    stats.close()
    # One pooled connection, not one per call (+1 for our INFO client at most).
    assert after - before <= 2
    got = [(await receive(layer, channel))["message"] for _ in range(50)]
    assert got == list(range(50))
    await abroadcast("news", {"type": "notify", "message": "async"})
    assert (await receive(layer, channel))["message"] == "async"
    await layer.close()


@pytest.mark.parametrize(
    ("message", "error", "text"),
    [
        ("hello", TypeError, "must be a dict with a 'type'"),
        ({"message": "no type"}, TypeError, "must be a dict with a 'type'"),
        (
            {"type": "notify", "when": datetime.datetime(2024, 1, 1)},
            MessageNotSerializable,
            "datetime",
        ),
        ({"type": "notify", "tags": {"a", "b"}}, MessageNotSerializable, "cannot serialize"),
    ],
)
def test_broadcast_rejects_bad_messages_clearly(message: Any, error: type, text: str) -> None:
    with pytest.raises(error, match=text):
        broadcast("news", message)


def test_broadcast_rejects_bad_group_names() -> None:
    with pytest.raises(TypeError, match="Group name must be"):
        broadcast("no spaces allowed", {"type": "notify"})


def test_broadcast_needs_our_layer(settings) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    with pytest.raises(ImproperlyConfigured, match="RedisRolesChannelLayer"):
        broadcast("news", {"type": "notify"})


def test_bad_layer_config_is_improperly_configured() -> None:
    with pytest.raises(ImproperlyConfigured, match="hosts"):
        RedisRolesChannelLayer(hosts=["redis://elsewhere:6379"])
    with pytest.raises(ImproperlyConfigured, match="capacity must be a positive integer"):
        RedisRolesChannelLayer(capacity=0)
    with pytest.raises(ImproperlyConfigured, match="symmetric_encryption_keys"):
        RedisRolesChannelLayer(symmetric_encryption_keys="one-key-not-a-list")


async def test_layer_options_default_from_redisroles(pubsub_settings, make_layer) -> None:
    pubsub_settings(CAPACITY=7, EXPIRY=5, REPLAY_GROUPS=["live.*"])
    layer = make_layer()
    assert (layer.capacity, layer.expiry) == (7, 5)
    assert layer.is_replay("live.scores") and not layer.is_replay("chat")
    # CHANNEL_LAYERS CONFIG wins over REDISROLES.
    assert make_layer(capacity=3).capacity == 3


async def test_symmetric_encryption(settings, make_layer, redis_server) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "django_redisroles.pubsub.RedisRolesChannelLayer",
            "CONFIG": {"symmetric_encryption_keys": ["s3cret"]},
        }
    }
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("private", channel)
    spy = wire.Spy(redis_server, redis_channel("g", "private"))
    broadcast("private", {"type": "notify", "message": "top secret text"})
    raw = spy.next()
    spy.close()
    assert raw is not None and b"top secret text" not in raw
    assert (await receive(layer, channel))["message"] == "top secret text"
    # A layer with another key cannot read it: the message is dropped and counted.
    other = make_layer(symmetric_encryption_keys=["other"])
    oc = await other.new_channel()
    await other.group_add("private", oc)
    broadcast("private", {"type": "notify", "message": "x"})
    assert await nothing(other, oc, 0.5)
    assert other.stats["undecodable"] == 1
    await layer.close()


async def test_odd_payloads_are_delivered_not_mistaken_for_replay_frames(make_layer) -> None:
    # msgpack of 0 is a NUL byte, like a replay frame's marker: it must not confuse the reader.
    layer = make_layer()
    channel = await layer.new_channel()
    await layer.group_add("odd", channel)
    for value in (0, "text", [1, 2]):
        await layer.group_send("odd", value)
        assert await receive(layer, channel) == value
    await layer.send(channel, 0)
    assert await receive(layer, channel) == 0


def test_wire_format_is_a_message_id_then_plain_msgpack(redis_server) -> None:
    import msgpack

    spy = wire.Spy(redis_server, redis_channel("g", "wire"))
    message = {"type": "notify", "message": {"text": "hi", "n": [1, 2]}}
    broadcast("wire", message)
    got = spy.next()
    spy.close()
    assert got is not None
    # SOH, a 12-byte message id (subscribers drop a frame re-sent by redis-py's
    # retry), then the message as msgpack.
    assert got[:1] == b"\x01"
    assert got[13:] == msgpack.packb(message)


async def test_consumers_starting_together_share_one_subscriber_connection(
    redis_factory, pubsub_settings, make_layer, caplog
) -> None:
    # A server restart: every WebSocket client reconnects at once, each consumer
    # calls new_channel() + group_add() concurrently on a fresh layer.
    server = redis_factory()
    pubsub_settings(URL=server.url())
    layer = make_layer()
    channels = await asyncio.gather(*(layer.new_channel() for _ in range(30)))
    await asyncio.gather(*(layer.group_add("room", c) for c in channels))
    with server.client() as client:
        subscribers = [c for c in client.client_list() if int(c["sub"]) > 0]
    assert len(subscribers) == 1, subscribers
    assert int(subscribers[0]["sub"]) == 31  # 30 channels + the group
    assert "no SUBSCRIBE confirmation" not in caplog.text
    # Every consumer's own channel really is subscribed on the connection we read.
    for n, channel in enumerate(channels):
        await layer.send(channel, {"type": "direct", "n": n})
    await layer.group_send("room", {"type": "group"})
    for n, channel in enumerate(channels):
        assert await receive(layer, channel) == {"type": "direct", "n": n}
        assert await receive(layer, channel) == {"type": "group"}


async def test_a_consumer_that_ends_with_messages_queued_is_cleaned_up(
    make_layer, redis_server
) -> None:
    layer = make_layer()

    async def consumer() -> str:
        # Like Channels' dispatcher when the handler raises (or the client leaves)
        # after receive() returned: no receive() is left to cancel.
        channel = await layer.new_channel()
        await layer.group_add("room", channel)
        await layer.group_send("room", {"type": "m", "n": 1})
        await layer.group_send("room", {"type": "m", "n": 2})
        assert (await receive(layer, channel))["n"] == 1
        return channel

    channel = await asyncio.create_task(consumer())
    await wait_for(lambda: channel not in layer._get_layer().channels)
    assert "room" not in layer._get_layer().groups
    assert wire.channels(redis_server, conf.make_key("pubsub", "*")) == set()
