"""``manage.py nightly_report`` runs started from the dashboard (the locks panel).

A real subprocess, exactly what cron would start: ``@command_lock`` takes the
lock (or refuses: "already running on host …"; "could not take lock … not
running" when Redis is down), renews it while the job works, and releases it
on exit. The panel lists each run with its exit status and last output line.
"""

from __future__ import annotations

import atexit
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
KEEP = 6  # runs listed


@dataclass
class Run:
    process: subprocess.Popen[str]
    duration: float
    started: float = field(default_factory=time.time)
    output: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        code = self.process.poll()
        last = self.output[-1] if self.output else ""
        return {
            "pid": self.process.pid,
            "started": self.started,
            "duration": self.duration,
            "running": code is None,
            "exit": code,
            "last_line": last,
        }


_runs: list[Run] = []
_lock = threading.Lock()


def _collect(run: Run) -> None:
    assert run.process.stdout is not None
    for line in run.process.stdout:
        if line.strip():
            run.output.append(line.rstrip()[:300])


def start(duration: float) -> Run:
    """Start ``manage.py nightly_report --duration N`` with this process's settings and Redis."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "nightly_report", "--duration", str(duration)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # "already running on …" is on stderr
        text=True,
    )
    run = Run(process, duration)
    threading.Thread(target=_collect, args=(run,), daemon=True).start()
    with _lock:
        _runs.append(run)
        del _runs[:-KEEP]
    return run


def describe() -> list[dict[str, Any]]:
    """The latest runs, newest first."""
    with _lock:
        return [run.describe() for run in reversed(_runs)]


@atexit.register
def _stop_running() -> None:
    # The demo stops: a job still running must not outlive it (SIGTERM releases its lock).
    for run in list(_runs):
        if run.process.poll() is None:
            run.process.terminate()
