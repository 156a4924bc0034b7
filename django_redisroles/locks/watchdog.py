"""One renewal thread per process for every held sync lock.

Starting a thread per acquire (python-redis-lock) costs more than the lock
itself and a thread that dies is a lock that silently stops renewing. Here a
single daemon thread sleeps until the earliest renewal is due; acquiring only
pushes onto a heap (released locks are dropped lazily), so a short lock that
is released before ttl/3 never costs a renewal round trip.
"""

from __future__ import annotations

import heapq
import logging
import os
import threading
import time
from typing import Protocol

logger = logging.getLogger("django_redisroles.locks")


class Renewable(Protocol):
    def _renew_tick(self, gen: int) -> float | None:
        """Renew now; the monotonic time of the next renewal, or None to stop."""

    def _renew_wanted(self, gen: int) -> bool:
        """Whether the entry of generation ``gen`` is still live."""


class Watchdog:
    """A heap of (due time, seq, lock, generation), served by one daemon thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Renewable, int]] = []
        self._seq = 0
        self._thread: threading.Thread | None = None

    def schedule(self, lock: Renewable, gen: int, due: float) -> None:
        """Renew ``lock`` (while its generation is ``gen``) at monotonic time ``due``."""
        with self._cond:
            self._seq += 1
            heap = self._heap
            if len(heap) > 256 and self._seq % 64 == 0:
                # Drop entries of released locks so a hot acquire/release
                # loop does not grow the heap for ttl/3 seconds.
                heap[:] = [entry for entry in heap if entry[2]._renew_wanted(entry[3])]
                heapq.heapify(heap)
            earliest = not heap or due < heap[0][0]
            heapq.heappush(heap, (due, self._seq, lock, gen))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="redisroles-lock-watchdog", daemon=True
                )
                self._thread.start()
            elif earliest:
                self._cond.notify()

    def pending(self) -> int:
        """Live entries (for tests and ``redisroles locks``)."""
        with self._cond:
            return sum(1 for entry in self._heap if entry[2]._renew_wanted(entry[3]))

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    heap = self._heap
                    while heap and not heap[0][2]._renew_wanted(heap[0][3]):
                        heapq.heappop(heap)
                    if not heap:
                        self._cond.wait(30.0)
                        continue
                    delay = heap[0][0] - time.monotonic()
                    if delay <= 0:
                        _, _, lock, gen = heapq.heappop(heap)
                        break
                    self._cond.wait(delay)
            try:
                due = lock._renew_tick(gen)
            except Exception:  # the one thread must never die
                logger.exception("lock watchdog: renewal failed unexpectedly")
                due = time.monotonic() + 0.5 if lock._renew_wanted(gen) else None
            if due is not None:
                with self._cond:
                    self._seq += 1
                    heapq.heappush(self._heap, (due, self._seq, lock, gen))


_watchdog = Watchdog()


def watchdog() -> Watchdog:
    """The process's watchdog (a new one in a forked child: threads do not survive fork)."""
    return _watchdog


def _after_fork() -> None:
    global _watchdog
    _watchdog = Watchdog()


os.register_at_fork(after_in_child=_after_fork)
