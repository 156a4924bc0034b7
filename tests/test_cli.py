"""`manage.py redisroles info`: where each role connects."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command


def test_info_json_lists_every_role_with_shared_pools(redis_server) -> None:
    out = StringIO()
    call_command("redisroles", "info", "--json", stdout=out)
    rows = {row["role"]: row for row in json.loads(out.getvalue())}
    assert set(rows) == {"cache", "sessions", "ratelimit", "pubsub", "locks"}
    assert rows["cache"]["url"] == redis_server.url()
    assert rows["cache"]["error"] is None and rows["cache"]["ping_ms"] >= 0
    # The rate-limit role has its own (shorter) timeouts, hence its own pool.
    assert set(rows["cache"]["shares_pool_with"]) == {"sessions", "pubsub", "locks"}


def test_info_hides_passwords_and_fails_when_unreachable(redis_factory, settings) -> None:
    server = redis_factory()
    settings.REDISROLES = {"URL": f"redis://app:hunter2@127.0.0.1:{server.port}/0"}
    server.kill()
    out = StringIO()
    with pytest.raises(SystemExit) as exc:
        call_command("redisroles", "info", stdout=out)
    assert exc.value.code == 1
    assert "hunter2" not in out.getvalue()
    assert "redis://***@127.0.0.1" in out.getvalue()
    assert "ConnectionError" in out.getvalue()


def test_info_shows_each_near_cache_tracking(redis_server, settings) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redisroles.cache.RedisRolesCache",
            "OPTIONS": {"NEAR_CACHE": True},
        }
    }
    out = StringIO()
    call_command("redisroles", "info", "--json", stdout=out)
    rows = {row["role"]: row for row in json.loads(out.getvalue())}
    (near,) = rows["cache"]["near_caches"]
    assert near["alias"] == "default" and near["tracking"] is True and near["error"] is None
    assert near["lag_ms"] >= 0
    out = StringIO()
    call_command("redisroles", "info", stdout=out)
    assert "near cache 'default': tracking, heartbeat" in out.getvalue()


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("redis+cluster://app:hunter2@127.0.0.1:1,127.0.0.1:2", "RedisClusterException"),
        ("redis+sentinel://app:hunter2@127.0.0.1:1/mymaster/0", "MasterNotFoundError"),
    ],
)
def test_info_on_an_unreachable_topology_says_so(url, error, settings) -> None:
    settings.REDISROLES = {"URL": url, "OPTIONS": {"socket_connect_timeout": 0.5}}
    out = StringIO()
    with pytest.raises(SystemExit) as exc:
        call_command("redisroles", "info", stdout=out)
    assert exc.value.code == 1
    assert "hunter2" not in out.getvalue()
    assert out.getvalue().count(error) == 5  # each role's row, no traceback
