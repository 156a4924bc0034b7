"""The sessions role on one server, a 3-master Redis Cluster and under Sentinel.

A user's index, metadata and sessions share one slot on a cluster, so
``logout_everywhere``, ``user_sessions`` and ``MAX_SESSIONS`` stay one script per
user; a load stays one round trip; a new session waits for a replica (``WAIT``)
where there are replicas, and survives the master being killed under Sentinel.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.contrib.auth import SESSION_KEY
from django.test import Client

from django_redisroles.sessions import SessionStore, durable, logout_everywhere, user_sessions
from django_redisroles.sessions import keys as session_keys
from django_redisroles.testing import SentinelGroup
from django_redisroles.testing.cluster import slot_of
from tests.conftest import session_topology

from .conftest import login

pytestmark = pytest.mark.django_db


def _logged_in(client: Client) -> bool:
    return client.get("/sessions/").status_code == 200


def test_a_users_sessions_stay_one_atomic_step_on_every_topology(
    topology: Any, user: Any, browser: Any, round_trips: Any, settings: Any
) -> None:
    settings.REDISROLES = {**settings.REDISROLES, "ROLES": {"sessions": {"MAX_SESSIONS": 3}}}
    clients = []
    for i in range(4):  # the 4th login ends the oldest (MAX_SESSIONS), atomically
        client = browser(f"10.0.0.{i + 1}")
        client.get("/sessions/")  # an anonymous session first: login() cycles it
        login(client)
        clients.append(client)
        time.sleep(1.05)  # index scores are whole seconds: keep the order visible
    assert not _logged_in(clients[0])
    assert all(_logged_in(c) for c in clients[1:])
    live = {s.session_key for s in user_sessions(user)}
    assert live == {c.cookies["sessionid"].value for c in clients[1:]}
    if topology.__class__.__name__ == "RedisCluster":
        # Index, metadata and every session of the user: one slot.
        slots = {slot_of(session_keys.session_key_name(k)) for k in live}
        slots |= {slot_of(session_keys.index_key_name(user.pk))}
        slots |= {slot_of(session_keys.meta_key_name(user.pk))}
        assert len(slots) == 1
    # A load is one round trip, on every topology.
    store = SessionStore(clients[1].cookies["sessionid"].value)
    round_trips.reset()
    assert store.load()[SESSION_KEY] == str(user.pk)
    assert round_trips.count == 1
    # logout_everywhere: one script per user, the kept session spared.
    assert logout_everywhere(user, keep=clients[3].cookies["sessionid"].value) == 2
    assert [_logged_in(c) for c in clients] == [False, False, False, True]
    assert [s.session_key for s in user_sessions(user)] == [clients[3].cookies["sessionid"].value]


def test_login_keeps_the_anonymous_sessions_data_on_every_topology(
    topology: Any, user: Any, browser: Any
) -> None:
    """On a cluster the session moves into the user's slot at login: data kept, old key gone."""
    client = browser()
    anonymous = SessionStore()
    anonymous["cart"] = [1, 2]
    anonymous.create()
    client.cookies["sessionid"] = anonymous.session_key
    login(client)
    key = client.cookies["sessionid"].value
    assert key != anonymous.session_key
    assert SessionStore(key).load()["cart"] == [1, 2]
    assert not SessionStore().exists(anonymous.session_key)
    assert session_keys.in_user_slot(key, user.pk)


def test_wait_is_on_by_default_where_there_are_replicas(topology: Any, settings: Any) -> None:
    expected = {"RedisServer": 0, "RedisCluster": 1, "SentinelGroup": 1}
    assert durable.replicas() == expected[type(topology).__name__]
    settings.REDISROLES = {**settings.REDISROLES, "ROLES": {"sessions": {"WAIT_REPLICAS": 0}}}
    assert durable.replicas() == 0


# -- Sentinel: WAIT and failover -----------------------------------------------------


@pytest.fixture
def sentinel(settings: Any) -> Any:
    """A Sentinel group of this test's own (its master is killed), every role on it."""
    with SentinelGroup(down_after_ms=800, failover_timeout_ms=3000) as group:
        settings.REDISROLES = {"URL": group.url()}
        yield group


def test_a_new_session_waits_for_the_replica_under_sentinel(
    sentinel: Any, user: Any, browser: Any
) -> None:
    """WAIT_REPLICAS defaults to 1 under Sentinel: the login answers once a replica has
    the session. (Without WAIT the login answers while the replica is stopped.)"""
    replica = sentinel.replicas()[0]
    client = browser()
    resumed: list[float] = []

    def resume_later() -> None:
        time.sleep(0.5)
        resumed.append(time.monotonic())
        replica.resume()

    replica.pause()
    thread = threading.Thread(target=resume_later)
    thread.start()
    try:
        login(client)
        answered = time.monotonic()
    finally:
        thread.join()
    assert resumed and answered >= resumed[0]  # not before the replica could acknowledge
    key = session_keys.session_key_name(client.cookies["sessionid"].value)
    with replica.client() as direct:
        assert direct.exists(key) == 1  # on the replica when the login answered


def test_a_session_survives_the_master_being_killed(sentinel: Any, user: Any, browser: Any) -> None:
    """Logged in (WAIT on), master SIGKILLed: after the failover the same cookie is
    still signed in, on the new master, with no restart; during the switch a request
    gets the documented 503 + Retry-After (never a logout, never a 500)."""
    client = browser()
    login(client)
    assert _logged_in(client)
    old = sentinel.master()
    old.kill()
    statuses = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = client.get("/sessions/")
        statuses.add(response.status_code)
        if response.status_code == 503:
            assert response["Retry-After"]
            assert "sessionid" not in response.cookies  # the cookie is untouched
        elif response.status_code == 200:
            break
        else:  # a redirect to the login page would be a logout
            pytest.fail(f"{response.status_code} during the failover")
        time.sleep(0.2)
    assert response.status_code == 200, statuses
    assert sentinel.master() is not old
    assert _logged_in(client)


def test_a_session_survives_its_cluster_master_being_killed(
    settings: Any, user: Any, browser: Any
) -> None:
    """WAIT on (default on a cluster): the master of the session's slot is SIGKILLed
    right after the login; its replica takes over and the same cookie is still signed in,
    with the documented 503 (never a logout) while the slot has no master."""
    cluster = session_topology("cluster")
    cluster.flushall()
    settings.REDISROLES = {"URL": cluster.url()}
    try:
        client = browser()
        login(client)
        key = session_keys.session_key_name(client.cookies["sessionid"].value)
        cluster.failover(cluster.node_for(key))
        _wait_signed_in(client)
    finally:
        cluster.start()  # the killed node rejoins as a replica


def _wait_signed_in(client: Client) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = client.get("/sessions/")
        if response.status_code == 200:
            return
        assert response.status_code == 503, response.status_code  # not a logout, not a 500
        assert response["Retry-After"]
        time.sleep(0.2)
    pytest.fail("still not signed in 30 s after the failover")
