"""The session store as Redis sees it: TTLs, atomic create/update, serializer, round trips."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import timedelta

import pytest
from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.test import override_settings
from django.utils import timezone

from django_redisroles import conf
from django_redisroles.sessions import SessionStore, plan

from .conftest import all_keys, command_stats, index_redis_key, reset_stats, session_redis_key

AGE = 1209600  # Django's SESSION_COOKIE_AGE default (two weeks)


def ttl_of(redis_client, store: SessionStore) -> int:
    return redis_client.ttl(session_redis_key(store.session_key))


def assert_ttl(redis_client, store: SessionStore, expected: int) -> None:
    ttl = ttl_of(redis_client, store)
    assert expected - 2 <= ttl <= expected, (ttl, expected)


def test_ttl_equals_expiry_age_after_create_update_and_set_expiry(redis_client) -> None:
    store = SessionStore()
    store["cart"] = [1, 2]
    store.create()
    assert_ttl(redis_client, store, AGE)

    store.set_expiry(300)
    store.save()
    assert_ttl(redis_client, store, 300)

    store.set_expiry(timedelta(hours=2))
    store.save()
    assert_ttl(redis_client, store, 7200)

    store.set_expiry(timezone.now() + timedelta(minutes=10))
    store.save()
    assert_ttl(redis_client, store, 600)

    # 0 = "until the browser closes": the cookie has no max-age, Redis keeps
    # the session for SESSION_COOKIE_AGE (as Django's cache engine does).
    store.set_expiry(0)
    store.save()
    assert_ttl(redis_client, store, AGE)

    store.set_expiry(None)
    store.save()
    assert_ttl(redis_client, store, AGE)
    # The data survived every save.
    assert SessionStore(store.session_key)["cart"] == [1, 2]


@override_settings(SESSION_COOKIE_AGE=900, SESSION_EXPIRE_AT_BROWSER_CLOSE=True)
def test_ttl_follows_settings(redis_client) -> None:
    store = SessionStore()
    store["x"] = 1
    store.save()
    assert_ttl(redis_client, store, 900)
    assert store.get_expire_at_browser_close() is True


async def test_ttl_async(redis_client) -> None:
    store = SessionStore()
    await store.aset("x", 1)
    await store.asave()
    assert_ttl(redis_client, store, AGE)
    await store.aset_expiry(120)
    await store.asave()
    assert_ttl(redis_client, store, 120)


def test_expiry_in_the_past_ends_the_session(redis_client) -> None:
    store = SessionStore()
    store["x"] = 1
    store.save()
    store.set_expiry(-5)
    store.save()
    assert redis_client.exists(session_redis_key(store.session_key)) == 0


def test_cycle_key_of_an_expired_session_removes_the_old_key(redis_client, user) -> None:
    store = SessionStore()
    store["_auth_user_id"] = str(user.pk)
    store.save()
    old_key = store.session_key
    store.set_expiry(-1)
    store.cycle_key()
    assert redis_client.exists(session_redis_key(old_key)) == 0
    assert redis_client.exists(session_redis_key(store.session_key)) == 0
    assert redis_client.zscore(index_redis_key(user.pk), old_key) is None


def test_saving_a_deleted_session_raises_and_does_not_resurrect_it(redis_client) -> None:
    first = SessionStore()
    first["step"] = 1
    first.save()
    key = first.session_key
    # Another request (a logout) deletes it while this one still holds it.
    SessionStore(key).delete()
    first["step"] = 2
    with pytest.raises(UpdateError):
        first.save()
    assert redis_client.exists(session_redis_key(key)) == 0


@pytest.mark.parametrize("use_async", [False, True])
async def test_cycle_key_never_resurrects_a_deleted_session(redis_client, user, use_async) -> None:
    """A request holding a session that "log out everywhere" just ended must not bring it
    back under a new key by cycling it (login, password change, key rotation do)."""
    from asgiref.sync import sync_to_async
    from django.contrib.sessions.exceptions import SessionInterrupted

    from django_redisroles.sessions import alogout_everywhere

    store = SessionStore()
    store["_auth_user_id"] = str(user.pk)
    await sync_to_async(store.save)()
    old_key = store.session_key
    await sync_to_async(store.load)()
    assert await alogout_everywhere(user.pk) == 1
    with pytest.raises(SessionInterrupted):
        if use_async:
            await store.acycle_key()
        else:
            await sync_to_async(store.cycle_key)()
    assert all_keys(redis_client, conf.make_key("sessions", "s", "*")) == []
    assert redis_client.zcard(index_redis_key(user.pk)) == 0
    assert old_key is not None


def test_a_retried_cycle_key_script_is_not_taken_for_a_logout(redis_client, user) -> None:
    """redis-py retries a command whose reply was lost (retry_attempts): the second run of
    the cycle_key script finds the old key gone because the first run removed it."""
    store = SessionStore()
    store["_auth_user_id"] = str(user.pk)
    store.save()
    old_key = store.session_key
    store._session_key = store._new_key(store._session, like=old_key)  # its user's slot
    todo = store._plan_save(store._session, must_create=True, old_key=old_key)
    assert plan.result(todo, store._run(todo)) == 1
    assert plan.result(todo, store._run(todo)) == 1  # the retry
    assert redis_client.exists(session_redis_key(old_key)) == 0
    assert SessionStore(store.session_key).load()["_auth_user_id"] == str(user.pk)


def test_concurrent_saves_never_resurrect_a_deleted_session(redis_client) -> None:
    """Many writers race one logout: once deleted, the session stays deleted."""
    store = SessionStore()
    store["n"] = 0
    store.save()
    key = store.session_key
    deleted = threading.Event()
    resurrected_after_delete: list[bool] = []

    def writer() -> None:
        s = SessionStore(key)
        for i in range(200):
            try:
                s["n"] = i
                s.save()
            except UpdateError:
                return
            if deleted.is_set() and redis_client.exists(session_redis_key(key)):
                resurrected_after_delete.append(True)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    SessionStore(key).delete()
    deleted.set()
    for t in threads:
        t.join()
    assert redis_client.exists(session_redis_key(key)) == 0
    assert resurrected_after_delete == []


def test_create_refuses_an_existing_key(redis_client) -> None:
    store = SessionStore()
    store.save()
    clash = SessionStore(store.session_key)
    with pytest.raises(CreateError):
        clash.save(must_create=True)


def test_data_is_json_never_pickle(redis_client) -> None:
    store = SessionStore()
    store["name"] = "Zoë"
    store["n"] = 3
    store.save()
    raw = redis_client.get(session_redis_key(store.session_key))
    # A one-line header (the user-index score, 0 = anonymous; a create's nonce),
    # then plain JSON.
    header, payload = raw.split(b"\n", 1)
    assert re.fullmatch(rb"rr1 0 [0-9a-f]{8}", header)
    assert json.loads(payload) == {"name": "Zoë", "n": 3}
    store["bad"] = object()
    with pytest.raises(TypeError):  # JSON refuses it; nothing is pickled
        store.save()


class PickleSerializer:
    """What a project might still have from Django < 5.0."""

    def dumps(self, obj: object) -> bytes:
        import pickle

        return pickle.dumps(obj)

    def loads(self, data: bytes) -> object:
        import pickle

        return pickle.loads(data)  # the very thing the store must refuse


def test_a_pickle_serializer_is_refused_at_run_time_too(redis_client, settings) -> None:
    """Checks can be silenced (and do not run under gunicorn): the store refuses anyway."""
    from django.core.exceptions import ImproperlyConfigured

    settings.SESSION_SERIALIZER = f"{__name__}.PickleSerializer"
    redis_client.set(session_redis_key("k" * 32), b"rr1 0\n" + PickleSerializer().dumps({"a": 1}))
    with pytest.raises(ImproperlyConfigured, match="SESSION_SERIALIZER"):
        SessionStore("k" * 32).load()
    with pytest.raises(ImproperlyConfigured, match="SESSION_SERIALIZER"):
        SessionStore().save()


@pytest.mark.parametrize(
    ("role", "needle"),
    [
        ({"INDEX_REFRESH": -1}, "INDEX_REFRESH"),
        ({"MAX_SESSIONS": 3, "USER_INDEX": False}, "USER_INDEX"),
        ({"WAIT_REPLICAS": -1}, "WAIT_REPLICAS"),
        ({"WAIT_TIMEOUT": 0}, "WAIT_TIMEOUT"),
    ],
)
def test_a_bad_role_setting_is_refused_at_run_time_too(
    redis_client, settings, role, needle
) -> None:
    """Check E021's validator runs where checks do not: no save with a setting it rejects."""
    from django.core.exceptions import ImproperlyConfigured

    settings.REDISROLES = {"ROLES": {"sessions": role}}
    store = SessionStore()
    store["_auth_user_id"] = "7"
    with pytest.raises(ImproperlyConfigured, match=needle):
        store.save()
    assert all_keys(redis_client) == []
    settings.REDISROLES = {}  # fixed: the next save sees it (no stale options)
    store = SessionStore()
    store.save()
    assert redis_client.exists(session_redis_key(store.session_key)) == 1


def test_corrupted_data_is_an_empty_session_not_an_error(redis_client) -> None:
    store = SessionStore()
    store["x"] = 1
    store.save()
    for junk in (b"\x80\x04not json", b"rr1 x\n{", b"rr1 5\n[1, 2]", b""):
        redis_client.set(session_redis_key(store.session_key), junk, ex=60)
        assert SessionStore(store.session_key).load() == {}


@pytest.mark.parametrize(
    "forged",
    ["x", "../../etc/passwd", "a" * 5000, "abc def ghij", "sess\r\nion", "ключ-сессии-123", "*"],
)
def test_forged_session_key_starts_a_new_session_without_asking_redis(forged, round_trips) -> None:
    store = SessionStore(forged)
    assert store.session_key is None
    round_trips.reset()
    assert store.get("anything") is None
    assert store.exists(forged) is False
    store.delete(forged)
    assert round_trips.count == 0


def test_load_and_save_are_one_round_trip_each(redis_client, round_trips, user) -> None:
    store = SessionStore()
    store["_auth_user_id"] = str(user.pk)  # the user index is written too
    store.save()
    round_trips.reset()
    again = SessionStore(store.session_key)
    assert again["_auth_user_id"] == str(user.pk)
    assert round_trips.count == 1  # load: GET
    again["page"] = 2
    again.save()
    assert round_trips.count == 2  # save: one EVALSHA (SET XX + index)
    again.cycle_key()
    assert round_trips.count == 3  # new key + old one removed, one script


def test_index_is_rewritten_only_when_it_would_lag(redis_client, user) -> None:
    """Saves within INDEX_REFRESH seconds of the indexed expiry are a plain SET XX."""
    index = index_redis_key(user.pk)
    store = SessionStore()
    store["_auth_user_id"] = str(user.pk)
    store.save()
    score = redis_client.zscore(index, store.session_key)
    assert score == pytest.approx(time.time() + AGE, abs=2)
    reset_stats(redis_client)
    for i in range(5):
        again = SessionStore(store.session_key)
        again["n"] = i
        again.save()
    stats = command_stats(redis_client)
    assert stats["cmdstat_set"]["calls"] == 5
    assert "cmdstat_evalsha" not in stats and "cmdstat_zadd" not in stats
    assert redis_client.zscore(index, store.session_key) == score
    # A longer expiry moves the session's end past the entry's: the index follows.
    again.set_expiry(AGE * 2)
    again.save()
    assert redis_client.zscore(index, store.session_key) == pytest.approx(
        time.time() + 2 * AGE, abs=2
    )


def test_index_refresh_zero_writes_the_index_on_every_save(redis_client, user, settings) -> None:
    settings.REDISROLES = {"KEY_PREFIX": "demo", "ROLES": {"sessions": {"INDEX_REFRESH": 0}}}
    store = SessionStore()
    store["_auth_user_id"] = str(user.pk)
    store.save()
    reset_stats(redis_client)
    store["n"] = 1
    store.save()
    assert command_stats(redis_client)["cmdstat_zadd"]["calls"] == 1


async def test_async_load_and_save_are_one_round_trip_each(redis_client, round_trips) -> None:
    store = SessionStore()
    await store.aset("x", 1)
    await store.asave()
    round_trips.reset()
    again = SessionStore(store.session_key)
    assert await again.aget("x") == 1
    await again.aset("x", 2)
    await again.asave()
    assert round_trips.count == 2


def test_every_key_has_a_ttl(redis_client, user) -> None:
    store = SessionStore()
    store["_auth_user_id"] = str(user.pk)
    store.save()
    keys = all_keys(redis_client)
    assert len(keys) == 3  # session, user index, index metadata
    assert all(redis_client.ttl(k) > 0 for k in keys)


def test_key_prefix(redis_client, settings) -> None:
    settings.REDISROLES = {"KEY_PREFIX": "shop"}
    store = SessionStore()
    store.save()
    assert redis_client.exists(session_redis_key(store.session_key)) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "forged", ["x", "a" * 4000, "abc%20def%0d%0aSet-Cookie", '"quoted"', "sess\xe9\xe8\xff-12345"]
)
def test_forged_cookie_over_http_is_a_new_session(forged, client, round_trips) -> None:
    client.cookies["sessionid"] = forged
    round_trips.reset()
    response = client.get("/sessions/")
    assert response.status_code == 302  # anonymous: to the login page, not a 500
    assert response["Location"].startswith("/accounts/login/")
    assert round_trips.count == 0
    response = client.get("/accounts/login/")
    assert response.status_code == 200
