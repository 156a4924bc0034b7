"""Replay groups: a consumer back with its last id gets what it missed, then live, no duplicates."""

from __future__ import annotations

import asyncio

import pytest

from django_redisroles.pubsub import EVENT_GAP, SEQ_KEY, broadcast
from django_redisroles.pubsub.names import replay_stream
from tests.pubsub.conftest import nothing, receive


@pytest.fixture
def replay_on(pubsub_settings) -> None:
    pubsub_settings(REPLAY_GROUPS=["news", "scores.*"], REPLAY_MAXLEN=1000, REPLAY_TTL=60)


async def test_broadcast_to_a_replay_group_keeps_a_capped_stream_with_ttl(
    replay_on, redis_client
) -> None:
    seqs = [broadcast("news", {"type": "notify", "n": n}) for n in range(3)]
    assert all(isinstance(s, str) and "-" in s for s in seqs)
    assert seqs == sorted(seqs, key=lambda s: tuple(map(int, s.split("-"))))
    key = replay_stream("news")
    assert redis_client.xlen(key) == 3
    assert 0 < redis_client.ttl(key) <= 60
    # Not a replay group: no stream, no sequence id.
    assert broadcast("chat", {"type": "notify"}) is None
    assert not redis_client.exists(replay_stream("chat"))


async def test_live_messages_carry_their_sequence_id(replay_on, make_layer) -> None:
    layer = make_layer()
    channel = await layer.new_channel()
    await layer.group_add("scores.live", channel)
    seq = broadcast("scores.live", {"type": "notify", "n": 1})
    message = await receive(layer, channel)
    assert message == {"type": "notify", "n": 1, SEQ_KEY: seq}


async def test_reconnecting_consumer_gets_what_it_missed_then_live(replay_on, make_layer) -> None:
    layer = make_layer()
    seqs = [broadcast("news", {"type": "notify", "n": n}) for n in range(10)]
    channel = await layer.new_channel()
    # The client saw up to n=3 before its WebSocket dropped.
    await layer.group_add("news", channel, since=seqs[3])
    broadcast("news", {"type": "notify", "n": 10})
    got = [await receive(layer, channel) for _ in range(7)]
    assert [m["n"] for m in got] == [4, 5, 6, 7, 8, 9, 10]
    assert [m[SEQ_KEY] for m in got[:6]] == seqs[4:]
    assert await nothing(layer, channel)


async def test_no_duplicates_when_live_messages_race_the_replay(replay_on, make_layer) -> None:
    layer = make_layer(capacity=1000)  # room for the whole catch-up
    first = broadcast("news", {"type": "notify", "n": 0})
    for n in range(1, 50):
        broadcast("news", {"type": "notify", "n": n})

    async def publish_more() -> None:
        for n in range(50, 250):
            await asyncio.to_thread(broadcast, "news", {"type": "notify", "n": n})

    publisher = asyncio.create_task(publish_more())
    await asyncio.sleep(0.01)
    channel = await layer.new_channel()
    await layer.group_add("news", channel, since=first)
    got = []
    while len(got) < 249:
        got.append((await receive(layer, channel))["n"])
    await publisher
    assert got == list(range(1, 250))  # every message once, in order
    assert layer.stats["replayed"] >= 49  # the catch-up really came from the stream
    assert await nothing(layer, channel)


async def test_a_gap_replay_cannot_fill_is_an_explicit_event(
    pubsub_settings, make_layer, redis_client
) -> None:
    # MAXLEN ~ trims whole stream nodes: make them small so trimming is visible.
    redis_client.config_set("stream-node-max-entries", 10)
    try:
        pubsub_settings(REPLAY_GROUPS=["news"], REPLAY_MAXLEN=20)
        seqs = [broadcast("news", {"type": "notify", "n": n}) for n in range(100)]
        key = replay_stream("news")
        oldest = redis_client.xrange(key, count=1)[0][0].decode()
        layer = make_layer()
        channel = await layer.new_channel()
        await layer.group_add("news", channel, since=seqs[5])
        gap = await receive(layer, channel)
        assert gap == {"type": EVENT_GAP, "group": "news", "since": seqs[5], "resumed_at": oldest}
        first = await receive(layer, channel)
        assert first[SEQ_KEY] == oldest
    finally:
        redis_client.config_set("stream-node-max-entries", 100)


async def test_an_expired_stream_is_reported_as_a_gap(replay_on, make_layer, redis_client) -> None:
    seq = broadcast("news", {"type": "notify", "n": 0})
    broadcast("news", {"type": "notify", "n": 1})
    redis_client.delete(replay_stream("news"))  # as if its TTL ran out
    layer = make_layer()
    channel = await layer.new_channel()
    await layer.group_add("news", channel, since=seq)
    gap = await receive(layer, channel)
    assert gap["type"] == EVENT_GAP and gap["resumed_at"] is None


async def test_up_to_date_consumer_gets_no_gap_and_no_replay(replay_on, make_layer) -> None:
    seq = broadcast("news", {"type": "notify", "n": 0})
    layer = make_layer()
    channel = await layer.new_channel()
    await layer.group_add("news", channel, since=seq)
    broadcast("news", {"type": "notify", "n": 1})
    assert (await receive(layer, channel))["n"] == 1
    assert await nothing(layer, channel)


async def test_since_is_validated(replay_on, make_layer) -> None:
    layer = make_layer()
    channel = await layer.new_channel()
    with pytest.raises(ValueError, match="not a replay sequence id"):
        await layer.group_add("news", channel, since="yesterday")
    with pytest.raises(ValueError, match="not a replay group"):
        await layer.group_add("chat", channel, since="1-0")


async def test_seq_key_is_reserved_in_replay_groups(replay_on) -> None:
    with pytest.raises(ValueError, match="reserved"):
        broadcast("news", {"type": "notify", SEQ_KEY: 1})


async def test_a_catch_up_larger_than_capacity_is_reported_not_silent(
    replay_on, make_layer
) -> None:
    first = broadcast("news", {"type": "notify", "n": 0})
    for n in range(1, 30):
        broadcast("news", {"type": "notify", "n": n})
    layer = make_layer(capacity=10)
    channel = await layer.new_channel()
    await layer.group_add("news", channel, since=first)
    got = [await receive(layer, channel) for _ in range(11)]
    assert [m["n"] for m in got[:10]] == list(range(1, 11))
    assert got[10] == {"type": "redisroles.lost", "reason": "capacity", "count": 19}


async def test_flush_deletes_replay_streams(replay_on, make_layer, redis_client) -> None:
    broadcast("news", {"type": "notify"})
    key = replay_stream("news")
    assert redis_client.exists(key)
    layer = make_layer()
    await layer.flush()
    assert not redis_client.exists(key)


async def test_abroadcast_to_a_replay_group_returns_its_seq(replay_on, make_layer) -> None:
    from django_redisroles.pubsub import abroadcast

    layer = make_layer()
    channel = await layer.new_channel()
    await layer.group_add("news", channel)
    seq = await abroadcast("news", {"type": "notify", "n": 1})
    assert (await receive(layer, channel))[SEQ_KEY] == seq
    with pytest.raises(TypeError, match="'type'"):
        await abroadcast("news", {"no": "type"})
