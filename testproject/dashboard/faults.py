"""Failure modes you can trigger from the dashboard: DEMO ONLY.

- ``pause(label, seconds)``: ``CLIENT PAUSE <ms> ALL`` on that Redis server:
  it accepts connections and answers nothing until the pause ends (a hung
  server, as a long fork or a stuck disk would make it). ``CLIENT UNPAUSE``
  would be paused too, so a pause always runs its course.
- ``drop_subscribers(label)``: ``CLIENT KILL TYPE pubsub``, the subscriber
  connections of every app instance cut (a network blip); they reconnect.
- ``stop(label)`` / ``start(label)``: only for the redis-server processes
  ``testproject.demo`` started itself (it registers them here): a server that
  is down (connections refused), then back with its data (AOF).

Enabled when ``settings.DEBUG`` (or ``DEMO_FAULTS = True``), for staff users,
by POST with the CSRF token (see ``actions.py``): never point a production
project at this.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
from django.conf import settings

from django_redisroles.testing import RedisServer

from .sampler import server_label, servers

MAX_PAUSE = 60

#: The redis-server processes the demo started, by label (``register()``).
_owned: dict[str, RedisServer] = {}
_paused_until: dict[str, float] = {}
_lock = threading.Lock()


def enabled() -> bool:
    return bool(getattr(settings, "DEMO_FAULTS", settings.DEBUG))


def register(server: RedisServer) -> None:
    """Called by ``testproject.demo`` for each redis-server it started (and so may stop)."""
    _owned[server_label(server.url())] = server


def pause(label: str, seconds: float) -> float:
    """Pause every client of server ``label`` for ``seconds``; returns when it ends (wall time)."""
    target = servers().get(label)
    if target is None:
        raise KeyError(label)
    seconds = max(1.0, min(float(seconds), MAX_PAUSE))
    # A connection of our own: the roles' pools must not be the ones we block.
    with redis.Redis.from_url(target["url"], socket_timeout=2, socket_connect_timeout=2) as client:
        client.execute_command("CLIENT", "PAUSE", int(seconds * 1000), "ALL")
    until = time.time() + seconds
    with _lock:
        _paused_until[label] = until
    return until


def drop_subscribers(label: str) -> int:
    """Cut every Pub/Sub subscriber connection of server ``label``; how many there were."""
    target = servers().get(label)
    if target is None:
        raise KeyError(label)
    with redis.Redis.from_url(target["url"], socket_timeout=2, socket_connect_timeout=2) as client:
        return int(client.execute_command("CLIENT", "KILL", "TYPE", "pubsub"))


def stop(label: str) -> None:
    server = _owned[label]
    server.stop()


def start(label: str) -> None:
    server = _owned[label]
    server.start()


def describe() -> list[dict[str, Any]]:
    """Each server with what can be done to it, and its fault state."""
    now = time.time()
    rows = []
    for label, entry in servers().items():
        owned = _owned.get(label)
        paused = _paused_until.get(label, 0.0)
        rows.append(
            {
                "label": label,
                "roles": entry["roles"],
                "can_stop": owned is not None,
                "running": owned.running if owned is not None else None,
                "paused_for": round(paused - now, 1) if paused > now else 0,
            }
        )
    return rows
