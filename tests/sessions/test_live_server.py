"""The demo project under a real ASGI server (uvicorn), real HTTP, a real Redis outage."""

from __future__ import annotations

import email.message
import http.cookiejar
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from django_redisroles.testing import free_port

ROOT = Path(__file__).resolve().parents[2]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


class Browser:
    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect()
        )

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def request(
        self, path: str, data: dict[str, str] | None = None
    ) -> tuple[int, email.message.Message, str]:
        """Status, headers (case-insensitive: uvicorn's h11 protocol sends them lowercase), body."""
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(
            self.base + path,
            data=body,
            headers={"User-Agent": "Mozilla/5.0 (X11; Linux) Firefox/1"},
        )
        try:
            with self.opener.open(req, timeout=10) as resp:
                return resp.status, resp.headers, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read().decode()


@pytest.fixture
def uvicorn_demo(redis_factory, tmp_path) -> Iterator[tuple[str, object]]:
    sessions_redis = redis_factory(persistence=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "testproject.settings",
        "DJANGO_DB": str(tmp_path / "db.sqlite3"),
        "REDISROLES_NO_DAPHNE": "1",
        "REDIS_SESSIONS_URL": sessions_redis.url(),
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [
            *manage,
            "shell",
            "-c",
            "from django.contrib.auth.models import User; "
            "User.objects.create_user('demo', password='demo')",
        ],
        cwd=ROOT,
        env=env,
        check=True,
    )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "testproject.asgi:application", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(base + "/accounts/login/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("uvicorn did not start") from None
                time.sleep(0.1)
        yield base, sessions_redis
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.slow
def test_outage_under_uvicorn(uvicorn_demo) -> None:
    base, sessions_redis = uvicorn_demo
    browser = Browser(base)
    assert browser.request("/accounts/login/")[0] == 200
    status, headers, _ = browser.request(
        "/accounts/login/",
        {
            "csrfmiddlewaretoken": browser.cookie("csrftoken") or "",
            "username": "demo",
            "password": "demo",
            "next": "/sessions/",
        },
    )
    assert status == 302 and headers["Location"] == "/sessions/"
    cookie = browser.cookie("sessionid")
    assert cookie
    status, _, page = browser.request("/sessions/")
    assert status == 200 and "Firefox on Linux" in page

    sessions_redis.kill()
    status, headers, body = browser.request("/sessions/")
    assert "session store cannot be reached" in body
    assert status == 503
    assert headers["Retry-After"] == "5"
    assert "Set-Cookie" not in headers
    status, headers, _ = browser.request("/sessions/api/")  # the async view too
    assert status == 503 and "Set-Cookie" not in headers
    assert browser.cookie("sessionid") == cookie

    sessions_redis.start()
    status, _, page = browser.request("/sessions/")
    assert status == 200
    assert "Signed in as <strong>demo</strong>" in page
    assert browser.cookie("sessionid") == cookie
