"""``@command_lock``: run a management command on one host at a time."""

from __future__ import annotations

import argparse
import functools
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.core.management.base import BaseCommand, CommandError, CommandParser

from .. import errors
from .core import Lock
from .exceptions import LockLost, LockNotReplicated

#: An acquire that failed: not running (fail closed).
_ACQUIRE_ERRORS: tuple[type[BaseException], ...] = (*errors.REDIS_ERRORS, LockNotReplicated)

__all__ = ["command_lock"]

HandleT = Callable[..., Any]
T = TypeVar("T")

_ARGS_ADDED = "_redisroles_lock_arguments"


@dataclass(frozen=True)
class _Config:
    ttl: float | None
    key: str | Callable[[dict[str, Any]], str] | None
    key_options: tuple[str, ...]
    wait: float | None
    held_exit: int
    renew: bool | None

    def lock_name(self, command: BaseCommand, options: dict[str, Any]) -> str:
        if callable(self.key):
            name = str(self.key(options))
        elif self.key:
            name = self.key
        else:
            name = command_name(command)
        for option in self.key_options:
            name += f":{option}={options.get(option)}"
        return name


def command_name(command: BaseCommand) -> str:
    """The name ``manage.py`` knows the command by (its module's name)."""
    return type(command).__module__.rsplit(".", 1)[-1]


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {value!r}")
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {value!r}")
    return seconds


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    if getattr(parser, _ARGS_ADDED, False):
        return
    setattr(parser, _ARGS_ADDED, True)
    group = parser.add_argument_group("lock (django-redisroles)")
    group.add_argument(
        "--lock-wait",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="if another run holds the lock, wait up to SECONDS for it instead of exiting",
    )
    group.add_argument(
        "--no-lock",
        action="store_true",
        help="run without taking the lock (you make sure no other run overlaps)",
    )


def _patch_add_arguments(cls: type[BaseCommand]) -> None:
    original = cls.add_arguments
    if getattr(original, _ARGS_ADDED, False):
        return

    @functools.wraps(original)
    def add_arguments(self: BaseCommand, parser: CommandParser) -> None:
        original(self, parser)
        _add_arguments(parser)

    setattr(add_arguments, _ARGS_ADDED, True)
    cls.add_arguments = add_arguments  # type: ignore[method-assign]


def _wrap_handle(handle: HandleT, cfg: _Config) -> HandleT:
    @functools.wraps(handle)
    def locked_handle(self: BaseCommand, *args: Any, **options: Any) -> Any:
        cmd = command_name(self)
        if options.get("no_lock"):
            self.stderr.write(f"{cmd}: running without the lock (--no-lock)")
            self.lock = None  # type: ignore[attr-defined]
            return handle(self, *args, **options)
        name = cfg.lock_name(self, options)
        wait = options.get("lock_wait")
        lock = Lock(
            name,
            ttl=cfg.ttl,
            wait=cfg.wait if wait is None else wait,
            renew=cfg.renew,
            interrupt=True,
        )
        try:
            acquired = lock.acquire()
        except _ACQUIRE_ERRORS as exc:
            failure = errors.classify(exc)
            why = failure.describe() if failure is not None else f"{type(exc).__name__}: {exc}"
            # Fail closed: without the lock we cannot know no other copy runs.
            raise CommandError(
                f"{cmd}: could not take lock {name!r}, not running: {why}", returncode=1
            ) from exc
        if not acquired:
            who = lock.holder.describe() if lock.holder else "another host (no owner information)"
            message = f"{cmd}: already running on {who} (lock {name!r}"
            if lock.holder and lock.holder.expires_in is not None:
                message += f", lease expires in {lock.holder.expires_in:.0f}s unless renewed"
            message += ")"
            if cfg.held_exit == 0:
                self.stderr.write(message)
                return None
            raise CommandError(message, returncode=cfg.held_exit)
        self.lock = lock  # type: ignore[attr-defined]  # the body may use self.lock.fence
        try:
            with _Held(lock):
                return handle(self, *args, **options)
        except LockLost as exc:
            raise CommandError(f"{cmd}: {exc}", returncode=1) from exc
        except KeyboardInterrupt:
            self.stderr.write(f"{cmd}: interrupted (SIGINT); lock {name!r} released")
            raise SystemExit(128 + signal.SIGINT) from None
        except SystemExit as exc:
            if exc.code == 128 + signal.SIGTERM:
                self.stderr.write(f"{cmd}: terminated (SIGTERM); lock {name!r} released")
            raise

    return locked_handle


class _Held:
    """``with`` over a lock that is already acquired: releases it on exit."""

    def __init__(self, lock: Lock) -> None:
        self.lock = lock

    def __enter__(self) -> Lock:
        return self.lock

    def __exit__(self, *exc: Any) -> None:
        self.lock.__exit__(*exc)


class _LockedHandle:
    """``@command_lock`` on ``handle``: patches the owner class when it is created."""

    def __init__(self, func: HandleT, cfg: _Config) -> None:
        self.func = func
        self.cfg = cfg
        functools.update_wrapper(self, func)

    def __set_name__(self, owner: type, name: str) -> None:
        if not (isinstance(owner, type) and issubclass(owner, BaseCommand)):
            raise TypeError(
                f"@command_lock decorates a BaseCommand subclass or its handle(), not {owner!r}"
            )
        _patch_add_arguments(owner)
        setattr(owner, name, _wrap_handle(self.func, self.cfg))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:  # replaced at class creation
        raise TypeError("@command_lock must decorate a method of a BaseCommand subclass")


def command_lock(
    ttl: float | None = None,
    key: str | Callable[[dict[str, Any]], str] | None = None,
    *,
    key_options: Sequence[str] = (),
    wait: float | None = 0,
    held_exit: int = 1,
    renew: bool | None = None,
) -> Callable[[T], T]:
    """Hold a lock while a management command runs (on the class or on ``handle``).

    - ``ttl``: lease seconds (renewed every ttl/3; default: the locks ``TTL`` setting).
    - ``key``: lock name, or a callable of the parsed options; default: the command's name.
      ``key_options``: option names whose values are appended (one lock per value).
    - ``wait``: seconds to wait for a running copy (``--lock-wait`` overrides; None: forever).
    - ``held_exit``: exit status when another run holds the lock (``0`` for cron).

    Adds ``--lock-wait SECONDS`` and ``--no-lock``. SIGTERM/SIGINT release the
    lock before exiting; losing the lease stops the command (non-zero exit).
    The held lock is ``self.lock`` inside ``handle`` (``self.lock.fence``).
    """
    if isinstance(ttl, type) or (callable(ttl) and not isinstance(ttl, int | float)):
        raise TypeError("use @command_lock() or @command_lock(ttl=...), with parentheses")
    # Validated now, at import time (without touching settings).
    if ttl is not None and (
        isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0
    ):
        raise ValueError(f"command_lock ttl must be a positive number of seconds, got {ttl!r}")
    if wait is not None and (
        isinstance(wait, bool) or not isinstance(wait, int | float) or wait < 0
    ):
        raise ValueError(f"command_lock wait must be None or seconds >= 0, got {wait!r}")
    cfg = _Config(ttl, key, tuple(key_options), wait, int(held_exit), renew)

    def decorate(target: Any) -> Any:
        if isinstance(target, type):
            if not issubclass(target, BaseCommand):
                raise TypeError(f"@command_lock decorates a BaseCommand subclass, not {target!r}")
            _patch_add_arguments(target)
            target.handle = _wrap_handle(target.handle, cfg)  # type: ignore[method-assign]
            return target
        if callable(target):
            return _LockedHandle(target, cfg)
        raise TypeError(f"@command_lock cannot decorate {target!r}")

    return decorate
