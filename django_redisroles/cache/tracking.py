"""The near cache's invalidation listener: Redis ``CLIENT TRACKING`` in broadcast mode.

One :class:`Tracker` per near cache and process, with one thread and one
connection per Redis node it covers (one node today; on a Redis Cluster, one
per master: tracking is per node, so is the subscription). Each node's
connection, made by ``connections.dedicated_connection`` (the role's URL,
password and TLS options, RESP2 on every supported redis-py):

1. ``CLIENT ID``, then ``CLIENT TRACKING ON REDIRECT <its own id> BCAST PREFIX
   <the cache's key prefix>``: Redis sends an invalidation for every key under
   the prefix that any client changes (writes, expiries, evictions, flushes),
   whether or not this process read it; so the data connections stay ordinary
   pooled ones (a ``GET`` needs no tracking state);
2. ``SUBSCRIBE __redis__:invalidate``: the invalidations arrive as messages
   (``None`` for a ``FLUSHALL``/``FLUSHDB``: drop everything);
3. a ``PING`` every ``HEARTBEAT`` seconds. Its reply comes after every
   invalidation Redis queued before it, so it proves the copy was current when
   the ``PING`` was sent: each reply lets the near cache serve copies for
   ``HEARTBEAT + MAX_LAG`` more seconds. A reply later than ``MAX_LAG``, a
   dropped connection or any error: the near cache is flushed and bypassed
   (reads go to Redis), and the thread connects again (backing off up to 1 s);
   the near cache serves again after the first heartbeat of the new connection.

Why not redis-py's own client-side cache: it refuses servers older than Redis
7.4 and Valkey, and is sync only. This listener works on Redis 7.0+ and
Valkey, and a thread serves WSGI threads and ASGI event loops alike (the
near cache is plain memory; no I/O on the read path).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .. import conf, connections
from .near import NearCache
from .options import NearOptions

logger = logging.getLogger("django_redisroles.cache")

CHANNEL = b"__redis__:invalidate"
RECONNECT_MIN = 0.05
RECONNECT_MAX = 1.0


#: Makes a new connection to one node (``connections.dedicated_connection``).
Connect = Callable[[], Any]


class Lagging(Exception):
    """A heartbeat reply did not come back within ``MAX_LAG``."""


class Tracker:
    """The listener of one near cache: a thread per node, flush and bypass on trouble."""

    def __init__(self, near: NearCache, prefix: str, nodes: Sequence[Connect]) -> None:
        """``nodes``: for each Redis node whose keys the near cache may hold, a call
        making a new (unconnected) connection to it."""
        self.near = near
        self.prefix = prefix
        self.pid = os.getpid()
        self.stopped = threading.Event()
        self.nodes = [_Node(self, connect) for connect in nodes]

    def start(self) -> Tracker:
        for node in self.nodes:
            node.thread.start()
        return self

    def alive(self) -> bool:
        """Its threads run in this process (a forked child has none)."""
        return (
            not self.stopped.is_set()
            and self.pid == os.getpid()
            and all(node.thread.is_alive() for node in self.nodes)
        )

    def stop(self) -> None:
        self.stopped.set()
        self.near.bypass()

    def heard(self) -> None:
        self.near.serve(min(node.valid_until for node in self.nodes))

    def lost(self, node: _Node) -> None:
        node.valid_until = 0.0
        self.near.bypass()


class _Node:
    """The invalidation connection to one Redis node, in its own daemon thread."""

    def __init__(self, tracker: Tracker, connect: Connect) -> None:
        self.tracker = tracker
        self.connect = connect
        self.valid_until = 0.0
        self.established = False
        self.thread = threading.Thread(
            target=self.run, name="redisroles-near-cache-tracking", daemon=True
        )

    def run(self) -> None:
        tracker = self.tracker
        pause = RECONNECT_MIN
        reported = False
        while not tracker.stopped.is_set():
            connection: Any = None
            self.established = False
            try:
                connection = self.connect()
                self._listen(connection)
            except Exception as exc:  # noqa: BLE001 - any failure: flush, bypass, reconnect
                if self.established:  # a new loss, not the same outage again
                    reported = False
                if not tracker.stopped.is_set() and not reported:
                    logger.warning(
                        "Near cache: invalidation connection lost (%s: %s); reading from "
                        "Redis until tracking is re-established.",
                        type(exc).__name__,
                        exc,
                    )
                    reported = True
            finally:
                tracker.lost(self)
                if connection is not None:
                    try:
                        connection.disconnect()
                    except Exception:  # noqa: BLE001 - closing a broken socket
                        pass
            if self.established:  # it worked until now: try again at once
                pause = RECONNECT_MIN
            tracker.stopped.wait(pause)
            pause = min(pause * 2, RECONNECT_MAX)

    def _listen(self, connection: Any) -> None:
        tracker = self.tracker
        near = tracker.near
        options: NearOptions = near.options
        connection.connect()
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
        while not tracker.stopped.is_set():
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
                tracker.heard()


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
        near.tracker = Tracker(near, prefix, nodes(url)).start()


def nodes(url: str | None) -> list[Connect]:
    """A connection maker per Redis node the cache's keys live on: its one server.

    The seam for Redis Cluster: tracking is per node, so a cluster needs one
    listener per master (``BCAST`` on each), and the near cache is served only
    while every one of them is heard from (``Tracker.heard``); a slot-map change
    (failover, resharding) must restart the tracker (its listeners flush).
    """
    return [functools.partial(connections.dedicated_connection, "cache", url)]


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
