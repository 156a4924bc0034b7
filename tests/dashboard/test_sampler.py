"""The dashboard's sampler: every source each second, a stuck one never holding the others."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from testproject.dashboard.sampler import Rate, Sampler, refusals, server_label

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sampler() -> Iterator[Sampler]:
    s = Sampler(interval=0.2).start()
    yield s
    s.stop()


def until(check: Any, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def test_every_source_is_read_and_charted(sampler: Sampler) -> None:
    sources = ("cache", "sessions", "ratelimit", "pubsub", "locks", "instances", "doctor")
    until(lambda: all(sampler.snapshot()["sources"][s]["data"] is not None for s in sources))
    snap = sampler.snapshot()
    assert all(snap["sources"][s]["error"] is None for s in sources)
    seq = snap["seq"]
    until(lambda: sampler.snapshot()["seq"] >= seq + 3)
    charts = sampler.charts()
    assert {"cache", "ratelimit", "pubsub"} <= set(charts)
    # One server, or each node of a Redis Cluster / Sentinel service: each its row and chart.
    instances = sampler.snapshot()["sources"]["instances"]["data"]
    assert all(s["up"] for s in instances.values())
    assert sum(s["node"] in ("server", "master") for s in instances.values()) >= 1
    assert {k for k in charts if k.startswith("server:")} == {f"server:{k}" for k in instances}
    for label in instances:
        assert len(charts[f"server:{label}"]) >= 3 and charts[f"server:{label}"][-1][1] > 0
    doctor = sampler.snapshot()["sources"]["doctor"]["data"]
    assert set(instances) <= set(doctor["servers"])
    findings = [f["id"] for label in instances for f in doctor["servers"][label]["findings"]]
    assert "redisroles.W123" in findings


def test_a_dead_server_stops_only_its_panels(
    sampler: Sampler, settings: Any, redis_factory: Any
) -> None:
    server = redis_factory()
    roles = dict(settings.REDISROLES["ROLES"])
    roles["locks"] = {**roles["locks"], "URL": server.url(), "OPTIONS": {"retry_attempts": 0}}
    settings.REDISROLES = {**settings.REDISROLES, "ROLES": roles}
    label = server_label(server.url())
    until(lambda: (sampler.snapshot()["sources"]["instances"]["data"] or {}).get(label))
    server.kill()
    until(lambda: sampler.snapshot()["sources"]["locks"]["error"])
    snap = sampler.snapshot()
    assert "ConnectionError" in snap["sources"]["locks"]["error"]
    # Its row says so (on a cluster, reading every node's INFO may end a little later).
    until(lambda: sampler.snapshot()["sources"]["instances"]["data"][label]["up"] is False)
    snap = sampler.snapshot()
    # The others keep being read.
    seq = snap["seq"]
    until(lambda: sampler.snapshot()["sources"]["cache"]["seq"] > seq)
    assert sampler.snapshot()["sources"]["sessions"]["error"] is None


def test_a_hung_server_is_waited_for_not_waited_on(
    sampler: Sampler, settings: Any, redis_factory: Any
) -> None:
    server = redis_factory()
    roles = dict(settings.REDISROLES["ROLES"])
    roles["locks"] = {**roles["locks"], "URL": server.url()}
    settings.REDISROLES = {**settings.REDISROLES, "ROLES": roles}
    until(lambda: sampler.snapshot()["sources"]["locks"]["data"] is not None)
    with server.client() as client:
        client.execute_command("CLIENT", "PAUSE", 3000, "ALL")
    until(lambda: (sampler.snapshot()["sources"]["locks"]["waiting"] or 0) > 1)
    before = sampler.snapshot()["sources"]["cache"]["seq"]
    until(lambda: sampler.snapshot()["sources"]["cache"]["seq"] >= before + 3)


def test_refusals_come_from_the_ratelimited_signal(client: Client) -> None:
    for _ in range(6):
        response = client.get("/dashboard/try/gcra/")
    assert response.status_code == 429
    [refusal] = list(refusals)
    assert refusal["path"] == "/dashboard/try/gcra/"
    assert refusal["algorithms"] == ["gcra"] and refusal["refused"] is True
    assert refusal["retry_after"] > 0


def test_rates_are_per_second_over_a_few_readings() -> None:
    clock = iter([100.0, 101.0, 102.0, 110.0])
    rate = Rate(window=5, clock=lambda: next(clock))
    assert rate({"hits": 10}) == {"hits": 0.0}
    assert rate({"hits": 12}) == {"hits": 2.0}
    assert rate({"hits": 14}) == {"hits": 2.0}  # (14 - 10) / 2 s
    assert rate({"hits": 14}) == {"hits": 0.0}  # the window moved past the old readings


def test_the_cache_panel_has_a_near_cache_row_when_it_is_on(settings: Any) -> None:
    from django.core.cache import cache

    settings.CACHES = {
        "default": {
            "BACKEND": "django_redisroles.cache.RedisRolesCache",
            "OPTIONS": {"NEAR_CACHE": True},
        }
    }
    cache.set("k", 1)
    deadline = time.monotonic() + 10
    while not cache.near_stats().tracking:
        assert time.monotonic() < deadline
        cache.get("k")
        time.sleep(0.01)
    cache.get("k")
    near, redis_layer = Sampler().read_cache()["layers"]
    assert near["layer"].startswith("near (") and "lag " in near["layer"]
    assert near["hits"] + near["misses"] >= 1
    assert redis_layer["layer"] == "redis"
