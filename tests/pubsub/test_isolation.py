"""Two projects on one Redis server, in different databases, never hear each other.

Redis Pub/Sub ignores the database number: a PUBLISH from a client on db 0
reaches subscribers on db 1. Project A (``redis://h/0``) and project B
(``redis://h/1``) with the default KEY_PREFIX used to share every group:
A's broadcasts reached B's consumers (with A's replay ``seq``), and each
could inject into the other.
"""

from __future__ import annotations

from typing import Any

import pytest

from django_redisroles import conf
from django_redisroles.pubsub import RedisRolesChannelLayer
from tests.pubsub.conftest import nothing, receive


def _project(settings: Any, url: str) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "django_redisroles.pubsub.RedisRolesChannelLayer"}
    }
    settings.REDISROLES = {"URL": url}  # the default KEY_PREFIX, as both projects have


@pytest.mark.topologies("single", "sentinel", reason="a Redis Cluster has database 0 only")
@pytest.mark.parametrize("replay", [False, True], ids=["plain group", "replay group"])
async def test_projects_in_two_databases_do_not_meet(
    settings, redis_server, make_layer, replay: bool
) -> None:
    config = {"replay_groups": ["notifications"]} if replay else {}
    _project(settings, redis_server.url(1))  # project B listens
    layer_b = make_layer(**config)
    channel_b = await layer_b.new_channel()
    await layer_b.group_add("notifications", channel_b)

    _project(settings, redis_server.url(0))  # project A broadcasts, and listens too
    layer_a = make_layer(**config)
    channel_a = await layer_a.new_channel()
    await layer_a.group_add("notifications", channel_a)
    await layer_a.group_send("notifications", {"type": "notify", "text": "from A"})
    assert (await receive(layer_a, channel_a))["text"] == "from A"  # A's own consumer

    # B broadcasts too: the first (and only) message B's consumer gets is B's own.
    _project(settings, redis_server.url(1))
    layer_b2 = make_layer(**config)
    await layer_b2.group_send("notifications", {"type": "notify", "text": "from B"})
    got = await receive(layer_b, channel_b)
    assert got["text"] == "from B", got
    assert await nothing(layer_b, channel_b, within=0.3)
    # ... and B could not inject into A.
    assert await nothing(layer_a, channel_a, within=0.3)


def test_channel_names_carry_the_database(settings) -> None:
    from django_redisroles.pubsub.layer import redis_channel

    for url, db in (
        ("redis://h:6379/0", 0),
        ("redis://h:6379/3", 3),
        ("redis://h:6379?db=5", 5),
        ("unix:///run/redis.sock?db=2", 2),
    ):
        settings.REDISROLES = {"URL": url}
        assert redis_channel("g", "room") == f"rr:pubsub:db{db}:g:room".encode()
    # No database in the URL: OPTIONS["db"] is what redis-py selects.
    settings.REDISROLES = {"URL": "redis://h:6379", "OPTIONS": {"db": 7}}
    assert conf.role_db("pubsub") == 7
    assert redis_channel("c", "specific.x") == b"rr:pubsub:db7:c:specific.x"
    # The URL wins over OPTIONS, as in redis-py.
    settings.REDISROLES = {"URL": "redis://h:6379/2", "OPTIONS": {"db": 7}}
    assert redis_channel("g", "room") == b"rr:pubsub:db2:g:room"


@pytest.mark.topologies("single", "sentinel", reason="a Redis Cluster has database 0 only")
def test_broadcast_publishes_on_the_databases_channel(settings, redis_server) -> None:
    _project(settings, redis_server.url(4))
    spy = redis_server.client(db=0).pubsub()  # a subscriber's database does not matter
    spy.subscribe(b"rr:pubsub:db4:g:news", b"rr:pubsub:g:news")
    for _ in range(2):
        spy.get_message(timeout=1)  # the two subscribe confirmations
    RedisRolesChannelLayer().publish_sync("news", {"type": "notify"})
    message = spy.get_message(timeout=2)
    assert message is not None and message["channel"] == b"rr:pubsub:db4:g:news"
    assert spy.get_message(timeout=0.3) is None  # not on the old, database-blind name
    spy.close()


# Versions with database-blind names never ran on a cluster: nothing to upgrade there.
@pytest.mark.topologies("single", "sentinel", reason="LEGACY_CHANNELS upgrades single-server names")
async def test_a_three_step_upgrade_loses_and_repeats_nothing(
    make_layer, redis_client, redis_server
) -> None:
    """Old processes (database-blind names) and each step's processes side by side."""
    import msgpack

    old_name = conf.make_key("pubsub", "g", "news")  # the old version's, database-blind

    def old_publish(text: str) -> None:  # what a process of the old version sends
        redis_client.publish(old_name, msgpack.packb({"type": "notify", "text": text}))

    async def consumer(layer: RedisRolesChannelLayer) -> str:
        channel = await layer.new_channel()
        await layer.group_add("news", channel)
        return channel

    async def gets_once(layer: RedisRolesChannelLayer, channel: str, text: str) -> None:
        assert (await receive(layer, channel))["text"] == text
        # A marker sent after it must come next: the message was not delivered twice.
        await layer.send(channel, {"type": "marker"})
        assert (await receive(layer, channel))["type"] == "marker", "delivered twice"

    # Step 1 next to the old version: publish on the old names, listen on both.
    old_listener = redis_client.pubsub()
    old_listener.subscribe(old_name)
    old_listener.get_message(timeout=1)
    step1 = make_layer(legacy_channels="publish")
    c1 = await consumer(step1)
    old_publish("from old")
    await gets_once(step1, c1, "from old")
    await step1.group_send("news", {"type": "notify", "text": "from step 1"})
    await gets_once(step1, c1, "from step 1")
    heard = [old_listener.get_message(timeout=2) for _ in range(2)]
    assert [b"from old" in m["data"] for m in heard if m] == [True, False]
    assert b"from step 1" in heard[1]["data"]  # the old version hears step 1
    old_listener.close()

    # Step 2 next to step 1: publish on the new names, listen on both.
    step2 = make_layer(legacy_channels="subscribe")
    c2 = await consumer(step2)
    await step2.group_send("news", {"type": "notify", "text": "from step 2"})
    await gets_once(step1, c1, "from step 2")
    await gets_once(step2, c2, "from step 2")
    await step1.group_send("news", {"type": "notify", "text": "from step 1 again"})
    await gets_once(step2, c2, "from step 1 again")
    await gets_once(step1, c1, "from step 1 again")

    # Done (step 3) next to step 2: the new names only.
    done = make_layer()
    c3 = await consumer(done)
    await done.group_send("news", {"type": "notify", "text": "from step 3"})
    await gets_once(step2, c2, "from step 3")
    await gets_once(done, c3, "from step 3")
    await step2.group_send("news", {"type": "notify", "text": "from step 2 again"})
    await gets_once(done, c3, "from step 2 again")
    assert redis_client.pubsub_numsub(old_name)[0][1] == 2  # step 1 and 2 only


def test_a_bad_legacy_channels_value_is_refused() -> None:
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="legacy_channels"):
        RedisRolesChannelLayer(legacy_channels="yes")
