"""What each cache alias did in this process: ``cache.stats()``.

Counted where the answer is decided (the backend's reads, ``get_or_set`` and
``@cached``), per ``CACHES`` alias and process, shared by the per-thread
backend instances Django makes of one alias.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

from ..counters import Counters

NAMES: tuple[str, ...] = ("hits", "misses", "loads", "outages")


@dataclass(frozen=True)
class CacheStats:
    """Counts of one cache alias in this process since start (or ``reset_stats()``).

    - ``hits`` / ``misses``: lookups (``get``, ``get_many`` per key, ``get_or_set``,
      ``@cached``, and their async twins) that found a value / found none. A read
      Redis could not answer is a miss (the failure policy), counted in ``outages`` too.
    - ``loads``: times a ``get_or_set`` / ``@cached`` loader ran in this process.
    - ``outages``: calls Redis could not serve, answered by the failure policy
      (a miss, a dropped write, a value computed and not stored).
    - ``layer``: which layer these counts describe (``"redis"``).
    """

    hits: int
    misses: int
    loads: int
    outages: int
    layer: str = "redis"

    @property
    def lookups(self) -> int:
        return self.hits + self.misses

    @property
    def hit_ratio(self) -> float | None:
        """hits / lookups, or None before the first lookup."""
        return self.hits / self.lookups if self.lookups else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "lookups": self.lookups, "hit_ratio": self.hit_ratio}


_registry: dict[str, Counters] = {}
_registry_lock = threading.Lock()


def counters_for(alias: str) -> Counters:
    """The counters of ``alias`` (one set per alias and process)."""
    counters = _registry.get(alias)
    if counters is None:
        with _registry_lock:
            counters = _registry.setdefault(alias, Counters(NAMES))
    return counters


def snapshot(counters: Counters) -> CacheStats:
    s = counters.snapshot()
    return CacheStats(hits=s["hits"], misses=s["misses"], loads=s["loads"], outages=s["outages"])
