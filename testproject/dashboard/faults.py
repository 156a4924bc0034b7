"""Failure modes you can trigger from the dashboard: DEMO ONLY.

- ``pause(label, seconds)``: ``CLIENT PAUSE <ms> ALL`` on that Redis server:
  it accepts connections and answers nothing until the pause ends (a hung
  server, as a long fork or a stuck disk would make it). ``CLIENT UNPAUSE``
  would be paused too, so a pause always runs its course.
- ``drop_subscribers(label)``: ``CLIENT KILL TYPE pubsub``, the subscriber
  connections of every app instance cut (a network blip); they reconnect.
- ``stop(label)`` / ``start(label)``: only for the redis-server processes
  ``testproject.demo`` started itself (it registers them here): a server that
  is down (connections refused), then back with its data (AOF). A node of a
  Redis Cluster or a Sentinel service the demo did not start: refused, saying so.

On a ``redis+cluster://`` or ``redis+sentinel://`` URL each node is a server of
its own here (``nodes.py``); a pause or a cut names one node, or the whole
deployment by its label.

Enabled when ``settings.DEBUG`` (or ``DEMO_FAULTS = True``), for staff users,
by POST with the CSRF token (see ``actions.py``): never point a production
project at this.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.conf import settings

from django_redisroles.testing import RedisServer

from . import nodes
from .nodes import deployment_label

MAX_PAUSE = 60

#: The redis-server processes the demo started, by label (``register()``).
_owned: dict[str, RedisServer] = {}
_paused_until: dict[str, float] = {}
_lock = threading.Lock()


def enabled() -> bool:
    return bool(getattr(settings, "DEMO_FAULTS", settings.DEBUG))


def register(server: RedisServer) -> None:
    """Called by ``testproject.demo`` for each redis-server it started (and so may stop)."""
    _owned[deployment_label(server.url())] = server


def pause(label: str, seconds: float) -> float:
    """Pause every client of server ``label`` for ``seconds``; returns when it ends (wall time).

    ``label`` is a server (one node of a Redis Cluster or a Sentinel service), or a
    cluster's / Sentinel service's label: then every one of its nodes.
    """
    targets = nodes.targets(label)
    seconds = max(1.0, min(float(seconds), MAX_PAUSE))
    for node in targets:
        # A connection of our own: the roles' pools must not be the ones we block.
        with node.client(timeout=2) as client:
            client.execute_command("CLIENT", "PAUSE", int(seconds * 1000), "ALL")
    until = time.time() + seconds
    with _lock:
        for node in targets:
            _paused_until[node.label] = until
    return until


def drop_subscribers(label: str) -> int:
    """Cut every Pub/Sub subscriber connection of server ``label`` (of every node of a
    cluster or Sentinel service named ``label``); how many there were."""
    dropped = 0
    for node in nodes.targets(label):
        with node.client(timeout=2) as client:
            dropped += int(client.execute_command("CLIENT", "KILL", "TYPE", "pubsub"))
    return dropped


def stop(label: str) -> None:
    _owned_or_why(label).stop()


def start(label: str) -> None:
    _owned_or_why(label).start()


def _owned_or_why(label: str) -> RedisServer:
    owned = _owned.get(label)
    if owned is not None:
        return owned
    nodes.targets(label)  # KeyError: no such server
    raise NotOurs(NOT_OURS)


class NotOurs(Exception):
    """Stop/start asked of a server the demo did not start."""


NOT_OURS = (
    "stop/start: only for a redis-server the demo started itself (scripts/demo without "
    "$REDIS_URL, on its first instance); pause works on any server or node"
)


def describe() -> list[dict[str, Any]]:
    """Each server (each node of a cluster or Sentinel service) with what can be done
    to it, and its fault state."""
    now = time.time()
    rows = []
    found, _ = nodes.servers()
    for label, node in found.items():
        owned = _owned.get(label)
        paused = _paused_until.get(label, 0.0)
        rows.append(
            {
                "label": label,
                "roles": node.roles,
                "node": node.node,
                "deployment": node.deployment,
                "can_stop": owned is not None,
                "running": owned.running if owned is not None else None,
                "paused_for": round(paused - now, 1) if paused > now else 0,
            }
        )
    return rows
