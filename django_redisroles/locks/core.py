"""``Lock``: a lease in Redis with an owner token, a fence and a watchdog.

What it guarantees and what it does not is in ``docs/locks.md``. In short:
at most one holder at a time *as long as the holder's lease has not run out*;
a holder that stalls past its lease (GC pause, SIGSTOP, partition) is told
(``LockLost``) but may already have overlapped with the next holder, which is
why every acquire hands out a strictly increasing ``fence`` for the protected
resource to check.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType, TracebackType
from typing import Any, NamedTuple

import redis
import redis.asyncio
from django.core.signals import setting_changed
from django.dispatch import receiver

from .. import conf, errors
from ..connections import get_async_redis, get_redis
from . import scripts
from .watchdog import watchdog

logger = logging.getLogger("django_redisroles.locks")

__all__ = [
    "Lock",
    "LockError",
    "LockHeld",
    "LockLost",
    "Owner",
    "force_release",
    "held_locks",
    "lock_keys",
    "owner",
]


class LockError(Exception):
    """Base class of the lock errors (also: misuse, like releasing an unheld lock)."""


@dataclass(frozen=True)
class Owner:
    """Who holds a lock, as written by its holder when it acquired it."""

    name: str
    host: str
    pid: int | None
    cmd: str
    acquired_at: datetime | None
    renewed_at: datetime | None
    fence: int | None
    #: The lease length, seconds.
    ttl: float | None
    #: Seconds until the lease runs out (None: the key has no TTL).
    expires_in: float | None

    def describe(self) -> str:
        """``host X, pid N, since 2026-01-01 03:00:00 UTC``."""
        since = f"{self.acquired_at:%Y-%m-%d %H:%M:%S} UTC" if self.acquired_at else "unknown"
        pid = self.pid if self.pid is not None else "?"
        return f"host {self.host or '?'}, pid {pid}, since {since}"


class LockHeld(LockError):
    """The lock is held by someone else (and waiting, if asked, timed out)."""

    def __init__(self, name: str, holder: Owner | None, message: str | None = None) -> None:
        self.name = name
        self.holder = holder
        if message is None:
            who = holder.describe() if holder else "another holder (no owner information)"
            message = f"lock {name!r} is held by {who}"
            if holder and holder.expires_in is not None:
                message += f"; lease expires in {holder.expires_in:.1f}s unless renewed"
        super().__init__(message)


class LockLost(LockError):
    """The lease ran out or was taken over while we believed we held it.

    Whatever ran under the lock may have overlapped with the next holder;
    writes checked against ``lock.fence`` are still safe.
    """


class LockKeys(NamedTuple):
    lock: str
    fence: str
    waiting: str
    wake: str
    released: str


# (role settings, key prefix): read from settings once, dropped when they change.
_config: tuple[dict[str, Any], str] | None = None


def _lock_config() -> tuple[dict[str, Any], str]:
    global _config
    config = _config
    if config is None:
        config = _config = (conf.role_settings("locks"), conf.make_key("locks"))
    return config


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    global _config
    if setting == "REDISROLES":
        _config = None


def lock_keys(name: str) -> LockKeys:
    """The Redis keys of lock ``name`` (one ``{name}`` hash tag: one cluster slot)."""
    base = f"{_lock_config()[1]}:{{{name}}}"
    return LockKeys(
        f"{base}:lock", f"{base}:fence", f"{base}:waiting", f"{base}:wake", f"{base}:released"
    )


def _utc(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value is not None else None


def _float(value: bytes | str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _owner_from(name: str, value: bytes | None, pttl: int, now: float | None) -> Owner:
    """Parse a lock value: token, fence, acquired, ttl ms, host, pid, cmd (one a line).

    ``now`` is the server's time: the last renewal was ``ttl - pttl`` before it.
    """
    fields = (value or b"").decode(errors="replace").split("\n", 6)
    fields += [""] * (7 - len(fields))
    _, fence, acquired, ttl_ms, host, pid, cmd = fields
    ttl = _float(ttl_ms)
    seconds, _, micros = acquired.partition(" ")
    acquired_at = _float(seconds)
    if acquired_at is not None and micros.isdigit():
        acquired_at += int(micros) / 1_000_000
    renewed_at = None
    if ttl is not None and now is not None and pttl >= 0:
        renewed_at = max(now - (ttl - pttl) / 1000, acquired_at or 0.0)
    fence_value = _float(fence)
    pid_value = _float(pid)
    return Owner(
        name=name,
        host=host,
        pid=int(pid_value) if pid_value is not None else None,
        cmd=cmd,
        acquired_at=_utc(acquired_at),
        renewed_at=_utc(renewed_at),
        fence=int(fence) if fence.isdigit() else (int(fence_value) if fence_value else None),
        ttl=ttl / 1000 if ttl is not None else None,
        expires_in=pttl / 1000 if pttl >= 0 else None,
    )


def _server_now(time_reply: Any) -> float:
    return int(time_reply[0]) + int(time_reply[1]) / 1_000_000


def _owner_pipeline(pipe: Any, keys: LockKeys) -> None:
    pipe.get(keys.lock)
    pipe.pttl(keys.lock)
    pipe.time()


def owner(name: str) -> Owner | None:
    """Who holds lock ``name`` right now, or None when it is free."""
    pipe = get_redis("locks").pipeline(transaction=True)
    _owner_pipeline(pipe, lock_keys(name))
    value, pttl, now = pipe.execute()
    if value is None:
        return None
    return _owner_from(name, value, pttl, _server_now(now))


async def aowner(name: str) -> Owner | None:
    """Async ``owner()``."""
    pipe = get_async_redis("locks").pipeline(transaction=True)
    _owner_pipeline(pipe, lock_keys(name))
    value, pttl, now = await pipe.execute()
    if value is None:
        return None
    return _owner_from(name, value, pttl, _server_now(now))


def held_locks(count: int = 500) -> list[Owner]:
    """Every held lock with its owner, found with SCAN (never KEYS), sorted by name."""
    client = get_redis("locks")
    start = conf.make_key("locks", "{")
    pattern = conf.glob_escape(start) + "*}:lock"
    names = []
    for key in client.scan_iter(match=pattern, count=count):
        text = key.decode(errors="replace")
        if not (text.startswith(start) and text.endswith("}:lock")):
            continue
        names.append(text[len(start) : -len("}:lock")])
    found = []
    for name in sorted(set(names)):
        info = owner(name)
        if info is not None:
            found.append(info)
    return found


def force_release(name: str) -> bool:
    """Delete lock ``name`` whoever holds it (operators only); wakes a waiter.

    The holder finds out at its next renewal (``LockLost``). True if it was held.
    """
    keys = lock_keys(name)
    args = ("", 10_000, 0)
    return bool(scripts.release_script(get_redis("locks"), _release_keys(keys), args))


def _release_keys(keys: LockKeys) -> tuple[str, ...]:
    return (keys.lock, keys.waiting, keys.wake, keys.released)


def _release_args(token: str, wake_ttl_ms: int) -> tuple[Any, ...]:
    return (token, wake_ttl_ms, scripts.RELEASED_TTL * 1000)


_background: set[asyncio.Task[Any]] = set()


def _release_later(keys: LockKeys, args: tuple[Any, ...], *, settle: bool = False) -> None:
    async def release() -> None:
        try:
            client = get_async_redis("locks")
            if settle:
                # An acquire cancelled in flight was written on a connection
                # redis-py has since dropped; the server may still run it. A
                # round trip on another connection first lets it do so, so the
                # release comes after it rather than before (then a no-op).
                await client.ping()
            await scripts.release_script.acall(client, _release_keys(keys), args)
        except redis.RedisError as err:
            logger.warning("Could not release lock %s after a cancellation: %s", keys.lock, err)

    task = asyncio.get_running_loop().create_task(release())
    _background.add(task)  # keep a reference until done
    task.add_done_callback(_background.discard)


_identity: tuple[int, str] | None = None


def _whoami() -> str:
    """``host\npid\ncommand line``, written into the lock; cached per process.

    The command line is stored in Redis and shown by ``redisroles locks``:
    secret options' values and URL credentials in it are masked.
    """
    global _identity
    pid = os.getpid()
    if _identity is None or _identity[0] != pid:
        cmd = conf.mask_argv(sys.argv).replace("\n", " ")
        if len(cmd) > 500:
            cmd = cmd[:497] + "..."
        host = socket.gethostname().replace("\n", " ")
        _identity = (pid, f"{host}\n{pid}\n{cmd}")
    return _identity[1]


_UNSET: Any = object()


class Lock:
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
        settings = _lock_config()[0]
        if ttl is None:
            ttl = settings["TTL"]
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
            raise ValueError(f"Lock ttl must be a positive number of seconds, got {ttl!r}")
        if wait is not None and (
            isinstance(wait, bool) or not isinstance(wait, int | float) or wait < 0
        ):
            raise ValueError(f"Lock wait must be None or seconds >= 0, got {wait!r}")
        self.name = name
        self.ttl = float(ttl)
        self.wait = wait
        self.renew = bool(settings["AUTO_RENEW"] if renew is None else renew)
        self.interrupt = interrupt
        self.on_lost = on_lost
        self.keys = lock_keys(name)
        self._fence_ttl_ms = max(1, int(float(settings["FENCE_TTL"]) * 1000))
        self._poll = float(settings["WAIT_POLL"])
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
        self._saved_handlers: dict[int, Any] | None = None
        self._renew_task: asyncio.Task[None] | None = None
        self._renew_handle: asyncio.TimerHandle | None = None
        self._holder_task: asyncio.Task[Any] | None = None
        self._state = threading.Lock()

    def __repr__(self) -> str:
        state = f"held, fence {self.fence}" if self.token else "not held"
        return f"<Lock {self.name!r} ttl={self.ttl:g}s {state}>"

    # -- state ------------------------------------------------------------------

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

    def _check_free(self) -> None:
        if self.token is not None:
            raise LockError(
                f"this Lock object already holds {self.name!r} (locks are not reentrant)"
            )

    def _acquire_args(self, token: str, block: float | None) -> tuple[Any, ...]:
        waiting_ms = 0 if block is None else int(block * 1000) + 1000
        ttl_ms = max(1, int(self.ttl * 1000))
        return (token, ttl_ms, self._fence_ttl_ms, _whoami(), waiting_ms)

    def _poll_cap(self, client: redis.Redis | redis.asyncio.Redis) -> float:
        # A BLPOP must return before the socket timeout, or redis-py reports
        # a TimeoutError for a wait that was going fine.
        cap = self._poll
        sock = client.connection_pool.connection_kwargs.get("socket_timeout")
        if sock:
            cap = min(cap, float(sock) * 0.75)
        return max(cap, 0.01)

    @staticmethod
    def _budget(deadline: float | None, cap: float) -> float | None:
        """Seconds we may block after the next attempt; None: do not wait."""
        if deadline is None:
            return cap
        remaining = deadline - time.monotonic()
        return min(remaining, cap) if remaining > 0 else None

    @staticmethod
    def _blpop_timeout(block: float, pttl: int) -> float:
        if pttl == -2:  # freed between our attempt and now: try again at once
            return 0.0
        if pttl > 0:  # expires by itself then: no need to wait for a wake-up past it
            block = min(block, pttl / 1000 + 0.002)
        return max(block, 0.002)

    def _failed(self, reply: list[Any]) -> int:
        pttl = int(reply[1])
        self.holder = _owner_from(self.name, reply[2], pttl, None)
        return pttl

    def _acquired(self, token: str, fence: int, started: float) -> None:
        with self._state:
            self.token = token
            self.fence = fence
            self.holder = None
            self._lost = None
            self._deadline = started + self.ttl
            self._gen += 1
        self._holder_thread = threading.get_ident()

    def _stop(self) -> str:
        """Forget the hold locally (stop renewing); returns the token."""
        with self._state:
            token = self.token
            self.token = None
            self._gen += 1
        if token is None:
            raise LockError(f"lock {self.name!r} is not held by this Lock object")
        self._restore_signals()
        if self._renew_handle is not None:
            self._renew_handle.cancel()
            self._renew_handle = None
        if self._renew_task is not None:
            self._renew_task.cancel()
            self._renew_task = None
        self._holder_task = None
        return token

    # -- loss --------------------------------------------------------------------

    def _renew_wanted(self, gen: int) -> bool:
        return gen == self._gen and self.token is not None

    def _mark_lost(self, gen: int, reason: str, *, interrupt: bool = True) -> None:
        with self._state:
            if gen != self._gen or self._lost is not None:
                return
            self._lost = reason
            logger.error("Lost lock %r (fence %s): %s", self.name, self.fence, reason)
            if self.interrupt and interrupt:
                self._interrupt_holder()
        if self.on_lost is not None:
            try:
                self.on_lost(self)
            except Exception:  # a bad callback must not stop the watchdog
                logger.exception("on_lost callback of lock %r failed", self.name)

    def _interrupt_holder(self) -> None:
        if self._holder_task is not None:
            loop = self._holder_task.get_loop()
            loop.call_soon_threadsafe(self._holder_task.cancel)
        elif self._saved_handlers is not None:
            # Our SIGINT handler is installed in the main thread: a real
            # signal also breaks a blocking sleep/read, and the handler sees
            # the loss and raises LockLost there.
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
        elif self._holder_thread is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(self._holder_thread), ctypes.py_object(LockLost)
            )

    def _install_signals(self) -> None:
        if not self.interrupt or threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if self._lost is not None:
                raise self._lost_error(self._lost)
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + signum)

        saved = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            saved[signum] = signal.signal(signum, on_signal)
        self._saved_handlers = saved

    def _restore_signals(self) -> None:
        saved, self._saved_handlers = self._saved_handlers, None
        if saved and threading.current_thread() is threading.main_thread():
            for signum, handler in saved.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    # -- sync ----------------------------------------------------------------------

    def acquire(self, wait: float | None = _UNSET) -> bool:
        """Take the lock; wait up to ``wait`` seconds (None: forever). True if taken."""
        self._check_free()
        wait = self.wait if wait is _UNSET else wait
        client = get_redis("locks")
        token = os.urandom(16).hex()
        cap = self._poll_cap(client)
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            block = self._budget(deadline, cap)
            started = time.monotonic()
            reply = scripts.acquire_script(client, self.keys[:3], self._acquire_args(token, block))
            if reply[0] == 1:
                self._acquired(token, int(reply[1]), started)
                self._install_signals()
                if self.renew:
                    watchdog().schedule(self, self._gen, started + self.ttl / 3)
                return True
            pttl = self._failed(reply)
            if block is None:
                return False
            timeout = self._blpop_timeout(block, pttl)
            if timeout > 0:
                # Woken by the release that frees it (one waiter per release),
                # else when it would expire by itself, else after WAIT_POLL.
                client.blpop([self.keys.wake], timeout=timeout)

    def release(self) -> None:
        """Release the lock; ``LockLost`` if it was no longer ours (then nothing is touched)."""
        lost = self._lost
        token = self._stop()
        ok = scripts.release_script(
            get_redis("locks"), _release_keys(self.keys), _release_args(token, self._wake_ttl_ms())
        )
        if not ok:
            raise self._lost_error(lost or "the lease expired or was taken over before release")

    def extend(self, ttl: float | None = None) -> None:
        """Renew the lease now (to ``ttl`` seconds, which becomes the lease length)."""
        if self.token is None:
            raise LockError(f"lock {self.name!r} is not held by this Lock object")
        if ttl is not None:
            self.ttl = float(ttl)
        gen = self._gen
        started = time.monotonic()
        ok = scripts.extend_script(
            get_redis("locks"), self.keys[:1], (self.token, max(1, int(self.ttl * 1000)))
        )
        self._extended(gen, ok, started)
        if ttl is not None and self.renew:
            self._replan_renewal(started, asynchronous=False)

    def _extended(self, gen: int, ok: Any, started: float) -> None:
        if not ok:
            # The caller is the holder: it gets the exception right here.
            self._mark_lost(gen, "the lease expired or was taken over", interrupt=False)
            raise self._lost_error(self._lost or "the lease expired or was taken over")
        if gen == self._gen:
            self._deadline = started + self.ttl

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

    def _wake_ttl_ms(self) -> int:
        return max(1000, int(self.ttl * 1000))

    def _renew_tick(self, gen: int) -> float | None:
        """Called by the watchdog thread: renew once, return when to renew next."""
        if not self._renew_wanted(gen):
            return None
        token = self.token
        started = time.monotonic()
        try:
            ok = scripts.extend_script(
                get_redis("locks"), self.keys[:1], (token, max(1, int(self.ttl * 1000)))
            )
        except redis.RedisError as exc:
            return self._renew_failed(gen, exc)
        if not self._renew_wanted(gen):
            return None  # released while we renewed: a 0 here means nothing
        if not ok:
            self._mark_lost(gen, "the lease expired or was taken over (renewal refused)")
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
        token = self._stop()
        try:
            released = bool(
                scripts.release_script(
                    get_redis("locks"),
                    _release_keys(self.keys),
                    _release_args(token, self._wake_ttl_ms()),
                )
            )
        except errors.REDIS_ERRORS as err:
            # The lease expires by itself; the work is done, do not fail it for this.
            released = self._release_failed(err)
        if lost is None and released:
            return
        if isinstance(exc, LockLost) and str(exc):
            return  # already on its way up
        raise self._lost_error(lost or "the lease expired or was taken over before release")

    # -- async -------------------------------------------------------------------

    async def aacquire(self, wait: float | None = _UNSET) -> bool:
        """Async ``acquire()`` on the running loop's client; renewed by a task."""
        self._check_free()
        wait = self.wait if wait is _UNSET else wait
        client = get_async_redis("locks")
        token = os.urandom(16).hex()
        cap = self._poll_cap(client)
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            block = self._budget(deadline, cap)
            started = time.monotonic()
            try:
                reply = await scripts.acquire_script.acall(
                    client, self.keys[:3], self._acquire_args(token, block)
                )
            except asyncio.CancelledError:
                # Cancelled with the acquire in flight (a timeout around it, a
                # shutdown): the server may run it anyway, and nobody would
                # release that lock before its TTL. Release whatever our token
                # holds (nothing, most of the time: then it is a no-op).
                _release_later(self.keys, _release_args(token, self._wake_ttl_ms()), settle=True)
                raise
            if reply[0] == 1:
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
            pttl = self._failed(reply)
            if block is None:
                return False
            timeout = self._blpop_timeout(block, pttl)
            if timeout > 0:
                await client.blpop([self.keys.wake], timeout=timeout)

    async def arelease(self) -> None:
        """Async ``release()``."""
        lost = self._lost
        token = self._stop()
        ok = await scripts.release_script.acall(
            get_async_redis("locks"),
            _release_keys(self.keys),
            _release_args(token, self._wake_ttl_ms()),
        )
        if not ok:
            raise self._lost_error(lost or "the lease expired or was taken over before release")

    async def aextend(self, ttl: float | None = None) -> None:
        """Async ``extend()``."""
        if self.token is None:
            raise LockError(f"lock {self.name!r} is not held by this Lock object")
        if ttl is not None:
            self.ttl = float(ttl)
        gen = self._gen
        started = time.monotonic()
        ok = await scripts.extend_script.acall(
            get_async_redis("locks"), self.keys[:1], (self.token, max(1, int(self.ttl * 1000)))
        )
        self._extended(gen, ok, started)
        if ttl is not None and self.renew:
            self._replan_renewal(started, asynchronous=True)

    def _start_arenew(self, gen: int) -> None:
        self._renew_handle = None
        if self._renew_wanted(gen):
            self._renew_task = asyncio.get_running_loop().create_task(self._arenew(gen))

    async def _arenew(self, gen: int) -> None:
        """Renew every ttl/3 until released (started when the first renewal is due)."""
        client = get_async_redis("locks")
        while self._renew_wanted(gen):
            started = time.monotonic()
            try:
                ok = await scripts.extend_script.acall(
                    client, self.keys[:1], (self.token, max(1, int(self.ttl * 1000)))
                )
            except redis.RedisError as exc:
                next_due = self._renew_failed(gen, exc)
                if next_due is None:
                    return
                await asyncio.sleep(max(0.0, next_due - time.monotonic()))
                continue
            if not self._renew_wanted(gen):
                return
            if not ok:
                self._mark_lost(gen, "the lease expired or was taken over (renewal refused)")
                return
            self._deadline = started + self.ttl
            await asyncio.sleep(max(0.0, started + self.ttl / 3 - time.monotonic()))

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
        token = self._stop()
        args = _release_args(token, self._wake_ttl_ms())
        try:
            released = bool(
                await scripts.release_script.acall(
                    get_async_redis("locks"), _release_keys(self.keys), args
                )
            )
        except asyncio.CancelledError:
            # Cancelled mid-release: finish it in the background rather than
            # leave the lock for its TTL (a second release of it is a no-op).
            _release_later(self.keys, args)
            raise
        except errors.REDIS_ERRORS as err:
            released = self._release_failed(err)
        if lost is None and released:
            return
        if isinstance(exc, LockLost) and str(exc):
            return
        if isinstance(exc, asyncio.CancelledError) and lost is not None and task is not None:
            # We cancelled the holder to stop it: turn that into LockLost.
            with contextlib.suppress(AttributeError):
                task.uncancel()
            raise self._lost_error(lost) from None
        raise self._lost_error(lost or "the lease expired or was taken over before release")
