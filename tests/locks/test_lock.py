"""`Lock` in one process against a real Redis: ownership, fences, renewal, loss, waiting."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
import redis

from django_redisroles.locks import (
    Lock,
    LockError,
    LockHeld,
    LockLost,
    force_release,
    held_locks,
    lock_keys,
    owner,
)
from django_redisroles.locks.watchdog import Watchdog, watchdog
from tests.topohelpers import calls, masters, reset_stats

from .conftest import lock_key_ttls, token_of, wait_for


def test_with_block_holds_and_releases(redis_client: redis.Redis) -> None:
    keys = lock_keys("job")
    assert keys.lock == "rr:locks:{job}:lock"
    with Lock("job", ttl=10) as lock:
        assert lock.held
        assert token_of(redis_client, keys.lock) == lock.token
        assert 9000 < redis_client.pttl(keys.lock) <= 10_000
        info = owner("job")
        assert info is not None
        assert (info.host, info.pid, info.fence, info.ttl) == (
            socket.gethostname(),
            os.getpid(),
            lock.fence,
            10.0,
        )
        assert info.acquired_at is not None and info.renewed_at is not None
        # Not renewed yet (derived from the remaining lease: millisecond precision).
        assert abs((info.renewed_at - info.acquired_at).total_seconds()) < 0.05
    assert not lock.held
    assert owner("job") is None
    assert not redis_client.exists(keys.lock)


def test_second_holder_gets_lock_held_naming_the_owner() -> None:
    with Lock("job", ttl=10), pytest.raises(LockHeld) as excinfo, Lock("job", ttl=10):
        pass
    message = str(excinfo.value)
    assert f"held by host {socket.gethostname()}, pid {os.getpid()}, since " in message
    assert excinfo.value.holder is not None and excinfo.value.holder.pid == os.getpid()
    with Lock("job", ttl=10) as lock:
        assert lock.held


def test_every_key_has_a_ttl_even_after_contention(redis_client: redis.Redis) -> None:
    holder = Lock("busy", ttl=5)
    holder.acquire()
    waiter = Lock("busy", ttl=5, wait=2)
    threading.Timer(0.2, holder.release).start()
    assert waiter.acquire()
    ttls = lock_key_ttls(redis_client)
    assert {key.rsplit(":", 1)[1] for key in ttls} >= {"lock", "fence", "waiting"}
    assert all(ttl > 0 for ttl in ttls.values()), ttls
    # The fence counter lives a day by default (bounded: one key per lock name),
    # refreshed on every acquire.
    assert 23 * 3600 * 1000 < ttls["rr:locks:{busy}:fence"] <= 24 * 3600 * 1000
    waiter.release()
    assert all(ttl > 0 for ttl in lock_key_ttls(redis_client).values())


def test_fences_strictly_increase_even_if_the_counter_expired(redis_client: redis.Redis) -> None:
    fences = []
    for _ in range(20):
        with Lock("f", ttl=5) as lock:
            fences.append(lock.fence)
    assert fences == sorted(set(fences))
    # The counter expiring (no acquire for FENCE_TTL) must not make fences go back.
    redis_client.delete(lock_keys("f").fence)
    with Lock("f", ttl=5) as lock:
        assert lock.fence > fences[-1]


def test_stale_holder_cannot_release_or_extend_the_next_holders_lock(
    redis_client: redis.Redis,
) -> None:
    stale = Lock("s", ttl=0.2, renew=False)
    assert stale.acquire()
    time.sleep(0.3)  # its lease runs out; nobody renews it
    with pytest.raises(LockLost):
        stale.check()
    fresh = Lock("s", ttl=10)
    assert fresh.acquire()
    with pytest.raises(LockLost, match="lost lock 's'"):
        stale.extend()
    assert stale.held  # extend failing does not forget the hold: release still must be tried
    with pytest.raises(LockLost, match="lost lock 's'"):
        stale.release()
    assert token_of(redis_client, lock_keys("s").lock) == fresh.token
    assert redis_client.pttl(lock_keys("s").lock) > 9000
    assert fresh.fence > stale.fence
    fresh.release()


def test_with_block_raises_lock_lost_when_the_lease_ran_out() -> None:
    other = Lock("short", ttl=5)
    with pytest.raises(LockLost), Lock("short", ttl=0.2, renew=False):
        time.sleep(0.3)
        assert other.acquire()  # someone else took it meanwhile
    other.release()  # and still holds it: our exit did not touch it


def test_renewal_keeps_the_lock_past_its_ttl(redis_client: redis.Redis) -> None:
    with Lock("renewed", ttl=0.3) as lock:
        time.sleep(1.0)
        lock.check()
        assert token_of(redis_client, lock_keys("renewed").lock) == lock.token
        info = owner("renewed")
        assert info is not None and info.renewed_at and info.acquired_at
        assert (info.renewed_at - info.acquired_at).total_seconds() > 0.5


def test_one_watchdog_thread_not_one_per_acquire() -> None:
    # Let renewals left by earlier tests (a lost lock, a release in flight) drain
    # first, or one of them dropping mid-test shifts the count.
    wait_for(lambda: watchdog().pending() == 0, timeout=5)
    before = watchdog().pending()
    # A 1.5 s lease (renewed every 0.5 s): one thread renewing 30 locks must not
    # miss a lease on a loaded CI machine (0.3 s leases did, four suites at once).
    locks = [Lock(f"many-{i}", ttl=1.5) for i in range(30)]
    for lock in locks:
        lock.acquire()
    time.sleep(0.25)
    names = [t.name for t in threading.enumerate()]
    assert names.count("redisroles-lock-watchdog") == 1
    assert watchdog().pending() == before + 30
    time.sleep(1.8)  # past the lease: held only because it was renewed
    for lock in locks:
        lock.check()
        lock.release()
    assert watchdog().pending() == before


def test_a_watchdog_whose_thread_ended_starts_another_on_the_next_schedule() -> None:
    class Once(Watchdog):
        def _serve(self) -> None:  # the first thread ends at once
            if not hasattr(self, "ended"):
                self.ended = True
                return
            super()._serve()

    dog = Once()
    lock = Lock("reborn", ttl=1.5, renew=False)
    lock.acquire()
    try:
        dog.schedule(lock, lock._gen, time.monotonic() + 60)
        wait_for(lambda: not dog._running, timeout=5)
        dog.schedule(lock, lock._gen, time.monotonic() + 0.3)  # a new thread renews it
        time.sleep(1.8)  # past the lease: held only because it was renewed
        lock.check()
    finally:
        lock.release()


def test_lock_keys_follow_the_key_prefix(settings) -> None:  # type: ignore[no-untyped-def]
    assert lock_keys("job").lock == "rr:locks:{job}:lock"
    settings.REDISROLES = {**settings.REDISROLES, "KEY_PREFIX": "other"}
    assert lock_keys("job").lock == "other:locks:{job}:lock"


def test_loss_is_noticed_by_the_watchdog_and_reported_on_exit() -> None:
    called = threading.Event()
    lock = Lock("gone", ttl=0.3, on_lost=lambda lock: called.set())
    with pytest.raises(LockLost, match="taken over"), lock:
        force_release("gone")  # an operator (or an expiry) took it away
        wait_for(lambda: lock.lost, timeout=2)
        assert called.is_set()
        with pytest.raises(LockLost):
            lock.check()


def test_interrupt_raises_lock_lost_in_the_main_thread_at_once() -> None:
    started = time.monotonic()
    with pytest.raises(LockLost, match="lost lock 'main'"), Lock("main", ttl=0.3, interrupt=True):
        force_release("main")
        time.sleep(10)  # a blocking call: broken by the watchdog's signal
    assert time.monotonic() - started < 5


def test_interrupt_raises_lock_lost_in_a_worker_thread() -> None:
    result: list[BaseException | None] = []

    def work() -> None:
        try:
            with Lock("worker", ttl=0.3, interrupt=True):
                force_release("worker")
                for _ in range(200):
                    time.sleep(0.02)
            result.append(None)
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            result.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(10)
    assert len(result) == 1 and isinstance(result[0], LockLost), result


def test_waiter_gets_the_lock_when_the_holder_releases() -> None:
    holder = Lock("w", ttl=10)
    holder.acquire()
    threading.Timer(0.3, holder.release).start()
    waiter = Lock("w", ttl=10, wait=5)
    started = time.monotonic()
    assert waiter.acquire()
    assert time.monotonic() - started >= 0.25
    assert waiter.fence > holder.fence
    waiter.release()


def test_waiter_gets_the_lock_when_a_dead_holders_lease_expires() -> None:
    dead = Lock("d", ttl=0.4, renew=False)
    dead.acquire()  # and never released
    waiter = Lock("d", ttl=10, wait=5)
    assert waiter.acquire()
    waiter.release()


def test_wait_times_out_with_lock_held() -> None:
    with Lock("t", ttl=10):
        started = time.monotonic()
        with pytest.raises(LockHeld), Lock("t", ttl=10, wait=0.3):
            pass
        assert 0.3 <= time.monotonic() - started < 3


def test_waiters_queue_up_and_each_gets_its_turn() -> None:
    order: list[int] = []
    holder = Lock("q", ttl=10)
    holder.acquire()

    def wait_turn(i: int) -> None:
        with Lock("q", ttl=10, wait=10):
            order.append(i)
            time.sleep(0.05)

    threads = [threading.Thread(target=wait_turn, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    holder.release()
    for thread in threads:
        thread.join(15)
    assert sorted(order) == [0, 1, 2, 3]


def test_scripts_are_reloaded_after_script_flush(redis_client: redis.Redis) -> None:
    with Lock("ns", ttl=5):
        pass
    redis_client.script_flush()
    with Lock("ns", ttl=5) as lock:
        redis_client.script_flush()
        lock.extend()
    assert owner("ns") is None


def test_held_locks_lists_owners_with_scan(redis_server) -> None:
    with Lock("a:1", ttl=10), Lock("b", ttl=20):
        reset_stats(redis_server)
        found = {info.name: info for info in held_locks(count=1)}
        assert calls(redis_server, "scan") >= len(masters(redis_server))  # every master
        assert calls(redis_server, "keys") == 0
    assert set(found) == {"a:1", "b"}
    assert found["b"].expires_in is not None and 19 < found["b"].expires_in <= 20
    assert held_locks() == []


def test_misuse_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="non-empty string"):
        Lock("")
    with pytest.raises(ValueError, match="positive number"):
        Lock("x", ttl=0)
    with pytest.raises(ValueError, match="wait"):
        Lock("x", wait=-1)
    lock = Lock("x", ttl=5)
    with pytest.raises(LockError, match="not held"):
        lock.release()
    with lock, pytest.raises(LockError, match="not reentrant"):
        lock.acquire()


def test_ttl_default_comes_from_settings(settings) -> None:
    settings.REDISROLES = {**settings.REDISROLES, "ROLES": {"locks": {"TTL": 7}}}
    assert Lock("x").ttl == 7


def test_extend_with_a_new_ttl_changes_the_lease(redis_client: redis.Redis) -> None:
    with Lock("ext", ttl=2) as lock:
        lock.extend(ttl=20)
        info = owner("ext")
        assert info is not None and info.ttl == 20.0 and info.fence == lock.fence
        assert redis_client.pttl(lock_keys("ext").lock) > 19_000
        assert token_of(redis_client, lock_keys("ext").lock) == lock.token
        lock.extend()
        assert redis_client.pttl(lock_keys("ext").lock) > 19_000


def test_extend_of_a_lost_interrupting_lock_raises_once_in_the_caller() -> None:
    lock = Lock("x-int", ttl=5, interrupt=True, renew=False)
    with pytest.raises(LockLost, match="lost lock 'x-int'"), lock:
        force_release("x-int")
        with pytest.raises(LockLost):
            lock.extend()
        time.sleep(0.2)  # no stray signal arrives from the failed extend


def test_extend_to_a_shorter_ttl_renews_on_the_new_schedule(redis_client: redis.Redis) -> None:
    """The watchdog's next renewal was planned for the old ttl / 3: it must follow the new one."""
    with Lock("shorter", ttl=6) as lock:
        lock.extend(ttl=0.6)
        time.sleep(1.5)  # 2.5 leases of the new length; the old plan renews only at 2 s
        lock.check()
        assert token_of(redis_client, lock_keys("shorter").lock) == lock.token


async def test_aextend_to_a_shorter_ttl_renews_on_the_new_schedule(
    redis_client: redis.Redis,
) -> None:
    import asyncio

    async with Lock("ashorter", ttl=6) as lock:
        await lock.aextend(ttl=0.6)
        await asyncio.sleep(1.5)
        lock.check()
        assert token_of(redis_client, lock_keys("ashorter").lock) == lock.token


def test_a_retried_acquire_of_our_own_token_is_a_success(redis_client: redis.Redis) -> None:
    """redis-py retries a command that timed out (retry_attempts, default 2), but the
    server may have run it: the retry then finds the lock held by our own token.
    It must count as acquired, not as "held by host X, pid <ourselves>"."""
    from django_redisroles.connections import get_redis
    from django_redisroles.locks import plan

    lock = Lock("retried", ttl=10)
    keys, args = lock.keys[:3], lock._acquire_args("tok" * 8, None)
    first = plan.ACQUIRE(get_redis("locks"), keys, args)
    again = plan.ACQUIRE(get_redis("locks"), keys, args)
    assert first[0] == 1 and again == [1, first[1]]  # same hold, same fence
    other = plan.ACQUIRE(get_redis("locks"), keys, ("x" * 24, *args[1:]))
    assert other[0] == 0
    assert token_of(redis_client, lock_keys("retried").lock) == "tok" * 8


def test_a_bad_role_setting_is_refused_at_run_time_too(settings) -> None:
    """Check E050's validator runs where checks do not: Lock() names the bad setting."""
    from django.core.exceptions import ImproperlyConfigured

    settings.REDISROLES = {"ROLES": {"locks": {"WAIT_POLL": "1"}}}
    with pytest.raises(ImproperlyConfigured, match="WAIT_POLL"):
        Lock("bad-settings", ttl=5)
    settings.REDISROLES = {"ROLES": {"locks": {"TTL": 7}}}
    assert Lock("bad-settings").ttl == 7.0  # fixed: the next Lock sees it
