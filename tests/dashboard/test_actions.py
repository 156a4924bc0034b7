"""The dashboard's buttons: who may press them, and what they do to real Redis servers."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.test import Client

from django_redisroles import conf
from django_redisroles.locks import held_locks
from testproject.dashboard import faults, jobs
from testproject.dashboard.sampler import server_label
from tests.pubsub.conftest import receive

pytestmark = pytest.mark.django_db


def csrf_client() -> Client:
    return Client(enforce_csrf_checks=True)


def staff_token(client: Client, user: Any) -> str:
    """Log ``client`` in and read the staff token its dashboard page carries."""
    client.force_login(user)
    match = re.search(r'id="staff-token" value="([^"]+)"', client.get("/").content.decode())
    assert match, "no staff token on the page"
    return match.group(1)


def test_buttons_need_a_post_with_the_csrf_token(demo_user: Any) -> None:
    client = csrf_client()
    client.force_login(demo_user)
    assert client.post("/dashboard/actions/stampede/").status_code == 403  # no token
    assert client.get("/dashboard/actions/stampede/").status_code == 405


def test_demos_need_a_signed_in_user(client: Client) -> None:
    for name in ("stampede", "clear", "compare"):
        response = client.post(f"/dashboard/actions/{name}/")
        assert response.status_code == 403 and "sign in" in response.json()["error"]


def test_stampede_one_load_against_many(client: Client, demo_user: Any) -> None:
    client.force_login(demo_user)
    body = client.post("/dashboard/actions/stampede/").json()
    assert body["callers"] == 50
    assert body["protected"]["loads"] == 1
    assert body["plain"]["loads"] > 1  # most of the 50, on a loaded machine maybe not all


def test_clear_stays_in_the_cache_namespace(client: Client, demo_user: Any) -> None:
    from django.core.cache import cache

    client.force_login(demo_user)  # a session key
    cache.set("a", 1)
    body = client.post("/dashboard/actions/clear/").json()
    assert body["removed"] >= 1
    assert body["before"]["cache"] >= 1 and body["after"]["cache"] == 0
    assert body["after"]["sessions"] == body["before"]["sessions"] >= 1


def test_send_broadcasts_to_the_replay_group(client: Client) -> None:
    layer = get_channel_layer()

    async def listen_then_send() -> dict[str, Any]:
        channel = await layer.new_channel()
        await layer.group_add("notifications", channel)
        from asgiref.sync import sync_to_async

        response = await sync_to_async(client.post)("/dashboard/actions/send/", {"text": "hi"})
        assert response.status_code == 200
        message = await receive(layer, channel)
        assert message["seq"] == response.json()["seq"]
        return message["message"]

    message = async_to_sync(listen_then_send)()
    assert message["text"] == "hi" and message["from"] == "testserver" and message["at"] > 0
    assert client.post("/dashboard/actions/send/", {"text": " "}).status_code == 400
    assert client.post("/dashboard/actions/send/", {"text": "x", "count": "a"}).status_code == 400


def test_send_says_not_sent_when_the_pubsub_redis_is_down(
    client: Client, settings: Any, redis_factory: Any
) -> None:
    server = redis_factory()
    roles = dict(settings.REDISROLES["ROLES"])
    roles["pubsub"] = {**roles["pubsub"], "URL": server.url(), "OPTIONS": {"retry_attempts": 0}}
    settings.REDISROLES = {**settings.REDISROLES, "ROLES": roles}
    server.kill()
    response = client.post("/dashboard/actions/send/", {"text": "lost?"})
    assert response.status_code == 503
    assert response.json()["sent"] == 0 and "not sent" in response.json()["error"]


def test_take_lock_then_it_is_held(client: Client) -> None:
    first = client.post("/dashboard/actions/lock/").json()
    assert first["taken"] is True and first["ttl"] == 15
    second = client.post("/dashboard/actions/lock/")
    assert second.status_code == 409
    assert second.json()["error"].startswith("already held; its lease ends in 1")
    assert "host" not in second.json()["error"]  # who holds it: signed-in users, in the table


def test_staff_buttons_need_the_page_token_and_its_session(
    client: Client, demo_user: Any, faults_on
) -> None:
    from django_redisroles.sessions import logout_everywhere

    token = staff_token(client, demo_user)
    bogus = {"action": "bogus", "server": "x"}  # past the staff check: a 400
    assert client.post("/dashboard/actions/fault/", {**bogus, "token": token}).status_code == 400
    for forged in ("", "forged", token[:-2] + "xx"):
        for url in ("/dashboard/actions/fault/", "/dashboard/actions/job/"):
            assert client.post(url, {**bogus, "token": forged}).status_code == 403
    other = Client()
    other.force_login(demo_user)  # the same user, another session: not this page's token
    denied = other.post("/dashboard/actions/fault/", {**bogus, "token": token})
    assert denied.status_code == 403 and "another session" in denied.json()["error"]
    logout_everywhere(demo_user)  # the page stays open, its session is gone
    ended = client.post("/dashboard/actions/fault/", {**bogus, "token": token})
    assert ended.status_code == 403 and "ended" in ended.json()["error"]


def test_staff_token_stands_in_while_the_sessions_redis_is_down(
    client: Client, demo_user: Any, faults_on, settings: Any, redis_factory: Any
) -> None:
    server = redis_factory()
    roles = dict(settings.REDISROLES["ROLES"])
    roles["sessions"] = {**roles["sessions"], "URL": server.url(), "OPTIONS": {"retry_attempts": 0}}
    settings.REDISROLES = {**settings.REDISROLES, "ROLES": roles}
    token = staff_token(client, demo_user)
    server.kill()
    response = client.post("/dashboard/actions/fault/", {"action": "bogus", "token": token})
    assert response.status_code == 400  # through the staff check: "start" would work here
    assert client.get("/dashboard/probe/session/").status_code == 503  # the session itself: no


def test_failure_modes_are_off_without_debug(client: Client, demo_user: Any) -> None:
    token = staff_token(client, demo_user)
    response = client.post("/dashboard/actions/fault/", {"action": "pause", "token": token})
    assert response.status_code == 403 and "DEMO_FAULTS" in response.json()["error"]


def _on_own_server(settings: Any, server: Any, role: str = "locks") -> str:
    roles = dict(settings.REDISROLES["ROLES"])
    roles[role] = {**roles[role], "URL": server.url()}
    settings.REDISROLES = {**settings.REDISROLES, "ROLES": roles}
    return server_label(server.url())


def test_pause_holds_every_client_of_that_server(
    client: Client, demo_user: Any, faults_on, settings: Any, redis_factory: Any
) -> None:
    server = redis_factory()
    label = _on_own_server(settings, server)
    token = staff_token(client, demo_user)
    response = client.post(
        "/dashboard/actions/fault/",
        {"action": "pause", "server": label, "seconds": "1", "token": token},
    )
    assert response.status_code == 200
    started = time.monotonic()
    with server.client(socket_timeout=5) as probe:
        assert probe.ping() is True
    assert time.monotonic() - started > 0.7  # it waited for the pause to end
    shared = server_label(conf.role_url("cache"))
    assert shared != label  # the other roles' server was not paused
    assert next(f for f in faults.describe() if f["label"] == label)["can_stop"] is False
    unknown = {"action": "pause", "server": "nowhere:1", "token": token}
    assert client.post("/dashboard/actions/fault/", unknown).status_code == 404
    bad = {"action": "pause", "server": label, "seconds": "soon", "token": token}
    assert client.post("/dashboard/actions/fault/", bad).status_code == 400


def test_stop_and_start_only_what_the_demo_started(
    client: Client, demo_user: Any, faults_on, settings: Any, redis_factory: Any
) -> None:
    server = redis_factory(persistence=True)
    label = _on_own_server(settings, server)
    token = staff_token(client, demo_user)
    post = {"server": label, "token": token}
    assert client.post("/dashboard/actions/fault/", {**post, "action": "stop"}).status_code == 404
    faults.register(server)
    try:
        with server.client() as c:
            c.set("kept", "yes")
        stop = client.post("/dashboard/actions/fault/", {**post, "action": "stop"})
        assert stop.status_code == 200
        assert not server.running
        with pytest.raises(redis.ConnectionError), server.client() as c:
            c.ping()
        start = client.post("/dashboard/actions/fault/", {**post, "action": "start"})
        assert start.status_code == 200 and server.running
        with server.client() as c:
            assert c.get("kept") == b"yes"  # back with its data
    finally:
        faults._owned.clear()


@pytest.mark.slow
def test_a_job_takes_the_lock_and_a_second_refuses(
    client: Client, demo_user: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The job is `manage.py nightly_report` with the environment of this process:
    # the demo's settings, as in the demo (not the suite's DJANGO_SETTINGS_MODULE).
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "testproject.settings")
    monkeypatch.setenv("DJANGO_DB", str(tmp_path / "demo.sqlite3"))
    token = staff_token(client, demo_user)
    first = client.post("/dashboard/actions/job/", {"token": token})
    assert first.status_code == 200
    pid = first.json()["started"]["pid"]
    try:
        deadline = time.monotonic() + 30
        while not any(o.name == "nightly_report" for o in held_locks()):
            assert time.monotonic() < deadline, jobs.describe()
            time.sleep(0.1)
        client.post("/dashboard/actions/job/", {"token": token})
        deadline = time.monotonic() + 30
        while jobs.describe()[0]["running"]:
            assert time.monotonic() < deadline, jobs.describe()
            time.sleep(0.1)
        second = jobs.describe()[0]
        assert second["exit"] == 1 and "already running on host" in second["last_line"]
    finally:
        for run in jobs._runs:
            if run.process.pid == pid:
                run.process.terminate()  # SIGTERM: it releases the lock on its way out
                run.process.wait(20)
    assert not any(o.name == "nightly_report" for o in held_locks())


def test_cutting_the_subscribers_loses_nothing_on_the_replay_group(
    client: Client, demo_user: Any, faults_on
) -> None:
    layer = get_channel_layer()
    label = server_label(conf.role_url("pubsub"))
    token = staff_token(client, demo_user)

    async def scenario() -> list[Any]:
        from asgiref.sync import sync_to_async

        channel = await layer.new_channel()
        await layer.group_add("notifications", channel, events=True)
        post = {"action": "drop", "server": label, "token": token}
        response = await sync_to_async(client.post)("/dashboard/actions/fault/", post)
        assert response.status_code == 200 and response.json()["dropped"] >= 1
        return [await receive(layer, channel) for _ in range(4)]

    before = dict(layer.stats)
    received = async_to_sync(scenario)()
    texts = [m["message"]["text"] for m in received if m["type"] == "notify"]
    assert texts == [f"sent during the cut #{n}" for n in (1, 2, 3)]  # in order, none lost
    assert any(m["type"] == "redisroles.lost" for m in received)  # and the consumer was told
    assert layer.stats["reconnects"] > before.get("reconnects", 0)


def test_every_node_is_a_server_of_its_own_and_stop_says_it_is_demo_only(
    client: Client, demo_user: Any, faults_on
) -> None:
    """On a Redis Cluster or under Sentinel each node has its row: a pause names one node
    (a replica here: pausing a master would make Sentinel or the cluster fail it over);
    stop/start, for a server the demo did not start, say so."""
    token = staff_token(client, demo_user)
    rows = {r["label"]: r for r in faults.describe()}
    kind = conf.topology_of(conf.role_url("cache")).kind
    nodes = sorted(r["node"] for r in rows.values())
    if kind == "single":
        assert nodes == ["server"]
    elif kind == "cluster":
        assert nodes.count("master") >= 3 and "replica" in nodes
    else:
        assert nodes.count("master") == 1 and "replica" in nodes
    target = next(r for r in rows.values() if r["node"] in ("replica", "server"))
    assert all(r["can_stop"] is False for r in rows.values())
    post = {"server": target["label"], "token": token}
    response = client.post("/dashboard/actions/fault/", {**post, "action": "pause", "seconds": 1})
    assert response.status_code == 200
    host, port = target["label"].rsplit(":", 1)
    started = time.monotonic()
    with redis.Redis(host, int(port), socket_timeout=5) as probe:
        assert probe.ping() is True
    assert time.monotonic() - started > 0.5  # that node waited for the pause to end
    after = faults.describe()
    assert {f["label"] for f in after} == set(rows)  # the same nodes, each by its own label
    assert {f["label"] for f in after if f["paused_for"] > 0} <= {target["label"]}  # only it
    stop = client.post("/dashboard/actions/fault/", {**post, "action": "stop"})
    assert stop.status_code == 404
    assert "only for a redis-server the demo started" in stop.json()["error"]
