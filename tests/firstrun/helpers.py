"""A new user's machine, as far as a test can make one: a fresh clone, a clean environment."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def fresh_clone(dest: Path) -> Path:
    """``git clone`` of this checkout: what is committed, nothing else (no .venv, no .cache).

    Uncommitted changes are not in it: commit before running these tests.
    """
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(dest)], check=True)
    return dest


def user_env(**extra: str) -> dict[str, str]:
    """The caller's environment minus what the test run added: no $REDIS_URL (the suite's
    server), no virtualenv, no Django settings, no pytest state."""
    venv_bin = str(Path(sys.prefix) / "bin")
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "DJANGO_SETTINGS_MODULE", "PYTHONHOME", "DJANGO_DB")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in drop
        and not k.startswith("PYTEST_")
        and not re.fullmatch(r"REDIS(_[A-Z]+)?_URL", k)  # REDIS_SERVER_BIN stays
    }
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env.update(extra)
    return env


class Lines:
    """A child's output, read on a thread so that waiting for a line can time out."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        assert proc.stdout is not None
        stream = proc.stdout

        def pump() -> None:
            for line in stream:
                self._queue.put(line)
            self._queue.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, needle: str, timeout: float) -> str:
        """The first line containing ``needle``; AssertionError with the output so far if none."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if needle in line:
                return line
        raise AssertionError(f"no {needle!r} in the output:\n{self.text}")

    def rest(self, timeout: float) -> str:
        """Everything up to the end of the output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
        return self.text

    @property
    def text(self) -> str:
        return "".join(self.seen)


#: What the install used to print (setuptools about the Lua directory, editable hooks).
INSTALL_NOISE = ("is absent from the `packages` configuration", "BuildBackendWarning", "!!")
