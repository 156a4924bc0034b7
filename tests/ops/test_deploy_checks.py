"""`manage.py check --deploy` runs the doctor's rules as system checks."""

from __future__ import annotations

import io
import time

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from django_redisroles.testing import free_port


def deploy_check(*args: str, deploy: bool = True) -> tuple[str, str]:
    """Run `check [--deploy] --tag redisroles`; (stdout, stderr), or raise SystemCheckError."""
    out, err = io.StringIO(), io.StringIO()
    call_command("check", *args, deploy=deploy, tags=["redisroles"], stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_deploy_check_reports_the_same_finding_as_the_doctor(redis_factory, roles_on) -> None:
    server = redis_factory(
        config={"maxmemory": "64mb", "maxmemory-policy": "allkeys-lru"}, persistence=True
    )
    roles_on(
        sessions=server,
        cache=redis_factory(config={"maxmemory": "64mb", "maxmemory-policy": "allkeys-lru"}),
        ratelimit=server.url(1),
        pubsub=server.url(1),
        locks=server.url(1),
    )
    with pytest.raises(SystemCheckError) as excinfo:
        deploy_check()
    text = str(excinfo.value)
    assert "redisroles.E120" in text
    assert f"[sessions] 127.0.0.1:{server.port}" in text
    assert "HINT:" in text and "CONFIG SET maxmemory-policy noeviction" in text
    assert "Run now: CONFIG SET maxmemory-policy noeviction" in text
    assert "in redis.conf: maxmemory-policy noeviction" in text
    assert "redisroles.W151" in text  # locks on the same allkeys-lru server


def test_plain_check_does_not_talk_to_redis(roles_on) -> None:
    roles_on(cache=f"redis://127.0.0.1:{free_port()}/0")
    out, err = deploy_check(deploy=False)
    assert "no issues" in out
    assert "W100" not in out + err


def test_unreachable_server_is_a_warning_not_a_crash(roles_on) -> None:
    port = free_port()
    roles_on(
        doctor_settings={"TIMEOUT": 0.5},
        **{role: f"redis://127.0.0.1:{port}/0" for role in ("cache", "sessions")},
    )
    started = time.monotonic()
    _out, err = deploy_check()  # warnings only: no SystemCheckError
    assert time.monotonic() - started < 10
    assert "redisroles.W100" in err
    assert f"127.0.0.1:{port}" in err and "cannot reach Redis" in err


def test_opt_in_to_every_check_and_opt_out(redis_factory, roles_on) -> None:
    bad = redis_factory(config={"maxmemory": "64mb", "maxmemory-policy": "allkeys-lru"})
    roles_on(sessions=bad, doctor_settings={"CHECKS": "always"})
    with pytest.raises(SystemCheckError) as excinfo:
        deploy_check(deploy=False)
    assert str(excinfo.value).count("redisroles.E120") == 1
    with pytest.raises(SystemCheckError) as excinfo:  # --deploy does not run them twice
        deploy_check()
    assert str(excinfo.value).count("redisroles.E120") == 1

    roles_on(sessions=bad, doctor_settings={"CHECKS": "never"})
    out, err = deploy_check()
    assert "E120" not in out + err


@pytest.mark.parametrize(
    ("doctor_settings", "needle"),
    [
        ({"CHECKS": "sometimes"}, "must be one of deploy, always, never"),
        ({"MAX_KEYS": -1}, "'MAX_KEYS'] must be a positive number"),
        ({"MAX_KEY": 10}, "unknown key 'MAX_KEY'"),
    ],
)
def test_malformed_doctor_setting_is_an_error(roles_on, doctor_settings, needle) -> None:
    roles_on(doctor_settings=doctor_settings)
    with pytest.raises(SystemCheckError) as excinfo:
        deploy_check(deploy=False)
    assert "redisroles.E190" in str(excinfo.value)
    assert needle in str(excinfo.value)
