"""Browser tests: the README's demo (``python -m testproject.demo``) in headless Chromium.

Opt in with ``--browser`` (``.ci/run`` does): they need Debian's ``chromium``
(``apt-get install chromium``) and Playwright for Python (``pip install -e
.[browser]``), driving the system browser: Playwright never downloads one
here. The ``demo`` fixture starts the demo exactly as ``scripts/demo`` does,
with its own redis-server and a second app instance, and stops it with
SIGINT at the end (exit status 0, every process gone).

Screenshots go to ``.artifacts/screenshots/`` (one per step that takes one,
and one of every open page when a test fails); ``make screenshot`` copies the
dashboard's to ``docs/img/dashboard.png`` for the README.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
#: The demo's "try it" rate in these tests ($DEMO_TRY_RATE): see the ``demo`` fixture.
TRY_RATE = "5/60s"
ARTIFACTS = ROOT / ".artifacts" / "screenshots"
DEMO_LOG = ROOT / ".artifacts" / "demo.log"  # everything the demo printed, last module run
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# What a CI container needs: no sandbox (root), no GPU, and no calls home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_configure(config: pytest.Config) -> None:
    # Asked for with --browser: missing pieces are an error that says what to install.
    if not os.access(CHROMIUM, os.X_OK):
        raise pytest.UsageError(
            f"--browser needs Chromium at {CHROMIUM}: `apt-get install chromium` "
            "(or set $CHROMIUM to a Chromium binary)."
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        raise pytest.UsageError(
            "--browser needs Playwright for Python: `.venv/bin/pip install -e '.[browser]'` "
            "(the system Chromium is used; do not run `playwright install`)."
        ) from None


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Demo:
    url: str
    url2: str
    redis_port: int
    process: subprocess.Popen[str]
    output: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=2000))

    def log(self) -> str:
        return "".join(self.output)


# Module-scoped, not session: while Playwright's sync API is started, the main thread
# has a running event loop, and the async tests that run after these would fail.
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """``python -m testproject.demo --second-instance`` on free ports, its own redis-server."""
    # Its own server (not the suite's $REDIS_URL), from $REDIS_SERVER_BIN if the run set one.
    env = {
        k: v
        for k, v in os.environ.items()
        if not re.fullmatch(r"REDIS(_[A-Z]+)?_URL", k) and not k.startswith("DJANGO_")
    }
    env["PYTHONPATH"] = str(ROOT)
    # The test's rate for the "try it" button: 5 per minute, a request back every 12 s. A
    # loaded machine's clicks cannot outrun that refill (at 5/20 s, one every 4 s, they did).
    env["DEMO_TRY_RATE"] = TRY_RATE
    state = tmp_path_factory.mktemp("demo")
    # --port 0: the demo binds two free ports itself, and prints them (a port checked
    # free here and bound by the demo later could be taken in between).
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "testproject.demo", "--port", "0"),
            *("--state-dir", str(state), "--second-instance"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: collections.deque[str] = collections.deque(maxlen=2000)
    # The whole log, for a failure in CI (the deque keeps the end for assertion messages).
    DEMO_LOG.parent.mkdir(parents=True, exist_ok=True)
    log_file = DEMO_LOG.open("w", encoding="utf-8")

    def record(line: str) -> None:
        lines.append(line)
        if not log_file.closed:
            log_file.write(line)
            log_file.flush()

    demo: Demo | None = None
    drainer: threading.Thread | None = None
    try:
        redis_port: int | None = None
        port: int | None = None
        port2: int | None = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            record(line)
            match = re.search(r"^Started (Redis|Valkey) .* on redis://127\.0\.0\.1:(\d+)/0", line)
            if match:
                redis_port = int(match.group(2))
            match = re.search(r"^Second app instance: http://127\.0\.0\.1:(\d+)/", line)
            if match:
                port2 = int(match.group(1))
            match = re.search(r"^Open http://127\.0\.0\.1:(\d+)/", line)
            if match:
                port = int(match.group(1))
                break
        assert redis_port and port and port2, "".join(lines)

        def drain() -> None:  # uvicorn logs every request: keep the pipe from filling up
            for line in proc.stdout:  # type: ignore[union-attr]
                record(line)

        drainer = threading.Thread(target=drain, daemon=True)
        drainer.start()
        demo = Demo(
            f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port2}", redis_port, proc, lines
        )
        for url in (demo.url, demo.url2):
            wait_for(
                lambda url=url: _answers(url),
                60,
                lambda url=url: (
                    f"{url} did not answer ({_last_error.get(url)}); "
                    f"processes:\n{_processes(proc.pid)}\n{''.join(lines)}"
                ),
            )
        yield demo
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends (also when the start failed)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"the demo did not stop on Ctrl-C:\n{''.join(lines)}")
        finally:
            if drainer is not None:
                drainer.join(10)  # the demo's last lines (it ends at EOF)
            log_file.close()
    assert demo is not None
    assert proc.returncode == 0, demo.log()
    assert "Stopped the" in demo.log()  # "Stopped the Redis server (pid N)"
    for gone in (port, port2, redis_port):
        wait_for(lambda gone=gone: not port_open(gone), 10, f"port {gone} still open")


_last_error: dict[str, str] = {}


def _processes(pid: int) -> str:
    """The demo's processes (``pid`` and its children), for a failure message."""
    ps = subprocess.run(["ps", "-eo", "pid,ppid,stat,args"], capture_output=True, text=True)
    return "\n".join(line for line in ps.stdout.splitlines() if str(pid) in line.split()[:2])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/", timeout=5) as response:
            return response.status == 200
    except OSError as exc:
        _last_error[url] = repr(exc)
        return False


def wait_for(check: Callable[[], Any], timeout: float, message: str | Callable[[], str]) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``message`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(message() if callable(message) else message)
        time.sleep(0.1)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report


@dataclass
class Browsing:
    """New browser contexts (each its own cookies: another browser, another device)."""

    browser: Any
    contexts: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def context(self) -> Any:
        context = self.browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(15_000)
        context.on("page", self._watch)
        self.contexts.append(context)
        return context

    def page(self) -> Any:
        return self.context().new_page()

    def _watch(self, page: Any) -> None:
        # An exception in the page's script stops a panel: always a failure.
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))


@pytest.fixture
def browsing(browser: Any, request: pytest.FixtureRequest) -> Iterator[Browsing]:
    b = Browsing(browser)
    yield b
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for i, context in enumerate(b.contexts):
            for j, page in enumerate(context.pages):
                try:
                    page.screenshot(
                        path=str(ARTIFACTS / f"FAILED-{request.node.name}-{i}-{j}.png"),
                        full_page=True,
                    )
                except Exception:  # noqa: BLE001 - a page that is gone: nothing to save
                    pass
    for context in b.contexts:
        context.close()
    assert not b.errors, f"JavaScript errors: {b.errors}"


def shot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """A screenshot in .artifacts/screenshots/ (the whole page, or what the window shows)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def login(page: Any, base: str, username: str = "demo", password: str = "demo") -> None:
    """Log in through the login form and land on the dashboard."""
    page.goto(base + "/accounts/login/?next=/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("form[action='/accounts/login/'] button[type=submit]")
    page.wait_for_url(base + "/")
    page.wait_for_selector("#feed-status[data-state=live]")
