"""Whether a process still runs, for tests that check what a killed process left behind."""

from __future__ import annotations

import os
import subprocess


def running(pid: int) -> bool:
    """Running: a zombie no parent has reaped yet is not (an orphan's may never be, here)."""
    try:
        state = subprocess.run(
            ["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except FileNotFoundError:  # no ps (a slim container): signal 0 says it exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state[:1] not in ("", "Z")
