"""WebSocket consumers of the pubsub role's demo."""

from __future__ import annotations

import json
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from django_redisroles.pubsub import RedisRolesChannelLayer

GROUP = "notifications"


class NotificationsConsumer(AsyncWebsocketConsumer):
    """Joins group "notifications" and forwards each message's "message" to the client.

    Every app instance subscribes once (one Redis subscription per process, not
    per client); ``broadcast("notifications", {"type": "notify", "message": ...})``
    from anywhere reaches every client of every instance.
    """

    async def connect(self) -> None:
        if isinstance(self.channel_layer, RedisRolesChannelLayer):
            # events=True: be told (redisroles.lost) when messages may have been lost.
            await self.channel_layer.group_add(GROUP, self.channel_name, events=True)
        else:  # the benchmark runs this consumer on channels_redis's layers too
            await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def notify(self, event: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(event["message"]))

    async def redisroles_lost(self, event: dict[str, Any]) -> None:
        # Pub/Sub is fire-and-forget: tell the page, it may reload what it shows.
        await self.send(text_data=json.dumps({"redisroles": "lost", "reason": event["reason"]}))
