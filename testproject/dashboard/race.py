"""Fixed window vs sliding window vs GCRA, side by side, at a window boundary.

The same arrivals go to three limits of the same rate (10 per 3 s), one per
algorithm, through the real limiter (``acheck``, one Redis round trip each,
Redis' clock): a burst just before a fixed window ends, another just after
it starts, then a steady request every 200 ms. A fixed window lets both
bursts through (twice the rate within half a second: the boundary burst);
the sliding window and GCRA do not.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from django.http import HttpRequest

from django_redisroles.connections import get_async_redis
from django_redisroles.ratelimit import ALGORITHMS, acheck, make_policy

LIMIT, PERIOD = 10, 3.0
RATE = f"{LIMIT}/{int(PERIOD)}s"
BEFORE, AFTER = -0.4, 0.1  # the two bursts, seconds from the boundary
STEADY_EVERY, STEADY_UNTIL = 0.2, 3.2


def schedule() -> list[float]:
    """Arrival times, seconds from the window boundary."""
    times = [BEFORE] * LIMIT + [AFTER] * LIMIT
    t = AFTER + STEADY_EVERY
    while t <= STEADY_UNTIL:
        times.append(round(t, 3))
        t += STEADY_EVERY
    return times


async def run() -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:12]
    request = HttpRequest()
    request.method = "GET"
    policies = {
        algo: make_policy(
            RATE,
            key=lambda r: run_id,
            algorithm=algo,
            group=f"dashboard-race:{run_id}:{algo}",
            name=algo,
        )
        for algo in ALGORITHMS
    }
    # Fixed windows start at multiples of the period on Redis' clock: find the next one.
    seconds, micros = await get_async_redis("ratelimit").time()
    redis_now = seconds + micros / 1e6
    to_boundary = PERIOD - redis_now % PERIOD
    if to_boundary < -BEFORE + 0.2:  # too close to fire the first burst in time: the next one
        to_boundary += PERIOD
    boundary = time.monotonic() + to_boundary

    events: list[dict[str, Any]] = []

    async def one(algo: str, at: float) -> None:
        result = await acheck(request, [policies[algo]])
        if result.failed:
            events.append({"algo": algo, "t": at, "allowed": True, "failed": True})
            return
        r = result.results[0]
        events.append(
            {
                "algo": algo,
                "t": at,
                "allowed": r.allowed,
                "remaining": r.remaining,
                "retry_after": round(r.retry_after, 3),
            }
        )

    for at in schedule():
        await asyncio.sleep(max(0.0, boundary + at - time.monotonic()))
        await asyncio.gather(*(one(algo, at) for algo in ALGORITHMS))

    summary = {}
    for algo in ALGORITHMS:
        allowed = sorted(e["t"] for e in events if e["algo"] == algo and e["allowed"])
        summary[algo] = {
            "allowed": len(allowed),
            "refused": sum(1 for e in events if e["algo"] == algo and not e["allowed"]),
            "around_boundary": sum(1 for t in allowed if BEFORE <= t <= AFTER),
        }
    return {
        "rate": RATE,
        "limit": LIMIT,
        "period": PERIOD,
        "bursts": [BEFORE, AFTER],
        "events": sorted(events, key=lambda e: (e["t"], e["algo"])),
        "summary": summary,
    }
