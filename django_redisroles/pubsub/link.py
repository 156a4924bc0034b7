"""One subscriber connection: (S)SUBSCRIBE, the reader, reconnects.

A :class:`Link` is one redis-py ``PubSub`` connection: the only one of a loop
layer on one server or under Sentinel (``SUBSCRIBE``), one per master on a
Redis Cluster (``SSUBSCRIBE``; :mod:`.subscriber` routes the channels). It
subscribes one channel per call (a refusal is told apart: ``SubscribeRefused``),
waits for Redis's confirmation, and runs the reader task, which hands frames to
``deliver``. When the connection drops, the reader alone reconnects (under the
lock), subscribes again to everything wanted, and calls ``on_reconnect``.

Commands are sent on the connection and replies read raw (``parse_response``):
redis-py before 8 has no ``ssubscribe()`` in ``redis.asyncio``. A channel the
server drops (``sunsubscribe`` pushed when its slot moved, ``MOVED`` to an
``SSUBSCRIBE``) goes to ``on_lost``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import redis.asyncio
import redis.asyncio.retry
import redis.backoff
import redis.exceptions

from .. import conf, errors
from .replies import (
    CONNECTION_ERRORS,
    MovedTo,
    Route,
    SubscribeRefused,
    connect_callbacks,
    moved_to,
)

__all__ = ["CONNECTION_ERRORS", "Link", "MovedTo", "Route", "SubscribeRefused"]

logger = logging.getLogger("django_redisroles.pubsub")


class Link:
    """One Pub/Sub connection, kept subscribed to what it wants.

    ``open_pubsub`` makes its redis-py ``PubSub``; ``sharded`` says
    ``SSUBSCRIBE`` (a master of a Redis Cluster) rather than ``SUBSCRIBE``.
    """

    def __init__(
        self,
        stats: collections.Counter[str],
        deliver: Callable[[Route, bytes], None],
        on_reconnect: Callable[[float], Awaitable[None]],
        *,
        open_pubsub: Callable[[], Any],
        sharded: bool = False,
        on_lost: Callable[[bytes, MovedTo | None], None] | None = None,
        on_down: Callable[[], None] | None = None,
        addr: Any = None,
    ) -> None:
        self.stats = stats
        self.addr = addr
        self._deliver = deliver
        self._on_reconnect, self._open_pubsub = on_reconnect, open_pubsub
        self._on_lost, self._on_down, self._sharded = on_lost, on_down, sharded
        prefix = "S" if sharded else ""
        self._sub, self._unsub = f"{prefix}SUBSCRIBE", f"{prefix}UNSUBSCRIBE"
        self._msg_type, self._sub_type, self._unsub_type = (
            f"{prefix}{t}".lower().encode() for t in ("MESSAGE", "SUBSCRIBE", "UNSUBSCRIBE")
        )
        self._routes: dict[bytes, Route] = {}
        self._wanted: set[bytes] = set()
        # What the current socket is subscribed to (sent); cleared with the socket.
        self._sent: set[bytes] = set()
        self._confirm: dict[bytes, asyncio.Future[bool | MovedTo]] = {}
        self._pubsub: Any = None
        self._callback_on: Any = None
        self._saved_retry: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        # Serializes (re)connecting and (UN)SUBSCRIBE: redis-py's PubSub takes a new pool
        # connection for each concurrent first command (consumers starting together).
        self._lock = asyncio.Lock()
        self._resync = False
        self._reconnected = False
        self._down_since: float | None = None
        # SUBSCRIBEs sent and not yet confirmed, oldest first (one channel each):
        # Redis answers them in order, so an error reply is the oldest one's.
        self._pending: collections.deque[bytes] = collections.deque()

    # -- subscriptions ---------------------------------------------------
    def _timeout(self) -> float:
        return float(conf.role_options("pubsub").get("socket_timeout") or 2.0)

    def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read_loop())

    def state(self) -> tuple[bool, frozenset[bytes]]:
        """(whether the connection failed and is not back yet, the channels wanted)."""
        return self._down_since is not None or self._resync, frozenset(self._wanted)

    def forget(self, rname: bytes) -> None:
        """Stop wanting ``rname`` without a word to Redis (its node dropped it or is gone)."""
        self._wanted.discard(rname)
        self._sent.discard(rname)
        self._routes.pop(rname, None)
        fut = self._confirm.pop(rname, None)
        if fut is not None and not fut.done():
            fut.set_result(False)

    def _watch_connection(self) -> None:
        # Told by redis-py each time the subscriber connection (re)connects.
        conn = self._pubsub.connection if self._pubsub is not None else None
        if conn is not None and self._callback_on is not conn:
            connect_callbacks(conn)[0](self._on_connect)
            self._callback_on = conn
            # No reconnect hidden inside redis-py: only the reader reconnects (under the
            # lock), never a SUBSCRIBE and a read at once (asyncio's "read() called
            # while another coroutine is already waiting"). Put back in close().
            self._saved_retry = conn.retry
            conn.retry = redis.asyncio.retry.Retry(
                redis.backoff.NoBackoff(), 0, supported_errors=()
            )

    def _on_connect(self, connection: Any) -> None:
        self._reconnected = True

    async def subscribe(self, rname: bytes, route: Route) -> bool | MovedTo:
        """Subscribe ``rname``: True once confirmed; False if Redis is away (the reader
        subscribes when it is back); ``MovedTo`` if another master serves its slot
        (no longer wanted here). ``SubscribeRefused`` when an ACL refuses it."""
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
                self.note_down(exc)
                self._ensure_reader()
                return False
            self._ensure_reader()
        if fut is None:
            return True
        # Wait for Redis's confirmation: a message published after we return is
        # ours. A refusal (ACL) raises SubscribeRefused here.
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self._timeout())
        except TimeoutError:
            logger.warning("pubsub: no %s confirmation for %r yet", self._sub, rname)
            if self._confirm.get(rname) is fut:
                del self._confirm[rname]  # a later MOVED goes to on_lost: nobody waits
            return False

    async def _send(self, pubsub: Any, *args: Any) -> None:
        # On the connection, not PubSub.execute_command(): no health-check PING
        # (whose reply a subscribed socket would mix with messages).
        await pubsub.connection.send_command(*args, check_health=False)

    async def _send_subscribe(self, pubsub: Any, rname: bytes) -> None:
        """SUBSCRIBE one channel (call with ``self._lock`` held); its answer is awaited in order."""
        self._pending.append(rname)
        self._sent.add(rname)
        await self._send(pubsub, self._sub, rname)

    async def _send_unsubscribe(self, pubsub: Any, names: Iterable[bytes]) -> None:
        names = list(names)
        self._sent.difference_update(names)
        if self._sharded:  # one SUNSUBSCRIBE per channel: several must share a slot
            for name in names:
                await self._send(pubsub, self._unsub, name)
        else:
            await self._send(pubsub, self._unsub, *names)

    def _refused(self, exc: BaseException, failure: errors.Failure | None) -> bool:
        """An error reply read by the reader: the oldest pending SUBSCRIBE's. False if none."""
        moved = moved_to(exc)
        if not self._pending or (failure is None and moved is None):
            return False
        rname = self._pending.popleft()
        if (
            moved is not None or failure is None
        ):  # another master serves its slot: not ours any more
            fut = self._confirm.pop(rname, None)
            self.forget(rname)
            if fut is not None and not fut.done():
                fut.set_result(moved or False)  # the caller subscribes there
            elif self._on_lost is not None:
                self._on_lost(rname, moved)
            return True
        # Nobody will receive on it: stop wanting it, or every reconnect asks again.
        self._wanted.discard(rname)
        self._routes.pop(rname, None)
        self._sent.discard(rname)
        error = SubscribeRefused(rname.decode(errors="replace"), failure)
        logger.error("pubsub: %s", error)
        fut = self._confirm.pop(rname, None)
        if fut is not None and not fut.done():
            fut.set_exception(error)
            fut.exception()  # retrieved: no "never retrieved" warning if nobody waits
        return True

    async def unsubscribe(self, rnames: Iterable[bytes]) -> None:
        """Stop listening on ``rnames`` (never raises: a down Redis is resynced later)."""
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
                await self._send_unsubscribe(self._pubsub, names)
        except Exception as exc:  # noqa: BLE001 - never fail a consumer over it
            self.note_down(exc)

    async def _connected(self) -> Any:
        """The subscriber, connected (call with ``self._lock`` held)."""
        if self._pubsub is None:
            self._pubsub = self._open_pubsub()
        pubsub = self._pubsub
        if pubsub.connection is None or not pubsub.connection.is_connected:
            # A new socket has no subscriptions: we send one (S)SUBSCRIBE per
            # channel (_sync_subscriptions), so that a refused one can be told apart.
            self._sent.clear()
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
            missing = self._wanted - self._sent
            extra = self._sent - self._wanted
            for rname in missing:
                await self._send_subscribe(pubsub, rname)
            if extra:
                await self._send_unsubscribe(pubsub, extra)
            self._watch_connection()
            self._resync = False

    def note_down(self, exc: BaseException) -> None:
        """Redis failed under us: resubscribe on the next read, log once per outage."""
        self._resync = True
        self._pending.clear()
        # Nobody waits for a SUBSCRIBE confirmation that cannot come: the
        # subscriptions are made again on reconnect.
        for fut in self._confirm.values():
            if not fut.done():
                fut.set_result(False)
        self._confirm.clear()
        if self._on_down is not None:
            self._on_down()  # a cluster master may be gone: its channels may move
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
                message = await self._pubsub.parse_response(block=False, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except errors.REDIS_ERRORS as exc:
                failure = errors.classify(exc)
                if isinstance(exc, redis.exceptions.ResponseError) and self._refused(exc, failure):
                    continue  # a SUBSCRIBE refused (ACL) or MOVED: its caller was told
                if failure is not None and failure.bug:
                    logger.exception("pubsub: unexpected error in the subscriber")
                self.note_down(exc)
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
                except CONNECTION_ERRORS as exc:
                    self.note_down(exc)

    def _dispatch(self, reply: Any) -> None:
        """One raw reply of the subscribed socket: ``[type, channel, data or count]``."""
        if not isinstance(reply, list) or len(reply) < 3:
            return  # a PING's pong
        kind, name = reply[0], reply[1]
        if kind == self._msg_type:
            self._message(name, reply[2])
        elif kind == self._unsub_type:
            if name in self._wanted and name not in self._pending:
                # Not asked for: the server dropped it (its slot moved to another master).
                self.forget(name)
                if self._on_lost is not None:
                    self._on_lost(name, None)
        elif kind == self._sub_type:
            try:
                self._pending.remove(name)
            except ValueError:
                pass
            fut = self._confirm.pop(name, None)
            if fut is not None and not fut.done():
                fut.set_result(True)

    def _message(self, rname: bytes, data: bytes) -> None:
        route = self._routes.get(rname)
        if route is not None:
            self._deliver(route, data)

    async def _after_reconnect(self) -> None:
        down_for = time.monotonic() - self._down_since if self._down_since is not None else 0.0
        self._down_since = None
        self._reconnected = False
        self.stats["reconnects"] += 1
        await self._sync_subscriptions()
        n = len(self._wanted)
        logger.warning("pubsub: reconnected after %.2fs; %d subscription(s) back", down_for, n)
        await self._on_reconnect(down_for)

    async def close(self) -> None:
        """Stop the reader and close the connection; forget every subscription."""
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
                connect_callbacks(self._callback_on)[1](self._on_connect)
                if self._saved_retry is not None:
                    self._callback_on.retry = self._saved_retry  # back to the pool as it was
                self._callback_on = None
                self._saved_retry = None
            try:
                await pubsub.aclose()
            except Exception:
                logger.debug("pubsub: error closing the subscriber", exc_info=True)
        for fut in self._confirm.values():  # a closed link is not used again
            fut.cancel()
        self._confirm.clear()
        self._wanted.clear()
