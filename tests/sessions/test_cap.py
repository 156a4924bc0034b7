"""``MAX_SESSIONS``: a user's index is bounded; a login beyond the cap ends the oldest.

Without a cap, 3,000 logins of one user left 3,000 index entries (~1.3 kB
each) for 14 days and made ``user_sessions()`` slow.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_redisroles.sessions import SessionStore, auser_sessions, user_sessions
from django_redisroles.sessions.store import index_key_name

from .conftest import login, session_redis_key


@pytest.fixture
def capped(settings):
    def apply(cap):
        settings.REDISROLES = {
            **settings.REDISROLES,
            "ROLES": {"sessions": {"MAX_SESSIONS": cap, "INDEX_REFRESH": 0}},
        }

    return apply


def _logins(browser, n: int) -> list:
    clients = []
    for i in range(n):
        client = browser(f"10.0.0.{i + 1}")
        login(client)
        clients.append(client)
        time.sleep(1.05)  # index scores are whole seconds: keep the order visible
    return clients


def is_logged_in(client) -> bool:
    return client.get("/sessions/").status_code == 200


def test_a_login_beyond_the_cap_ends_the_oldest_session(user, browser, capped, redis_client):
    capped(2)
    first, second, third = _logins(browser, 3)
    assert not is_logged_in(first)  # ended by the third login
    assert is_logged_in(second) and is_logged_in(third)
    keys = {s.session_key for s in user_sessions(user)}
    assert keys == {second.cookies["sessionid"].value, third.cookies["sessionid"].value}
    assert redis_client.zcard(index_key_name(user.pk)) == 2
    assert not redis_client.exists(session_redis_key(first.cookies["sessionid"].value))


def test_a_saved_session_is_young_again(user, browser, capped):
    """'Oldest' is the session that expires first: a session saved since survives."""
    capped(2)
    first, second = _logins(browser, 2)
    store = SessionStore(first.cookies["sessionid"].value)
    store["cart"] = [1]
    store.save()  # its expiry (and index score) moves past the second's
    time.sleep(1.05)
    (third,) = _logins(browser, 1)
    assert is_logged_in(first) and is_logged_in(third)
    assert not is_logged_in(second)


def test_without_a_cap_nothing_ends(user, browser):
    clients = _logins(browser, 3)
    assert all(is_logged_in(c) for c in clients)


def test_a_session_that_is_not_the_users_any_more_is_dropped_from_the_index_not_ended(
    user, browser, capped, redis_client
):
    capped(2)
    first, second = _logins(browser, 2)
    # The first session now belongs to someone else (a stale index entry).
    stolen = SessionStore(first.cookies["sessionid"].value)
    stolen["_auth_user_id"] = "999"
    stolen.save()
    (third,) = _logins(browser, 1)
    assert redis_client.exists(session_redis_key(first.cookies["sessionid"].value))
    assert is_logged_in(second) and is_logged_in(third)
    assert redis_client.zcard(index_key_name(user.pk)) == 2


@pytest.mark.django_db(transaction=True)
async def test_the_async_store_applies_the_cap(async_user, capped):
    capped(1)
    stores = []
    for _ in range(2):
        store = SessionStore()
        await store.aset("_auth_user_id", str(async_user.pk))
        await store.acreate()
        stores.append(store)
        await asyncio.sleep(1.05)
    listed = [s.session_key for s in await auser_sessions(async_user)]
    assert listed == [stores[1].session_key]
    assert not await SessionStore().aexists(stores[0].session_key)


@pytest.mark.parametrize("cap", [0, -1, "3", 2.5, True])
def test_a_bad_cap_is_a_check_error(cap):
    with (
        override_settings(REDISROLES={"ROLES": {"sessions": {"MAX_SESSIONS": cap}}}),
        pytest.raises(SystemCheckError, match="MAX_SESSIONS"),
    ):
        call_command("check")
