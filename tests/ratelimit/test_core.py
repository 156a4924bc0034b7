"""The limiter against real Redis: exact counts, keys, TTLs, one command per check."""

from __future__ import annotations

import threading
import time

import pytest
from django.test import RequestFactory

from django_redisroles import conf
from django_redisroles.ratelimit import check, make_policy
from django_redisroles.ratelimit.limiter import LIMIT

from .conftest import all_keys, calls, commandstats, data_node, reset_stats

ALGORITHMS = ["fixed", "sliding", "gcra"]
rf = RequestFactory()


def req(ip: str = "198.51.100.1", path: str = "/", **extra: str):
    return rf.get(path, REMOTE_ADDR=ip, **extra)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_exactly_the_limit_passes(algorithm: str) -> None:
    policy = make_policy("5/m", "ip", algorithm=algorithm, group="t")
    results = [check(req(), [policy]) for _ in range(8)]
    assert [r.limited for r in results] == [False] * 5 + [True] * 3
    assert [r.remaining for r in results[:5]] == [4, 3, 2, 1, 0]
    refused = results[5]
    assert refused.blocked
    assert 0 < refused.retry_after <= 120
    # another client has its own budget
    assert not check(req("198.51.100.2"), [policy]).limited


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_keys_are_namespaced_hashed_and_expire(algorithm: str, redis_client) -> None:
    policy = make_policy("5/m", "header:x-api-key", algorithm=algorithm, group="t")
    hostile = "x" * 5000 + "}{:*\n"
    check(req(HTTP_X_API_KEY=hostile), [policy])
    keys = [k.decode() for k in all_keys(redis_client)]
    assert len(keys) == 1
    key = keys[0]
    assert key.startswith(conf.make_key("ratelimit", "{"))
    assert "x" * 20 not in key and len(key) < 80  # bounded, no user text
    ttl = redis_client.pttl(key)
    assert 0 < ttl <= 120_000


def test_stacked_policies_share_a_hash_tag(redis_client) -> None:
    burst = make_policy("5/s", "ip", group="view")
    sustained = make_policy("100/h", "user_or_ip", algorithm="sliding", group="view")
    check(req(), [burst, sustained])
    tags = {k.decode().split("{")[1].split("}")[0] for k in all_keys(redis_client)}
    assert len(all_keys(redis_client)) == 2
    assert len(tags) == 1


def _monitor(server, action) -> list[dict]:
    """Commands the server received while ``action`` ran (MONITOR), scripts' own excluded."""
    events: list[dict] = []
    ready = threading.Event()

    def listen() -> None:
        with server.client() as c, c.monitor() as m:
            ready.set()
            for event in m.listen():
                if "monitor-stop" in event["command"]:
                    return
                events.append(event)

    stopper = server.client()
    stopper.ping()  # connect (and handshake) before MONITOR starts
    thread = threading.Thread(target=listen)
    thread.start()
    ready.wait(5)
    time.sleep(0.1)
    action()
    stopper.echo("monitor-stop")
    stopper.close()
    thread.join(10)
    events = [e for e in events if e.get("client_type") != "lua"]
    if _watched_by_sentinels(server):
        # The Sentinels talk to the master too (PING, INFO, PUBLISH __sentinel__:hello).
        events = [e for e in events if e["command"].split()[0].upper() not in _SENTINEL_TALK]
    return events


_SENTINEL_TALK = {"PING", "INFO", "PUBLISH"}


def _watched_by_sentinels(server) -> bool:
    """Whether Sentinels are connected to ``server`` (their connections are named so)."""
    with server.client() as c:
        names = [str(client.get("name", "")) for client in c.client_list()]
    return any(name.startswith("sentinel-") for name in names)


def test_each_check_is_one_evalsha(redis_server, redis_client) -> None:
    policies = [
        make_policy("5/s", "ip", algorithm="gcra", group="v"),
        make_policy("100/h", "ip", algorithm="sliding", group="v"),
        make_policy("1000/d", "ip", algorithm="fixed", group="v"),
    ]
    check(req(), policies)  # first use: connect, load the script
    node = data_node(redis_server, all_keys(redis_client)[0].decode())

    def twenty_checks() -> None:
        for _ in range(20):
            check(req(), policies)

    reset_stats(redis_server)
    events = _monitor(node, twenty_checks)
    with node.client() as c:
        stats = commandstats(c)
    assert calls(redis_server) == 20  # on that master only
    assert [e["command"].split()[0].upper() for e in events] == ["EVALSHA"] * 20
    assert all(LIMIT.sha in e["command"] for e in events)
    assert stats["evalsha"] == 20
    assert "eval" not in stats and "script|load" not in stats


async def test_each_async_check_is_one_evalsha(redis_server, redis_client) -> None:
    import asyncio

    from django_redisroles.ratelimit import acheck

    policies = [
        make_policy("5/s", "ip", algorithm="gcra", group="va"),
        make_policy("100/h", "user_or_ip", algorithm="sliding", group="va"),
    ]
    await acheck(req(), policies)  # first use: connect, load the script
    node = data_node(redis_server, all_keys(redis_client)[0].decode())
    loop = asyncio.get_running_loop()

    def twenty_checks() -> None:  # runs in _monitor's caller thread: hand them to the loop
        for _ in range(20):
            asyncio.run_coroutine_threadsafe(acheck(req(), policies), loop).result(10)

    reset_stats(redis_server)
    events = await asyncio.to_thread(_monitor, node, twenty_checks)
    with node.client() as c:
        stats = commandstats(c)
    assert [e["command"].split()[0].upper() for e in events] == ["EVALSHA"] * 20
    assert stats["evalsha"] == 20


def test_script_is_reloaded_after_script_flush(redis_client) -> None:
    policy = make_policy("5/m", "ip", group="t")
    assert not check(req(), [policy]).limited
    redis_client.script_flush()
    result = check(req(), [policy])
    assert not result.failed and result.remaining == 3
    assert redis_client.script_exists(LIMIT.sha) == [True]


def test_a_refused_request_consumes_no_other_policy() -> None:
    per_ip = make_policy("5/m", "ip", group="t")
    per_param = make_policy("2/m", "get:k", group="t")
    for _ in range(2):
        assert not check(rf.get("/?k=a", REMOTE_ADDR="192.0.2.9"), [per_ip, per_param]).limited
    refused = check(rf.get("/?k=a", REMOTE_ADDR="192.0.2.9"), [per_ip, per_param])
    assert refused.limited
    by_name = {r.policy.key_label: r for r in refused.results}
    assert by_name["ip"].allowed and not by_name["get:k"].allowed
    # the per-IP budget still has 3: the refused request took nothing from it
    results = [check(rf.get("/?k=b", REMOTE_ADDR="192.0.2.9"), [per_ip]) for _ in range(4)]
    assert [r.limited for r in results] == [False, False, False, True]


def test_methods_and_exempt_requests_are_not_counted(redis_client) -> None:
    post_only = make_policy("1/m", "ip", methods=["post"], group="t")
    for _ in range(3):
        assert not check(req(), [post_only]).limited
    assert all_keys(redis_client) == []
    per_user = make_policy("1/m", "user", group="t")
    anonymous = req()  # no request.user at all: the "user" key does not apply
    assert check(anonymous, [per_user]).results == []


def test_ipv6_clients_share_their_64() -> None:
    policy = make_policy("2/m", "ip", group="t")
    assert not check(req("2001:db8:1:2::1"), [policy]).limited
    assert not check(req("2001:db8:1:2:ffff::9"), [policy]).limited
    assert check(req("2001:db8:1:2::77"), [policy]).limited
    assert not check(req("2001:db8:1:3::1"), [policy]).limited


def test_ipv6_prefix_is_configurable(settings) -> None:
    settings.REDISROLES = {**settings.REDISROLES, "ROLES": {"ratelimit": {"IPV6_PREFIX": 128}}}
    policy = make_policy("1/m", "ip", group="t")
    assert not check(req("2001:db8::1"), [policy]).limited
    assert not check(req("2001:db8::2"), [policy]).limited
    assert check(req("2001:db8::1"), [policy]).limited


def _redis_seconds(client) -> float:
    sec, usec = client.time()
    return sec + usec / 1e6


def test_gcra_has_no_window_boundary_burst(redis_client) -> None:
    """The seed's fixed window lets 2x the limit through around a boundary; GCRA does not."""
    for attempt in range(3):  # a loaded machine may stretch the 60 ms scenario; retry it
        gcra = make_policy("10/s", "ip", algorithm="gcra", group=f"gcra{attempt}")
        fixed = make_policy("10/s", "ip", algorithm="fixed", group=f"fixed{attempt}")
        # just before a whole second (the fixed window's boundary), by Redis' clock
        now = _redis_seconds(redis_client)
        boundary = int(now) + (1 if now % 1 < 0.9 else 2)
        time.sleep(boundary - now - 0.05)
        started = time.monotonic()
        passed = {"gcra": 0, "fixed": 0}
        for _ in range(10):
            passed["gcra"] += not check(req(), [gcra]).limited
            passed["fixed"] += not check(req(), [fixed]).limited
        if _redis_seconds(redis_client) >= boundary:
            continue  # a loaded machine woke us too late: the first burst is not before it
        time.sleep(max(0.0, 0.06 - (time.monotonic() - started)))  # cross the boundary
        for _ in range(10):
            passed["gcra"] += not check(req(), [gcra]).limited
            passed["fixed"] += not check(req(), [fixed]).limited
        elapsed = time.monotonic() - started
        # GCRA admits the burst plus one per 100 ms elapsed, whatever the clock says.
        assert passed["gcra"] <= 10 + int(elapsed / 0.1)
        if elapsed < 0.1:
            assert passed["gcra"] == 10
            assert passed["fixed"] == 20  # the boundary burst GCRA prevents
            return
    pytest.fail("no clean boundary scenario (first burst before it, all in 100 ms) in 3 tries")


def test_gcra_steady_rate_never_exceeds_limit_per_window(redis_client) -> None:
    """Hammering for 1.5 s: after the first burst, every 1 s window holds at most the limit."""
    policy = make_policy("10/s", "ip", algorithm="gcra", group="steady")
    admitted: list[float] = []
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        r = check(req(), [policy])
        if not r.limited:
            admitted.append(time.monotonic())
        time.sleep(0.005)
    assert 10 <= len(admitted) <= 10 + 15 + 1
    steady = [t for t in admitted[10:]]
    for i, t in enumerate(steady):
        in_window = [u for u in steady[i:] if u < t + 1.0]
        assert len(in_window) <= 10 + 1  # +1: a window can catch both ends of a 100 ms step


def _sleep_until(redis_client, period: float, fraction: float) -> None:
    """Sleep until ``fraction`` of the way into the next ``period``-second window (Redis clock)."""
    now = _redis_seconds(redis_client)
    target = (now // period + 1) * period + fraction * period
    time.sleep(target - now)


def test_sliding_window_weighs_the_previous_window(redis_client) -> None:
    policy = make_policy("4/2s", "ip", algorithm="sliding", group="slide")
    _sleep_until(redis_client, 2.0, 0.05)
    assert [check(req(), [policy]).limited for _ in range(5)] == [False] * 4 + [True]
    # 62.5 % into the next window, 37.5 % of the previous one still counts: 1.5 of 4
    _sleep_until(redis_client, 2.0, 0.625)
    results = [check(req(), [policy]) for _ in range(3)]
    assert [r.limited for r in results] == [False, False, True]
    assert 0 < results[2].retry_after <= 0.5  # until enough of the old window slid out


async def test_async_check_reloads_the_script_too(redis_client) -> None:
    from django_redisroles.ratelimit import acheck

    policy = make_policy("5/m", "ip", group="t-async")
    assert not (await acheck(req(), [policy])).limited
    redis_client.script_flush()
    result = await acheck(req(), [policy])
    assert not result.failed and result.remaining == 3


def test_a_named_group_is_one_budget_wherever_it_is_stacked() -> None:
    from django.http import HttpResponse

    from django_redisroles.ratelimit import rate_limit

    def a(request):
        return HttpResponse()

    def b(request):
        return HttpResponse()

    # the shared "search" budget, stacked on different per-view limits
    view_a = rate_limit("2/m", group="search")(rate_limit("100/m")(a))
    view_b = rate_limit("2/m", group="search")(rate_limit("50/m")(b))
    codes = [view_a(req()).status_code, view_b(req()).status_code, view_a(req()).status_code]
    assert codes == [200, 200, 429]
    # ... and a default-group limit stacked on it stays the view's own
    view_c = rate_limit("1/m")(rate_limit("5/m", group="other")(a))
    view_d = rate_limit("1/m")(rate_limit("5/m", group="other")(b))
    assert [view_c(req()).status_code, view_d(req()).status_code] == [200, 200]
