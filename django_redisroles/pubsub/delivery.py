"""Delivery on one event loop: local channels, group memberships, replay catch-up.

:class:`LoopLayer` is the layer's state on one event loop and runs the Channels
API there: it opens consumer channels (:class:`~.queues.LocalChannel`), keeps
group memberships, asks its :class:`~.subscriber.Subscriber` to listen, and
routes what the subscriber reads to the channels: a group message to every
member (dropping memberships older than ``group_expiry``), in stream order for
replay groups. A replay consumer that resumes (``group_add(since=...)``) or
whose connection dropped is caught up from the group's stream first, with a
``redisroles.gap`` event when the stream cannot fill the gap.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from collections.abc import Coroutine
from typing import Any, Protocol

from channels.exceptions import ChannelFull

from ..connections import get_async_redis
from . import replay
from .envelope import EVENT_GAP, EVENT_LOST
from .names import LayerNames
from .publish import Publisher, arun
from .queues import Item, LocalChannel
from .subscriber import CONNECTION_ERRORS, Route, Subscriber, SubscribeRefused

__all__ = ["LoopLayer", "Member"]

logger = logging.getLogger("django_redisroles.pubsub")


class ChannelLayer(Protocol):
    """What delivery needs of the layer (``RedisRolesChannelLayer``)."""

    stats: collections.Counter[str]
    names: LayerNames
    publisher: Publisher
    expiry: float | None
    group_expiry: float | None

    def require_valid_group_name(self, name: Any) -> bool: ...
    def require_valid_channel_name(self, name: Any, receive: bool = False) -> bool: ...
    def get_capacity(self, channel: str) -> int: ...
    def deserialize(self, message: bytes) -> Any: ...


class Member:
    """A channel's membership of a group."""

    __slots__ = ("added", "catching_up", "cursor", "held")

    def __init__(self, added: float) -> None:
        self.added = added
        self.cursor: replay.Seq | None = None  # replay groups: last id delivered
        self.catching_up = False
        self.held: list[tuple[replay.Seq, Item]] = []  # live messages during catch-up


class LoopLayer:
    """The layer's state on one event loop: local channels, groups, one subscriber."""

    def __init__(self, channel_layer: ChannelLayer) -> None:
        self.channel_layer = channel_layer
        self.stats = channel_layer.stats
        self.names = channel_layer.names
        self.channels: dict[str, LocalChannel] = {}
        self.groups: dict[str, dict[str, Member]] = {}
        self._group_seen: dict[str, replay.Seq] = {}
        self._cleanups: set[asyncio.Task[None]] = set()
        self.subscriber = Subscriber(self.stats, self._deliver, self._after_reconnect)

    # -- routing what the subscriber reads ---------------------------------
    def _deliver(self, route: Route, payload: bytes, seq_s: str | None) -> None:
        kind, name = route
        now = time.monotonic()
        if kind == "c":  # channel messages never carry a replay frame
            channel = self.channels.get(name)
            if channel is not None:
                channel.put(Item(now, payload))
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
            item = Item(now, payload, seq_s)
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
                channel.put(item)
        if not members:  # every membership expired: stop listening to the group
            self._background(self._drop_empty_group(name))

    async def _drop_empty_group(self, group: str) -> None:
        if self.groups.get(group) == {}:
            del self.groups[group]
            self._group_seen.pop(group, None)
            await self.subscriber.unsubscribe(self.names.listen("g", group))

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task of this loop, kept referenced until it is done."""
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:  # the loop is closing: close() clears everything
            coro.close()
            return
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _after_reconnect(self, down_for: float) -> None:
        """Tell the consumers who asked (``redisroles.lost``); replay what groups missed."""
        is_replay = self.names.is_replay
        for channel in self.channels.values():
            if channel.events:
                groups = sorted(
                    g for g, m in self.groups.items() if channel.name in m and not is_replay(g)
                )
                channel.put_event(
                    {
                        "type": EVENT_LOST,
                        "reason": "reconnect",
                        "groups": groups,
                        "down_seconds": round(down_for, 3),
                        "count": 1,
                    }
                )
        for group, members in list(self.groups.items()):
            if is_replay(group):
                ready = [m for m in members.values() if not m.catching_up and m.cursor]
                if ready:
                    start = min(m.cursor for m in ready if m.cursor is not None)
                    await self._replay_into(group, ready, start)

    async def _replay_into(self, group: str, members: list[Member], start: replay.Seq) -> None:
        """Queue what ``members`` missed after their cursors, in order, or a gap event."""
        entries, exists = await replay.read_after(
            get_async_redis("pubsub"), self.names.stream(group), start
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
                channel.put_event(
                    {
                        "type": EVENT_GAP,
                        "group": group,
                        "since": replay.format_seq(member.cursor),
                        "resumed_at": mine[0][1] if mine else None,
                    }
                )
            for seq, sid, _prev, payload in mine:
                member.cursor = seq
                self.stats["replayed"] += 1
                channel.put(Item(now, payload, sid))
            if entries and entries[-1][0] > self._group_seen.get(group, replay.ZERO):
                self._group_seen[group] = entries[-1][0]

    # -- Channels API ----------------------------------------------------
    async def send(self, channel: str, message: Any) -> None:
        self.channel_layer.require_valid_channel_name(channel)
        local = self.channels.get(channel)
        if local is not None and local.full:
            raise ChannelFull(channel)
        plan = self.channel_layer.publisher.channel(channel, message)
        await arun(get_async_redis("pubsub"), plan)

    async def new_channel(self, prefix: str = "specific.") -> str:
        name = f"{prefix}{uuid.uuid4().hex}"
        self.channel_layer.require_valid_channel_name(name)
        local = await self._open_channel(name)
        owner = asyncio.current_task()
        if owner is not None:
            owner.add_done_callback(lambda _task: self._owner_done(name, local))
        return name

    def _owner_done(self, name: str, local: LocalChannel) -> None:
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

    async def _open_channel(self, name: str) -> LocalChannel:
        channel = self.channels.get(name)
        if channel is None:
            capacity = self.channel_layer.get_capacity(name)
            channel = self.channels[name] = LocalChannel(name, capacity, self.stats)
            try:
                for rname in self.names.listen("c", name):
                    await self.subscriber.subscribe(rname, ("c", name))
            except SubscribeRefused:
                if self.channels.get(name) is channel:
                    del self.channels[name]
                raise
        return channel

    async def receive(self, channel: str) -> Any:
        self.channel_layer.require_valid_channel_name(channel)
        local = self.channels.get(channel) or await self._open_channel(channel)
        local.received = True
        local.receivers += 1
        try:
            return await local.get(self.channel_layer.expiry, self.channel_layer.deserialize)
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
        gone = self.names.listen("c", name)
        for group, members in list(self.groups.items()):
            if members.pop(name, None) is not None and not members:
                del self.groups[group]
                self._group_seen.pop(group, None)
                gone += self.names.listen("g", group)
        await self.subscriber.unsubscribe(gone)

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
        is_replay = self.names.is_replay(group)
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
            member = members[channel] = Member(time.monotonic())
        else:
            member.added = time.monotonic()  # re-adding refreshes group_expiry
        member.catching_up = since_seq is not None
        try:
            for rname in self.names.listen("g", group):
                await self.subscriber.subscribe(rname, ("g", group))
            if is_replay:
                await self._start_replay(group, member, since_seq)
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
                self._release_held(member, channel, local)

    async def _start_replay(self, group: str, member: Member, since: replay.Seq | None) -> None:
        """Set a new member's cursor: the stream's tail, or ``since`` and catch up from it."""
        if group not in self._group_seen:
            try:
                self._group_seen[group] = await replay.tail(
                    get_async_redis("pubsub"), self.names.stream(group)
                )
            except CONNECTION_ERRORS as exc:
                if since is not None:
                    raise  # the replay asked for cannot be read
                self.subscriber.note_down(exc)  # live only until Redis is back
                return
        if since is None:
            if member.cursor is None or member.cursor < self._group_seen[group]:
                member.cursor = self._group_seen[group]
            return
        member.cursor = since
        await self._replay_into(group, [member], since)

    def _release_held(self, member: Member, channel: str, local: LocalChannel) -> None:
        """After a catch-up: queue the live messages held meanwhile, minus the replayed."""
        member.catching_up = False
        held, member.held = member.held, []
        for seq, item in held:
            if member.cursor is not None and seq <= member.cursor:
                self.stats["duplicates_skipped"] += 1
            else:
                member.cursor = seq
                if self.channels.get(channel) is local:
                    local.put(item)

    async def group_discard(self, group: str, channel: str) -> None:
        self.channel_layer.require_valid_group_name(group)
        self.channel_layer.require_valid_channel_name(channel)
        members = self.groups.get(group)
        if not members or members.pop(channel, None) is None:
            return
        if not members:
            del self.groups[group]
            self._group_seen.pop(group, None)
            await self.subscriber.unsubscribe(self.names.listen("g", group))

    async def close(self) -> None:
        """Unsubscribe, stop the reader, and forget every channel and group of this loop."""
        await self.subscriber.close()
        for task in list(self._cleanups):  # nothing left to clean up after this
            if task is not asyncio.current_task():
                task.cancel()
        self.channels.clear()
        self.groups.clear()
        self._group_seen.clear()
