"""The README's demo command: serves the home page, stops cleanly on Ctrl-C.

(tests/firstrun/ runs ``scripts/demo`` itself from a fresh clone, in a new
virtualenv with only the demo extra.)"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from django_redisroles.testing import free_port
from tests.processes import running

ROOT = Path(__file__).resolve().parent.parent


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _demo_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONFAULTHANDLER"] = "1"  # SIGABRT prints every thread's stack (a hung demo)
    env.update(extra)
    return env


def _output_or_stacks(proc: subprocess.Popen[str], timeout: float) -> str:
    """What ``proc`` printed until it exited; if it has not within ``timeout``, fail with
    every thread's stack (faulthandler, on SIGABRT): where a demo that did not stop hung."""
    try:
        return proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        out, _ = proc.communicate(timeout=30)
        pytest.fail(f"the demo had not exited {timeout:g} s after Ctrl-C; its stacks:\n{out}")


def _start_demo(state: Path, port: int, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "testproject.demo", "--port", str(port), "--state-dir", str(state)],
        cwd=ROOT,
        env=_demo_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _banner(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[str, int, int]:
    """The start-up lines up to the last one, and the (port, pid) of the server it started."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "nightly_report" in line:  # the banner's last line
            break
    text = "".join(lines)
    started = re.search(r"^Started .* on redis://127\.0\.0\.1:(\d+)/0 \(pid (\d+)\)", text, re.M)
    assert started and "nightly_report" in text, text
    return text, int(started.group(1)), int(started.group(2))


def _status(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.mark.slow
def test_demo_serves_home_page_and_stops_its_redis_on_ctrl_c(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONPATH"] = str(ROOT)
    # --port 0: the demo binds a free port itself and prints which (nothing can take it
    # between a check here and the demo's bind).
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "testproject.demo",
            "--port",
            "0",
            "--state-dir",
            str(tmp_path),
            "--second-instance",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        redis_port = None
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line)
            match = re.search(r"^Started (Redis|Valkey) .* on redis://127\.0\.0\.1:(\d+)/0", line)
            if match:
                redis_port = int(match.group(2))
            if "nightly_report" in line:  # the banner's last line
                break
        assert redis_port is not None, "".join(output)
        opened = re.search(r"^Open http://127\.0\.0\.1:(\d+)/ ", "".join(output), re.M)
        assert opened, "".join(output)
        port = int(opened.group(1))
        assert port != 0 and port_open(port)  # listening before it says "Open"
        # The second instance: another free port, bound by the demo, served by a child.
        second = re.search(
            r"^Second app instance: http://127\.0\.0\.1:(\d+)/", "".join(output), re.M
        )
        assert second, "".join(output)
        port2 = int(second.group(1))
        assert port2 not in (0, port)
        with urllib.request.urlopen(f"http://127.0.0.1:{port2}/", timeout=30) as resp:
            assert f"127.0.0.1:{port}" in resp.read().decode()  # it lists both instances
        assert port_open(redis_port)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as resp:
            assert resp.status == 200
            body = resp.read().decode()
        assert "django-redisroles demo" in body
        assert f"127.0.0.1:{redis_port}" in body  # the home page names each role's Redis

        # Uvicorn's default trusts X-Forwarded-For from 127.0.0.1: the demo turns
        # that off, so a spoofed address does not get a fresh rate-limit budget.
        limited = f"http://127.0.0.1:{port}/ratelimit/middleware/"
        assert 429 in [_status(limited) for _ in range(25)]  # 20/minute per IP
        assert _status(limited, {"X-Forwarded-For": "9.9.9.1"}) == 429
        assert _status(limited, {"X-Forwarded-For": "9.9.9.2", "X-Real-IP": "9.9.9.2"}) == 429

        # The second-terminal command the demo printed works as printed.
        banner = "".join(output)
        commands = re.findall(r"^  (.* manage\.py notify .*?)\s+#", banner, re.M)
        assert commands, banner
        assert "nightly_report --duration 60" in banner
        sent = subprocess.run(
            ["bash", "-c", commands[0]], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert sent.returncode == 0, sent.stderr
        assert "broadcast 1 message(s)" in sent.stdout

        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        out, _ = proc.communicate(timeout=20)
        output.append(out)
        assert proc.returncode == 0, "".join(output)
        assert "Stopped the" in out and "server" in out
        assert not port_open(redis_port)
        assert not port_open(port)
        assert not port_open(port2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_demo_stops_its_server_on_sigterm_and_sighup(tmp_path: Path, sig: int) -> None:
    """``kill PID`` and a closed terminal (SIGHUP) end the demo as Ctrl-C does.

    uvicorn re-raises SIGTERM after its shutdown: unhandled, the process died
    there, before stopping its server, which ran on with nobody to stop it."""
    proc = _start_demo(tmp_path, free_port())
    redis_pid = None
    try:
        _, redis_port, redis_pid = _banner(proc)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 128 + signal.SIGTERM, out  # a SIGHUP ends it as SIGTERM does
        assert "Stopped the" in out
        assert not port_open(redis_port) and not running(redis_pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if redis_pid is not None and running(redis_pid):  # left behind: not by this test
            os.kill(redis_pid, signal.SIGKILL)


@pytest.mark.slow
def test_demo_on_a_busy_port_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _start_demo(tmp_path, port)
        try:
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 1, out
    assert f"port {port} is in use" in out and "--port 0" in out
    assert "Started" not in out  # no server started (and stopped) for nothing
    assert not (tmp_path / "redis").exists()


@pytest.mark.slow
def test_demo_stops_the_server_a_killed_demo_left_and_refuses_a_second_demo(
    tmp_path: Path,
) -> None:
    first = _start_demo(tmp_path, free_port())
    second = third = None
    first_pid = None
    try:
        _, first_port, first_pid = _banner(first)
        # A second demo on the same state directory would run a second server on
        # the same data files: refused, and the first one's server is untouched.
        second = _start_demo(tmp_path, free_port())
        out, _ = second.communicate(timeout=60)
        assert second.returncode == 1 and "another demo is running" in out, out
        assert running(first_pid) and port_open(first_port)

        first.kill()  # SIGKILL: no `finally`, its server runs on
        first.wait()
        assert running(first_pid)
        third_http = free_port()
        third = _start_demo(tmp_path, third_http)
        banner, _, third_pid = _banner(third)
        assert f"Stopped the server (pid {first_pid}, port {first_port})" in banner, banner
        assert not running(first_pid) and third_pid != first_pid
        # Ctrl-C once it serves (a SIGINT during uvicorn's start-up may end the
        # process by the signal, after the cleanup: exit -2 rather than 0).
        deadline = time.monotonic() + 30
        while not port_open(third_http) and time.monotonic() < deadline:
            time.sleep(0.05)
        third.send_signal(signal.SIGINT)
        out = _output_or_stacks(third, 30)
        assert third.returncode == 0 and not running(third_pid), out
    finally:
        for proc in (first, second, third):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        if first_pid is not None and running(first_pid):
            os.kill(first_pid, signal.SIGKILL)


@pytest.mark.slow
def test_demo_says_when_redis_url_cannot_be_reached(tmp_path: Path) -> None:
    """A stale $REDIS_URL in the user's shell: a clear error, not 503s on every login."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    proc = _start_demo(tmp_path, free_port(), REDIS_URL=url)
    try:
        out, _ = proc.communicate(timeout=60)
    finally:  # a demo that serves anyway must not outlive the test
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, out
    assert f"cannot reach the cache role's Redis at {url}" in out
    assert "unset REDIS_URL" in out
    assert "Traceback" not in out


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "example.org", "::"])
def test_demo_refuses_a_public_host_in_debug_mode(host: str, monkeypatch) -> None:
    from testproject import demo

    monkeypatch.delenv("DJANGO_DEBUG", raising=False)
    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    assert demo.main(["--host", host]) == 2
    monkeypatch.setenv("DJANGO_DEBUG", "0")
    assert demo.refuse_public_host(host) is not None  # still no secret
    monkeypatch.setenv("DJANGO_SECRET_KEY", "x" * 50)
    assert demo.refuse_public_host(host) is None
    for loopback in ("127.0.0.1", "localhost", "::1", "[::1]"):
        assert demo.refuse_public_host(loopback) is None


def test_demo_console_never_prints_a_redis_password(monkeypatch) -> None:
    from testproject import demo

    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@redis.internal:6379/0")
    assert "hunter2" not in demo.shown_env("REDIS_URL")
    assert demo.shown_env("REDIS_URL") == 'REDIS_URL="$REDIS_URL"'
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6399/0")
    assert demo.shown_env("REDIS_URL") == "REDIS_URL=redis://127.0.0.1:6399/0"


def test_settings_refuse_debug_off_without_a_secret_key() -> None:
    env = {**os.environ, "DJANGO_DEBUG": "0"}
    env.pop("DJANGO_SECRET_KEY", None)
    result = subprocess.run(
        [sys.executable, "-c", "import testproject.settings"],
        env=env, capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode != 0 and "DJANGO_SECRET_KEY" in result.stderr


@pytest.mark.django_db
def test_a_demo_served_beyond_this_machine_has_no_staff_account() -> None:
    """The state directory outlives a run: a first run on 127.0.0.1 made demo/demo a
    superuser, and a later one on a public --host (DEBUG off, a secret) kept it one,
    the admin open to anyone who read the README's password."""
    from django.contrib.auth import get_user_model

    from testproject import demo

    demo.prepare_demo_user("127.0.0.1")  # the first run, on this machine
    user = get_user_model().objects.get(username="demo")
    assert user.is_staff and user.is_superuser
    demo.prepare_demo_user("0.0.0.0")  # the same state dir, served to the network
    user.refresh_from_db()
    assert not user.is_staff and not user.is_superuser
    assert user.check_password("demo")  # still the demo account, an ordinary one
