"""Stopping the holder of a lost lock, and releasing a lock on SIGTERM/SIGINT.

For ``Lock(..., interrupt=True)`` (``@command_lock`` uses it): while the lock is
held in the main thread, SIGTERM and SIGINT handlers are installed that raise
``LockLost`` when the lease is gone (else ``KeyboardInterrupt`` /
``SystemExit(128 + signum)``, so the ``with`` block releases the lock on the
way out). When the watchdog finds the lease lost, :func:`interrupt_holder`
delivers that to the holder at once: its task is cancelled, or the main thread
gets a real SIGINT (which also breaks a blocking sleep or read), or another
thread gets ``LockLost`` raised asynchronously.
"""

from __future__ import annotations

import asyncio
import ctypes
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from .exceptions import LockLost

__all__ = ["SavedHandlers", "install_signals", "interrupt_holder", "restore_signals"]

#: The handlers ours replaced, to put back on release.
SavedHandlers = dict[int, Any]


def install_signals(lost: Callable[[], LockLost | None]) -> SavedHandlers | None:
    """In the main thread: SIGINT/SIGTERM raise ``lost()`` if it is a ``LockLost``.

    Returns the handlers replaced (None elsewhere than in the main thread:
    signals are only delivered there).
    """
    if threading.current_thread() is not threading.main_thread():
        return None

    def on_signal(signum: int, frame: FrameType | None) -> None:
        error = lost()
        if error is not None:
            raise error
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    saved: SavedHandlers = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        saved[signum] = signal.signal(signum, on_signal)
    return saved


def restore_signals(saved: SavedHandlers | None) -> None:
    """Put back the handlers :func:`install_signals` replaced."""
    if saved and threading.current_thread() is threading.main_thread():
        for signum, handler in saved.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def interrupt_holder(
    task: asyncio.Task[Any] | None, signals: SavedHandlers | None, thread: int | None
) -> None:
    """Stop the holder now: cancel its ``task``, signal the main thread, or raise in ``thread``."""
    if task is not None:
        task.get_loop().call_soon_threadsafe(task.cancel)
    elif signals is not None:
        # Our SIGINT handler is installed in the main thread: a real
        # signal also breaks a blocking sleep/read, and the handler sees
        # the loss and raises LockLost there.
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
    elif thread is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread), ctypes.py_object(LockLost)
        )
