"""The dashboard as a user sees it: headless Chromium against the running demo.

Each test is a thing the README's demo promises a person at a browser: the
panels move by themselves, a session ended elsewhere is gone here too, a 429
counts down, a broadcast reaches every tab and a reloaded one catches up, and
when Redis stops each role does what its docs say. A panel that stops
updating (a script error, a source that no longer answers) fails them.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from .conftest import TRY_RATE, Browsing, Demo, login, shot, wait_for

pytestmark = pytest.mark.slow

ROLES = ("cache", "sessions", "ratelimit", "pubsub", "locks")
LIMIT = int(TRY_RATE.split("/")[0])  # the "try it" budget


def seqs(page: Any) -> dict[str, int]:
    """Each panel's data-seq: the sampler reading it last rendered."""
    return {role: int(page.get_attribute(f"#panel-{role}", "data-seq")) for role in ROLES}


def text(page: Any, selector: str) -> str:
    return str(page.inner_text(selector))


def number(page: Any, role: str, key: str) -> int:
    value = text(page, f"#panel-{role} [data-k={key}]").replace(",", "")
    return int(value) if value.isdigit() else 0  # a dash: no data yet


def all_panels_advance(page: Any, timeout: float = 10) -> dict[str, int]:
    """Every panel renders newer readings (fails naming the ones that do not)."""
    before = seqs(page)
    stuck: list[str] = []

    def advanced() -> bool:
        now = seqs(page)
        stuck[:] = [r for r in ROLES if now[r] <= before[r] + 1]
        return not stuck

    wait_for(advanced, timeout, lambda: f"panels stopped updating: {stuck} (seqs {seqs(page)})")
    return seqs(page)


def test_the_dashboard_updates_live(demo: Demo, browsing: Browsing) -> None:
    page = browsing.page()
    login(page, demo.url)
    wait_for(lambda: all(s > 0 for s in seqs(page).values()), 15, "panels never got data")
    all_panels_advance(page)
    for role in ROLES:  # "updated 0 s ago", not stale
        assert re.search(r"updated [0-2] s ago", text(page, f"#panel-{role} [data-updated]"))

    # Traffic elsewhere shows up here without a reload: the cached-user page, twice.
    hits = number(page, "cache", "hits")
    other = page.context.new_page()
    other.goto(demo.url + "/cache/user/")
    other.goto(demo.url + "/cache/user/")
    assert "cache hit" in text(other, "#outcome")
    wait_for(lambda: number(page, "cache", "hits") > hits, 10, "cache hits did not move")
    other.close()

    # The probes: a real request per role every 2 s.
    wait_for(lambda: "200" in text(page, "[data-probe=session]"), 10, "no session probe")
    assert "signed in as demo" in text(page, "[data-probe=session]")
    assert "counted" in text(page, "[data-probe=ratelimit]")
    # The Redis server: INFO every second, the doctor's findings with their fix.
    card = page.locator(".card").first
    wait_for(lambda: "redis 7" in card.inner_text() or "valkey" in card.inner_text(), 10, "no INFO")
    wait_for(lambda: page.locator(".card .finding").count() > 0, 40, "no doctor result")
    points = int(page.get_attribute(".card [data-chart=ops]", "data-points"))
    time.sleep(2)
    assert int(page.get_attribute(".card [data-chart=ops]", "data-points")) > points
    assert "no maxmemory" in card.inner_text()  # the demo's server: findings W110...
    assert "CONFIG SET" in card.inner_text()  # ... with the exact fix
    all_panels_advance(page)

    # Some activity for the README's picture: a broadcast, a rate-limited request, a lock.
    page.fill("#panel-pubsub [data-k=send] input[name=text]", "Deploy finished")
    page.click("#panel-pubsub [data-k=send] button[type=submit]")
    page.click("[data-action=try]")
    page.click("[data-action=lock]")
    wait_for(lambda: "Deploy finished" in text(page, "[data-k=feed]"), 10, "no broadcast")
    wait_for(lambda: "demo-page" in text(page, "[data-k=locks]"), 10, "lock not listed")
    shot(page, "dashboard-full")
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "dashboard", full_page=False)  # `make screenshot`: docs/img/ for the README


def test_log_out_everywhere_from_a_second_browser(demo: Demo, browsing: Browsing) -> None:
    laptop = browsing.page()
    login(laptop, demo.url)
    phone = browsing.page()  # another context: another device, its own cookies
    login(phone, demo.url)
    # The laptop sees the second device arrive, live.
    wait_for(lambda: number(laptop, "sessions", "mine") >= 2, 10, "second session not listed")
    assert "this one" in text(laptop, "#panel-sessions [data-k=sessions]")

    phone.click("[data-action=logout-all]")  # "Log out everywhere", on the phone
    phone.wait_for_url(re.compile(r"/accounts/login/"))
    banner = laptop.locator("#banner[data-kind=logout]")
    banner.wait_for(timeout=10_000)
    assert "signed out" in banner.inner_text()
    shot(laptop, "logged-out-elsewhere")
    laptop.reload()
    assert "Log in" in text(laptop, ".hint")  # the laptop's cookie no longer signs it in


def test_a_429_counts_down_and_json_is_readable(demo: Demo, browsing: Browsing) -> None:
    page = browsing.page()
    login(page, demo.url)
    # GCRA at the tests' rate, 5 per 60 s: a burst of 5, then one request every 12 s. An
    # earlier test may have used some of it: click until the 429, and check each answer.
    assert page.input_value("#panel-ratelimit [data-k=algorithm]") == "gcra"
    assert f'@rate_limit("{TRY_RATE}")' in text(page, "#panel-ratelimit .try label")
    status = page.locator("[data-k=try-status]")
    budget = page.locator("[data-chart=budget]")
    left: list[int] = []  # "N of 5 left" after each counted 200 since the last uncounted one
    uncounted = 0
    deadline = time.monotonic() + 60  # 8 clicks are enough; a loaded machine gets more time
    sent = 0
    while time.monotonic() < deadline and sent < 40:
        sent += 1
        page.click("[data-action=try]")
        wait_for(lambda n=sent: budget.get_attribute("data-points") == str(n), 15, "no answer")
        shown = status.inner_text()
        if "429" in shown:
            break
        if "let through uncounted" in shown:
            # The limiter's 0.25 s timeout ran out on a loaded machine and it failed open
            # (its documented policy): the budget's course is known again from here on.
            uncounted += 1
            left = []
            continue
        counted = re.search(rf"^200 OK \(gcra\): (\d+) of {LIMIT} left", shown)
        assert counted, shown
        left.append(int(counted.group(1)))
    # The budget went down with each request (a refill could keep it level, never raise
    # it: that takes 12 s between two clicks), to none left, then the 429.
    assert left and left[-1] == 0, left
    assert left == sorted(left, reverse=True), left
    assert len(left) <= 2 * LIMIT, f"{left}: the budget did not run out"
    assert "429 Too Many Requests (gcra): retry in" in status.inner_text()
    assert "budget full again at" in status.inner_text()
    assert page.locator("[data-chart=budget] circle.refused").count() == 1
    assert page.locator("[data-chart=budget] circle.uncounted").count() == uncounted
    assert page.locator("[data-chart=budget] circle.allowed").count() >= len(left)
    first = int(status.get_attribute("data-retry"))
    assert first >= 1
    assert page.locator("[data-action=try]").is_disabled()  # until the countdown ends
    shot(page, "ratelimit-countdown")
    wait_for(lambda: int(status.get_attribute("data-retry")) < first, 5, "countdown did not move")
    # Retry-After is at most one request's interval (12 s), however loaded the machine.
    wait_for(lambda: page.locator("[data-action=try]").is_enabled(), 30, "button not enabled again")
    assert "you may retry now" in status.inner_text()

    # The same endpoint in the address bar: a readable page, still a 429 with its headers.
    # (The countdown's end let one through: the second is refused, unless 12 s went by.)
    statuses = []
    for _ in range(4):
        response = page.goto(demo.url + "/dashboard/try/gcra/")
        statuses.append(response.status)
        if response.status == 429:
            break
    assert response.status == 429, statuses
    assert "429 Too Many Requests" in text(page, "#status")
    assert "Retry-After" in text(page, "table") and "RateLimit" in text(page, "table")
    assert '"status": 429' in text(page, "#body")
    countdown = int(text(page, "#countdown"))
    wait_for(lambda: int(text(page, "#countdown") or 0) < countdown, 5, "no countdown")
    response = page.goto(demo.url + "/ratelimit/api/")
    assert response.status == 200
    assert '"ok": true' in text(page, "#body")
    shot(page, "json-readable")


def test_a_broadcast_reaches_two_instances_and_a_reload_replays(
    demo: Demo, browsing: Browsing
) -> None:
    context = browsing.context()
    first = context.new_page()
    login(first, demo.url)
    second = context.new_page()  # the same user, on the second app instance
    second.goto(demo.url2 + "/")
    for page in (first, second):
        page.wait_for_selector("[data-k=ws][data-state=live]")
    wait_for(lambda: number(first, "pubsub", "processes") == 2, 10, "2 instances not subscribed")

    def send(page: Any, message: str) -> None:
        page.fill("#panel-pubsub [data-k=send] input[name=text]", message)
        page.click("#panel-pubsub [data-k=send] button[type=submit]")

    def feed(page: Any) -> str:
        return text(page, "#panel-pubsub [data-k=feed]")

    send(first, "hello both")
    for page in (first, second):
        wait_for(lambda page=page: "hello both" in feed(page), 10, "broadcast not received")

    second.goto("about:blank")  # the second tab is away...
    send(first, "while you were away")
    wait_for(lambda: "while you were away" in feed(first), 10, "not received by the sender")
    second.goto(demo.url2 + "/")  # ... and back: it asks for what it missed (?since=)
    replayed = second.locator("#panel-pubsub [data-k=feed] li.replayed")
    replayed.first.wait_for(timeout=10_000)
    assert "while you were away" in replayed.first.inner_text()
    assert "(replayed)" in replayed.first.inner_text()
    assert "hello both" in feed(second)  # what it had before, kept across the reload
    shot(second, "pubsub-replayed")

    # Away while more is sent than the group keeps (200): it comes back to a gap marker.
    second.goto("about:blank")
    first.click("[data-action=burst]")
    wait_for(lambda: "burst #250" in feed(first), 20, "burst not received")
    second.goto(demo.url2 + "/")
    gap = second.locator("#panel-pubsub [data-k=feed] [data-marker=gap]")
    gap.wait_for(timeout=10_000)
    assert "no longer kept" in gap.inner_text()
    wait_for(lambda: "burst #250" in feed(second), 10, "the kept part was not replayed")


def test_cut_subscriber_connections_reconnect_and_replay(demo: Demo, browsing: Browsing) -> None:
    page = browsing.page()
    login(page, demo.url)
    page.wait_for_selector("[data-k=ws][data-state=live]")
    replayed = number(page, "pubsub", "replayed")
    page.click("[data-fault=drop]")  # CLIENT KILL TYPE pubsub, then 3 broadcasts at once
    marker = page.locator("[data-marker=lost]").first
    marker.wait_for(timeout=15_000)
    for n in (1, 2, 3):  # sent while the subscriber was reconnecting: none is lost
        wait_for(
            lambda n=n: f"sent during the cut #{n}" in text(page, "[data-k=feed]"),
            10,
            f"message {n} lost",
        )
    # This instance's layer brought them back from the replay stream and says so.
    wait_for(lambda: number(page, "pubsub", "replayed") > replayed, 10, "replay not counted")
    wait_for(lambda: "replayed —" in marker.inner_text(), 10, lambda: marker.inner_text())
    assert number(page, "pubsub", "reconnects") >= 1


def test_stampede_clear_and_the_algorithms(demo: Demo, browsing: Browsing) -> None:
    page = browsing.page()
    login(page, demo.url)
    page.click("[data-action=stampede]")
    page.wait_for_selector("[data-result=stampede] [data-k=protected]", timeout=30_000)
    protected = text(page, "[data-result=stampede] [data-k=protected]").split("\t")
    plain = text(page, "[data-result=stampede] [data-k=plain]").split("\t")
    assert protected[1] == "1"  # 50 concurrent misses, one load
    assert int(plain[1]) > 10  # a plain cache-aside sends most of them to the database

    page.click("[data-action=clear]")
    page.wait_for_selector("[data-result=clear] table")
    row = page.locator("[data-result=clear] tr[data-role=sessions] td")
    before, after = row.nth(1).inner_text(), row.nth(2).inner_text()
    assert int(before) >= 1 and after == before  # clear() left the sessions alone
    assert page.locator("[data-result=clear] tr[data-role=cache] td").nth(2).inner_text() == "0"

    page.click("[data-action=compare]")
    page.wait_for_selector("[data-result=compare] table", timeout=30_000)

    def boundary(algorithm: str) -> int:
        cell = f"[data-result=compare] tr[data-algorithm={algorithm}] [data-k=boundary]"
        return int(text(page, cell))

    assert boundary("fixed") == 20  # both bursts: twice the limit in half a second
    assert boundary("sliding") <= 11
    assert boundary("gcra") <= 12
    shot(page, "stampede-clear-algorithms")


def _outage_everywhere(page: Any) -> None:
    for role in ROLES:
        wait_for(
            lambda role=role: page.get_attribute(f"#panel-{role} .state", "data-state") == "outage",
            20,
            lambda role=role: f"{role} panel shows no outage: {text(page, f'#panel-{role}')}",
        )


def test_stopping_redis_each_role_follows_its_policy(demo: Demo, browsing: Browsing) -> None:
    page = browsing.page()
    login(page, demo.url)
    wait_for(lambda: page.locator("[data-fault=stop]").count() == 1, 10, "no stop button (staff)")
    page.click("[data-fault=stop]")
    try:
        _outage_everywhere(page)
        probes = {name: page.locator(f"[data-probe={name}]") for name in ("cache", "session")}
        wait_for(lambda: "Redis unavailable" in probes["cache"].inner_text(), 15, "cache probe")
        # Sessions: 503 with Retry-After, and nobody is logged out.
        wait_for(lambda: "503" in probes["session"].inner_text(), 15, "no 503 from sessions")
        assert "still signed in" in probes["session"].inner_text()
        wait_for(lambda: "fail open" in text(page, "[data-probe=ratelimit]"), 15, "no fail open")
        # "Try it" says so too: a 200 let through uncounted, not "0 of 5 left".
        page.click("[data-action=try]")
        wait_for(
            lambda: "let through uncounted" in text(page, "[data-k=try-status]"),
            15,
            lambda: text(page, "[data-k=try-status]"),
        )
        # Pub/sub: the sender is told; nothing pretends to be queued.
        page.fill("#panel-pubsub [data-k=send] input[name=text]", "into the void")
        page.click("#panel-pubsub [data-k=send] button[type=submit]")
        page.locator("[data-marker=not-sent]").wait_for(timeout=15_000)
        # Locks: the locked command refuses to run.
        page.click("[data-action=job]")
        wait_for(
            lambda: "exit 1" in text(page, "[data-k=jobs]"), 30, lambda: text(page, "#panel-locks")
        )
        assert "not running" in text(page, "[data-k=jobs]")
        assert "Not answering" in text(page, ".card")
        shot(page, "redis-stopped")
    finally:
        page.click("[data-fault=start]")
    # Back: the same session, still signed in; the subscriber reconnected and says so.
    back = page.locator("[data-probe=session]")
    wait_for(lambda: "still signed in as demo" in back.inner_text(), 20, "not signed in any more")
    page.locator("[data-marker=lost]").first.wait_for(timeout=15_000)
    wait_for(lambda: "hit" in text(page, "[data-probe=cache]"), 15, "cache not hitting again")
    all_panels_advance(page, timeout=15)
    shot(page, "redis-back")


def test_pausing_redis_panels_wait_then_recover(demo: Demo, browsing: Browsing) -> None:
    page = browsing.page()
    login(page, demo.url)
    all_panels_advance(page)
    page.click("[data-fault=pause][data-seconds='15']")
    banner = page.locator("#banner[data-kind=fault]")
    banner.wait_for(timeout=5_000)
    assert "paused" in banner.inner_text()
    # A hung server: rate limiting gives up after its 0.25 s timeout and lets requests through;
    # the cache and sessions wait out their timeouts (2 s x 3), then miss / answer 503.
    # Watched together over the pause, not one after the other: under ASGI the probes (sync
    # views) share one thread, and one waiting out its timeouts delays the next, so a
    # second check begun after the first was seen could start after the pause ended.
    policies = {
        "rate limiting fails open": lambda: "fail open" in text(page, "[data-probe=ratelimit]"),
        "the cache panel says Redis is unavailable": lambda: (
            "Redis unavailable" in text(page, "#panel-cache .state")
        ),
        "a session write answers 503": lambda: "503" in text(page, "[data-probe=session]"),
        "the sessions panel waits": lambda: (
            page.get_attribute("#panel-sessions .state", "data-state") in ("waiting", "outage")
        ),
    }
    seen: set[str] = set()

    def all_seen() -> bool:
        seen.update(name for name, shown in policies.items() if name not in seen and shown())
        return len(seen) == len(policies)

    wait_for(all_seen, 25, lambda: f"never seen: {sorted(set(policies) - seen)}")
    shot(page, "redis-paused")
    # The pause ends by itself (CLIENT UNPAUSE would be paused too).
    wait_for(lambda: "still signed in as demo" in text(page, "[data-probe=session]"), 30, "stuck")
    wait_for(lambda: "counted" in text(page, "[data-probe=ratelimit]"), 10, "limiter not back")
    all_panels_advance(page, timeout=15)


def test_admin_is_linked_and_usable(demo: Demo, browsing: Browsing) -> None:
    page = browsing.page()
    login(page, demo.url)
    page.click("header a[href='/admin/']")
    page.wait_for_url(re.compile(r"/admin/$"))
    assert "Site administration" in page.content()
    page.click("a[href='/admin/auth/user/']")
    assert "demo" in text(page, "#result_list")
