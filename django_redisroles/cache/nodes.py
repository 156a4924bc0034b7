"""Where the near cache's invalidation listeners go, on each topology.

``CLIENT TRACKING`` is per node: a node reports only writes it executed. So the
listeners (``tracking.Tracker``) must cover every node that takes the cache's
writes, and must move when that set changes. A :class:`Source` answers two
questions for the tracker:

- :meth:`Source.resolve`: the nodes to listen to now (a connection maker per
  node) and a *signature* of the layout they were read from;
- :meth:`Source.current`: whether that layout still holds (asked once per
  heartbeat). When it does not, the tracker flushes the near cache, bypasses
  it and listens again on the nodes :meth:`~Source.resolve` gives then.

One server: the server (the layout never changes). Sentinel: the master the
Sentinels name now (asked again on every reconnection and every heartbeat: a
failover switches the listener to the new master, flushing on the switch). A
Redis Cluster: every master serving slots, read with ``CLUSTER SLOTS``; the
signature is the whole slot map, so a failover, a moved slot or a new master
restarts the listeners on the current masters.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .. import conf, connections

#: Makes a new connection to one node (``connections.dedicated_connection``).
Connect = Callable[[], Any]

SLOTS = 16384


class LayoutUnknown(Exception):
    """The nodes to listen to could not be found (the deployment is down or in flux)."""


class Source:
    """One server: its URL's only node, never moving."""

    kind = "single"

    def __init__(self, url: str | None) -> None:
        self.url = url

    def resolve(self) -> tuple[list[Connect], Any]:
        return [functools.partial(connections.dedicated_connection, "cache", self.url)], None

    def current(self, signature: Any) -> bool:
        return True

    def close(self) -> None:
        """Drop what :meth:`current` keeps open."""


class SentinelSource(Source):
    """The master the Sentinels name (the role's own client asks them)."""

    kind = "sentinel"

    def _master(self) -> tuple[str, int]:
        client = _client(self.url)
        # SentinelConnectionPool.get_master_address asks the Sentinels, and when the
        # master moved, drops the pool's idle connections to the old one.
        host, port = client.connection_pool.get_master_address()
        return str(host), int(port)

    def resolve(self) -> tuple[list[Connect], Any]:
        try:
            master = self._master()
        except Exception as exc:  # noqa: BLE001 - no Sentinel answers, no master known
            raise LayoutUnknown(f"no master from the Sentinels ({type(exc).__name__}: {exc})")
        connect = functools.partial(connections.dedicated_connection, "cache", self.url, master)
        return [connect], master

    def current(self, signature: Any) -> bool:
        try:
            return bool(self._master() == signature)
        except Exception:  # noqa: BLE001 - Sentinels unreachable: the listener's PING decides
            # A failover needs the Sentinels; the demoted master then drops our
            # connection (Sentinel sends CLIENT KILL TYPE pubsub to it).
            return True


class ClusterSource(Source):
    """Every master serving slots of a Redis Cluster."""

    kind = "cluster"

    def __init__(self, url: str | None) -> None:
        super().__init__(url)
        self._checked = 0
        self._control: dict[tuple[str, int], Any] = {}

    def _candidates(self) -> list[tuple[str, int]]:
        """Nodes to ask for the slot map: the cluster client's masters, then the URL's seeds."""
        found: list[tuple[str, int]] = []
        try:
            found = [(n.host, int(n.port)) for n in _client(self.url).get_primaries()]
        except Exception:  # noqa: BLE001 - its slot map may be being rebuilt
            pass
        url = self.url if self.url is not None else conf.role_url("cache")
        for host, port in conf.topology_of(url).hosts:
            if (host, port) not in found:
                found.append((host, int(port)))
        return found

    def _slots(self, node: tuple[str, int]) -> tuple[tuple[int, int, str, int], ...]:
        """``node``'s slot map: (first, last, host, port) per range, sorted."""
        connection = self._control.get(node)
        if connection is None:
            connection = connections.dedicated_connection("cache", self.url, node)
            self._control[node] = connection
        try:
            connection.send_command("CLUSTER", "SLOTS")
            reply = connection.read_response()
        except Exception:
            self._control.pop(node, None)
            connection.disconnect()
            raise
        ranges = []
        for entry in reply:
            first, last, master = int(entry[0]), int(entry[1]), entry[2]
            host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
            ranges.append((first, last, host or node[0], int(master[1])))
        ranges.sort()
        if sum(last - first + 1 for first, last, _, _ in ranges) != SLOTS:
            raise LayoutUnknown(f"{node[0]}:{node[1]} does not see every slot served")
        return tuple(ranges)

    def resolve(self) -> tuple[list[Connect], Any]:
        errors = []
        for node in self._candidates():
            try:
                layout = self._slots(node)
            except Exception as exc:  # noqa: BLE001 - ask the next one
                errors.append(f"{node[0]}:{node[1]}: {type(exc).__name__}: {exc}")
                continue
            masters = sorted({(host, port) for _, _, host, port in layout})
            makers: list[Connect] = [
                functools.partial(connections.dedicated_connection, "cache", self.url, m)
                for m in masters
            ]
            return makers, layout
        raise LayoutUnknown("no node gave the slot map: " + "; ".join(errors))

    def current(self, signature: Any) -> bool:
        # Ask the masters in turn: each one's view of the map (gossip takes a moment to
        # reach the others). A master that does not answer: its listener fails too.
        masters = sorted({(host, port) for _, _, host, port in signature})
        node = masters[self._checked % len(masters)]
        self._checked += 1
        try:
            return bool(self._slots(node) == signature)
        except Exception:  # noqa: BLE001 - the slot map may be changing: listen again
            return False

    def close(self) -> None:
        for connection in self._control.values():
            try:
                connection.disconnect()
            except Exception:  # noqa: BLE001 - closing a broken socket
                pass
        self._control.clear()


def _client(url: str | None) -> Any:
    return connections.get_redis("cache") if url is None else connections.get_redis_at(url, "cache")


def source(url: str | None) -> Source:
    """The :class:`Source` of the cache's URL (None: the cache role's)."""
    kind = conf.topology_of(url if url is not None else conf.role_url("cache")).kind
    if kind == "cluster":
        return ClusterSource(url)
    if kind == "sentinel":
        return SentinelSource(url)
    return Source(url)
