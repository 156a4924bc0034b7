"""The lock as a user of `@command_lock` sees it: real `manage.py` processes, real Redis."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pytest
import redis

from django_redisroles.locks import Owner, owner

from .conftest import events, token_of, wait_for

# The demo's command, with the demo's settings (start_job), looked at with them.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("demo_settings")]

LOCK = "demo:locks:{nightly_report}:lock"


def owner_in(client: redis.Redis) -> Owner:
    """The owner as `redisroles locks` would show it (read with our own client)."""
    info = owner("nightly_report")
    assert info is not None
    return info


def starts(job_out: Path) -> list[dict]:
    return [e for e in events(job_out) if e["event"] == "start"]


def test_eight_at_once_exactly_one_runs(start_job, tmp_path: Path) -> None:
    stop = tmp_path / "stop"
    jobs = [start_job("--duration", "60", "--stop-file", str(stop)) for _ in range(8)]
    out = jobs[0].out
    # Seven give up with the holder's name; the eighth is still working.
    losers = []
    wait_for(lambda: sum(job.proc.poll() is not None for job in jobs) == 7, timeout=60)
    (holder_event,) = starts(out)
    holder = next(job for job in jobs if job.pid == holder_event["pid"])
    assert holder.proc.poll() is None
    for job in jobs:
        if job is not holder:
            assert job.wait() == 1
            losers.append(job)
    host = socket.gethostname()
    for job in losers:
        assert (
            f"nightly_report: already running on host {host}, pid {holder.pid}, since "
            in job.stderr
        ), job.stderr
    stop.touch()
    assert holder.wait() == 0, holder.stderr
    assert [e["event"] for e in events(out)] == ["start", "end"]


def test_sigkilled_holder_blocks_until_its_ttl_runs_out(
    start_job, redis_client: redis.Redis
) -> None:
    first = start_job("--duration", "60", ttl=4)
    wait_for(lambda: starts(first.out))
    first.signal(signal.SIGKILL)
    first.wait()
    killed_at = time.monotonic()
    left = redis_client.pttl(LOCK) / 1000
    assert left > 0, "the lease outlives a killed holder"

    second = start_job("--duration", "0")
    assert second.wait() == 1
    assert f"already running on host {socket.gethostname()}, pid {first.pid}" in second.stderr
    if time.monotonic() - killed_at < left - 0.2:
        assert redis_client.exists(LOCK), "expired before its TTL"

    wait_for(lambda: not redis_client.exists(LOCK), timeout=10)
    gone_after = time.monotonic() - killed_at
    assert gone_after >= left - 0.1, "the lock vanished before its TTL"
    third = start_job("--duration", "0")
    assert third.wait() == 0, third.stderr
    assert [e["pid"] for e in starts(first.out)] == [first.pid, third.pid]


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_releases_the_lock_at_once(
    start_job, redis_client: redis.Redis, signum: int, status: int
) -> None:
    job = start_job("--duration", "60", ttl=60)
    wait_for(lambda: starts(job.out))
    assert redis_client.pttl(LOCK) > 50_000
    job.signal(signum)
    assert job.wait() == status
    assert "lock 'nightly_report' released" in job.stderr
    assert not redis_client.exists(LOCK)
    # and the next run starts right away
    assert start_job("--duration", "0").wait() == 0


def test_stalled_holder_cannot_touch_the_next_holders_lock(
    start_job, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """SIGSTOP (a long GC pause, a frozen VM) past the TTL: no renewal happens."""
    stop = tmp_path / "stop"
    stalled = start_job("--duration", "60", ttl=1)
    wait_for(lambda: starts(stalled.out))
    stalled.signal(signal.SIGSTOP)
    wait_for(lambda: not redis_client.exists(LOCK), timeout=5)

    second = start_job("--duration", "60", "--stop-file", str(stop), ttl=30)
    wait_for(lambda: len(starts(second.out)) == 2)
    token = token_of(redis_client, LOCK)
    assert token

    stalled.signal(signal.SIGCONT)  # wakes up believing it holds the lock
    assert stalled.wait() == 1
    assert "lost lock 'nightly_report'" in stalled.stderr, stalled.stderr
    # Its renewal and its release both compared tokens and left the new lease alone.
    assert token_of(redis_client, LOCK) == token
    assert redis_client.pttl(LOCK) > 25_000
    holder = owner_in(redis_client)
    assert holder.pid == second.pid

    stop.touch()
    assert second.wait() == 0
    fences = [e["fence"] for e in starts(stalled.out)]
    assert fences[0] < fences[1]


def test_renewal_keeps_a_job_three_times_its_ttl_locked(
    start_job, redis_client: redis.Redis
) -> None:
    job = start_job("--duration", "3", ttl=1)
    wait_for(lambda: starts(job.out))
    token = token_of(redis_client, LOCK)
    samples = []
    while job.proc.poll() is None:
        before = time.time()
        value = token_of(redis_client, LOCK)
        samples.append((before, time.time(), value))
        time.sleep(0.05)
    assert job.wait() == 0, job.stderr
    start, end = (e["t"] for e in events(job.out))
    assert end - start >= 3
    during = [value for before, after, value in samples if start < before and after < end]
    assert len(during) > 20
    # Held by the same owner throughout, though it outlived its 1 s lease three times.
    assert set(during) == {token}


def test_lock_wait_runs_once_the_holder_finishes(start_job) -> None:
    first = start_job("--duration", "1.5", ttl=30)
    wait_for(lambda: starts(first.out))
    second = start_job("--duration", "0", "--lock-wait", "30", ttl=30)
    assert first.wait() == 0
    assert second.wait() == 0, second.stderr
    log = events(first.out)
    assert [(e["event"], e["pid"]) for e in log] == [
        ("start", first.pid),
        ("end", first.pid),
        ("start", second.pid),
        ("end", second.pid),
    ]
    assert log[2]["t"] >= log[1]["t"]
    assert log[2]["fence"] > log[0]["fence"]
