"""The near cache: an in-process copy (L1) of one cache alias's hot keys.

Kept correct by Redis itself: ``tracking.Tracker`` holds one connection per
Redis node with ``CLIENT TRACKING ON BCAST PREFIX <the cache's prefix>`` and
drops each key here as soon as Redis says it changed (any process's write,
an expiry, an eviction, a flush). What this module keeps:

- **No stale fill.** A reader registers a token for the key *before* it sends
  its ``GET`` (:meth:`NearCache.begin`); an invalidation of the key, or a flush,
  drops the token; the value is kept only if its token is still there when the
  reply comes back (:meth:`NearCache.fill`). A reply read before a write whose
  invalidation arrived first is never stored.
- **No copy without a live listener.** Copies are served only until
  ``valid_until`` (monotonic time), which each heartbeat reply extends by
  ``HEARTBEAT + MAX_LAG``: a listener that stops hearing from Redis (a dropped
  or stalled connection, a starved thread) stops the near cache by itself.
  The tracker flushes and bypasses it until tracking is established again.
- **Bounded.** ``MAX_ENTRIES`` and ``MAX_BYTES`` (LRU beyond either); values over
  ``MAX_VALUE_SIZE`` are not kept; no copy outlives its Redis TTL (the PTTL read
  with the value) nor ``MAX_TTL``.

Entries hold the encoded bytes, decoded on each hit: a caller mutating the
value it got never changes what the next caller gets.

A hit is lock-free (a dict lookup, two time comparisons, ``move_to_end``: each
one C call under the GIL); fills, invalidations and flushes take the lock.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from ..counters import Counters
from .options import NearOptions

NAMES: tuple[str, ...] = (
    "hits",
    "misses",
    "fills",
    "invalidations",
    "flushes",
    "bypassed",
    "too_large",
)

#: Bytes counted per entry on top of its key and value (the tuple, the dict slot).
ENTRY_OVERHEAD = 120

#: An entry's value slot when the value must be decoded on each hit (a mutable one).
ENCODED: Any = object()

#: Values a hit may return as they are (nobody can change them): kept decoded.
IMMUTABLE = frozenset({int, float, str, bytes, bool, type(None)})

#: (encoded value, monotonic deadline, bytes counted, decoded value or ENCODED, decoder)
Entry = tuple[Any, float, int, Any, Any]

#: How often a run of hits lets the listener thread in (see :meth:`NearCache.lookup`).
YIELD_EVERY = 0.0002


@dataclass(frozen=True)
class NearStats:
    """The near cache (layer ``"near"``) of one alias in this process.

    - ``hits`` / ``misses``: reads answered from the local copy / sent to Redis
      (a miss goes on to Redis: ``cache.stats()`` counts it there, layer ``"redis"``).
    - ``fills``: values kept after a miss; ``too_large``: values not kept (over
      ``MAX_VALUE_SIZE``); ``bypassed``: reads sent to Redis because tracking was
      not established (start-up, a dropped or lagging invalidation connection).
    - ``invalidations``: keys Redis told us changed; ``flushes``: whole copies
      dropped (a reconnection, a lag past ``MAX_LAG``, ``clear()``, ``FLUSHALL``).
    - ``entries`` / ``bytes``: the copy's size now.
    - ``tracking``: whether the invalidation listener is up (copies are served);
      ``lag_ms``: its last heartbeat's round trip (None before the first).
    """

    hits: int
    misses: int
    fills: int
    invalidations: int
    flushes: int
    bypassed: int
    too_large: int
    entries: int
    bytes: int
    tracking: bool
    lag_ms: float | None
    layer: str = "near"

    @property
    def hit_ratio(self) -> float | None:
        """hits / (hits + misses), or None before the first read."""
        total = self.hits + self.misses
        return self.hits / total if total else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "hit_ratio": self.hit_ratio}


class NearCache:
    """The local copy of one cache alias in this process (shared by its threads and loops)."""

    def __init__(self, options: NearOptions) -> None:
        self.options = options
        self.counters = Counters(NAMES)
        #: made key -> (encoded value, monotonic deadline, bytes counted, decoded value
        #: or ENCODED, how to decode it then)
        self.entries: OrderedDict[str, Entry] = OrderedDict()
        #: Hits, lock-free: ``next()`` on a C counter is atomic under the GIL.
        self.hits = itertools.count()
        self._yield_at = 0.0
        self.bytes = 0
        #: Copies are served until then (monotonic): extended by each heartbeat.
        self.valid_until = 0.0
        #: The last heartbeat's round trip, seconds.
        self.lag: float | None = None
        self.exclude = options.exclude
        self._pending: dict[str, tuple[int]] = {}
        self._epoch = 0
        self._lock = threading.Lock()
        #: The listener keeping this copy correct (``tracking.Tracker``), once started.
        self.tracker: Any = None
        #: What the listener covers: (BCAST prefix, server URL or None for the role's).
        self.source: tuple[str, str | None] = ("", None)
        #: Dropped by a settings change: the backend asks ``tracking`` for the new one.
        self.closed = False
        _live.add(self)

    # -- reads -----------------------------------------------------------------------

    def lookup(self, nkey: str) -> Entry | None:
        """The entry kept for ``nkey``: its value is ``entry[3]``, or ``entry[4](entry[0])``
        when that is ENCODED. None: read Redis (:meth:`begin`)."""
        entry = self.entries.get(nkey)
        if entry is not None:
            now = time.monotonic()
            if now < entry[1] and now < self.valid_until:
                try:
                    self.entries.move_to_end(nkey)
                except KeyError:  # invalidated meanwhile: this read was before it
                    pass
                if now >= self._yield_at:
                    # A thread in a tight loop of hits never releases the GIL: the
                    # listener, holding an invalidation, would wait for the switch
                    # interval (5 ms). Let it in every YIELD_EVERY seconds.
                    self._yield_at = now + YIELD_EVERY
                    time.sleep(0)
                return entry
        return None

    def begin(self, nkey: str) -> tuple[int] | None:
        """A fill's token, registered before its ``GET`` is sent (None: bypass, do not keep)."""
        if time.monotonic() >= self.valid_until:
            self.counters.add("bypassed")
            return None
        token = (self._epoch,)  # a new object each time: the identity is the token
        self._pending[nkey] = token
        return token

    def fill(
        self,
        nkey: str,
        token: tuple[int],
        raw: Any,
        ttl_ms: int,
        started: float,
        decode: Callable[[Any], Any] | None = None,
        loads: Callable[[Any], Any] | None = None,
    ) -> bool:
        """Keep ``raw`` (read after :meth:`begin` at ``started``) unless ``nkey`` was
        invalidated meanwhile. ``ttl_ms``: its PTTL in Redis (-1: none). ``decode``:
        an immutable value is kept decoded too (a hit returns it as it is); ``loads``:
        how a hit decodes the others (default: ``decode``)."""
        options = self.options
        value = ENCODED
        if decode is not None and raw is not None:
            value = decode(raw)
            if type(value) not in IMMUTABLE:
                value = ENCODED
        loader = loads or decode or _raw
        with self._lock:
            if self._pending.get(nkey) is not token:
                return False
            del self._pending[nkey]
            if token[0] != self._epoch or raw is None or ttl_ms == -2 or ttl_ms == 0:
                return False
            size = len(raw) if isinstance(raw, bytes | str) else 16
            if size > options.max_value_size:
                self.counters.add("too_large")
                return False
            ttl = options.max_ttl if ttl_ms < 0 else min(ttl_ms / 1000, options.max_ttl)
            cost = size + len(nkey) + ENTRY_OVERHEAD
            old = self.entries.pop(nkey, None)
            if old is not None:
                self.bytes -= old[2]
            self.entries[nkey] = (raw, started + ttl, cost, value, loader)
            self.bytes += cost
            while len(self.entries) > options.max_entries or self.bytes > options.max_bytes:
                _, evicted = self.entries.popitem(last=False)
                self.bytes -= evicted[2]
        self.counters.add("fills")
        return True

    def abandon(self, nkey: str, token: tuple[int]) -> None:
        """A fill that will not call :meth:`fill` (its read failed)."""
        if self._pending.get(nkey) is token:
            self._pending.pop(nkey, None)

    # -- invalidation -----------------------------------------------------------------

    def invalidate(self, nkeys: Iterable[Any]) -> None:
        """Drop these keys (Redis said they changed, or this process wrote them)."""
        n = 0
        with self._lock:
            for k in nkeys:
                key = k.decode() if isinstance(k, bytes) else str(k)
                self._pending.pop(key, None)
                old = self.entries.pop(key, None)
                if old is not None:
                    self.bytes -= old[2]
                n += 1
        self.counters.add("invalidations", n)

    def flush(self) -> None:
        """Drop every copy and every fill under way."""
        with self._lock:
            self._epoch += 1
            self._pending.clear()
            self.entries.clear()
            self.bytes = 0
        self.counters.add("flushes")

    def bypass(self) -> None:
        """Tracking is not established: serve nothing, keep nothing, until :meth:`serve`."""
        self.valid_until = 0.0
        self.flush()

    def serve(self, until: float) -> None:
        """Tracking is established and heard from: serve copies until ``until``."""
        self.valid_until = until

    def tracking(self) -> bool:
        return time.monotonic() < self.valid_until

    # -- counters ---------------------------------------------------------------------

    def stats(self) -> NearStats:
        s = self.counters.snapshot()
        lag = self.lag
        return NearStats(
            hits=s["hits"] + _count(self.hits),
            misses=s["misses"],
            fills=s["fills"],
            invalidations=s["invalidations"],
            flushes=s["flushes"],
            bypassed=s["bypassed"],
            too_large=s["too_large"],
            entries=len(self.entries),
            bytes=self.bytes,
            tracking=self.tracking(),
            lag_ms=None if lag is None else round(lag * 1000, 3),
        )


def _raw(raw: Any) -> Any:
    return raw


def _count(counter: itertools.count[int]) -> int:
    """How many times ``next()`` was called on ``counter`` (its repr: ``count(N)``)."""
    return int(repr(counter)[6:-1])


# Every near cache of this process: a forked child has no listener thread, so it
# must not serve what its parent kept (it would miss every invalidation).
_live: weakref.WeakSet[NearCache] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for near in list(_live):
        near._lock = threading.Lock()  # another thread may have held it at fork()
        near.tracker = None
        near.bypass()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
