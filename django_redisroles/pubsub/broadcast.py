"""``broadcast()`` / ``abroadcast()``: a Channels group message from any code.

Both find the ``RedisRolesChannelLayer`` of ``CHANNEL_LAYERS[using]`` and run
the same publish plan (``publish.py``): ``broadcast`` on the pubsub role's
pooled sync connection (no event loop), ``abroadcast`` on the running loop's.
"""

from __future__ import annotations

from typing import Any

from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import channel_layers
from django.core.exceptions import ImproperlyConfigured

from .layer import RedisRolesChannelLayer

__all__ = ["abroadcast", "broadcast", "get_layer"]


def get_layer(alias: str = DEFAULT_CHANNEL_LAYER) -> RedisRolesChannelLayer:
    """The ``RedisRolesChannelLayer`` configured as ``CHANNEL_LAYERS[alias]``."""
    layer = channel_layers.backends.get(alias)
    if layer is None:
        try:
            layer = channel_layers[alias]
        except Exception as exc:  # channels raises several types for a missing alias
            raise ImproperlyConfigured(
                f"broadcast() needs CHANNEL_LAYERS[{alias!r}] = "
                '{"BACKEND": "django_redisroles.pubsub.RedisRolesChannelLayer"}: '
                f"{exc}"
            ) from exc
    if layer.__class__ is not RedisRolesChannelLayer and not isinstance(
        layer, RedisRolesChannelLayer
    ):
        raise ImproperlyConfigured(
            f"broadcast() needs CHANNEL_LAYERS[{alias!r}] to use "
            f"django_redisroles.pubsub.RedisRolesChannelLayer, not {type(layer).__name__}."
        )
    return layer


def broadcast(
    group: str, message: dict[str, Any], *, using: str = DEFAULT_CHANNEL_LAYER
) -> str | None:
    """Send a Channels message to every member of ``group`` in every process.

    For synchronous code (views, management commands, Celery tasks): one PUBLISH
    on the pubsub role's pooled connection, no event loop. Returns the replay
    sequence id for replay groups, else None. Raises ``TypeError`` for a message
    that is not a dict with a ``"type"`` and ``MessageNotSerializable`` (a
    ``TypeError``) for values the serializer cannot encode.
    """
    return get_layer(using).publish_sync(group, message)


async def abroadcast(
    group: str, message: dict[str, Any], *, using: str = DEFAULT_CHANNEL_LAYER
) -> str | None:
    """``broadcast()`` for async code, on the running loop's pooled connection."""
    return await get_layer(using).publish_async(group, message)
