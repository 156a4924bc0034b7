"""The demo's pages say what a first-time visitor needs, and only what is true.

(The second-terminal commands they show are run for real in tests/test_demo.py
and tests/firstrun/.)"""

from __future__ import annotations

import html
import os
import re
import shlex
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def demo_user():
    user = get_user_model().objects.create_user("demo", password="demo")
    user.is_staff = user.is_superuser = True  # what the demo makes it
    user.save()
    return user


def test_home_page_says_log_in_only_to_visitors(client: Client, demo_user) -> None:
    anonymous = client.get("/").content.decode()
    assert "Log in</a>" in anonymous and "Signed in as" not in anonymous
    client.force_login(demo_user)
    signed_in = client.get("/").content.decode()
    assert "Log in" not in signed_in
    assert "Signed in as <strong>demo</strong>" in signed_in


def test_home_page_links_the_admin_which_the_demo_user_can_open(client, demo_user) -> None:
    page = client.get("/").content.decode()
    assert 'href="/admin/"' in page
    client.force_login(demo_user)
    assert client.get("/admin/").status_code == 200


def test_sessions_page_hints_at_a_second_browser_only_while_there_is_one(demo_user) -> None:
    first, second = Client(), Client()
    first.login(username="demo", password="demo")
    page = first.get("/sessions/").content.decode()
    assert "Log in from a second browser" in page
    assert "refreshed at most every 60 s" in page  # why "last seen" lags
    second.login(username="demo", password="demo")
    page = first.get("/sessions/").content.decode()
    assert page.count("<tr>") - 1 == 2  # two sessions listed (minus the header row)
    assert "Log in from a second browser" not in page


@pytest.mark.parametrize(
    ("path", "command"),
    [("/pubsub/", 'notify "Deploy finished"'), ("/locks/", "nightly_report --duration 60")],
)
def test_pages_show_the_command_with_the_demo_s_database_and_python(
    client: Client, demo_user, monkeypatch, path: str, command: str
) -> None:
    monkeypatch.setenv("DJANGO_DB", "/tmp/demo state/db.sqlite3")
    client.force_login(demo_user)  # the locks page is for signed-in users
    page = client.get(path).content.decode()
    shown = html.unescape(re.search(r"<pre>(.*?)</pre>", page, re.S).group(1))
    words = shlex.split(shown)
    env = dict(w.split("=", 1) for w in words if re.fullmatch(r"[A-Z_]+=.*", w))
    assert env["DJANGO_DB"] == "/tmp/demo state/db.sqlite3"
    # The demo's own URL, whatever it names (one server, a Redis Cluster, a Sentinel service).
    assert env["REDIS_URL"] == os.environ["REDIS_URL"]
    python = words[len(env)]
    # The interpreter that has Django (a fresh shell's bare `python` may not).
    assert (ROOT / python).resolve() == Path(sys.executable).resolve()
    assert shown.endswith(f"manage.py {command}")


def test_locks_table_scrolls_instead_of_overflowing_a_phone(client: Client, demo_user) -> None:
    client.force_login(demo_user)
    page = client.get("/locks/").content.decode()
    assert '<div class="scroll"><table>' in page
    assert "overflow-wrap: anywhere" not in page  # no mid-word breaks in the command column


@pytest.mark.parametrize(
    "path", ["/", "/pages/", "/pubsub/", "/locks/", "/sessions/", "/cache/user/?id=1"]
)
def test_pages_never_show_a_bare_python(client: Client, demo_user, path: str) -> None:
    """A fresh shell's `python` (if any) has no Django: every command shown names the
    demo's virtualenv Python, as the start-up lines do."""
    client.force_login(demo_user)
    page = client.get(path).content.decode()
    shown = html.unescape(re.sub(r"<[^>]*>", "", page))  # the text, not a button's tooltip
    assert not re.search(r"(?<![\w/.])python3? manage\.py", shown), path
