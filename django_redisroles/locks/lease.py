"""What a ``Lock`` object knows about its hold, and how that changes (no I/O).

The state of one hold (token, fence, generation, lease deadline, loss) and the
rules both sides of :class:`~.core.Lock` apply to it: the sync methods, the
async ones, the watchdog thread and the renewal task all change it only
through the methods here, under one ``threading.Lock``. A *generation* is
bumped on every acquire, release and re-planned renewal: a renewal of an older
generation is a no-op, whatever its reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import errors
from . import interruption, plan
from .exceptions import LockError, LockLost
from .keys import LockKeys, Owner

logger = logging.getLogger("django_redisroles.locks")

__all__ = ["UNSET", "Lease"]

#: ``wait`` not given: the lock's own.
UNSET: Any = object()
LOST = "the lease expired or was taken over"
LOST_BEFORE_RELEASE = f"{LOST} before release"


class Lease:
    """The hold of one ``Lock`` object (its base class); the ``Lock`` sets the configuration."""

    name: str
    ttl: float
    wait: float | None
    renew: bool
    interrupt: bool
    on_lost: Callable[[Any], None] | None
    keys: LockKeys
    _fence_ttl_ms: int

    def __init__(self) -> None:
        #: Owner token while held (random, 128 bits), else None.
        self.token: str | None = None
        #: Fencing token of the current (or last) hold: strictly increasing per lock name.
        self.fence: int | None = None
        #: Who held the lock when our last attempt failed.
        self.holder: Owner | None = None
        self._gen = 0
        self._lost: str | None = None
        self._deadline = 0.0  # monotonic time our lease surely ends
        self._holder_thread: int | None = None
        self._saved_handlers: interruption.SavedHandlers | None = None
        self._renew_task: asyncio.Task[None] | None = None
        self._renew_handle: asyncio.TimerHandle | None = None
        self._holder_task: asyncio.Task[Any] | None = None
        self._state = threading.Lock()

    @property
    def held(self) -> bool:
        """Whether this object holds the lock (as far as it knows; see ``check()``)."""
        return self.token is not None

    @property
    def lost(self) -> bool:
        """Whether the lease was found lost while held."""
        return self._lost is not None

    def check(self) -> None:
        """Raise ``LockLost`` if the lease was lost or has surely run out.

        Cheap (no round trip): call it before a write the lock protects.
        """
        if self.token is None:
            raise LockError(f"lock {self.name!r} is not held by this Lock object")
        if self._lost is None and time.monotonic() >= self._deadline:
            self._lost = f"the lease ran out ({self.ttl:g}s) without being renewed"
        if self._lost is not None:
            raise self._lost_error(self._lost)

    def _lost_error(self, reason: str) -> LockLost:
        return LockLost(
            f"lost lock {self.name!r} (fence {self.fence}): {reason}. Work done under it may "
            "have overlapped with the next holder; writes checked against the fence are safe."
        )

    def _start_acquire(self, wait: float | None) -> tuple[str, float | None]:
        """(our token, deadline) of an acquire; ``LockError`` if this object holds it already."""
        if self.token is not None:
            raise LockError(
                f"this Lock object already holds {self.name!r} (locks are not reentrant)"
            )
        wait = self.wait if wait is UNSET else wait
        return os.urandom(16).hex(), None if wait is None else time.monotonic() + wait

    def _acquire_args(self, token: str, block: float | None) -> tuple[Any, ...]:
        return plan.acquire_args(token, self.ttl, self._fence_ttl_ms, block)

    def _acquired(self, token: str, fence: int, started: float) -> None:
        with self._state:
            self.token = token
            self.fence = fence
            self.holder = None
            self._lost = None
            self._deadline = started + self.ttl
            self._gen += 1
        self._holder_thread = threading.get_ident()

    def _wait_after(self, reply: list[Any], block: float | None) -> float | None:
        """After a failed attempt: how long to wait for a wake-up (None: give up)."""
        self.holder, pttl = plan.holder_of(self.name, reply)
        return None if block is None else plan.blpop_timeout(block, pttl)

    def _stop(self) -> str:
        """Forget the hold locally (stop renewing); returns the token."""
        with self._state:
            token = self.token
            self.token = None
            self._gen += 1
        if token is None:
            raise LockError(f"lock {self.name!r} is not held by this Lock object")
        saved, self._saved_handlers = self._saved_handlers, None
        interruption.restore_signals(saved)
        if self._renew_handle is not None:
            self._renew_handle.cancel()
            self._renew_handle = None
        if self._renew_task is not None:
            self._renew_task.cancel()
            self._renew_task = None
        self._holder_task = None
        return token

    def _start_extend(self, ttl: float | None) -> tuple[int, float]:
        if self.token is None:
            raise LockError(f"lock {self.name!r} is not held by this Lock object")
        if ttl is not None:
            self.ttl = float(ttl)
        return self._gen, time.monotonic()

    def _extended(self, gen: int, ok: Any, started: float) -> None:
        if not ok:
            # The caller is the holder: it gets the exception right here.
            self._mark_lost(gen, LOST, interrupt=False)
            raise self._lost_error(self._lost or LOST)
        if gen == self._gen:
            self._deadline = started + self.ttl

    def _renew_wanted(self, gen: int) -> bool:
        return gen == self._gen and self.token is not None

    def _renewed(self, gen: int, ok: Any, started: float) -> float | None:
        """After a renewal: when the next one is due (None: stop renewing)."""
        if not self._renew_wanted(gen):
            return None  # released while we renewed: a 0 here means nothing
        if not ok:
            self._mark_lost(gen, f"{LOST} (renewal refused)")
            return None
        self._deadline = started + self.ttl
        return started + self.ttl / 3

    def _renew_failed(self, gen: int, exc: Exception) -> float | None:
        now = time.monotonic()
        if now >= self._deadline:
            self._mark_lost(gen, f"could not renew before the lease ran out: {exc}")
            return None
        logger.warning("Could not renew lock %r, retrying: %s", self.name, exc)
        return now + min(self.ttl / 10, 1.0, max(self._deadline - now, 0.0) / 2)

    def _mark_lost(self, gen: int, reason: str, *, interrupt: bool = True) -> None:
        with self._state:
            if gen != self._gen or self._lost is not None:
                return
            self._lost = reason
            logger.error("Lost lock %r (fence %s): %s", self.name, self.fence, reason)
            if self.interrupt and interrupt:
                interruption.interrupt_holder(
                    self._holder_task, self._saved_handlers, self._holder_thread
                )
        if self.on_lost is not None:
            try:
                self.on_lost(self)
            except Exception:  # a bad callback must not stop the watchdog
                logger.exception("on_lost callback of lock %r failed", self.name)

    def _lost_now(self) -> LockLost | None:
        """For the signal handlers: the ``LockLost`` to raise, if the lease is lost."""
        return self._lost_error(self._lost) if self._lost is not None else None

    def _release_failed(self, err: BaseException) -> bool:
        """A release leaving a ``with`` block could not be sent: log it (the lease
        expires by itself) unless it is a bug. True: count the lock as released."""
        failure = errors.classify(err)
        if failure is None or failure.bug:
            raise err
        log = logger.warning if failure.outage else logger.error
        log(
            "Could not release lock %r (it expires in <= %gs): %s",
            self.name,
            self.ttl,
            failure.describe(),
        )
        return True

    def _left(
        self,
        lost: str | None,
        released: bool,
        exc: BaseException | None,
        task: asyncio.Task[Any] | None = None,
    ) -> None:
        """After the release that ends a ``with`` block: ``LockLost`` unless all went well."""
        if lost is None and released:
            return
        if isinstance(exc, LockLost) and str(exc):
            return  # already on its way up
        if isinstance(exc, asyncio.CancelledError) and lost is not None and task is not None:
            # We cancelled the holder to stop it: turn that into LockLost.
            with contextlib.suppress(AttributeError):
                task.uncancel()
            raise self._lost_error(lost) from None
        raise self._lost_error(lost or LOST_BEFORE_RELEASE)
