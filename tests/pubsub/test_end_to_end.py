"""Two ASGI server processes, real WebSocket clients, broadcast() from a third process."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

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

        received = await asyncio.gather(*(collect(ws) for ws in clients))
        expected = [{"text": "e2e", "n": n} for n in range(MESSAGES)]
        for frames in received:
            assert frames == expected
        for ws in clients:
            await ws.close()
    finally:
        for server in servers:
            server.stop()
