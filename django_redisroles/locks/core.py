"""``Lock``: a lease in Redis with an owner token, a fence and a watchdog.

What it guarantees and what it does not is in ``docs/locks.md``. In short:
at most one holder at a time *as long as the holder's lease has not run out*;
a holder that stalls past its lease (GC pause, SIGSTOP, partition) is told
(``LockLost``) but may already have overlapped with the next holder, which is
why every acquire hands out a strictly increasing ``fence`` for the protected
resource to check.

Each sync method has its async twin beside it; both send what :mod:`.plan`
builds and read the reply with it. Sync locks are renewed by the process's
:mod:`.watchdog` thread, async ones by a task; a lost lease reaches the holder
through :mod:`.interruption`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import redis
import redis.asyncio

from .. import errors
from ..connections import get_async_redis, get_redis
from . import interruption, plan, replicas

# `X as X`: re-exported where they lived before the re-cut (issue 13).
from .exceptions import LockError as LockError
from .exceptions import LockHeld
from .exceptions import LockLost as LockLost
from .keys import LockKeys, lock_keys
from .keys import Owner as Owner
from .lease import LOST_BEFORE_RELEASE, UNSET, Lease
from .operations import force_release as force_release
from .operations import held_locks as held_locks
from .operations import owner as owner
from .options import OPTIONS, ROLE
from .watchdog import watchdog

logger = logging.getLogger("django_redisroles.locks")

__all__ = ["Lock"]

_background: set[asyncio.Task[Any]] = set()
# A tuple, not `int | float`: that builds a types.UnionType on every call.
_NUMBERS = (int, float)


def _release_later(keys: LockKeys, args: tuple[Any, ...], *, settle: bool = False) -> None:
    """Release in a background task (after a cancellation): the lock must not wait for its TTL."""

    async def release() -> None:
        try:
            client = get_async_redis(ROLE)
            if settle:
                # An acquire cancelled in flight was written on a connection
                # redis-py has since dropped; the server may still run it. A
                # round trip on another connection first lets it do so, so the
                # release comes after it rather than before (then a no-op).
                await client.ping()
            await plan.RELEASE.acall(client, plan.release_keys(keys), args)
        except redis.RedisError as err:
            logger.warning("Could not release lock %s after a cancellation: %s", keys.lock, err)

    task = asyncio.get_running_loop().create_task(release())
    _background.add(task)  # keep a reference until done
    task.add_done_callback(_background.discard)


class Lock(Lease):
    """A distributed lock on the ``locks`` role's Redis.

    ``with Lock("report", ttl=60):`` (or ``async with``) runs the block while
    holding the lock, raises ``LockHeld`` when someone else holds it (after
    waiting up to ``wait`` seconds; ``None`` waits forever) and ``LockLost``
    when the lease was lost before the block ended. While held, the lease is
    renewed every ``ttl / 3`` seconds (``renew=False`` to turn off).

    ``interrupt=True``: losing the lease interrupts the holder at once
    (``LockLost`` raised in the holding thread, or the holding task
    cancelled), and SIGTERM/SIGINT in the main thread release the lock before
    the process exits. ``on_lost(lock)`` is called (from the watchdog) when
    the lease is lost.
    """

    def __init__(
        self,
        name: str,
        ttl: float | None = None,
        *,
        wait: float | None = 0,
        renew: bool | None = None,
        interrupt: bool = False,
        on_lost: Callable[[Lock], None] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"Lock name must be a non-empty string, got {name!r}")
        options = OPTIONS.get()
        if ttl is None:
            ttl = options.ttl
        if isinstance(ttl, bool) or not isinstance(ttl, _NUMBERS) or not ttl > 0:
            raise ValueError(f"Lock ttl must be a positive number of seconds, got {ttl!r}")
        if wait is not None and (
            isinstance(wait, bool) or not isinstance(wait, _NUMBERS) or wait < 0
        ):
            raise ValueError(f"Lock wait must be None or seconds >= 0, got {wait!r}")
        self.name = name
        self.ttl = float(ttl)
        self.wait = wait
        self.renew = bool(options.auto_renew if renew is None else renew)
        self.interrupt = interrupt
        self.on_lost = on_lost
        self.keys = lock_keys(name)
        self._fence_ttl_ms = options.fence_ttl_ms
        self._poll = options.wait_poll
        self._acks = options.replica_acks
        self._acks_ms = options.replica_timeout_ms
        super().__init__()

    def __repr__(self) -> str:
        state = f"held, fence {self.fence}" if self.token else "not held"
        return f"<Lock {self.name!r} ttl={self.ttl:g}s {state}>"

    def _release(self, token: str) -> tuple[Any, ...]:
        return plan.release_args(token, self.ttl)

    def _not_replicated(self, acked: int) -> replicas.LockNotReplicated:
        return replicas.LockNotReplicated(
            f"lock {self.name!r} was taken but only {acked} of REPLICA_ACKS={self._acks} "
            f"replica(s) acknowledged it within {self._acks_ms} ms: released again (a "
            "failover could lose it). Is a replica down or lagging?"
        )

    def _replan_renewal(self, started: float, *, asynchronous: bool) -> None:
        """After the lease length changed: the next renewal is due at the new ttl / 3.

        The planned renewal was computed from the old ttl; with a shorter one
        the lease would run out before it. A new generation drops the old plan.
        """
        with self._state:
            if self.token is None:
                return
            self._gen += 1
            gen = self._gen
        due = started + self.ttl / 3
        if asynchronous:
            if self._renew_handle is not None:
                self._renew_handle.cancel()
            if self._renew_task is not None:
                self._renew_task.cancel()
                self._renew_task = None
            self._renew_handle = asyncio.get_running_loop().call_later(
                max(0.0, due - time.monotonic()), self._start_arenew, gen
            )
        else:
            watchdog().schedule(self, gen, due)

    # -- sync ----------------------------------------------------------------------

    def acquire(self, wait: float | None = UNSET) -> bool:
        """Take the lock; wait up to ``wait`` seconds (None: forever). True if taken."""
        token, deadline = self._start_acquire(wait)
        client = get_redis(ROLE)
        cap = plan.poll_cap(client, self._poll)
        while True:
            block = plan.budget(deadline, cap)
            started = time.monotonic()
            args = self._acquire_args(token, block)
            if self._acks:
                reply, acked = replicas.acquire(self.keys[:3], args, self._acks, self._acks_ms)
            else:
                reply, acked = plan.ACQUIRE(client, self.keys[:3], args), 0
            if reply[0] == 1:
                if acked < self._acks:
                    with contextlib.suppress(*errors.REDIS_ERRORS):  # else it expires by itself
                        plan.RELEASE(client, plan.release_keys(self.keys), self._release(token))
                    raise self._not_replicated(acked)
                self._acquired(token, int(reply[1]), started)
                if self.interrupt:
                    self._saved_handlers = interruption.install_signals(self._lost_now)
                if self.renew:
                    watchdog().schedule(self, self._gen, started + self.ttl / 3)
                return True
            timeout = self._wait_after(reply, block)
            if timeout is None:
                return False
            if timeout > 0:
                # Woken by the release that frees it (one waiter per release),
                # else when it would expire by itself, else after WAIT_POLL.
                client.blpop([self.keys.wake], timeout=timeout)

    def release(self) -> None:
        """Release the lock; ``LockLost`` if it was no longer ours (then nothing is touched)."""
        lost = self._lost
        args = plan.release_args(self._stop(), self.ttl)
        if not plan.RELEASE(get_redis(ROLE), plan.release_keys(self.keys), args):
            raise self._lost_error(lost or LOST_BEFORE_RELEASE)

    def extend(self, ttl: float | None = None) -> None:
        """Renew the lease now (to ``ttl`` seconds, which becomes the lease length)."""
        gen, started = self._start_extend(ttl)
        args = plan.extend_args(self.token, self.ttl)
        self._extended(gen, plan.EXTEND(get_redis(ROLE), self.keys[:1], args), started)
        if ttl is not None and self.renew:
            self._replan_renewal(started, asynchronous=False)

    def _renew_tick(self, gen: int) -> float | None:
        """Called by the watchdog thread: renew once, return when to renew next."""
        if not self._renew_wanted(gen):
            return None
        args = plan.extend_args(self.token, self.ttl)
        started = time.monotonic()
        try:
            ok = plan.EXTEND(get_redis(ROLE), self.keys[:1], args)
        except redis.RedisError as exc:
            return self._renew_failed(gen, exc)
        return self._renewed(gen, ok, started)

    def __enter__(self) -> Lock:
        if not self.acquire():
            raise LockHeld(self.name, self.holder)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        lost = self._lost
        args = plan.release_args(self._stop(), self.ttl)
        try:
            released = bool(plan.RELEASE(get_redis(ROLE), plan.release_keys(self.keys), args))
        except errors.REDIS_ERRORS as err:
            # The lease expires by itself; the work is done, do not fail it for this.
            released = self._release_failed(err)
        self._left(lost, released, exc)

    # -- async -------------------------------------------------------------------

    async def aacquire(self, wait: float | None = UNSET) -> bool:
        """Async ``acquire()`` on the running loop's client; renewed by a task."""
        token, deadline = self._start_acquire(wait)
        client = get_async_redis(ROLE)
        cap = plan.poll_cap(client, self._poll)
        while True:
            block = plan.budget(deadline, cap)
            started = time.monotonic()
            args = self._acquire_args(token, block)
            try:
                if self._acks:
                    reply, acked = await replicas.aacquire(
                        self.keys[:3], args, self._acks, self._acks_ms
                    )
                else:
                    reply, acked = await plan.ACQUIRE.acall(client, self.keys[:3], args), 0
            except asyncio.CancelledError:
                # Cancelled with the acquire in flight (a timeout around it, a
                # shutdown): the server may run it anyway, and nobody would
                # release that lock before its TTL. Release whatever our token
                # holds (nothing, most of the time: then it is a no-op).
                _release_later(self.keys, plan.release_args(token, self.ttl), settle=True)
                raise
            if reply[0] == 1:
                if acked < self._acks:
                    with contextlib.suppress(*errors.REDIS_ERRORS):
                        await plan.RELEASE.acall(
                            client, plan.release_keys(self.keys), self._release(token)
                        )
                    raise self._not_replicated(acked)
                self._acquired(token, int(reply[1]), started)
                self._holder_task = asyncio.current_task()
                if self.renew:
                    # A timer, not a task: a lock released before ttl/3 costs
                    # no task at all; the renewal task starts when first due.
                    self._renew_handle = asyncio.get_running_loop().call_later(
                        max(0.0, started + self.ttl / 3 - time.monotonic()),
                        self._start_arenew,
                        self._gen,
                    )
                return True
            timeout = self._wait_after(reply, block)
            if timeout is None:
                return False
            if timeout > 0:
                await client.blpop([self.keys.wake], timeout=timeout)

    async def arelease(self) -> None:
        """Async ``release()``."""
        lost = self._lost
        args = plan.release_args(self._stop(), self.ttl)
        client = get_async_redis(ROLE)
        if not await plan.RELEASE.acall(client, plan.release_keys(self.keys), args):
            raise self._lost_error(lost or LOST_BEFORE_RELEASE)

    async def aextend(self, ttl: float | None = None) -> None:
        """Async ``extend()``."""
        gen, started = self._start_extend(ttl)
        args = plan.extend_args(self.token, self.ttl)
        ok = await plan.EXTEND.acall(get_async_redis(ROLE), self.keys[:1], args)
        self._extended(gen, ok, started)
        if ttl is not None and self.renew:
            self._replan_renewal(started, asynchronous=True)

    def _start_arenew(self, gen: int) -> None:
        self._renew_handle = None
        if self._renew_wanted(gen):
            self._renew_task = asyncio.get_running_loop().create_task(self._arenew(gen))

    async def _arenew(self, gen: int) -> None:
        """Renew every ttl/3 until released (started when the first renewal is due)."""
        client = get_async_redis(ROLE)
        while self._renew_wanted(gen):
            started = time.monotonic()
            try:
                ok = await plan.EXTEND.acall(
                    client, self.keys[:1], plan.extend_args(self.token, self.ttl)
                )
            except redis.RedisError as exc:
                due = self._renew_failed(gen, exc)
            else:
                due = self._renewed(gen, ok, started)
            if due is None:
                return
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def __aenter__(self) -> Lock:
        if not await self.aacquire():
            raise LockHeld(self.name, self.holder)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        lost = self._lost
        task = self._holder_task
        args = plan.release_args(self._stop(), self.ttl)
        try:
            client = get_async_redis(ROLE)
            released = bool(await plan.RELEASE.acall(client, plan.release_keys(self.keys), args))
        except asyncio.CancelledError:
            # Cancelled mid-release: finish it in the background rather than
            # leave the lock for its TTL (a second release of it is a no-op).
            _release_later(self.keys, args)
            raise
        except errors.REDIS_ERRORS as err:
            released = self._release_failed(err)
        self._left(lost, released, exc, task)
