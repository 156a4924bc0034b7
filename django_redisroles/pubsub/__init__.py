"""The pub/sub role: a Channels layer on Redis Pub/Sub, and ``broadcast()`` from any code.

``CHANNEL_LAYERS = {"default": {"BACKEND": "django_redisroles.pubsub.RedisRolesChannelLayer"}}``
then, from a view, a management command or a Celery task::

    from django_redisroles.pubsub import broadcast
    broadcast("notifications", {"type": "notify", "message": "Deploy finished"})

Pub/Sub is fire-and-forget: see docs/pubsub.md for what is and is not promised.
"""

from __future__ import annotations

from .broadcast import abroadcast, broadcast, get_layer
from .envelope import EVENT_GAP, EVENT_LOST, SEQ_KEY
from .layer import RedisRolesChannelLayer
from .publish import MessageNotSerializable
from .status import status
from .subscriber import SubscribeRefused

__all__ = [
    "EVENT_GAP",
    "EVENT_LOST",
    "SEQ_KEY",
    "MessageNotSerializable",
    "RedisRolesChannelLayer",
    "SubscribeRefused",
    "abroadcast",
    "broadcast",
    "get_layer",
    "status",
]
