"""Rate limiting on Redis: ``@rate_limit`` and ``RateLimitMiddleware``.

One atomic Lua call per request (every applicable policy at once), the clock
from Redis, algorithms ``fixed``, ``sliding`` and ``gcra``, 429 with
``Retry-After`` and the IETF ``RateLimit`` headers, safe client identity
behind proxies, and a per-rule failure policy for Redis outages.
"""

from __future__ import annotations

from .core import (
    ALGORITHMS,
    InvalidRate,
    Policy,
    PolicyResult,
    Rate,
    RateLimitResult,
    acheck,
    check,
    make_policy,
    parse_rate,
)
from .decorators import rate_limit
from .identity import client_ip
from .middleware import RateLimitMiddleware
from .ops import areset, reset
from .signals import ratelimited
from .stats import RateLimitStats, reset_stats, stats

__all__ = [
    "ALGORITHMS",
    "InvalidRate",
    "Policy",
    "PolicyResult",
    "Rate",
    "RateLimitMiddleware",
    "RateLimitResult",
    "RateLimitStats",
    "acheck",
    "areset",
    "check",
    "client_ip",
    "make_policy",
    "parse_rate",
    "rate_limit",
    "ratelimited",
    "reset",
    "reset_stats",
    "stats",
]
