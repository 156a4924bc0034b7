"""What ``t`` in the ``RateLimit`` header means, per algorithm, and that it holds.

``t`` (and ``X-RateLimit-Reset``) is the seconds until more quota is
available; on a refusal it equals ``Retry-After``; it stays within the
window (the sliding window's documented exception: up to ``w + w/q`` right
after a burst). docs/ratelimit.md, "What t means".
"""

from __future__ import annotations

import math
import time

import pytest
from django.test import RequestFactory

from django_redisroles.ratelimit import check, make_policy

pytestmark = [pytest.mark.urls("tests.ratelimit.urls"), pytest.mark.django_db]

ALGORITHMS = ["fixed", "sliding", "gcra"]


def _parse(response) -> tuple[int, int]:
    """(r, t) of the RateLimit header."""
    params = dict(p.split("=") for p in response["RateLimit"].split(";")[1:])
    return int(params["r"]), int(params["t"])


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_t_bounds_and_retry_after_on_every_response(client, ratelimit_settings, algorithm) -> None:
    q, w = 5, 60
    ratelimit_settings(
        RULES=[{"path": "/plain/", "rate": f"{q}/m", "algorithm": algorithm, "name": "p"}],
        HEADERS="both",
        HEADERS_ON_ALLOWED=True,
    )
    responses = [client.get("/plain/") for _ in range(q + 2)]
    assert [r.status_code for r in responses] == [200] * q + [429, 429]
    # The sliding window's one exception: refused right after a burst, up to w + w/q.
    bound = {"fixed": w, "gcra": math.ceil(w / q), "sliding": w}[algorithm]
    refused_bound = {"sliding": w + math.ceil(w / q)}.get(algorithm, bound)
    for response in responses:
        r, t = _parse(response)
        limit = bound if response.status_code == 200 else refused_bound
        assert 0 <= t <= limit, (algorithm, response["RateLimit"])
        assert response["X-RateLimit-Reset"] == str(t)  # the same number, legacy name
        if r < q:
            assert t >= 1  # some quota is used: it comes back, and t says when
    for refused in responses[q:]:
        r, t = _parse(refused)
        assert r == 0
        assert int(refused["Retry-After"]) == t  # Retry-After <= t, and nothing in between


def _redis_seconds(client) -> float:
    sec, usec = client.time()
    return sec + usec / 1e6


def _req():
    return RequestFactory().get("/", REMOTE_ADDR="198.51.100.7")


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_t_is_when_a_refused_client_gets_in(redis_client, algorithm) -> None:
    """Refused at half of t, let in just after t: the header tells the truth."""
    policy = make_policy("4/3s", "ip", algorithm=algorithm, group=f"t-{algorithm}")
    # Start a window a little after its beginning (fixed and sliding count per window).
    now = _redis_seconds(redis_client)
    time.sleep((now // 3 + 1) * 3 + 0.3 - now)
    results = [check(_req(), [policy]) for _ in range(5)]
    assert [r.limited for r in results] == [False] * 4 + [True]
    refused = results[4].results[0]
    t = refused.reset_after
    assert t == refused.retry_after > 0
    assert t <= {"fixed": 3, "gcra": 3 / 4, "sliding": 3 + 3 / 4}[algorithm] + 0.01
    started = time.monotonic()
    time.sleep(t / 2)
    if time.monotonic() - started < t * 0.9:  # a stalled machine may have slept past t
        assert check(_req(), [policy]).limited
    time.sleep(max(0.0, t - (time.monotonic() - started)) + 0.05)
    assert not check(_req(), [policy]).limited


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_t_is_zero_with_a_full_quota_and_r_grows_after_t(algorithm) -> None:
    policy = make_policy("4/3s", "ip", algorithm=algorithm, group=f"g-{algorithm}")
    first = check(_req(), [policy]).results[0]
    assert first.remaining == 3 and first.reset_after > 0
    other = make_policy("1/s", "ip", algorithm=algorithm, group=f"g2-{algorithm}")
    untouched = check(_req(), [other, policy])  # counted against both
    assert untouched.results[1].remaining == 2
    # A policy nothing was counted against reports its full quota and t = 0.
    full = make_policy("4/3s", "ip", algorithm=algorithm, group=f"z-{algorithm}")
    refused_by_other = check(_req(), [other, full])
    assert refused_by_other.limited
    fresh = refused_by_other.results[1]
    assert fresh.remaining == 4 and fresh.reset_after == 0
