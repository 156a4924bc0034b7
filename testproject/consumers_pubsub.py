"""WebSocket consumers of the pubsub role's demo."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import redis.exceptions
from channels.generic.websocket import AsyncWebsocketConsumer

from django_redisroles.pubsub import RedisRolesChannelLayer, SubscribeRefused
from django_redisroles.pubsub.replay import parse_seq

GROUP = "notifications"
#: The close code of a socket whose group Redis refuses (an ACL user without its channel).
REFUSED = 4403


class NotificationsConsumer(AsyncWebsocketConsumer):
    """Joins group "notifications" and forwards each message's "message" to the client.

    Every app instance subscribes once (one Redis subscription per process, not
    per client); ``broadcast("notifications", {"type": "notify", "message": ...})``
    from anywhere reaches every client of every instance.
    """

    async def connect(self) -> None:
        if isinstance(self.channel_layer, RedisRolesChannelLayer):
            try:
                # events=True: be told (redisroles.lost) when messages may have been lost.
                await self.channel_layer.group_add(GROUP, self.channel_name, events=True)
            except SubscribeRefused as exc:
                await self.refused(exc)
                return
        else:  # the benchmark runs this consumer on channels_redis's layers too
            await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()

    async def refused(self, exc: SubscribeRefused) -> None:
        """Tell the page why it gets nothing, then close: a refusal (ACL) does not heal
        by itself, so the page should not reconnect every second into it."""
        await self.accept()
        await self.send(text_data=json.dumps({"redisroles": "refused", "reason": str(exc)}))
        await self.close(code=REFUSED)

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def notify(self, event: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(event["message"]))

    async def redisroles_lost(self, event: dict[str, Any]) -> None:
        # Pub/Sub is fire-and-forget: tell the page, it may reload what it shows.
        await self.send(text_data=json.dumps({"redisroles": "lost", "reason": event["reason"]}))


class ReplayNotificationsConsumer(NotificationsConsumer):
    """Same group, for clients that come back: ``/ws/notifications/replay/?since=<seq>``.

    Frames are ``{"seq": ..., "message": ...}``; a client that reconnects with the
    last ``seq`` it saw first gets what it missed (the group is a replay group in
    settings), or a ``{"redisroles": "gap"}`` frame when that is no longer kept.
    """

    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode())
        since = (query.get("since") or [""])[0] or None
        if since is not None:
            try:
                parse_seq(since)
            except ValueError:
                await self.close(code=4400)  # a bad value is the client's error, not a 500
                return
        try:
            await self.channel_layer.group_add(GROUP, self.channel_name, since=since, events=True)
        except SubscribeRefused as exc:
            await self.refused(exc)
            return
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            # The replay asked for cannot be read while Redis is down: refuse the
            # socket (the page retries) instead of crashing the consumer.
            await self.close()
            return
        await self.accept()

    async def notify(self, event: dict[str, Any]) -> None:
        await self.send(
            text_data=json.dumps({"seq": event.get("seq"), "message": event["message"]})
        )

    async def redisroles_gap(self, event: dict[str, Any]) -> None:
        await self.send(
            text_data=json.dumps(
                {"redisroles": "gap", "since": event["since"], "resumed_at": event["resumed_at"]}
            )
        )
