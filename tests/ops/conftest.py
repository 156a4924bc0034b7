"""Helpers for the doctor tests: run the command, point roles at servers."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.management import call_command

from django_redisroles.testing import RedisServer


class DoctorRun:
    """What a user sees from one `manage.py redisroles doctor` run."""

    def __init__(self, status: int, stdout: str, stderr: str) -> None:
        self.status = status
        self.stdout = stdout
        self.stderr = stderr

    @property
    def data(self) -> dict[str, Any]:
        return json.loads(self.stdout)

    @property
    def ids(self) -> list[str]:
        return [f["id"] for f in self.data["findings"]]

    def finding(self, finding_id: str) -> dict[str, Any]:
        found = [f for f in self.data["findings"] if f["id"] == finding_id]
        assert found, f"no {finding_id} in {self.ids}"
        return found[0]


def run_doctor(*args: str) -> DoctorRun:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("redisroles", "doctor", *args, stdout=out, stderr=err)
        status = 0
    except SystemExit as exc:
        status = int(exc.code or 0)
    return DoctorRun(status, out.getvalue(), err.getvalue())


@pytest.fixture
def doctor() -> Callable[..., DoctorRun]:
    """``doctor("--role", "cache")``: JSON output, no progress."""

    def run(*args: str, json_: bool = True, quiet: bool = True) -> DoctorRun:
        extra = (["--json"] if json_ else []) + (["--quiet"] if quiet else [])
        return run_doctor(*extra, *args)

    return run


@pytest.fixture
def roles_on(settings: Any) -> Iterator[Callable[..., None]]:
    """``roles_on(cache=server, sessions=server, ...)``: each role's URL; others stay default."""

    def point(doctor_settings: dict[str, Any] | None = None, **servers: RedisServer | str) -> None:
        value: dict[str, Any] = {"KEY_PREFIX": "rr", "ROLES": {}}
        for role, server in servers.items():
            url = server if isinstance(server, str) else server.url()
            value["ROLES"][role] = {"URL": url}
        # A shorter window keeps the suite quick; the churn test sets its own.
        value["DOCTOR"] = {"CLIENT_WINDOW": 0.2, **(doctor_settings or {})}
        settings.REDISROLES = value
        # Whatever CACHES the test project wires, these tests plant cache keys under
        # conf.make_key("cache"), the namespace of a RedisRolesCache without
        # KEY_PREFIX (a test about CACHES sets its own after calling this).
        settings.CACHES = {"default": {"BACKEND": "django_redisroles.cache.RedisRolesCache"}}

    yield point
