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

ROOT = Path(__file__).resolve().parent.parent


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


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
def test_demo_on_a_port_in_use_says_so_and_stops_its_redis(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONPATH"] = str(ROOT)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                *(sys.executable, "-m", "testproject.demo", "--port", str(port)),
                *("--state-dir", str(tmp_path), "--second-instance"),
            ],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"error: cannot listen on port {port} (Address already in use)" in result.stderr
    assert "--port 0" in result.stderr  # what to do about it
    assert "Traceback" not in result.stderr
    assert "Second app instance" not in result.stdout  # nothing half-started
    assert "Stopped the" in result.stdout  # the Redis server it started is gone again
    started = re.search(r"on redis://127\.0\.0\.1:(\d+)/0", result.stdout)
    assert started and not port_open(int(started.group(1)))


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
