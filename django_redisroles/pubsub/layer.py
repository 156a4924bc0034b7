"""``RedisRolesChannelLayer``: a Channels layer on Redis Pub/Sub, on the pubsub role's Redis.

Shape borrowed from channels_redis's ``RedisPubSubChannelLayer`` (one
process-wide object, one loop layer per event loop, a single subscriber
connection fanning out to in-process queues, its serializers and Fernet
encryption), with what that layer lacks: bounded per-channel queues with
counted drops (``capacity``), message ``expiry``, ``group_expiry``, automatic
re-subscription after a dropped connection with an explicit event for the
consumer, and replay from a capped Stream for opted-in groups.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import time
import types
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgpack
import redis.asyncio
import redis.asyncio.retry
import redis.backoff
import redis.exceptions
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer
from channels_redis.serializers import registry
from django.core.signals import setting_changed
from django.dispatch import receiver

from .. import conf, errors
from ..connections import get_async_redis, get_redis
from . import options as layer_options
from . import replay

logger = logging.getLogger("django_redisroles.pubsub")

#: Event a consumer gets (opt in: ``group_add(..., events=True)``) when messages
#: may have been lost: the Redis connection dropped, or its queue was full.
EVENT_LOST = "redisroles.lost"
#: Event a consumer of a replay group gets when replay cannot fill a gap.
EVENT_GAP = "redisroles.gap"
#: Key holding the stream id in messages delivered from replay groups.
SEQ_KEY = "seq"

REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)

# Message ids a loop layer remembers, to drop a frame delivered twice (a publish
# re-sent by redis-py after a timeout, whose first send did run).
_RECENT_MSGIDS = 10_000

# Group and channel names as docs/pubsub.md gives them: ASCII letters, digits,
# "-", "_", "."; a channel name may have one "!" (Channels' process-local
# channels). Channels' own patterns end with "$" (a trailing newline passes)
# and use Unicode \d and \w.
_GROUP_NAME = re.compile(r"[A-Za-z0-9._-]+")
_CHANNEL_NAME = re.compile(r"[A-Za-z0-9._-]+(![A-Za-z0-9._-]*)?")

# Bumped on setting_changed: cached Redis names are rebuilt after KEY_PREFIX changes.
_generation = [0]


def redis_channel(kind: str, name: str) -> bytes:
    """The Redis Pub/Sub channel of a group (``"g"``) or consumer channel (``"c"``).

    ``<KEY_PREFIX>:pubsub:db<N>:<kind>:<name>``. Pub/Sub ignores the database
    number (a PUBLISH on db 1 reaches subscribers on db 0), so the name carries
    it: two projects on one server in different databases never hear each other.
    """
    try:
        db = conf.role_db("pubsub")
    except ValueError:
        db = 0  # a malformed URL: connecting raises ImproperlyConfigured anyway
    return conf.make_key("pubsub", f"db{db}", kind, name).encode()


def legacy_redis_channel(kind: str, name: str) -> bytes:
    """The database-blind channel name of versions before ``redis_channel`` (upgrades only)."""
    return conf.make_key("pubsub", kind, name).encode()


def _connect_callbacks(conn: Any) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """(register, deregister) of a redis.asyncio connection's connect callbacks.

    Public since redis-py 5.0.2; 5.0.0/5.0.1 (allowed by ``redis>=5``) have
    them with a leading underscore only.
    """
    register = getattr(conn, "register_connect_callback", None)
    if register is not None:
        return register, conn.deregister_connect_callback
    return conn._register_connect_callback, conn._deregister_connect_callback


def replay_stream(group: str) -> str:
    """The replay stream key of a group (a key: its database isolates it already)."""
    return conf.make_key("pubsub", "replay", group)


def replay_ids(group: str) -> str:
    """The key of a replay group's recent message ids (see ``replay.PUBLISH_LUA``)."""
    return conf.make_key("pubsub", "ids", group)


class MessageNotSerializable(TypeError):
    """A message holds a value the layer's serializer cannot encode."""


class SubscribeRefused(RuntimeError):
    """Redis refused to subscribe this process to a group's or channel's Pub/Sub channel.

    Raised by ``group_add()``/``receive()``/``new_channel()`` (an ACL user
    without that channel: ``NOPERM``), instead of a consumer that silently
    never receives. ``failure`` is the classified error.
    """

    def __init__(self, name: str, failure: errors.Failure) -> None:
        self.failure = failure
        super().__init__(f"Redis refused to subscribe to {name}: {failure.describe()}")


def _safe_packb(message: Any) -> bytes:
    try:
        return msgpack.packb(message)
    except (TypeError, ValueError, OverflowError) as exc:
        raise MessageNotSerializable(
            f"cannot serialize {message!r} with msgpack: {exc}. Channels messages may hold "
            "only dicts, lists, str, bytes, int, float, bool and None; convert dates, "
            "decimals, model instances ... first."
        ) from exc


class _Item:
    """One queued message (or event) of a local channel."""

    __slots__ = ("arrival", "event", "payload", "seq")

    def __init__(
        self,
        arrival: float,
        payload: bytes = b"",
        seq: str | None = None,
        event: dict[str, Any] | None = None,
    ) -> None:
        self.arrival = arrival
        self.payload = payload
        self.seq = seq
        self.event = event


class _Channel:
    __slots__ = ("capacity", "count", "events", "name", "queue", "received", "receivers", "wake")

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity
        self.queue: collections.deque[_Item] = collections.deque()
        self.count = 0  # messages in the queue (events are not counted)
        self.events = False
        self.wake = asyncio.Event()
        self.receivers = 0  # receive() calls waiting right now
        self.received = False  # receive() was called at least once


class _Member:
    """A channel's membership of a group."""

    __slots__ = ("added", "catching_up", "cursor", "held")

    def __init__(self, added: float) -> None:
        self.added = added
        self.cursor: replay.Seq | None = None  # replay groups: last id delivered
        self.catching_up = False
        self.held: list[tuple[replay.Seq, _Item]] = []


class RedisRolesChannelLayer(BaseChannelLayer):
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
        self._layers: dict[asyncio.AbstractEventLoop, _LoopLayer] = {}
        self._names: dict[tuple[str, str], Any] = {}
        self._names_gen = _generation[0]
        self._replay_cache: dict[str, bool] = {}
        self._targets: dict[str, tuple[bytes, bool]] = {}
        # Plain msgpack (no encryption): pack directly, errors still go through serialize().
        plain = opts.serializer_format == "msgpack" and not opts.symmetric_encryption_keys
        self._pack: Callable[[Any], bytes] | None = _safe_packb if plain else None
        #: Counters: published, delivered, replayed, duplicates_skipped, dropped_full,
        #: expired, group_expired, reconnects, gaps, undecodable.
        self.stats: collections.Counter[str] = collections.Counter()

    # -- serialization ------------------------------------------------------
    def serialize(self, message: Any) -> bytes:
        """Message -> bytes (msgpack by default, encrypted when keys are set)."""
        try:
            return self._serializer.serialize(message)
        except (TypeError, ValueError, OverflowError) as exc:
            raise MessageNotSerializable(
                f"cannot serialize {message!r} with {self.options.serializer_format}: {exc}. "
                "Channels messages may hold only dicts, lists, str, bytes, int, float, "
                "bool and None; convert dates, decimals, model instances ... first."
            ) from exc

    def deserialize(self, message: bytes) -> Any:
        """Bytes -> message."""
        return self._serializer.deserialize(message)

    # -- names --------------------------------------------------------------
    def _name(self, kind: str, name: str) -> Any:
        """Redis name of a group ("g"), channel ("c") or replay stream ("r"), cached."""
        if self._names_gen != _generation[0]:
            self._names.clear()
            self._targets.clear()
            self._names_gen = _generation[0]
        key = (kind, name)
        value = self._names.get(key)
        if value is None:
            if kind == "r":
                value = replay_stream(name)
            elif kind == "i":  # the replay script's recent message ids
                value = replay_ids(name)
            elif self.options.legacy_channels == "publish":
                value = legacy_redis_channel(kind, name)  # upgrade step 1: old names
            else:
                value = redis_channel(kind, name)
            if len(self._names) > 10000:  # bounded: channel names are per connection
                self._names.clear()
            self._names[key] = value
        return value

    def _listen_names(self, kind: str, name: str) -> list[bytes]:
        """The Redis channels a group or channel is subscribed on (both during an upgrade)."""
        names = [redis_channel(kind, name)]
        if self.options.legacy_channels:
            names.append(legacy_redis_channel(kind, name))
        return names

    def is_replay(self, group: str) -> bool:
        """Whether broadcasts to ``group`` are also kept in a replay stream."""
        value = self._replay_cache.get(group)
        if value is None:
            value = any(p.match(group) for p in self.options.replay_groups)
            if len(self._replay_cache) < 10000:
                self._replay_cache[group] = value
        return value

    # -- names ----------------------------------------------------------------
    def require_valid_group_name(self, name: Any) -> bool:
        """``TypeError`` unless ``name`` is ASCII letters, digits, ``-_.``, under 100 chars."""
        super().require_valid_group_name(name)
        if _GROUP_NAME.fullmatch(name) is None:
            raise TypeError(f"{self.invalid_name_error.format('Group')} Got {name!r}.")
        return True

    def require_valid_channel_name(self, name: Any, receive: bool = False) -> bool:
        """Channels' check, with ASCII-only names (no trailing newline)."""
        super().require_valid_channel_name(name, receive)
        if _CHANNEL_NAME.fullmatch(name) is None:
            raise TypeError(f"{self.invalid_name_error.format('Channel')} Got {name!r}.")
        return True

    # -- publishing (shared by group_send and broadcast) ---------------------
    def _group_target(self, group: str) -> tuple[bytes, bool]:
        """(Redis channel, is replay) of a group, validated once and cached."""
        target = self._targets.get(group) if self._names_gen == _generation[0] else None
        if target is None:
            self.require_valid_group_name(group)
            target = (self._name("g", group), self.is_replay(group))
            if len(self._targets) < 10000:
                self._targets[group] = target
        return target

    def _check_message(self, group: str, message: Any, is_replay: bool) -> None:
        # type() first: the exact-dict case is the hot path of broadcast().
        if (type(message) is not dict and not isinstance(message, Mapping)) or type(
            message.get("type")
        ) is not str:
            raise TypeError(
                f"broadcast to {group!r}: the message must be a dict with a 'type' string "
                f'naming the consumer handler (e.g. {{"type": "notify", ...}}), got {message!r}'
            )
        if is_replay and SEQ_KEY in message:
            raise ValueError(
                f"broadcast to replay group {group!r}: the message key {SEQ_KEY!r} is reserved "
                "for the replay sequence id"
            )

    def publish_sync(self, group: str, message: Any) -> str | None:
        """Publish to ``group`` from synchronous code: the sequence id, or None."""
        channel, is_replay = self._group_target(group)
        self._check_message(group, message, is_replay)
        payload = self._pack(message) if self._pack is not None else self.serialize(message)
        client = get_redis("pubsub")
        self.stats["published"] += 1
        if is_replay:
            return replay.publish_sync(
                client,
                self._name("r", group),
                self._name("i", group),
                channel,
                payload,
                self.options.replay_maxlen,
                self.options.replay_ttl,
            )
        # With a message id: a PUBLISH re-sent after a timeout is delivered once.
        client.publish(channel, replay.frame(payload))
        return None

    async def publish_async(self, group: str, message: Any, *, check: bool = True) -> str | None:
        """Publish to ``group`` from async code (one round trip): the sequence id, or None."""
        channel, is_replay = self._group_target(group)
        if check:
            self._check_message(group, message, is_replay)
        payload = self.serialize(message)
        client = get_async_redis("pubsub")
        self.stats["published"] += 1
        if is_replay:
            return await replay.publish_async(
                client,
                self._name("r", group),
                self._name("i", group),
                channel,
                payload,
                self.options.replay_maxlen,
                self.options.replay_ttl,
            )
        await client.publish(channel, replay.frame(payload))
        return None

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
        await self._get_layer().flush()

    async def close(self) -> None:
        """Unsubscribe and drop this loop's state (Redis keys are kept)."""
        layer = self._layers.pop(asyncio.get_running_loop(), None)
        if layer is not None:
            await layer.close()

    # -- per event loop ------------------------------------------------------
    def _get_layer(self) -> _LoopLayer:
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            # Make sure the pooled client (which closes itself with the loop) exists
            # first, so our close hook wraps its hook and runs before it.
            get_async_redis("pubsub")
            layer = self._layers[loop] = _LoopLayer(self)
            self._close_with_loop(loop)
        return layer

    def _close_with_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        original = loop.close
        layers = self._layers

        def close(this: asyncio.AbstractEventLoop) -> None:
            this.close = original  # type: ignore[method-assign]
            layer = layers.pop(this, None)
            if layer is not None and not this.is_running() and not this.is_closed():
                try:
                    this.run_until_complete(layer.close())
                except Exception:
                    logger.debug("pubsub: error closing a loop layer", exc_info=True)
            original()

        loop.close = types.MethodType(close, loop)  # type: ignore[method-assign]


class _LoopLayer:
    """The layer's state on one event loop: local channels, groups, one subscriber."""

    def __init__(self, channel_layer: RedisRolesChannelLayer) -> None:
        self.channel_layer = channel_layer
        self.channels: dict[str, _Channel] = {}
        self.groups: dict[str, dict[str, _Member]] = {}
        self._routes: dict[bytes, tuple[str, str]] = {}
        self._wanted: set[bytes] = set()
        self._confirm: dict[bytes, asyncio.Future[bool]] = {}
        self._group_seen: dict[str, replay.Seq] = {}
        self._pubsub: Any = None
        self._callback_on: Any = None
        self._saved_retry: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._cleanups: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        # Serializes (re)connecting and (UN)SUBSCRIBE on the subscriber: redis-py's
        # PubSub takes a new pool connection for each concurrent first command, so
        # consumers starting together would each get (and leak) their own.
        self._lock = asyncio.Lock()
        self._resync = False
        self._reconnected = False
        self._down_since: float | None = None
        # SUBSCRIBEs sent and not yet confirmed, oldest first (one channel each):
        # Redis answers them in order, so an error reply is the oldest one's.
        self._pending: collections.deque[bytes] = collections.deque()
        self._recent: collections.OrderedDict[tuple[tuple[str, str], bytes], None] = (
            collections.OrderedDict()
        )

    @property
    def stats(self) -> collections.Counter[str]:
        return self.channel_layer.stats

    # -- subscriptions ---------------------------------------------------
    def _timeout(self) -> float:
        value = conf.role_options("pubsub").get("socket_timeout") or 2.0
        return float(value)

    def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read_loop())

    def _ensure_pubsub(self) -> Any:
        if self._pubsub is None:
            self._pubsub = get_async_redis("pubsub").pubsub()
        return self._pubsub

    def _watch_connection(self) -> None:
        # Told by redis-py each time the subscriber connection (re)connects.
        conn = self._pubsub.connection if self._pubsub is not None else None
        if conn is not None and self._callback_on is not conn:
            _connect_callbacks(conn)[0](self._on_connect)
            self._callback_on = conn
            # No reconnect hidden inside redis-py commands: a failed read or write
            # raises, and only the reader reconnects (under the lock). Otherwise a
            # SUBSCRIBE and get_message() could both reconnect the same connection
            # at once (asyncio's "read() called while another coroutine is already
            # waiting"). The pool's own policy is put back in close().
            self._saved_retry = conn.retry
            conn.retry = redis.asyncio.retry.Retry(
                redis.backoff.NoBackoff(), 0, supported_errors=()
            )

    def _on_connect(self, connection: Any) -> None:
        self._reconnected = True

    async def _subscribe(self, rname: bytes, route: tuple[str, str]) -> None:
        self._routes[rname] = route
        fut = self._confirm.get(rname)
        if rname not in self._wanted:
            self._wanted.add(rname)
            fut = self._confirm[rname] = asyncio.get_running_loop().create_future()
            self._wake.set()
            try:
                async with self._lock:
                    conn = self._pubsub.connection if self._pubsub is not None else None
                    if self._resync or (conn is not None and not conn.is_connected):
                        # Down or reconnecting: the reader (re)connects and then
                        # subscribes everything wanted, this one included.
                        raise redis.exceptions.ConnectionError("reconnecting")
                    pubsub = await self._connected()
                    await self._send_subscribe(pubsub, rname)
                    self._watch_connection()
            except Exception as exc:  # noqa: BLE001 - never fail a consumer over it
                # Redis is down (or the connection broke under us): the
                # subscription is made by the reader when it is back.
                self._confirm.pop(rname, None)
                self._note_down(exc)
                self._ensure_reader()
                return
            self._ensure_reader()
        if fut is not None:
            # Wait for Redis's confirmation: a message published after we return is
            # ours. A refusal (ACL) raises SubscribeRefused here.
            try:
                await asyncio.wait_for(asyncio.shield(fut), self._timeout())
            except TimeoutError:
                logger.warning("pubsub: no SUBSCRIBE confirmation for %r yet", rname)

    async def _send_subscribe(self, pubsub: Any, rname: bytes) -> None:
        """SUBSCRIBE one channel (call with ``self._lock`` held); its answer is awaited in order."""
        self._pending.append(rname)
        await pubsub.subscribe(rname)

    def _refused(self, exc: BaseException, failure: errors.Failure) -> bool:
        """An error reply read by the reader: the oldest pending SUBSCRIBE's. False if none."""
        if not self._pending:
            return False
        rname = self._pending.popleft()
        # Nobody will receive on it: stop wanting it, or every reconnect asks again.
        self._wanted.discard(rname)
        self._routes.pop(rname, None)
        if self._pubsub is not None:
            self._pubsub.channels.pop(rname, None)
        error = SubscribeRefused(rname.decode(errors="replace"), failure)
        logger.error("pubsub: %s", error)
        fut = self._confirm.pop(rname, None)
        if fut is not None and not fut.done():
            fut.set_exception(error)
            fut.exception()  # retrieved: no "never retrieved" warning if nobody waits
        return True

    async def _unsubscribe(self, rnames: Iterable[bytes]) -> None:
        names = [n for n in rnames if n in self._wanted]
        for name in names:
            self._wanted.discard(name)
            self._routes.pop(name, None)
            fut = self._confirm.pop(name, None)
            if fut is not None and not fut.done():
                fut.cancel()
        if not names or self._pubsub is None or self._pubsub.connection is None:
            return
        try:
            async with self._lock:
                conn = self._pubsub.connection
                if conn is None or not conn.is_connected:
                    # The reader's resync drops subscriptions nobody wants.
                    raise redis.exceptions.ConnectionError("reconnecting")
                await self._pubsub.unsubscribe(*names)
        except Exception as exc:  # noqa: BLE001 - never fail a consumer over it
            self._note_down(exc)

    async def _connected(self) -> Any:
        """The subscriber, connected (call with ``self._lock`` held)."""
        pubsub = self._ensure_pubsub()
        if pubsub.connection is None or not pubsub.connection.is_connected:
            # A new socket has no subscriptions. Forget redis-py's list so it does
            # not re-send them in one SUBSCRIBE on connect: we send one per channel
            # (_sync_subscriptions), so that a refused one can be told apart.
            pubsub.channels.clear()
            self._pending.clear()
            await pubsub.connect()
        self._watch_connection()
        return pubsub

    async def _sync_subscriptions(self) -> None:
        async with self._lock:
            conn = self._pubsub.connection if self._pubsub is not None else None
            if self._resync and conn is not None:
                # Something failed on it: start from a fresh socket (redis-py then
                # subscribes its known channels again, and we add the missing ones).
                await conn.disconnect()
            pubsub = await self._connected()
            current = set(pubsub.channels)
            missing = self._wanted - current
            extra = current - self._wanted
            for rname in missing:
                await self._send_subscribe(pubsub, rname)
            if extra:
                await pubsub.unsubscribe(*extra)
            self._watch_connection()
            self._resync = False

    def _note_down(self, exc: BaseException) -> None:
        self._resync = True
        self._pending.clear()
        # Nobody waits for a SUBSCRIBE confirmation that cannot come: the
        # subscriptions are made again on reconnect.
        for fut in self._confirm.values():
            if not fut.done():
                fut.set_result(False)
        self._confirm.clear()
        if self._down_since is None:
            self._down_since = time.monotonic()
            failure = errors.classify(exc)
            if failure is None:
                logger.warning("pubsub: lost the Redis connection (%s); reconnecting", exc)
            else:
                # A refusal (wrong password, ...) will not heal by itself: louder.
                log = logger.warning if failure.outage else logger.error
                log("pubsub: cannot use Redis (%s); reconnecting", failure.describe())

    # -- the reader ------------------------------------------------------
    async def _read_loop(self) -> None:
        backoff = 0.05
        while True:
            if not self._wanted and not self._resync:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                conn = self._pubsub.connection if self._pubsub is not None else None
                if self._resync or conn is None or not conn.is_connected:
                    # Reconnect here, under the lock, not inside get_message().
                    await self._sync_subscriptions()
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except errors.REDIS_ERRORS as exc:
                failure = errors.classify(exc)
                if (
                    failure is not None
                    and isinstance(exc, redis.exceptions.ResponseError)
                    and self._refused(exc, failure)
                ):
                    continue  # a SUBSCRIBE refused (ACL): its caller was told
                if failure is not None and failure.bug:
                    logger.exception("pubsub: unexpected error in the subscriber")
                self._note_down(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            except Exception:  # keep the subscriber alive whatever happens
                logger.exception("pubsub: unexpected error in the subscriber")
                self._resync = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            backoff = 0.05
            if message is not None:
                self._dispatch(message)
            if self._reconnected or self._down_since is not None:
                try:
                    await self._after_reconnect()
                except REDIS_ERRORS as exc:
                    self._note_down(exc)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        name = message["channel"]
        if kind == "message":
            self._route(name, message["data"])
        elif kind == "subscribe":
            try:
                self._pending.remove(name)
            except ValueError:
                pass
            fut = self._confirm.pop(name, None)
            if fut is not None and not fut.done():
                fut.set_result(True)

    def _duplicate(self, route: tuple[str, str], msgid: bytes) -> bool:
        """Whether this frame was already delivered (a re-sent publish).

        Per group or channel, not per Redis channel: during an upgrade a group
        is heard on its old and its new name.
        """
        key = (route, msgid)
        recent = self._recent
        if key in recent:
            self.stats["duplicates_skipped"] += 1
            return True
        recent[key] = None
        if len(recent) > _RECENT_MSGIDS:
            recent.popitem(last=False)
        return False

    def _route(self, rname: bytes, data: bytes) -> None:
        route = self._routes.get(rname)
        if route is None:
            return
        kind, name = route
        now = time.monotonic()
        payload, seq_s, msgid = replay.split_frame(data)
        if msgid is not None and self._duplicate(route, msgid):
            return
        if kind == "c":  # channel messages never carry a replay frame
            channel = self.channels.get(name)
            if channel is not None:
                self._put(channel, _Item(now, payload))
            return
        members = self.groups.get(name)
        if not members:
            return
        seq = replay.parse_seq(seq_s) if seq_s is not None else None
        if seq is not None and seq > self._group_seen.get(name, replay.ZERO):
            self._group_seen[name] = seq
        group_expiry = self.channel_layer.group_expiry
        for channel_name, member in list(members.items()):
            if group_expiry is not None and now - member.added > group_expiry:
                # Channels' group_expiry: memberships older than this are dropped.
                del members[channel_name]
                self.stats["group_expired"] += 1
                continue
            item = _Item(now, payload, seq_s)
            if seq is not None:
                if member.catching_up:
                    member.held.append((seq, item))
                    continue
                if member.cursor is not None and seq <= member.cursor:
                    self.stats["duplicates_skipped"] += 1
                    continue  # already delivered by replay
                member.cursor = seq
            channel = self.channels.get(channel_name)
            if channel is not None:
                self._put(channel, item)
        if not members:  # every membership expired: stop listening to the group
            self._background(self._drop_empty_group(name))

    async def _drop_empty_group(self, group: str) -> None:
        if self.groups.get(group) == {}:
            del self.groups[group]
            self._group_seen.pop(group, None)
            await self._unsubscribe(self.channel_layer._listen_names("g", group))

    def _background(self, coro: Any) -> None:
        """Run ``coro`` as a task of this loop, kept referenced until it is done."""
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:  # the loop is closing: close() clears everything
            coro.close()
            return
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    def _put(self, channel: _Channel, item: _Item) -> None:
        if channel.count >= channel.capacity:
            # Full: drop the new message (counted), never grow without bound.
            self.stats["dropped_full"] += 1
            if channel.events:
                self._put_event(channel, {"type": EVENT_LOST, "reason": "capacity", "count": 1})
            if self.stats["dropped_full"] in (1, 10, 100, 1000) or (
                self.stats["dropped_full"] % 10000 == 0
            ):
                logger.warning(
                    "pubsub: channel %s is full (capacity %d): %d message(s) dropped so far",
                    channel.name,
                    channel.capacity,
                    self.stats["dropped_full"],
                )
            return
        channel.queue.append(item)
        channel.count += 1
        channel.wake.set()

    def _put_event(self, channel: _Channel, event: dict[str, Any]) -> None:
        last = channel.queue[-1] if channel.queue else None
        if (
            last is not None
            and last.event is not None
            and last.event["type"] == event["type"] == EVENT_LOST
            and last.event.get("reason") == event.get("reason")
        ):
            # Coalesce: events never grow the queue without bound either.
            last.event["count"] = last.event.get("count", 1) + event.get("count", 1)
            return
        channel.queue.append(_Item(time.monotonic(), event=event))
        channel.wake.set()

    async def _after_reconnect(self) -> None:
        down_for = time.monotonic() - self._down_since if self._down_since is not None else 0.0
        self._down_since = None
        self._reconnected = False
        self.stats["reconnects"] += 1
        await self._sync_subscriptions()
        logger.warning(
            "pubsub: reconnected to Redis after %.2fs; %d subscription(s) re-established",
            down_for,
            len(self._wanted),
        )
        is_replay = self.channel_layer.is_replay
        for channel in self.channels.values():
            if channel.events:
                groups = sorted(
                    g for g, m in self.groups.items() if channel.name in m and not is_replay(g)
                )
                self._put_event(
                    channel,
                    {
                        "type": EVENT_LOST,
                        "reason": "reconnect",
                        "groups": groups,
                        "down_seconds": round(down_for, 3),
                        "count": 1,
                    },
                )
        for group, members in list(self.groups.items()):
            if is_replay(group):
                ready = [m for m in members.values() if not m.catching_up and m.cursor]
                if ready:
                    await self._replay_into(group, ready, min(m.cursor for m in ready))

    async def _replay_into(self, group: str, members: list[_Member], start: replay.Seq) -> None:
        """Queue what ``members`` missed after their cursors, in order, or a gap event."""
        entries, exists = await replay.read_after(
            get_async_redis("pubsub"), self.channel_layer._name("r", group), start
        )
        by_member = {id(m): c for c, m in self.groups.get(group, {}).items()}
        now = time.monotonic()
        for member in members:
            channel = self.channels.get(by_member.get(id(member), ""))
            if channel is None or member.cursor is None:
                continue
            mine = [e for e in entries if e[0] > member.cursor]
            if replay.has_gap(member.cursor, mine, exists):
                self.stats["gaps"] += 1
                self._put_event(
                    channel,
                    {
                        "type": EVENT_GAP,
                        "group": group,
                        "since": replay.format_seq(member.cursor),
                        "resumed_at": mine[0][1] if mine else None,
                    },
                )
            for seq, sid, _prev, payload in mine:
                member.cursor = seq
                self.stats["replayed"] += 1
                self._put(channel, _Item(now, payload, sid))
            if entries and entries[-1][0] > self._group_seen.get(group, replay.ZERO):
                self._group_seen[group] = entries[-1][0]

    # -- Channels API ----------------------------------------------------
    async def send(self, channel: str, message: Any) -> None:
        self.channel_layer.require_valid_channel_name(channel)
        local = self.channels.get(channel)
        if local is not None and local.count >= local.capacity:
            raise ChannelFull(channel)
        payload = self.channel_layer.serialize(message)
        self.stats["published"] += 1
        await get_async_redis("pubsub").publish(
            self.channel_layer._name("c", channel), replay.frame(payload)
        )

    async def new_channel(self, prefix: str = "specific.") -> str:
        name = f"{prefix}{uuid.uuid4().hex}"
        self.channel_layer.require_valid_channel_name(name)
        local = await self._open_channel(name)
        owner = asyncio.current_task()
        if owner is not None:
            owner.add_done_callback(lambda _task: self._owner_done(name, local))
        return name

    def _owner_done(self, name: str, local: _Channel) -> None:
        """The task that made ``name`` (a consumer's) ended: drop the channel if abandoned.

        A cancelled receive() cleans up after itself, but Channels' dispatcher
        does not cancel a receive that already returned a message it never
        dispatched (the consumer stopped, or crashed, while its queue was not
        empty). Without this, such channels, their memberships and their
        subscriptions would stay for the life of the process. A channel no
        receive() was ever called on is kept (it may be received from later
        by other tasks, e.g. ``async_to_sync`` code).
        """
        if self.channels.get(name) is not local or local.receivers or not local.received:
            return

        async def drop() -> None:
            if self.channels.get(name) is local and not local.receivers:
                await self._drop_channel(name)

        self._background(drop())

    async def _open_channel(self, name: str) -> _Channel:
        channel = self.channels.get(name)
        if channel is None:
            channel = self.channels[name] = _Channel(name, self.channel_layer.get_capacity(name))
            try:
                for rname in self.channel_layer._listen_names("c", name):
                    await self._subscribe(rname, ("c", name))
            except SubscribeRefused:
                if self.channels.get(name) is channel:
                    del self.channels[name]
                raise
        return channel

    async def receive(self, channel: str) -> Any:
        self.channel_layer.require_valid_channel_name(channel)
        local = self.channels.get(channel) or await self._open_channel(channel)
        expiry = self.channel_layer.expiry
        local.received = True
        local.receivers += 1
        try:
            while True:
                while not local.queue:
                    local.wake.clear()
                    await local.wake.wait()
                item = local.queue.popleft()
                if item.event is not None:
                    return dict(item.event)
                local.count -= 1
                if expiry is not None and time.monotonic() - item.arrival > expiry:
                    self.stats["expired"] += 1
                    continue
                try:
                    message = self.channel_layer.deserialize(item.payload)
                except Exception as exc:  # noqa: BLE001 - a bad frame must not kill the consumer
                    self.stats["undecodable"] += 1
                    logger.warning(
                        "pubsub: dropped a message %s could not decode: %r", channel, exc
                    )
                    continue
                if item.seq is not None and isinstance(message, dict):
                    message[SEQ_KEY] = item.seq
                self.stats["delivered"] += 1
                return message
        except (asyncio.CancelledError, TimeoutError, GeneratorExit):
            # The consumer is going away (Channels cancels its receive): clean up,
            # as channels_redis does, since the spec has no "delete channel".
            if self.channels.get(channel) is local:
                try:
                    await self._drop_channel(channel)
                except BaseException:
                    logger.debug("pubsub: error cleaning up %s", channel, exc_info=True)
            raise
        finally:
            local.receivers -= 1

    async def _drop_channel(self, name: str) -> None:
        self.channels.pop(name, None)
        gone = self.channel_layer._listen_names("c", name)
        for group, members in list(self.groups.items()):
            if members.pop(name, None) is not None and not members:
                del self.groups[group]
                self._group_seen.pop(group, None)
                gone += self.channel_layer._listen_names("g", group)
        await self._unsubscribe(gone)

    async def group_add(
        self, group: str, channel: str, *, since: str | None = None, events: bool = False
    ) -> None:
        layer = self.channel_layer
        layer.require_valid_group_name(group)
        layer.require_valid_channel_name(channel)
        local = self.channels.get(channel)
        if local is None:
            raise RuntimeError(
                "You can only call group_add() on channels that exist in-process.\n"
                "Consumers are encouraged to use the common pattern:\n"
                f"   self.channel_layer.group_add({group!r}, self.channel_name)"
            )
        is_replay = layer.is_replay(group)
        since_seq = None
        if since is not None:
            if not is_replay:
                raise ValueError(
                    f"group_add({group!r}, since=...): {group!r} is not a replay group; "
                    "add it to REDISROLES['ROLES']['pubsub']['REPLAY_GROUPS']"
                )
            since_seq = replay.parse_seq(since)
        if events or since_seq is not None:
            # A replay consumer must hear about capacity drops too, not only gaps.
            local.events = True
        members = self.groups.setdefault(group, {})
        member = members.get(channel)
        if member is None:
            member = members[channel] = _Member(time.monotonic())
        else:
            member.added = time.monotonic()  # re-adding refreshes group_expiry
        member.catching_up = since_seq is not None
        try:
            for rname in layer._listen_names("g", group):
                await self._subscribe(rname, ("g", group))
            if not is_replay:
                return
            if group not in self._group_seen:
                try:
                    self._group_seen[group] = await replay.tail(
                        get_async_redis("pubsub"), layer._name("r", group)
                    )
                except REDIS_ERRORS as exc:
                    if since_seq is not None:
                        raise  # the replay asked for cannot be read
                    self._note_down(exc)  # live only until Redis is back
                    return
            if since_seq is None:
                if member.cursor is None or member.cursor < self._group_seen[group]:
                    member.cursor = self._group_seen[group]
                return
            member.cursor = since_seq
            await self._replay_into(group, [member], since_seq)
        except BaseException as exc:
            refused = isinstance(exc, SubscribeRefused)
            if (since_seq is not None or refused) and self.groups.get(group, {}).get(
                channel
            ) is member:
                del self.groups[group][channel]
                if not self.groups[group]:
                    del self.groups[group]
                    self._group_seen.pop(group, None)
            raise
        finally:
            if member.catching_up and self.groups.get(group, {}).get(channel) is member:
                member.catching_up = False
                held, member.held = member.held, []
                for seq, item in held:
                    if member.cursor is not None and seq <= member.cursor:
                        self.stats["duplicates_skipped"] += 1
                    else:
                        member.cursor = seq
                        if self.channels.get(channel) is local:
                            self._put(local, item)

    async def group_discard(self, group: str, channel: str) -> None:
        self.channel_layer.require_valid_group_name(group)
        self.channel_layer.require_valid_channel_name(channel)
        members = self.groups.get(group)
        if not members or members.pop(channel, None) is None:
            return
        if not members:
            del self.groups[group]
            self._group_seen.pop(group, None)
            await self._unsubscribe(self.channel_layer._listen_names("g", group))

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            try:
                await reader
            except BaseException:  # noqa: BLE001 - it was cancelled on purpose
                pass
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            if self._callback_on is not None:
                _connect_callbacks(self._callback_on)[1](self._on_connect)
                if self._saved_retry is not None:
                    self._callback_on.retry = self._saved_retry  # back to the pool as it was
                self._callback_on = None
                self._saved_retry = None
            try:
                await pubsub.aclose()
            except Exception:
                logger.debug("pubsub: error closing the subscriber", exc_info=True)
        for fut in self._confirm.values():
            fut.cancel()
        self._confirm.clear()
        for task in list(self._cleanups):  # nothing left to clean up after this
            if task is not asyncio.current_task():
                task.cancel()
        self.channels.clear()
        self.groups.clear()
        self._routes.clear()
        self._wanted.clear()
        self._group_seen.clear()
        self._resync = False
        self._reconnected = False
        self._down_since = None
        self._pending.clear()
        self._recent.clear()

    async def flush(self) -> None:
        await self.close()
        client = get_async_redis("pubsub")
        for prefix in (replay_stream(""), replay_ids("")):  # streams, their message ids
            batch: list[Any] = []
            pattern = conf.glob_escape(prefix) + "*"  # "a[1]" must not flush "a1"'s streams
            async for key in client.scan_iter(match=pattern, count=500):
                if not key.startswith(prefix.encode()):
                    continue
                batch.append(key)
                if len(batch) >= 500:
                    await client.unlink(*batch)
                    batch = []
            if batch:
                await client.unlink(*batch)


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("REDISROLES", "CHANNEL_LAYERS"):
        _generation[0] += 1
    if setting == "REDISROLES":
        # Layer options come from REDISROLES: drop our cached layer objects so the
        # next get_channel_layer() builds them from the new settings.
        from channels.layers import channel_layers

        for alias, layer in list(channel_layers.backends.items()):
            if isinstance(layer, RedisRolesChannelLayer):
                channel_layers.backends.pop(alias, None)
