"""``RedisRolesChannelLayer``: a Channels layer on Redis Pub/Sub, on the pubsub role's Redis.

Shape borrowed from channels_redis's ``RedisPubSubChannelLayer`` (one
process-wide object, one loop layer per event loop, a single subscriber
connection fanning out to in-process queues, its serializers and Fernet
encryption), with what that layer lacks: bounded per-channel queues with
counted drops (``capacity``), message ``expiry``, ``group_expiry``, automatic
re-subscription after a dropped connection with an explicit event for the
consumer, and replay from a capped Stream for opted-in groups.

This module is the facade (the ``BaseChannelLayer`` API): publishing goes
through :mod:`.publish`, everything that lives on an event loop (channels,
groups, the subscriber) through :mod:`.delivery`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from channels.layers import BaseChannelLayer, channel_layers
from channels_redis.serializers import registry

from .. import conf
from ..connections import async_primary_clients, close_with_loop, get_async_redis, get_redis
from . import options as layer_options
from . import publish, replay
from .delivery import LoopLayer
from .envelope import EVENT_GAP, EVENT_LOST, SEQ_KEY
from .names import CHANNEL_NAME, GROUP_NAME, LayerNames, redis_channel, replay_stream
from .publish import MessageNotSerializable
from .subscriber import SubscribeRefused

__all__ = [
    "EVENT_GAP",
    "EVENT_LOST",
    "SEQ_KEY",
    "MessageNotSerializable",
    "RedisRolesChannelLayer",
    "SubscribeRefused",
    # Re-exported for code that imported them from here (the names live in names.py).
    "redis_channel",
    "replay_stream",
]

logger = logging.getLogger("django_redisroles.pubsub")


class RedisRolesChannelLayer(BaseChannelLayer):  # type: ignore[misc]  # channels is untyped
    """Channels layer on Redis Pub/Sub: a group send is one PUBLISH at any group size.

    Options come from ``REDISROLES["ROLES"]["pubsub"]`` and may be overridden in
    ``CHANNEL_LAYERS[alias]["CONFIG"]`` (lower-case keys): ``capacity``,
    ``channel_capacity``, ``expiry``, ``group_expiry``, ``serializer_format``,
    ``symmetric_encryption_keys``, ``replay_groups``, ``replay_maxlen``, ``replay_ttl``.
    """

    extensions = ["groups", "flush"]

    def __init__(self, **config: Any) -> None:
        opts = layer_options.resolve(config)
        super().__init__(expiry=opts.expiry, capacity=opts.capacity)
        self.options = opts
        self.group_expiry = opts.group_expiry
        self.channel_capacity = list(opts.channel_capacity)
        self._serializer = registry.get_serializer(
            opts.serializer_format,
            symmetric_encryption_keys=list(opts.symmetric_encryption_keys or ()) or None,
            expiry=opts.expiry,
        )
        self._layers: dict[asyncio.AbstractEventLoop, LoopLayer] = {}
        #: Counters: published, delivered, replayed, duplicates_skipped, dropped_full,
        #: expired, group_expired, reconnects, gaps, undecodable.
        self.stats: collections.Counter[str] = collections.Counter()
        self.names = LayerNames(opts.legacy_channels, opts.replay_groups)
        # Plain msgpack (no encryption): pack directly, errors still as serialize()'s.
        plain = opts.serializer_format == "msgpack" and not opts.symmetric_encryption_keys
        encode: Callable[[Any], bytes] = publish.packb if plain else self.serialize
        self.publisher = publish.Publisher(
            self.names,
            encode,
            self.require_valid_group_name,
            replay_maxlen=opts.replay_maxlen,
            replay_ttl=opts.replay_ttl,
            stats=self.stats,
        )

    # -- serialization ------------------------------------------------------
    def serialize(self, message: Any) -> bytes:
        """Message -> bytes (msgpack by default, encrypted when keys are set)."""
        try:
            data: bytes = self._serializer.serialize(message)
        except (TypeError, ValueError, OverflowError) as exc:
            raise publish.not_serializable(message, self.options.serializer_format, exc) from exc
        return data

    def deserialize(self, message: bytes) -> Any:
        """Bytes -> message."""
        return self._serializer.deserialize(message)

    # -- names ----------------------------------------------------------------
    def is_replay(self, group: str) -> bool:
        """Whether broadcasts to ``group`` are also kept in a replay stream."""
        return self.names.is_replay(group)

    def require_valid_group_name(self, name: Any) -> bool:
        """``TypeError`` unless ``name`` is ASCII letters, digits, ``-_.``, under 100 chars."""
        super().require_valid_group_name(name)
        if GROUP_NAME.fullmatch(name) is None:
            raise TypeError(f"{self.invalid_name_error.format('Group')} Got {name!r}.")
        return True

    def require_valid_channel_name(self, name: Any, receive: bool = False) -> bool:
        """Channels' check, with ASCII-only names (no trailing newline)."""
        super().require_valid_channel_name(name, receive)
        if CHANNEL_NAME.fullmatch(name) is None:
            raise TypeError(f"{self.invalid_name_error.format('Channel')} Got {name!r}.")
        return True

    # -- publishing: one plan (publish.py), a sync and an async runner ----------
    def publish_sync(self, group: str, message: Any) -> str | None:
        """Publish to ``group`` from synchronous code: the sequence id, or None."""
        plan = self.publisher.group(group, message)
        return publish.run(get_redis("pubsub"), plan)

    async def publish_async(self, group: str, message: Any, *, check: bool = True) -> str | None:
        """Publish to ``group`` from async code (one round trip): the sequence id, or None."""
        plan = self.publisher.group(group, message, check=check)
        return await publish.arun(get_async_redis("pubsub"), plan)

    # -- the Channels layer API (delegated to the running loop's layer) -------
    async def send(self, channel: str, message: Any) -> None:
        """Send a message to a channel (every process receiving on it gets it)."""
        await self._get_layer().send(channel, message)

    async def receive(self, channel: str) -> Any:
        """The next message of ``channel`` (subscribes to it on first use)."""
        return await self._get_layer().receive(channel)

    async def new_channel(self, prefix: str = "specific.") -> str:
        """A new channel name, already subscribed, for a consumer of this process."""
        return await self._get_layer().new_channel(prefix)

    async def group_add(
        self, group: str, channel: str, *, since: str | None = None, events: bool = False
    ) -> None:
        """Add ``channel`` to ``group``.

        ``since``: (replay groups) the ``seq`` of the last message the consumer saw;
        what it missed is queued first, or a ``redisroles.gap`` event when replay
        cannot fill the gap. ``events`` (implied by ``since``): also deliver
        ``redisroles.lost`` events (connection dropped, queue full).
        """
        await self._get_layer().group_add(group, channel, since=since, events=events)

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group`` (no error when it is not a member)."""
        await self._get_layer().group_discard(group, channel)

    async def group_send(self, group: str, message: Any) -> None:
        """Send to every member of ``group`` in every process: one PUBLISH."""
        await self.publish_async(group, message, check=False)

    async def flush(self) -> None:
        """Drop this loop's channels and groups, and delete the replay streams."""
        await self._get_layer().close()
        await replay.delete_all(await async_primary_clients("pubsub"))

    async def close(self) -> None:
        """Unsubscribe and drop this loop's state (Redis keys are kept)."""
        layer = self._layers.pop(asyncio.get_running_loop(), None)
        if layer is not None:
            await layer.close()

    # -- per event loop ------------------------------------------------------
    def _get_layer(self) -> LoopLayer:
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            # Make sure the pooled client (which closes itself with the loop) exists
            # first, so our close hook wraps its hook and runs before it.
            get_async_redis("pubsub")
            layer = self._layers[loop] = LoopLayer(self)
            close_with_loop(loop, self._closing)
        return layer

    def _closing(self, loop: asyncio.AbstractEventLoop) -> Coroutine[Any, Any, None] | None:
        """``loop`` is closing (``close_with_loop``): what closes its loop layer, if any."""
        layer = self._layers.pop(loop, None)
        return None if layer is None else _aclose(layer)


async def _aclose(layer: LoopLayer) -> None:
    try:
        await layer.close()
    except Exception:
        logger.debug("pubsub: error closing a loop layer", exc_info=True)


def _drop_layers() -> None:
    # Layer options come from REDISROLES: drop our cached layer objects so the
    # next get_channel_layer() builds them from the new settings. (Channels drops
    # them itself when CHANNEL_LAYERS changes.)
    for alias, layer in list(channel_layers.backends.items()):
        if isinstance(layer, RedisRolesChannelLayer):
            channel_layers.backends.pop(alias, None)


conf.on_settings_change(_drop_layers, settings=("REDISROLES",))
