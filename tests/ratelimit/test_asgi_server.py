"""End to end under a real ASGI server (uvicorn): the async path, headers, no spoofing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path

import pytest

from django_redisroles.testing import free_port

ROOT = Path(__file__).resolve().parents[2]


def get(url: str, **headers: str) -> tuple[int, Message]:
    # The headers as an email Message: field names are case-insensitive there, as
    # in HTTP (uvicorn's httptools protocol sends them lower-cased, h11's does not).
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers


@pytest.mark.slow
def test_uvicorn_async_view_and_middleware(redis_server, tmp_path) -> None:
    port = free_port()
    env = {  # the demo's app with the demo's settings (its rules and headers)
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "testproject.settings",
        "DJANGO_DB": str(tmp_path / "demo.sqlite3"),
        "REDISROLES_NO_DAPHNE": "1",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "testproject.asgi:application",
         "--port", str(port), "--no-proxy-headers", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                get(base + "/ratelimit/middleware/")  # also: the first request of the rule
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        # async view, 10/m per IP; a client rotating X-Forwarded-For stays one client
        results = [
            get(base + "/ratelimit/async/", **{"X-Forwarded-For": f"192.0.2.{i}"})
            for i in range(11)
        ]
        assert [status for status, _ in results] == [200] * 10 + [429]
        _, headers = results[-1]
        assert int(headers["Retry-After"]) >= 1
        assert headers["RateLimit-Policy"] == '"ip-10-per-60s";q=10;w=60'
        assert results[0][1]["RateLimit"].startswith('"ip-10-per-60s";r=9;')  # on allowed too
        # middleware rule, 20/m per IP (1 used above)
        statuses = [get(base + "/ratelimit/middleware/")[0] for _ in range(20)]
        assert statuses == [200] * 19 + [429]
    finally:
        server.terminate()
        server.wait(10)
        if server.stderr:
            server.stderr.close()
