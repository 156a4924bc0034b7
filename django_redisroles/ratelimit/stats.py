"""What the limiter decided in this process: ``ratelimit.stats()``.

Counted where each check is decided (``check`` / ``acheck``, so the
middleware, the decorator and direct calls alike), per process.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..counters import Counters

NAMES: tuple[str, ...] = ("allowed", "limited", "refused", "failed_open", "failed_closed")

counters = Counters(NAMES)


@dataclass(frozen=True)
class RateLimitStats:
    """Decisions of the limiter in this process since start (or ``reset_stats()``).

    One per check: a request checked by the middleware and by a decorator
    counts twice. ``allowed``: every policy had room. ``limited``: over a
    limit (refused, or let through by ``block=False`` / shadow mode).
    ``refused``: the limited ones answered 429. ``failed_open`` /
    ``failed_closed``: Redis could not be asked; the failure policy let the
    request through / refused it.
    """

    allowed: int
    limited: int
    refused: int
    failed_open: int
    failed_closed: int

    @property
    def checks(self) -> int:
        return self.allowed + self.limited + self.failed_open + self.failed_closed

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "checks": self.checks}


def stats() -> RateLimitStats:
    """The limiter's decisions in this process (see docs/ratelimit.md)."""
    return RateLimitStats(**counters.snapshot())


def reset_stats() -> None:
    """Set the decision counters back to zero (in this process)."""
    counters.reset()
