"""The per-user session index, through real logins on the test project."""

from __future__ import annotations

import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from django_redisroles.sessions import (
    SessionStore,
    alogout_everywhere,
    auser_sessions,
    logout_everywhere,
    user_sessions,
)

from .conftest import PASSWORD, all_keys, index_redis_key, login, meta_redis_key, session_redis_key

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)


def is_logged_in(client) -> bool:
    return client.get("/sessions/").status_code == 200


def test_two_browsers_listed_then_logout_everywhere_keeps_the_current_one(
    user, browser, redis_client
) -> None:
    laptop = browser("10.0.0.1", FIREFOX)
    phone = browser("10.0.0.2", IPHONE)
    login(laptop)
    login(phone)
    laptop_key = laptop.cookies["sessionid"].value
    phone_key = phone.cookies["sessionid"].value

    listed = {s.session_key: s for s in user_sessions(user)}
    assert set(listed) == {laptop_key, phone_key}
    assert listed[laptop_key].ip == "10.0.0.1"
    assert listed[laptop_key].device == "Firefox on Linux"
    assert listed[phone_key].ip == "10.0.0.2"
    assert listed[phone_key].device == "Safari on iOS"
    assert listed[phone_key].created is not None
    assert listed[phone_key].last_seen is not None

    assert logout_everywhere(user, keep=laptop_key) == 1
    assert is_logged_in(laptop)
    assert not is_logged_in(phone)
    assert redis_client.exists(session_redis_key(phone_key)) == 0
    assert [s.session_key for s in user_sessions(user)] == [laptop_key]


def test_sessions_page_lists_devices_and_logs_out_others(user, browser) -> None:
    laptop = browser("10.0.0.1", FIREFOX)
    phone = browser("10.0.0.2", IPHONE)
    login(laptop)
    login(phone)
    page = laptop.get("/sessions/").content.decode()
    assert "Firefox on Linux" in page and "Safari on iOS" in page
    assert "10.0.0.1" in page and "10.0.0.2" in page
    assert "this device" in page

    response = laptop.post("/sessions/logout-others/", follow=True)
    assert "Logged out 1 other session(s)." in response.content.decode()
    assert is_logged_in(laptop)
    assert not is_logged_in(phone)

    login(phone)
    phone.post("/sessions/logout-all/")
    assert not is_logged_in(phone)
    assert not is_logged_in(laptop)
    assert user_sessions(user) == []


def test_login_cycles_the_key_and_the_index_follows(user, browser, redis_client) -> None:
    client = browser()
    # An anonymous session first (a test cookie, a cart, ...).
    session = SessionStore()
    session["cart"] = [42]
    session.save()
    client.cookies["sessionid"] = session.session_key
    login(client)
    new_key = client.cookies["sessionid"].value
    assert new_key != session.session_key  # cycle_key() on login: no fixation
    assert redis_client.exists(session_redis_key(session.session_key)) == 0
    assert SessionStore(new_key)["cart"] == [42]
    assert [s.session_key for s in user_sessions(user)] == [new_key]

    assert user_sessions(user)[0].ip == "127.0.0.1"

    # Logging in again as the same user keeps the key (Django); still one entry.
    login(client)
    assert [s.session_key for s in user_sessions(user)] == [client.cookies["sessionid"].value]


def test_logout_removes_the_index_entry(user, browser, redis_client) -> None:
    client = browser()
    login(client)
    client.post("/accounts/logout/")
    assert user_sessions(user) == []
    assert redis_client.zcard(index_redis_key(user.pk)) == 0


@pytest.mark.parametrize("fallbacks", [[], ["an-old-secret-key-" + "y" * 40]])
def test_password_change_ends_the_other_sessions(user, browser, settings, fallbacks) -> None:
    settings.SECRET_KEY_FALLBACKS = fallbacks  # with fallbacks, told apart from a key rotation
    laptop = browser("10.0.0.1", FIREFOX)
    phone = browser("10.0.0.2", IPHONE)
    login(laptop)
    login(phone)
    phone_key = phone.cookies["sessionid"].value
    response = laptop.post(
        "/accounts/password_change/",
        {"old_password": PASSWORD, "new_password1": "n3w-pass!", "new_password2": "n3w-pass!"},
    )
    assert response.status_code == 302
    # The other session is gone from Redis now, not just rejected on its next request.
    assert not SessionStore().exists(phone_key)
    assert is_logged_in(laptop)  # update_session_auth_hash kept this one
    assert not is_logged_in(phone)
    (kept,) = user_sessions(user)
    assert kept.session_key == laptop.cookies["sessionid"].value  # a new key (cycle_key)...
    assert kept.ip == "10.0.0.1"  # ...with its login metadata carried over


def test_secret_key_rotation_logs_nobody_out(user, browser, settings) -> None:
    """Rotating SECRET_KEY with SECRET_KEY_FALLBACKS re-hashes each session on its next
    request (cycle_key + new auth hash, the same calls as a password change). That must
    not be taken for a password change: every device stays logged in."""
    laptop = browser("10.0.0.1", FIREFOX)
    phone = browser("10.0.0.2", IPHONE)
    login(laptop)
    login(phone)
    old_secret = settings.SECRET_KEY
    settings.SECRET_KEY = "a-brand-new-secret-key-" + "x" * 40
    settings.SECRET_KEY_FALLBACKS = [old_secret]
    assert is_logged_in(laptop)  # verified with the fallback, re-hashed with the new key
    assert is_logged_in(phone)
    assert len(user_sessions(user)) == 2


async def test_secret_key_rotation_logs_nobody_out_async(async_user, settings) -> None:
    from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY

    stores = [SessionStore(), SessionStore()]
    for store in stores:
        await store.aset(SESSION_KEY, str(async_user.pk))
        await store.aset(HASH_SESSION_KEY, async_user.get_session_auth_hash())
        await store.asave()
    old_secret = settings.SECRET_KEY
    settings.SECRET_KEY = "a-brand-new-secret-key-" + "x" * 40
    settings.SECRET_KEY_FALLBACKS = [old_secret]
    # What django.contrib.auth.aget_user() does for a session hashed with a fallback key.
    laptop = SessionStore(stores[0].session_key)
    await laptop.aget(SESSION_KEY)
    await laptop.acycle_key()
    await laptop.aset(HASH_SESSION_KEY, async_user.get_session_auth_hash())
    await laptop.asave()
    assert await SessionStore().aexists(stores[1].session_key)
    assert len(await auser_sessions(async_user)) == 2


def test_stale_entries_are_trimmed(user, browser, redis_client) -> None:
    client = browser()
    login(client)
    index = index_redis_key(user.pk)
    meta = meta_redis_key(user.pk)
    # A session that expired (score in the past) and one deleted behind our back.
    redis_client.zadd(index, {"expiredsession1": time.time() - 3600, "vanishedsession": 2e9})
    redis_client.hset(meta, mapping={"expiredsession1": "{}", "vanishedsession": "{}"})
    assert len(user_sessions(user)) == 1  # listing skips and trims the vanished one
    assert redis_client.zscore(index, "vanishedsession") is None

    call_command("clearsessions")
    assert redis_client.zscore(index, "expiredsession1") is None
    assert redis_client.hexists(meta, "expiredsession1") is False
    assert redis_client.zcard(index) == 1
    assert redis_client.ttl(index) > 0


async def test_async_index(user, redis_client) -> None:
    a, b = SessionStore(), SessionStore()
    for store in (a, b):
        await store.aset("_auth_user_id", str(user.pk))
        await store.asave()
    assert {s.session_key for s in await auser_sessions(user)} == {a.session_key, b.session_key}
    assert await alogout_everywhere(user, keep=a) == 1
    assert [s.session_key for s in await auser_sessions(user.pk)] == [a.session_key]
    assert not await b.aexists(b.session_key)
    await a.aflush()
    assert await auser_sessions(user) == []


@pytest.mark.django_db
def test_index_can_be_turned_off(settings, redis_client) -> None:
    settings.REDISROLES = {"ROLES": {"sessions": {"USER_INDEX": False}}}
    store = SessionStore()
    store["_auth_user_id"] = "7"
    store.save()
    assert all_keys(redis_client) == [session_redis_key(store.session_key).encode()]
    # Without an index, "no sessions" / "ended 0" would be a lie: refuse instead.
    with pytest.raises(ImproperlyConfigured, match="USER_INDEX"):
        user_sessions(7)
    with pytest.raises(ImproperlyConfigured, match="USER_INDEX"):
        logout_everywhere(7)


def test_redisroles_sessions_command(user, browser) -> None:
    from io import StringIO

    laptop = browser("10.0.0.1", FIREFOX)
    phone = browser("10.0.0.2", IPHONE)
    login(laptop)
    login(phone)
    out = StringIO()
    call_command("redisroles", "sessions", "alice", stdout=out)
    listing = out.getvalue()
    assert "Firefox on Linux" in listing and "10.0.0.2" in listing

    out = StringIO()
    keep = laptop.cookies["sessionid"].value
    call_command("redisroles", "sessions", "alice", "--logout", "--keep", keep, stdout=out)
    assert "Ended 1 session(s) of alice." in out.getvalue()
    assert is_logged_in(laptop) and not is_logged_in(phone)

    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No user 'bob'"):
        call_command("redisroles", "sessions", "bob")


def test_sessions_json_does_not_print_login_cookies(user, browser) -> None:
    """Session keys are login cookies: --json truncates them like the text output."""
    import json
    from io import StringIO

    laptop = browser("10.0.0.1", FIREFOX)
    login(laptop)
    cookie = laptop.cookies["sessionid"].value
    for extra in ([], ["--json"]):
        out = StringIO()
        call_command("redisroles", "sessions", "alice", *extra, stdout=out)
        assert cookie not in out.getvalue()
        assert cookie[:8] in out.getvalue()
    out = StringIO()
    call_command("redisroles", "sessions", "alice", "--json", "--show-keys", stdout=out)
    assert json.loads(out.getvalue())[0]["session_key"] == cookie


def test_behind_a_trusted_proxy_the_listed_ip_is_the_clients(user, settings) -> None:
    """The index recorded the proxy's address (REMOTE_ADDR) for every session behind one."""
    from django.test import Client

    settings.REDISROLES = {**settings.REDISROLES, "TRUSTED_PROXIES": ["10.9.0.0/16"]}
    behind = Client(REMOTE_ADDR="10.9.0.5", HTTP_X_FORWARDED_FOR="203.0.113.7")
    login(behind)
    spoofed = Client(REMOTE_ADDR="198.51.100.2", HTTP_X_FORWARDED_FOR="203.0.113.99")
    login(spoofed)  # not from a trusted proxy: its header is not believed
    ips = {s.session_key: s.ip for s in user_sessions(user)}
    assert ips[behind.cookies["sessionid"].value] == "203.0.113.7"
    assert ips[spoofed.cookies["sessionid"].value] == "198.51.100.2"
