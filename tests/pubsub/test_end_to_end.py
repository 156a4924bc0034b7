"""Two ASGI server processes, real WebSocket clients, broadcast() from a third process."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from django_redisroles.pubsub import broadcast
from django_redisroles.pubsub.layer import redis_channel
from tests.pubsub import wire
from tests.pubsub.conftest import wait_for
from tests.pubsub.servers import AsgiServer, manage

CLIENTS_PER_SERVER = 5
MESSAGES = 50


@pytest.mark.slow
async def test_every_client_of_every_instance_gets_every_message_once_in_order(
    redis_server,
) -> None:
    servers = [AsgiServer(redis_server.url()), AsgiServer(redis_server.url(), server="daphne")]
    try:
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
        clients = []
        for server in servers:
            for _ in range(CLIENTS_PER_SERVER):
                # The handshake completes after the consumer's group_add returned,
                # i.e. after Redis confirmed the subscription.
                clients.append(await connect(server.ws_url(), origin=server.origin))
        replay_url = servers[0].ws_url("/ws/notifications/replay/")
        replayer = await connect(replay_url, origin=servers[0].origin)

        result = await asyncio.to_thread(
            manage, redis_server.url(), "notify", "e2e", "--count", str(MESSAGES)
        )
        assert result.returncode == 0, result.stderr
        assert f"broadcast {MESSAGES} message(s)" in result.stdout

        async def collect(ws) -> list[dict]:
            frames = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(MESSAGES)]
            try:  # and nothing more: exactly once
                extra = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                extra = None
            assert extra is None, extra
            return frames

        received = await asyncio.gather(*(collect(ws) for ws in [*clients, replayer]))
        expected = [{"text": "e2e", "n": n} for n in range(MESSAGES)]
        for frames in received[:-1]:
            assert frames == expected
        # The replay route carries each message's sequence id ...
        with_seq = received[-1]
        assert [f["message"] for f in with_seq] == expected
        # ... and a client coming back with the id of message 9 gets 10.. once, in order.
        server = servers[1]
        url = f"{server.ws_url('/ws/notifications/replay/')}?since={with_seq[9]['seq']}"
        back = await connect(url, origin=server.origin)
        frames = [json.loads(await asyncio.wait_for(back.recv(), 10)) for _ in range(40)]
        assert [f["message"]["n"] for f in frames] == list(range(10, MESSAGES))
        assert [f["seq"] for f in frames] == [f["seq"] for f in with_seq[10:]]
        # A bad since is the client's error: the socket is refused, not a server error.
        with pytest.raises(InvalidStatus):
            await connect(
                f"{server.ws_url('/ws/notifications/replay/')}?since=x", origin=server.origin
            )
        for ws in [*clients, replayer, back]:
            await ws.close()
    finally:
        for server in servers:
            server.stop()


@pytest.mark.slow
@pytest.mark.usefixtures("demo_settings")  # the demo's ASGI app: its prefix names the channels
async def test_clients_leaving_during_a_stream_of_messages_leave_nothing_behind(
    redis_server, redis_client
) -> None:
    # A consumer that leaves while messages are queued for it must not leave its
    # channel, memberships or Redis subscriptions behind (channels_redis#276).
    server = AsgiServer(redis_server.url())
    channel_pattern = redis_channel("c", "*").decode()
    try:
        await asyncio.to_thread(server.start)
        clients = [
            # max_queue=None: an unread client keeps reading, so it sees the close frame.
            await connect(server.ws_url(), origin=server.origin, max_queue=None)
            for _ in range(20)
        ]
        assert len(wire.channels(redis_server, channel_pattern)) == 20
        stop = threading.Event()

        def flood() -> None:
            # Steady traffic (~1000/s), so consumers always have messages queued.
            while not stop.wait(0.001):
                broadcast("notifications", {"type": "notify", "message": "tick"})

        publisher = asyncio.create_task(asyncio.to_thread(flood))
        try:
            await asyncio.sleep(0.3)
            await asyncio.gather(*(ws.close() for ws in clients))
            await asyncio.sleep(0.3)
        finally:
            stop.set()
            await publisher
        await wait_for(lambda: not wire.channels(redis_server, channel_pattern))
        group = redis_channel("g", "notifications")
        assert wire.numsub(redis_server, group) == 0
    finally:
        server.stop()
