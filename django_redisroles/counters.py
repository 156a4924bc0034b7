"""Per-process counters the roles keep for dashboards and metrics exporters.

A ``Counters`` is a fixed set of named integers bumped from any thread (WSGI
workers, the ASGI event loop, ``sync_to_async`` threads): one lock, held for
an addition, so counts are exact under concurrency (a bare ``+= 1`` is not
atomic on every Python). Nothing is sent to Redis: each process counts what
it did, and a reader adds processes up if it wants totals.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable


class Counters:
    """Named integer counters, safe to bump from many threads."""

    __slots__ = ("_lock", "_values")

    def __init__(self, names: Iterable[str]) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = dict.fromkeys(names, 0)

    def add(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name`` (``KeyError`` for an unknown name)."""
        with self._lock:
            self._values[name] += n

    def snapshot(self) -> dict[str, int]:
        """The current values, read together (a consistent copy)."""
        with self._lock:
            return dict(self._values)

    def reset(self) -> None:
        """Set every counter back to 0."""
        with self._lock:
            for name in self._values:
                self._values[name] = 0
