"""Real ASGI server processes of the testproject, for end-to-end tests and the benchmark."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from django_redisroles.testing import free_port

ROOT = Path(__file__).resolve().parent.parent.parent


def project_env(redis_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for role in ("CACHE", "SESSIONS", "RATELIMIT", "PUBSUB", "LOCKS"):
        env.pop(f"REDIS_{role}_URL", None)
    env.update(
        REDIS_URL=redis_url,
        PYTHONPATH=str(ROOT),
        DJANGO_SETTINGS_MODULE="testproject.settings",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


class AsgiServer:
    """``uvicorn`` (or ``daphne``) serving ``testproject.asgi:application``."""

    def __init__(
        self, redis_url: str, *, server: str = "uvicorn", env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.env = dict(env or {})
        self.redis_url = redis_url
        self.server = server
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> AsgiServer:
        if self.server == "uvicorn":
            args = [
                "-m", "uvicorn", "testproject.asgi:application", "--host", "127.0.0.1",
                "--port", str(self.port), "--log-level", "warning", "--lifespan", "off",
            ]  # fmt: skip
        else:
            args = ["-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                    "testproject.asgi:application"]  # fmt: skip
        self.process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=project_env(self.redis_url, **self.env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"{self.server} exited with {self.process.returncode}: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.server} did not listen on {self.port} in {timeout}s")

    def ws_url(self, path: str = "/ws/notifications/") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr:
            proc.stderr.close()


def manage(redis_url: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py`` in a separate process, on the given Redis."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=project_env(redis_url),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
