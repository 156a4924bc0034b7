"""A brand-new project whose only change from the README is ``REDISROLES["URL"]``.

Issue 14's promise: moving to a Redis Cluster (or under Sentinel) is a
settings change. ``django-admin startproject`` plus the README's Quick start
block, verbatim except for the URL, plus a small app that uses each role the
way the docs show (a ``@rate_limit`` view, a view that keeps a counter in the
session, a ``@command_lock`` management command, ``cache``, ``abroadcast`` to a
group). Run in child processes (``manage.py``), as a user runs them, against a
3-master cluster and a Sentinel group that the suite starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import session_topology
from tests.firstrun.helpers import user_env
from tests.firstrun.test_quick_start import quick_start_settings

pytestmark = pytest.mark.timeout(300)

APP_VIEWS = """
from django.http import HttpResponse

from django_redisroles.ratelimit import rate_limit


@rate_limit("3/m", key="ip")
def limited(request):
    return HttpResponse("ok")


def visit(request):
    request.session["n"] = request.session.get("n", 0) + 1
    return HttpResponse(str(request.session["n"]))
"""

NIGHTLY = """
import sys
import time

from django.core.management.base import BaseCommand

from django_redisroles.locks import command_lock


@command_lock(ttl=60)
class Command(BaseCommand):
    def handle(self, *args, **options):
        print("started", flush=True)
        time.sleep(4)
        print("done", flush=True)
"""

EXERCISE = """
import asyncio
import json

from channels.layers import get_channel_layer
from django.core.cache import cache
from django.core.management.base import BaseCommand
from django.test import Client

from django_redisroles.locks import Lock
from django_redisroles.pubsub import abroadcast


async def pubsub():
    layer = get_channel_layer()
    names = [await layer.new_channel() for _ in range(3)]
    # Groups whose channels land on different masters of a cluster.
    for i, name in enumerate(names):
        await layer.group_add(f"room-{i}", name)
    for i in range(3):
        await abroadcast(f"room-{i}", {"type": "chat.message", "text": f"hello {i}"})
    got = [await asyncio.wait_for(layer.receive(name), 10) for name in names]
    return [m["text"] for m in got]


async def acache():
    await cache.aset("async-key", "v", 30)
    return await cache.aget("async-key")


class Command(BaseCommand):
    def handle(self, *args, **options):
        out = {}
        for part in (self.cache, self.sessions, self.ratelimit, self.pubsub, self.locks):
            try:
                part(out)
            except Exception as exc:  # every role reported, not only the first failure
                out[part.__name__ + "_error"] = repr(exc)
        print(json.dumps(out))

    def cache(self, out):
        cache.set("one", 1, 30)
        values = {f"key-{i}": i for i in range(60)}
        cache.set_many(values, 30)
        out["get"] = cache.get("one")
        out["get_many"] = cache.get_many(list(values)) == values
        cache.delete_many([f"key-{i}" for i in range(30)])
        out["after_delete_many"] = len(cache.get_many(list(values)))
        out["incr"] = [cache.incr("one"), cache.incr("one", 5)]
        out["aget"] = asyncio.run(acache())
        cache.clear()
        out["after_clear"] = [cache.get("one"), len(cache.get_many(list(values)))]

    def sessions(self, out):
        first, second = Client(), Client()
        out["visits"] = [first.get("/visit/").content.decode() for _ in range(3)]
        out["other_visitor"] = second.get("/visit/").content.decode()

    def ratelimit(self, out):
        out["limited"] = [Client().get("/limited/").status_code for _ in range(4)]

    def pubsub(self, out):
        out["broadcast"] = asyncio.run(pubsub())

    def locks(self, out):
        with Lock("report", ttl=10) as lock:
            out["fence"] = lock.fence
        with Lock("report", ttl=10) as lock:
            out["fence_after"] = lock.fence
"""


def _project(tmp_path: Path, url: str) -> tuple[Path, dict[str, str]]:
    env = user_env()
    bindir = Path(sys.executable).parent
    project = tmp_path / "mysite"
    project.mkdir()
    made = subprocess.run(
        [str(bindir / "django-admin"), "startproject", "mysite", str(project)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    quick_start = quick_start_settings()
    readme_url = '"URL": "redis://127.0.0.1:6379/0"'
    assert readme_url in quick_start, "the README's Quick start names its URL"
    # The one change a user makes: the URL.
    settings = quick_start.replace(readme_url, f'"URL": {url!r}')
    settings_py = project / "mysite" / "settings.py"
    settings_py.write_text(
        settings_py.read_text()
        + "\n# The README's Quick start, with a topology URL:\n"
        + settings
        + '\nINSTALLED_APPS += ["shop"]\nALLOWED_HOSTS = ["testserver", "localhost"]\n'
    )
    app = project / "shop"
    commands = app / "management" / "commands"
    commands.mkdir(parents=True)
    for package in (app, app / "management", commands):
        (package / "__init__.py").write_text("")
    (app / "views.py").write_text(textwrap.dedent(APP_VIEWS))
    (commands / "nightly.py").write_text(textwrap.dedent(NIGHTLY))
    (commands / "exercise.py").write_text(textwrap.dedent(EXERCISE))
    urls = project / "mysite" / "urls.py"
    urls.write_text(
        urls.read_text()
        + "\nfrom shop import views\n"
        + 'urlpatterns += [path("limited/", views.limited), path("visit/", views.visit)]\n'
    )
    return project, env


def _manage(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("kind", ["cluster", "sentinel"])
def test_a_new_project_changes_only_the_url(kind: str, tmp_path: Path) -> None:
    topology = session_topology(kind)
    topology.flushall()
    project, env = _project(tmp_path, topology.url())

    check = _manage(project, env, "check")
    assert check.returncode == 0, check.stderr
    assert "System check identified no issues (0 silenced)." in check.stdout, check.stdout

    run = _manage(project, env, "exercise")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert not [k for k in out if k.endswith("_error")], out
    assert out["get"] == 1
    assert out["get_many"] is True
    assert out["after_delete_many"] == 30
    assert out["incr"] == [2, 7]
    assert out["aget"] == "v"
    assert out["after_clear"] == [None, 0]
    assert out["visits"] == ["1", "2", "3"]
    assert out["other_visitor"] == "1"
    assert out["limited"] == [200, 200, 200, 429]
    assert out["broadcast"] == ["hello 0", "hello 1", "hello 2"]
    assert out["fence_after"] > out["fence"]

    # The locked command: a second run while the first holds the lock is refused.
    first = subprocess.Popen(
        [sys.executable, "manage.py", "nightly"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert first.stdout is not None
        assert first.stdout.readline().strip() == "started"
        second = _manage(project, env, "nightly")
        assert second.returncode == 1, second.stdout + second.stderr
        assert "already running" in second.stderr
        assert "started" not in second.stdout
    finally:
        out_first, err_first = first.communicate(timeout=60)
    assert first.returncode == 0, err_first
    assert "done" in out_first
    # Released at the end: the next run takes it.
    third = subprocess.Popen(
        [sys.executable, "manage.py", "nightly"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert third.stdout is not None
    assert third.stdout.readline().strip() == "started"
    third.wait(timeout=60)
    assert third.returncode == 0

    doctor = _manage(project, env, "redisroles", "doctor")
    assert "Traceback" not in doctor.stderr, doctor.stderr
