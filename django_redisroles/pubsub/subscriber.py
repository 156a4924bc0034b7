"""The subscriber of one event loop: its connection(s), and where each channel is heard.

On one server or under Sentinel, one :class:`~.link.Link` (``SUBSCRIBE``)
carries every group and consumer channel of the loop; under Sentinel its
reconnect asks the Sentinels for the master, so it follows a failover.

On a Redis Cluster, sharded pub/sub: a channel is heard on the master that owns
its slot (``SSUBSCRIBE``, where ``SPUBLISH`` sends it), so :class:`Subscriber`
keeps one link per master and routes each channel to its owner's. A channel
moves when its slot does: the old owner drops it (``sunsubscribe`` pushed, or
``MOVED`` to an ``SSUBSCRIBE``), or its master fails and a replica takes over;
the channel is then subscribed on the new owner, and ``on_reconnect`` runs as
after a reconnect (``redisroles.lost`` events, replay groups caught up or told
of a gap): what was published while nobody listened is never silently lost.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .. import errors
from ..connections import async_shard_client, get_async_redis, topology
from .envelope import split_frame
from .link import CONNECTION_ERRORS, Link, MovedTo, Route, SubscribeRefused

__all__ = ["CONNECTION_ERRORS", "Route", "SubscribeRefused", "Subscriber"]

logger = logging.getLogger("django_redisroles.pubsub")

Addr = tuple[str, int]

# Message ids remembered, to drop a frame delivered twice (a publish re-sent by
# redis-py after a timeout, whose first send did run).
_RECENT_MSGIDS = 10_000

# Live frames held per moving channel until its catch-up ran (then replayed ones skipped).
_HOLD_MAX = 10_000

# MOVED replies followed for one subscribe before giving up (a slot in migration).
_MAX_REDIRECTS = 5


class Subscriber:
    """Keeps every wanted Redis channel subscribed on the node that serves it."""

    def __init__(
        self,
        stats: collections.Counter[str],
        deliver: Callable[[Route, bytes, str | None], None],
        on_reconnect: Callable[[float], Awaitable[None]],
    ) -> None:
        self.stats = stats
        self._deliver = deliver
        self._on_reconnect = on_reconnect
        self.sharded = topology("pubsub").kind == "cluster"
        self._links: dict[Addr | None, Link] = {}
        self._where: dict[bytes, Addr | None] = {}
        self._routes: dict[bytes, Route] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._moving = asyncio.Lock()
        self._watching: set[Addr | None] = set()
        self._recent: collections.OrderedDict[tuple[Route, bytes], None] = collections.OrderedDict()
        self._held: dict[Route, list[bytes]] = {}

    # -- frames ------------------------------------------------------------
    def _frame(self, route: Route, data: bytes) -> None:
        """A frame a link read: delivered unless its message id was just delivered."""
        held = self._held.get(route)
        if held is not None:
            # Moving: live frames wait until the catch-up (replay) ran, or they would
            # move the replay cursor past what was published while nobody listened.
            if len(held) < _HOLD_MAX:
                held.append(data)
            return
        payload, seq, msgid = split_frame(data)
        if msgid is not None and self._duplicate(route, msgid):
            return
        self._deliver(route, payload, seq)

    def _duplicate(self, route: Route, msgid: bytes) -> bool:
        """Whether this frame was already delivered (a publish re-sent by redis-py).

        Per group or channel, not per Redis channel: during an upgrade a group
        is heard on its old and its new name (and on a cluster, on two links
        while it moves).
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

    # -- links -------------------------------------------------------------
    def _link(self, addr: Addr | None, client: Any = None) -> Link:
        link = self._links.get(addr)
        if link is None:
            if addr is None:
                link = Link(
                    self.stats,
                    self._frame,
                    self._on_reconnect,
                    open_pubsub=lambda: get_async_redis("pubsub").pubsub(),
                )
            else:
                link = Link(
                    self.stats,
                    self._frame,
                    self._on_reconnect,
                    open_pubsub=client.pubsub,
                    sharded=True,
                    on_lost=self._lost,
                    on_down=lambda: self._node_down(addr),
                    addr=addr,
                )
            self._links[addr] = link
        return link

    async def _owner(self, rname: bytes, *, refresh: bool = False) -> Link:
        """The link of the master serving ``rname``'s slot (the only link off a cluster)."""
        if not self.sharded:
            return self._link(None)
        client = await async_shard_client("pubsub", rname, refresh=refresh)
        kwargs = client.connection_pool.connection_kwargs
        return self._link((str(kwargs["host"]), int(kwargs["port"])), client)

    async def _at(self, rname: bytes, moved: MovedTo) -> Link:
        """The link of the master a ``MOVED`` named for ``rname``."""
        link = self._links.get((moved.host, moved.port))
        if link is not None:
            return link
        # The slot map, reloaded (a node that still has the old map answers MOVED again).
        return await self._owner(rname, refresh=True)

    # -- what delivery asks ------------------------------------------------
    async def subscribe(self, rname: bytes, route: Route) -> None:
        """Subscribe ``rname`` for ``route`` where it is served; back when confirmed
        (or Redis is away: subscribed when it is back). ``SubscribeRefused`` on ACL."""
        self._routes[rname] = route
        link = await self._owner(rname)
        for _ in range(_MAX_REDIRECTS):
            self._where[rname] = link.addr
            result = await link.subscribe(rname, route)
            if not isinstance(result, MovedTo):
                return
            link = await self._at(rname, result)
        logger.warning("pubsub: %r kept moving; subscribed when the cluster settles", rname)
        self._lost(rname, None)

    async def unsubscribe(self, rnames: Iterable[bytes]) -> None:
        """Stop listening on ``rnames`` (never raises: a down Redis is resynced later)."""
        by_link: dict[Addr | None, list[bytes]] = {}
        for rname in rnames:
            self._routes.pop(rname, None)
            if rname in self._where:
                by_link.setdefault(self._where.pop(rname), []).append(rname)
        for addr, names in by_link.items():
            link = self._links.get(addr)
            if link is not None:
                await link.unsubscribe(names)

    def note_down(self, exc: BaseException) -> None:
        """Redis failed under a caller: every link resubscribes on its next read."""
        for link in list(self._links.values()):
            link.note_down(exc)

    async def close(self) -> None:
        """Stop the readers and close the connections; forget every subscription."""
        for task in list(self._tasks):
            task.cancel()
        links, self._links = list(self._links.values()), {}
        for link in links:
            await link.close()
        self._where.clear()
        self._routes.clear()
        self._watching.clear()
        self._recent.clear()

    # -- channels that move (cluster) -------------------------------------
    def _background(self, coro: Any) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:  # the loop is closing
            coro.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("pubsub: following a moved channel failed", exc_info=task.exception())

    def _lost(self, rname: bytes, moved: MovedTo | None) -> None:
        """The node of ``rname`` dropped it (its slot moved): subscribe it at the new owner."""
        self._background(self._relocate([rname], moved, time.monotonic()))

    async def _relocate(self, rnames: list[bytes], moved: MovedTo | None, since: float) -> None:
        async with self._moving:
            wanted = [r for r in rnames if r in self._routes]
            if not wanted:
                return
            self.stats["moved"] += len(wanted)
            routes = {self._routes[r] for r in wanted}
            for route in routes:
                self._held.setdefault(route, [])
            for rname in wanted:
                old = self._links.get(self._where.get(rname))
                if old is not None:
                    old.forget(rname)
                self._where.pop(rname, None)
            for attempt in range(50):
                try:
                    for rname in wanted:
                        if rname in self._routes and rname not in self._where:
                            link = await (
                                self._at(rname, moved)
                                if moved
                                else self._owner(rname, refresh=True)
                            )
                            await self._subscribe_at(link, rname)
                    break
                except CONNECTION_ERRORS:
                    moved = None
                    await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
            logger.warning(
                "pubsub: %d channel(s) moved to another cluster master; re-subscribed", len(wanted)
            )
            # Published while nobody listened: lost events, replay groups caught up. Until
            # it worked: a catch-up that failed must not become a silent loss.
            try:
                for attempt in range(50):
                    try:
                        await self._on_reconnect(time.monotonic() - since)
                        break
                    except errors.REDIS_ERRORS as exc:
                        logger.warning("pubsub: catching up after a move failed (%s)", exc)
                        await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
            finally:
                for route in routes:
                    for data in self._held.pop(route, ()):
                        self._frame(route, data)

    async def _subscribe_at(self, link: Link, rname: bytes) -> None:
        route = self._routes[rname]
        for _ in range(_MAX_REDIRECTS):
            self._where[rname] = link.addr
            result = await link.subscribe(rname, route)
            if not isinstance(result, MovedTo):
                return
            link = await self._at(rname, result)
            await asyncio.sleep(0.05)  # the cluster is still telling its nodes

    def _node_down(self, addr: Addr) -> None:
        """A master's link failed: move its channels if a replica took its slots over."""
        if addr not in self._watching:
            self._watching.add(addr)
            self._background(self._watch(addr, time.monotonic()))

    async def _watch(self, addr: Addr, since: float) -> None:
        try:
            delay = 0.1
            while True:
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, 1.0)
                link = self._links.get(addr)
                down, wanted = link.state() if link is not None else (False, frozenset())
                if not down or not wanted:
                    if link is not None and down and not wanted:
                        self._links.pop(addr, None)  # a master gone, nothing left on it
                        await link.close()
                    return  # back by itself (a dropped connection), or nothing to move
                try:
                    await async_shard_client("pubsub", b"", refresh=True)
                    gone = []
                    for rname in wanted:
                        if (await self._owner(rname)).addr != addr:
                            gone.append(rname)
                except CONNECTION_ERRORS:
                    continue
                if gone:
                    await self._relocate(gone, None, since)
        finally:
            self._watching.discard(addr)
