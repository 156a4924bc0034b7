"""A test run ended by SIGTERM (``timeout``, CI) or SIGHUP (a closed terminal)
stops the servers it started, as Ctrl-C does: they run in sessions of their own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes import running

ROOT = Path(__file__).resolve().parent.parent

SLEEPER = """
import time


def test_sleeps(redis_server, redis_factory):
    extra = redis_factory()
    print("SERVERS", redis_server.pid, extra.pid, flush=True)
    time.sleep(120)
"""


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_killed_run_stops_its_servers(tmp_path: Path, sig: int) -> None:
    (tmp_path / "test_sleeper.py").write_text(SLEEPER)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "REDIS_URL", "REDISROLES_TEST_TOPOLOGY"))
    }
    env["PYTHONPATH"] = str(ROOT)
    run = subprocess.Popen(
        [
            *(sys.executable, "-m", "pytest", "-s", "-q", "-p", "tests.conftest"),
            *("-c", str(ROOT / "setup.cfg"), "--rootdir", str(ROOT), str(tmp_path)),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    pids: list[int] = []
    try:
        assert run.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = run.stdout.readline()
            if not line or line.startswith("SERVERS"):
                pids = [int(p) for p in line.split()[1:]]
                break
        assert len(pids) == 2 and all(running(p) for p in pids), pids
        run.send_signal(sig)
        out, _ = run.communicate(timeout=60)
        assert run.returncode != 0, out  # interrupted, not a pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(running(p) for p in pids):
            time.sleep(0.1)
        assert not [p for p in pids if running(p)], out
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        for pid in pids:
            if running(pid):
                os.kill(pid, signal.SIGKILL)


LEAKER = """
import threading


def test_leaves_a_thread_behind():
    # What a failed test left: a worker that never ends (a loop, a blocked read).
    threading.Thread(target=threading.Event().wait, name="left-by-a-test").start()
"""


@pytest.mark.slow
def test_a_thread_left_running_does_not_keep_the_run_alive(tmp_path: Path) -> None:
    (tmp_path / "test_leaker.py").write_text(LEAKER)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "REDIS_URL", "REDISROLES_TEST_TOPOLOGY"))
    }
    env |= {"PYTHONPATH": str(ROOT), "REDISROLES_TEST_EXIT_GRACE": "2"}
    # Before: the process never exited after "1 passed" (Python joins the thread).
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest"),
            *("-c", str(ROOT / "setup.cfg"), "--rootdir", str(ROOT), str(tmp_path)),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert "1 passed" in done.stdout, done.stdout
    assert done.returncode == 1  # a green run that leaked a thread is not green
    assert "threads left running: left-by-a-test" in done.stderr, done.stderr
    assert "threading.py" in done.stderr  # its stack, to find who started it
