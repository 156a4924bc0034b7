"""Processes for tests: whether one still runs, and workers released together."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


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


def run_released(script: str, n: int, redis_url: str, redis_client: Any) -> list[tuple[str, str]]:
    """``script`` in ``n`` Python processes on the suite's settings, released at once.

    Each worker INCRs ``ready`` and waits for ``go`` (the script does both); ``go`` is
    set once all ``n`` are ready (or after 60 s). Returns each one's (stdout, stderr),
    having asserted that every one exited 0.
    """
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "REDIS_URL": redis_url,
        "REDISROLES_NO_DAPHNE": "1",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    deadline = time.monotonic() + 60
    while int(redis_client.get("ready") or 0) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    redis_client.set("go", 1, ex=60)
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    return outputs
