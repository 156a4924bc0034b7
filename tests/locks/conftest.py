"""Helpers of the lock tests: the keys a lock writes, real manage.py processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]


def lock_key_ttls(client: redis.Redis) -> dict[str, int]:
    """Every key of the locks namespace (the default prefix, tests/settings.py) -> PTTL."""
    return {key.decode(): client.pttl(key) for key in client.scan_iter(match="rr:locks:*")}


def token_of(client: redis.Redis, key: str) -> str | None:
    """The owner token stored in a lock key (its first line), or None."""
    value = client.get(key)
    return value.split(b"\n", 1)[0].decode() if value is not None else None


class Job:
    """``manage.py nightly_report`` in its own process."""

    def __init__(self, proc: subprocess.Popen[str], out: Path) -> None:
        self.proc = proc
        self.out = out
        self._stdout: str | None = None
        self._stderr: str | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, timeout: float = 60) -> int:
        self._stdout, self._stderr = self.proc.communicate(timeout=timeout)
        return self.proc.returncode

    @property
    def stderr(self) -> str:
        assert self._stderr is not None, "wait() first"
        return self._stderr

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


def events(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def wait_for(predicate: Callable[[], Any], timeout: float = 30, interval: float = 0.02) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")


@pytest.fixture
def start_job(tmp_path: Path) -> Iterator[Callable[..., Job]]:
    """Start the demo's ``manage.py nightly_report ARGS`` with a lease of ``ttl`` seconds.

    With the demo's settings (its prefix, its ``$REDISROLES_LOCKS_TTL``); a test that
    looks at its lock in process asks for ``demo_settings`` too.
    """
    jobs: list[Job] = []
    out = tmp_path / "events.jsonl"

    def start(*args: str, ttl: float = 30) -> Job:
        env = dict(os.environ)
        env.update(
            PYTHONPATH=str(ROOT),
            DJANGO_SETTINGS_MODULE="testproject.settings",
            DJANGO_DB=str(tmp_path / "demo.sqlite3"),
            REDISROLES_NO_DAPHNE="1",
            REDISROLES_LOCKS_TTL=str(ttl),
        )
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "nightly_report", "--out", str(out), *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        job = Job(proc, out)
        jobs.append(job)
        return job

    yield start
    for job in jobs:
        if job.proc.poll() is None:
            job.signal(signal.SIGCONT)
            job.kill()
