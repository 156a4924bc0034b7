"""The testproject's pub/sub wiring: the page, its form, the notify command."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.core.management import call_command
from django.test import AsyncClient

from django_redisroles.pubsub.layer import redis_channel, replay_stream
from tests.pubsub import wire
from tests.pubsub.conftest import nothing, receive

pytestmark = pytest.mark.usefixtures("demo_settings")


async def test_page_and_form_broadcast(redis_client) -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("notifications", channel)
    client = AsyncClient(enforce_csrf_checks=False)
    page = await client.get("/pubsub/")
    assert page.status_code == 200
    assert b"/ws/notifications/" in page.content
    response = await client.post("/pubsub/", {"message": "from the form"})
    assert response.status_code == 302
    message = await receive(layer, channel)
    assert message["type"] == "notify"
    assert message["message"] == {"text": "from the form", "from": "web"}
    assert "seq" in message  # notifications is a replay group in the testproject
    empty = await client.post("/pubsub/", {"message": "   "})
    assert empty.status_code == 302
    assert await nothing(layer, channel)
    assert redis_client.xlen(replay_stream("notifications")) == 1


async def test_page_script_posts_without_leaving_the_page(redis_client) -> None:
    # The page's fetch() asks for JSON: no redirect (a reload would close the
    # socket and the sender would miss its own message).
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("notifications", channel)
    client = AsyncClient(enforce_csrf_checks=False)
    json_only = {"Accept": "application/json"}
    response = await client.post("/pubsub/", {"message": "via fetch"}, headers=json_only)
    assert response.status_code == 200 and response.json() == {"sent": True}
    assert (await receive(layer, channel))["message"] == {"text": "via fetch", "from": "web"}
    empty = await client.post("/pubsub/", {"message": " "}, headers=json_only)
    assert empty.json() == {"sent": False}


async def test_notify_command(capsys) -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("notifications", channel)
    await sync_to_async(call_command)("notify", "hello", "--count", "3")
    got = [await receive(layer, channel) for _ in range(3)]
    assert [m["message"] for m in got] == [{"text": "hello", "n": n} for n in range(3)]
    assert "broadcast 3 message(s)" in capsys.readouterr().out


async def test_consumer_leaving_unsubscribes(redis_server) -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    group_key = redis_channel("g", "room")
    assert wire.numsub(redis_server, group_key) == 1
    task = asyncio.create_task(layer.receive(channel))
    await asyncio.sleep(0.05)
    task.cancel()  # what Channels does when a consumer exits
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0.1)
    assert wire.numsub(redis_server, group_key) == 0
    assert wire.channels(redis_server, redis_channel("c", "*")) == set()


async def test_redisroles_pubsub_command(capsys) -> None:
    import json

    from django_redisroles.pubsub import broadcast

    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("notifications", channel)
    await sync_to_async(broadcast)("notifications", {"type": "notify", "message": "x"})
    await sync_to_async(call_command)("redisroles", "pubsub", "--json")
    data = json.loads(capsys.readouterr().out)
    assert {"group": "notifications", "processes": 1} in data["groups"]
    assert data["consumer_channels"] == 1
    [stream] = data["replay_streams"]
    assert stream["group"] == "notifications" and stream["entries"] == 1 and stream["ttl"] > 0
    assert stream["last_seq"] == (await receive(layer, channel))["seq"]


async def test_form_when_the_pubsub_redis_is_down_is_a_503_not_a_500(
    redis_factory, pubsub_settings
) -> None:
    server = redis_factory()
    pubsub_settings(URL=server.url(), OPTIONS={"retry_attempts": 0})
    server.stop()
    response = await AsyncClient().post("/pubsub/", {"message": "lost?"})
    assert response.status_code == 503
    assert b"not sent" in response.content


@pytest.mark.django_db  # Channels' consumers close stale DB connections on each event
async def test_replay_socket_when_redis_is_down_is_refused_cleanly(
    redis_factory, pubsub_settings
) -> None:
    from channels.testing import WebsocketCommunicator

    from testproject.consumers_pubsub import ReplayNotificationsConsumer

    server = redis_factory()
    pubsub_settings(URL=server.url(), REPLAY_GROUPS=["notifications"])
    server.stop()
    app = ReplayNotificationsConsumer.as_asgi()
    communicator = WebsocketCommunicator(app, "/ws/notifications/replay/?since=1-0")
    connected, _code = await communicator.connect(timeout=10)
    # Refused (the browser retries), not a crashed consumer.
    assert not connected
    await communicator.disconnect()


@pytest.mark.django_db  # Channels' consumers close stale DB connections on each event
@pytest.mark.parametrize("replay", [False, True], ids=["plain", "replay"])
async def test_a_subscribe_the_acl_refuses_is_told_to_the_page(
    replay: bool, redis_factory, pubsub_settings
) -> None:
    """An ACL user without the group's channel: group_add() raises SubscribeRefused (issue
    11). The page is told why, once, instead of a consumer crashing on every reconnect."""
    from channels.testing import WebsocketCommunicator

    from testproject.consumers_pubsub import NotificationsConsumer, ReplayNotificationsConsumer

    server = redis_factory()
    pubsub_settings(
        URL=f"redis://nogroups:nogroups-pw@127.0.0.1:{server.port}/0",
        REPLAY_GROUPS=["notifications"],
    )
    with server.client() as admin:  # its consumer channels (named for this URL), not the groups'
        admin.execute_command(
            "ACL", "SETUSER", "nogroups", "on", ">nogroups-pw", "~*", "resetchannels",
            f"&{redis_channel('c', '*').decode()}", "+@all",
        )  # fmt: skip
    consumer = ReplayNotificationsConsumer if replay else NotificationsConsumer
    path = "/ws/notifications/replay/" if replay else "/ws/notifications/"
    communicator = WebsocketCommunicator(consumer.as_asgi(), path)
    try:
        connected, _code = await communicator.connect(timeout=10)
        assert connected
        frame = await communicator.receive_json_from(timeout=10)
        assert frame["redisroles"] == "refused", frame
        assert "NOPERM" in frame["reason"] and "notifications" in frame["reason"]
        closed = await communicator.receive_output(timeout=10)
        assert closed == {"type": "websocket.close", "code": 4403}
    finally:
        await communicator.wait(timeout=5)
        await get_channel_layer().close()
