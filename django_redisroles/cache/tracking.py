"""The near cache's invalidation listener: Redis ``CLIENT TRACKING`` in broadcast mode.

One :class:`Tracker` per near cache and process. Its supervisor thread asks
``nodes.Source`` which nodes take the cache's writes (one server; the master a
Sentinel names; every master of a Redis Cluster: tracking is per node, so is
the subscription) and runs one thread and one connection per node, made by
``connections.dedicated_connection`` (the role's URL, password and TLS options,
RESP2 on every supported redis-py):

1. ``ROLE`` (Sentinel, Cluster: a node that is no longer a master is left),
   ``CLIENT ID``, then ``CLIENT TRACKING ON REDIRECT <its own id> BCAST PREFIX
   <the cache's key prefix>``: Redis sends an invalidation for every key under
   the prefix that any client changes (writes, expiries, evictions, flushes),
   whether or not this process read it; so the data connections stay ordinary
   pooled ones (a ``GET`` needs no tracking state);
2. ``SUBSCRIBE __redis__:invalidate``: the invalidations arrive as messages
   (``None`` for a ``FLUSHALL``/``FLUSHDB``: drop everything);
3. a ``PING`` every ``HEARTBEAT`` seconds. Its reply comes after every
   invalidation Redis queued before it, so it proves the copy was current when
   the ``PING`` was sent: each reply lets the near cache serve copies for
   ``HEARTBEAT + MAX_LAG`` more seconds, and only while *every* node's
   listener is heard from (the earliest deadline wins). A reply later than
   ``MAX_LAG``, a dropped connection or any error on any node: the near cache
   is flushed and bypassed (reads go to Redis), and the supervisor starts over
   on the nodes that serve now (backing off up to 1 s); the near cache serves
   again after the first heartbeat of every new connection.

Each heartbeat, the supervisor also asks whether the layout still holds
(``Source.current``: the Sentinels' master, the cluster's slot map); a change
(a failover, a moved slot) is handled like a lost connection.

Why not redis-py's own client-side cache: it refuses servers older than Redis
7.4 and Valkey, and is sync only. This listener works on Redis 7.0+ and
Valkey, and a thread serves WSGI threads and ASGI event loops alike (the
near cache is plain memory; no I/O on the read path).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import redis.exceptions

from .. import conf
from . import nodes
from .near import NearCache
from .options import NearOptions

logger = logging.getLogger("django_redisroles.cache")

CHANNEL = b"__redis__:invalidate"
RECONNECT_MIN = 0.05
RECONNECT_MAX = 1.0


class Lagging(Exception):
    """A heartbeat reply did not come back within ``MAX_LAG``."""


class Moved(Exception):
    """The nodes to listen to changed (a failover, a moved slot, a new master)."""


class Tracker:
    """The listener of one near cache: a thread per node, a supervisor thread that
    (re)starts them on the current nodes; flush and bypass on any trouble."""

    def __init__(self, near: NearCache, prefix: str, source: nodes.Source) -> None:
        self.near = near
        self.prefix = prefix
        self.source = source
        self.pid = os.getpid()
        self.stopped = threading.Event()
        #: Set by a node thread that lost its connection: the supervisor starts over.
        self.changed = threading.Event()
        #: Serialises serve() against bypass(): a late heartbeat of a listener being
        #: replaced must not make the near cache serve again.
        self.lock = threading.Lock()
        self.nodes: list[_Node] = []
        self.thread = threading.Thread(
            target=self.run, name="redisroles-near-cache-tracking", daemon=True
        )

    def start(self) -> Tracker:
        self.thread.start()
        return self

    def alive(self) -> bool:
        """Its thread runs in this process (a forked child has none)."""
        return not self.stopped.is_set() and self.pid == os.getpid() and self.thread.is_alive()

    def stop(self) -> None:
        self.stopped.set()
        self.changed.set()
        with self.lock:
            self.near.bypass()

    def heard(self, node: _Node) -> None:
        with self.lock:
            if node.gone or self.stopped.is_set():
                return
            self.near.serve(min(n.valid_until for n in self.nodes))

    def lost(self, node: _Node) -> None:
        with self.lock:
            if node.gone:  # replaced already: the near cache is someone else's now
                return
            node.valid_until = 0.0
            self.near.bypass()
        self.changed.set()

    def run(self) -> None:
        """Listen on the current nodes until one is lost or the layout changes; again."""
        pause = RECONNECT_MIN
        reported = False
        try:
            while not self.stopped.is_set():
                established, error = self._round()
                if established:  # a new loss, not the same outage again: report it
                    reported, pause = False, RECONNECT_MIN
                if error is not None and not self.stopped.is_set() and not reported:
                    logger.warning(
                        "Near cache: invalidation connection lost (%s: %s); reading from "
                        "Redis until tracking is re-established.",
                        type(error).__name__,
                        error,
                    )
                    reported = True
                self.stopped.wait(pause)
                pause = min(pause * 2, RECONNECT_MAX)
        finally:
            self.source.close()

    def _round(self) -> tuple[bool, BaseException | None]:
        """One set of listeners: (whether all were established, why they stopped)."""
        listeners: list[_Node] = []
        established = False
        try:
            connects, layout = self.source.resolve()
            self.changed.clear()
            with self.lock:
                self.nodes = listeners = [_Node(self, connect) for connect in connects]
            for node in listeners:
                node.thread.start()
            heartbeat = self.near.options.heartbeat
            while not self.stopped.is_set():
                lost = self.changed.wait(heartbeat)
                established = established or all(n.established for n in listeners)
                if lost:
                    failed = [n.error for n in listeners if n.error is not None]
                    return established, failed[0] if failed else None
                if not self.source.current(layout):
                    raise Moved("the nodes serving the cache changed; listening again")
            return established, None
        except Exception as exc:  # noqa: BLE001 - any failure: flush, bypass, start over
            return established, exc
        finally:
            with self.lock:
                for node in listeners:
                    node.gone = True
                self.near.bypass()
            for node in listeners:
                node.close()


class _Node:
    """The invalidation connection to one Redis node, in its own daemon thread."""

    def __init__(self, tracker: Tracker, connect: nodes.Connect) -> None:
        self.tracker = tracker
        self.connect = connect
        self.valid_until = 0.0
        self.established = False
        #: Replaced by the supervisor: stop, and never make the near cache serve.
        self.gone = False
        self.error: BaseException | None = None
        self.connection: Any = None
        self.thread = threading.Thread(
            target=self.run, name="redisroles-near-cache-node", daemon=True
        )

    def run(self) -> None:
        try:
            self.connection = self.connect()
            if self.gone:
                return
            self._listen(self.connection)
        except Exception as exc:  # noqa: BLE001 - any failure: the supervisor starts over
            self.error = exc
        finally:
            self.tracker.lost(self)
            self.close()

    def close(self) -> None:
        self.gone = True
        connection = self.connection
        if connection is not None:
            try:
                connection.disconnect()
            except Exception:  # noqa: BLE001 - closing a broken socket
                pass

    def _listen(self, connection: Any) -> None:
        tracker = self.tracker
        near = tracker.near
        options: NearOptions = near.options
        connection.connect()
        if tracker.source.kind != "single":
            # A node that is no longer a master takes no writes: its silence proves nothing.
            # (A user without ROLE, an @admin command, skips this check: the layout
            # check of nodes.Source still applies.)
            connection.send_command("ROLE")
            try:
                role = connection.read_response()[0]
            except redis.exceptions.ResponseError:  # NOPERM
                role = b"master"
            if role not in (b"master", "master"):
                raise Moved(f"the node is a {role!r} now")
        connection.send_command("CLIENT", "ID")
        client_id = connection.read_response()
        connection.send_command(
            "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", "PREFIX", tracker.prefix
        )
        connection.read_response()
        connection.send_command("SUBSCRIBE", CHANNEL)
        connection.read_response()
        # Every change from now on reaches us; what we kept before may have missed some.
        near.flush()
        sent = time.monotonic()
        connection.send_command("PING")
        waiting = True
        while not tracker.stopped.is_set() and not self.gone:
            now = time.monotonic()
            if waiting:
                wait = sent + options.max_lag - now
                if wait <= 0:
                    raise Lagging(f"no heartbeat reply within {options.max_lag} s")
            else:
                wait = sent + options.heartbeat - now
                if wait <= 0:
                    sent = now
                    connection.send_command("PING")
                    waiting = True
                    continue
            if not connection.can_read(timeout=wait):
                continue
            message = connection.read_response()
            kind = message[0]
            if kind == b"message":
                keys = message[2]
                if keys is None:  # FLUSHALL / FLUSHDB
                    near.flush()
                else:
                    near.invalidate(keys)
            elif kind == b"pong":
                received = time.monotonic()
                near.lag = received - sent
                waiting = False
                self.valid_until = sent + options.heartbeat + options.max_lag
                self.established = True
                tracker.heard(self)


# -- one near cache per alias and process ----------------------------------------------

_registry: dict[tuple[Any, ...], NearCache] = {}
_lock = threading.Lock()


def near_cache(alias: str, options: NearOptions, prefix: str, url: str | None) -> NearCache:
    """The near cache of ``alias`` in this process (shared by its per-thread backends)."""
    key = (alias, options, prefix, url)
    near = _registry.get(key)
    if near is None:
        with _lock:
            near = _registry.get(key)
            if near is None:
                near = _registry[key] = NearCache(options)
                near.source = (prefix, url)
    return near


def ensure(near: NearCache) -> None:
    """Start ``near``'s listener if it has none running in this process."""
    tracker = near.tracker
    if tracker is not None and tracker.alive():
        return
    with _lock:
        tracker = near.tracker
        if near.closed or (tracker is not None and tracker.alive()):
            return
        if tracker is not None:
            tracker.stop()
        prefix, url = near.source
        near.tracker = Tracker(near, prefix, nodes.source(url)).start()


def stats(alias: str) -> list[NearCache]:
    """The near caches of ``alias`` in this process (for info, doctor, the dashboard)."""
    return [near for key, near in list(_registry.items()) if key[0] == alias]


def reset() -> None:
    """Stop every listener (``CACHES`` or ``REDISROLES`` changed: URLs, prefixes, options)."""
    with _lock:
        nears = list(_registry.values())
        _registry.clear()
        for near in nears:
            near.closed = True
            if near.tracker is not None:
                near.tracker.stop()
            near.bypass()


conf.on_settings_change(reset, settings=("CACHES", "REDISROLES"))
