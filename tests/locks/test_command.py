"""`@command_lock` through call_command, and `redisroles locks` for operators."""

from __future__ import annotations

import io
import json
import os
import sys
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from django_redisroles.locks import Lock, LockLost, command_lock, owner
from django_redisroles.testing import free_port


class OnHandle(BaseCommand):
    ran: list[int | None] = []

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--day", default="today")

    @command_lock(ttl=10, key="report", key_options=("day",))
    def handle(self, *args: Any, **options: Any) -> None:
        self.ran.append(self.lock.fence if self.lock else None)


@command_lock(ttl=10, held_exit=0)
class Cron(BaseCommand):
    ran = 0

    def handle(self, *args: Any, **options: Any) -> None:
        Cron.ran += 1


def run(command: BaseCommand, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(command, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_decorated_handle_runs_under_a_lock_named_by_key_and_options() -> None:
    OnHandle.ran.clear()
    run(OnHandle(), "--day", "mon")
    assert len(OnHandle.ran) == 1 and OnHandle.ran[0] is not None
    with Lock("report:day=mon", ttl=10):
        with pytest.raises(CommandError, match="already running on host") as excinfo:
            run(OnHandle(), "--day", "mon")
        assert excinfo.value.returncode == 1
        assert f"pid {os.getpid()}" in str(excinfo.value)
        run(OnHandle(), "--day", "tue")  # another day, another lock
        run(OnHandle(), "--day", "mon", "--no-lock")  # the operator's choice
    assert len(OnHandle.ran) == 3 and OnHandle.ran[-1] is None
    assert owner("report:day=mon") is None


def test_held_exit_zero_for_cron_writes_the_holder_and_skips_the_body() -> None:
    Cron.ran = 0
    # The default key is the command's name: its module's last part.
    name = Cron.__module__.rsplit(".", 1)[-1]
    with Lock(name, ttl=10):
        _, err = run(Cron())
    assert Cron.ran == 0
    assert "already running on host" in err
    run(Cron())
    assert Cron.ran == 1


def test_lock_wait_must_be_seconds() -> None:
    with pytest.raises(CommandError, match="expected seconds"):
        run(Cron(), "--lock-wait", "soon")


def test_lock_wait_waits_then_gives_up_naming_the_holder() -> None:
    name = Cron.__module__.rsplit(".", 1)[-1]
    with Lock(name, ttl=10):
        _, err = run(Cron(), "--lock-wait", "0.2")
    assert "already running" in err


def test_decorator_misuse_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="parentheses"):
        command_lock(Cron)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="BaseCommand"):
        command_lock(ttl=5)(object)
    with pytest.raises(ValueError, match="positive"):
        command_lock(ttl=-1)


def test_redisroles_locks_lists_and_force_releases(capsys) -> None:
    call_command("redisroles", "locks")
    assert "No locks held." in capsys.readouterr().out
    lock = Lock("nightly", ttl=30)
    lock.acquire()
    call_command("redisroles", "locks")
    out = capsys.readouterr().out
    assert "nightly" in out and str(os.getpid()) in out and str(lock.fence) in out
    call_command("redisroles", "locks", "--json")
    (row,) = json.loads(capsys.readouterr().out)
    assert row["name"] == "nightly" and row["pid"] == os.getpid() and 29 < row["expires_in"] <= 30

    with pytest.raises(SystemExit) as excinfo:
        call_command("redisroles", "locks", "release", "nightly")
    assert excinfo.value.code == 2
    assert "add --force" in capsys.readouterr().err
    assert owner("nightly") is not None

    call_command("redisroles", "locks", "release", "nightly", "--force")
    assert "Released lock 'nightly'" in capsys.readouterr().out
    assert owner("nightly") is None
    with pytest.raises(SystemExit):
        call_command("redisroles", "locks", "release", "nightly", "--force")
    assert "not held" in capsys.readouterr().err
    # The holder learns it lost the lock when it releases (and stops renewing it).
    with pytest.raises(LockLost):
        lock.release()


@pytest.mark.parametrize(
    ("locks", "needle", "code"),
    [
        ({"TTL": 0}, "'TTL'] must be a number of seconds", "redisroles.E050"),
        ({"WAIT_POLL": "1"}, "'WAIT_POLL'] must be a number", "redisroles.E050"),
        ({"AUTO_RENEW": "yes"}, "'AUTO_RENEW'] must be True or False", "redisroles.E050"),
        ({"OPTIONS": {"socket_timeout": None}}, "no socket_timeout", "redisroles.W050"),
    ],
)
def test_checks_flag_bad_lock_settings(settings, locks, needle, code) -> None:
    from django.core.management.base import SystemCheckError

    settings.REDISROLES = {"ROLES": {"locks": locks}}
    if code.startswith("redisroles.E"):
        with pytest.raises(SystemCheckError) as excinfo:
            call_command("check")
        text = str(excinfo.value)
    else:
        err = io.StringIO()
        call_command("check", stderr=err)
        text = err.getvalue()
    assert code in text and needle in text, text


def test_redis_down_means_the_command_does_not_run(settings, redis_factory) -> None:
    server = redis_factory()
    settings.REDISROLES = {
        "KEY_PREFIX": "demo",
        "ROLES": {"locks": {"URL": server.url(), "OPTIONS": {"retry_attempts": 0}}},
    }
    server.kill()
    runs = len(OnHandle.ran)
    with pytest.raises(CommandError, match="could not take lock") as excinfo:
        call_command(OnHandle(), "--day", "x")
    assert excinfo.value.returncode == 1
    assert len(OnHandle.ran) == runs  # fail closed: the body did not run


def test_a_holders_command_line_is_stored_and_shown_without_its_secrets(
    monkeypatch, capsys, redis_client
) -> None:
    """Locks store the holder's command line (in Redis, shown by `redisroles locks`):
    `--api-token=...`, `--password ...` and a URL's password were stored and printed."""
    secrets = ["t0ps3cret", "hunter2x", "pw1234"]
    argv = ["manage.py", "sync_crm", "--api-token=t0ps3cret", "--password", "hunter2x"]
    argv += ["--source", "redis://app:pw1234@crm-cache:6379/0", "--day", "mon"]
    monkeypatch.setattr(sys, "argv", argv)
    # (Who we are is computed once per process, again when sys.argv changes.)
    with Lock("sync-crm", ttl=30):
        stored = b"".join(redis_client.get(k) or b"" for k in redis_client.scan_iter("*sync-crm*"))
        call_command("redisroles", "locks")
        call_command("redisroles", "locks", "--json")
        shown = capsys.readouterr().out
        cmd = owner("sync-crm").cmd
    for secret in secrets:
        assert secret.encode() not in stored and secret not in shown and secret not in cmd
    assert cmd == (
        "manage.py sync_crm --api-token=*** --password *** "
        "--source redis://***@crm-cache:6379/0 --day mon"
    )


@pytest.mark.parametrize("args", [(), ("--json",), ("release", "nightly", "--force")])
def test_redisroles_locks_says_when_its_redis_cannot_be_reached(settings, capsys, args) -> None:
    """One line naming the (masked) URL, as `redisroles pubsub`/`info` do: not a traceback.

    The demo's locks page names this command; run in a fresh terminal, it reaches
    for 127.0.0.1:6379, where nothing may listen."""
    port = free_port()
    settings.REDISROLES = {"URL": f"redis://app:hunter2@127.0.0.1:{port}/0"}
    with pytest.raises(SystemExit) as excinfo:
        call_command("redisroles", "locks", *args)
    assert excinfo.value.code == 1
    err = capsys.readouterr().err
    assert f"cannot reach the locks role's Redis at redis://***@127.0.0.1:{port}/0" in err
    assert "ConnectionError" in err and "hunter2" not in err
