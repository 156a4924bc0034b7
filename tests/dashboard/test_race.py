"""Fixed vs sliding vs GCRA at a window boundary, on the real limiter."""

from __future__ import annotations

import pytest

from django_redisroles.ratelimit import stats
from testproject.dashboard import race

pytestmark = pytest.mark.slow


async def test_only_the_fixed_window_lets_both_bursts_through() -> None:
    result = await race.run()
    summary = result["summary"]
    # 10 just before the boundary, 10 just after: all 20 through a fixed window ...
    assert summary["fixed"]["around_boundary"] == 20
    # ... about the limit through the others.
    assert summary["sliding"]["around_boundary"] <= race.LIMIT + 1
    assert summary["gcra"]["around_boundary"] <= race.LIMIT + 2
    arrivals = len(race.schedule())
    for algorithm in ("fixed", "sliding", "gcra"):
        s = summary[algorithm]
        assert s["allowed"] + s["refused"] == arrivals
    assert len(result["events"]) == 3 * arrivals
    assert stats().checks >= 3 * arrivals  # real decisions of the limiter


def test_the_schedule() -> None:
    times = race.schedule()
    assert times[:20] == [race.BEFORE] * 10 + [race.AFTER] * 10
    assert times[-1] <= race.STEADY_UNTIL
