"""The in-process side of ``get_or_set``: flights, the loader, a loader's failure.

- :class:`Flights`: the misses of one key in this process wait on the first
  one's trip to Redis (per process for threads, per event loop for tasks).
- :class:`Loader`: calls the caller's ``default`` at most once, times it,
  counts the lookup and the load, remembers what it raised.
- A loader's failure is handed to the callers waiting for it: in this process
  the same exception, in other processes a :class:`LoaderError` made from the
  record the lock key holds for ``ERROR_TTL`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

from ..counters import Counters

#: Seconds a failed load is kept in the lock key: callers of that key (waiting
#: or arriving) get ``LoaderError`` during that time instead of loading again.
ERROR_TTL = 1.0
#: First byte of a failure record (lock tokens are hex).
FAILED = b"!"


class LoaderError(Exception):
    """The loader of a cache value failed for another caller, in the last ``ERROR_TTL`` s.

    Raised to the callers that waited for that load in other processes (and
    to those arriving while the failure is kept) instead of running the
    loader again one after another. ``error_class`` is the dotted name of the
    exception the loader raised, ``message`` its message. Callers waiting in
    the process that ran the loader get its own exception instead.
    """

    def __init__(self, key: str, error_class: str, message: str) -> None:
        self.key = key
        self.error_class = error_class
        self.message = message
        super().__init__(
            f"the loader of cache key {key!r} failed for another caller less than "
            f"{ERROR_TTL:g}s ago: {error_class}: {message}"
        )


def failure_record(exc: BaseException) -> bytes:
    """What the lock key holds after the loader raised ``exc``."""
    cls = type(exc)
    name = cls.__qualname__
    if cls.__module__ != "builtins":
        name = f"{cls.__module__}.{name}"
    return FAILED + json.dumps({"c": name, "m": str(exc)[:1000]}).encode()


def loader_error(nkey: str, record: bytes) -> LoaderError:
    """The :class:`LoaderError` of a failure record read from the lock key."""
    try:
        data = json.loads(record[1:])
        return LoaderError(nkey, str(data["c"]), str(data["m"]))
    except (ValueError, KeyError, TypeError):
        return LoaderError(nkey, "Exception", "(unreadable failure record)")


class Flight:
    """One in-process miss of a key that other callers of this process wait on."""

    __slots__ = ("error", "event", "ok", "stored", "value")

    def __init__(self, event: Any) -> None:
        self.event = event  # threading.Event or asyncio.Event: set when the leader is done
        self.ok = False
        self.value: Any = None
        self.stored: bool | None = None
        self.error: BaseException | None = None  # the loader's, handed to the waiters


class Flights:
    """The flights of one side: threads of the process, or tasks of one event loop."""

    __slots__ = ("_by_key", "_event", "_lock")

    def __init__(self, event: type[threading.Event] | type[asyncio.Event]) -> None:
        self._event = event
        self._lock = threading.Lock()
        self._by_key: dict[tuple[Any, ...], Flight] = {}

    def join(self, key: tuple[Any, ...]) -> tuple[Flight, bool]:
        """The flight of ``key``, and whether we lead it (no one else was on it)."""
        with self._lock:
            flight = self._by_key.get(key)
            if flight is not None:
                return flight, False
            flight = self._by_key[key] = Flight(self._event())
            return flight, True

    def leave(self, key: tuple[Any, ...], flight: Flight) -> None:
        """The leader is done (value, error or none): wake the waiters."""
        with self._lock:
            if self._by_key.get(key) is flight:
                del self._by_key[key]
        flight.event.set()


thread_flights = Flights(threading.Event)
# Per event loop: tasks of one loop wait on each other, never across loops.
_loop_flights: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Flights] = (
    weakref.WeakKeyDictionary()
)


def loop_flights() -> Flights:
    """The flights of the running event loop."""
    loop = asyncio.get_running_loop()
    flights = _loop_flights.get(loop)
    if flights is None:
        flights = _loop_flights[loop] = Flights(asyncio.Event)
    return flights


class Loader:
    """Calls ``default`` at most once and times it; counts the lookup and the load;
    remembers what it raised."""

    def __init__(self, default: Any, counters: Counters) -> None:
        self.default = default
        self.counters = counters
        self.done = False
        self.value: Any = None
        self.elapsed = 0.0
        self.error: BaseException | None = None
        self.looked_up = False  # the hit or miss of this call is counted

    def found(self, hit: bool) -> None:
        """Count this call's lookup (once: a retry after waiting is the same lookup)."""
        if not self.looked_up:
            self.looked_up = True
            self.counters.add("hits" if hit else "misses")

    def __call__(self) -> Any:
        if self.error is not None:
            raise self.error  # never a second run after a failure
        if not self.done:
            with self._loading():
                self.value = self._call_default()
        return self.value

    async def acall(self) -> Any:
        if self.error is not None:
            raise self.error
        if not self.done:
            with self._loading():
                value = self._call_default()
                self.value = await value if inspect.isawaitable(value) else value
        return self.value

    def _call_default(self) -> Any:
        if callable(self.default):
            self.counters.add("loads")
            return self.default()
        return self.default

    @contextlib.contextmanager
    def _loading(self) -> Iterator[None]:
        """Time one run of the loader; keep what it raised for the callers waiting on it."""
        start = time.perf_counter()
        try:
            yield
        except Exception as exc:  # not a cancellation: that is no failure to share
            self.error = exc
            raise
        self.elapsed = time.perf_counter() - start
        self.done = True
