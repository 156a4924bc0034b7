"""docs/failures.md says what runs: the matrix table, and an ACL user that works."""

from __future__ import annotations

import asyncio
import re
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.test import Client

from django_redisroles import doctor
from django_redisroles.locks import Lock
from django_redisroles.pubsub import broadcast, get_layer
from django_redisroles.testing import RedisServer

from .lab import ADMIN_PASSWORD, add_acl_users
from .matrix import FAULTS, ROLES, describe

DOC = Path(__file__).resolve().parents[2] / "docs" / "failures.md"


def test_the_docs_table_is_this_matrix() -> None:
    text = DOC.read_text()
    start = text.index("<!-- fault matrix -->")
    rows = []
    for line in text[start:].splitlines()[1:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    header, body = rows[0], rows[2:]
    assert header == ["fault", *ROLES]
    assert [row[0] for row in body] == [fault.title for fault in FAULTS]
    for fault, row in zip(FAULTS, body, strict=True):
        assert row[1:] == [describe(role, fault) for role in ROLES], fault.name


def _documented_acl_command() -> list[str]:
    text = DOC.read_text()
    block = text[text.index("<!-- acl example -->") :]
    match = re.search(r"```\n(ACL SETUSER [^\n]+)\n```", block)
    assert match is not None
    return shlex.split(match.group(1))


@pytest.mark.slow
async def test_the_documented_acl_user_runs_every_role(
    redis_factory: Callable[..., RedisServer],
    point_roles: Callable[..., None],
    settings: Any,
    transactional_db: Any,
) -> None:
    server = redis_factory()
    add_acl_users(server)
    command = _documented_acl_command()
    assert command[:3] == ["ACL", "SETUSER", "app"]
    with server.client(password=ADMIN_PASSWORD) as admin:
        # The docs show the default KEY_PREFIX "rr"; the tests use "demo".
        admin.execute_command(*[arg.replace("rr:", "demo:") for arg in command])
    point_roles(f"redis://app:CHANGE-ME@127.0.0.1:{server.port}/0")
    settings.ROOT_URLCONF = "tests.faults.urls"
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redisroles.cache.RedisRolesCache",
            "TIMEOUT": 300,
            "OPTIONS": {"NEAR_CACHE": True},  # its listener needs &__redis__:invalidate
        }
    }

    def sync_roles() -> None:
        cache = caches["default"]
        deadline = time.monotonic() + 10
        while not cache.near.tracking():
            assert time.monotonic() < deadline, "the near cache's listener was refused"
            cache.get("warm-up")
            time.sleep(0.01)
        cache.set("n", 0)
        assert cache.incr("n") == 1
        assert cache.get_or_set("k", lambda: "v", 60) == "v"
        get_user_model().objects.create_user("alice", password="pw")
        client = Client(raise_request_exception=False)
        assert client.post("/login/", {"username": "alice", "password": "pw"}).status_code == 200
        assert client.get("/session/write/").status_code == 200
        assert client.get("/limited/open/").json() == {"failed": False}
        with Lock("acl-doc", ttl=10):
            pass
        broadcast("replayed", {"type": "x"})
        report = doctor.run(roles=list(ROLES))
        assert [f.id for f in report.findings if f.severity == "error"] == []

    await asyncio.to_thread(sync_roles)
    layer = get_layer()
    try:
        channel = await layer.new_channel()
        await layer.group_add("news", channel)
        await asyncio.to_thread(broadcast, "news", {"type": "hello"})
        assert (await asyncio.wait_for(layer.receive(channel), 5))["type"] == "hello"
    finally:
        await layer.close()
