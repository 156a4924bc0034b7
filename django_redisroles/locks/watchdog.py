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
import math
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
        # Set while _run runs (is_alive() costs more than the rest of schedule()).
        self._running = False
        # When the thread will wake up by itself: a new entry due later needs
        # no notify(), so a hot acquire/release loop never wakes the thread.
        self._wake_at = math.inf

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
            heapq.heappush(heap, (due, self._seq, lock, gen))
            if not self._running:
                self._wake_at = due
                self._thread = threading.Thread(
                    target=self._run, name="redisroles-lock-watchdog", daemon=True
                )
                self._running = True  # before start(): the thread may end at once
                try:
                    self._thread.start()
                except BaseException:
                    self._running = False
                    raise
            elif due < self._wake_at:
                self._wake_at = due
                self._cond.notify()

    def pending(self) -> int:
        """Live entries (for tests and ``redisroles locks``)."""
        with self._cond:
            return sum(1 for entry in self._heap if entry[2]._renew_wanted(entry[3]))

    def _run(self) -> None:
        try:
            self._serve()
        finally:  # it only ends with the interpreter; the next schedule() would start another
            self._running = False

    def _serve(self) -> None:
        while True:
            with self._cond:
                while True:
                    heap = self._heap
                    now = time.monotonic()
                    if heap and heap[0][0] <= now:
                        _, _, lock, gen = heapq.heappop(heap)
                        if lock._renew_wanted(gen):
                            break
                        continue  # released meanwhile
                    # Stale entries are only dropped when due (or compacted):
                    # popping them early would empty the heap and make the
                    # next acquire notify() us.
                    self._wake_at = heap[0][0] if heap else math.inf
                    self._cond.wait(self._wake_at - now if heap else None)
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
