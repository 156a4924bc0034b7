"""Rate limiting on Redis: ``@rate_limit`` and ``RateLimitMiddleware``.

One atomic Lua call per request (every applicable policy at once), the clock
from Redis, algorithms ``fixed``, ``sliding`` and ``gcra``, 429 with
``Retry-After`` and the IETF ``RateLimit`` headers, safe client identity
behind proxies, and a per-rule failure policy for Redis outages.

Modules, top to bottom: ``middleware`` / ``decorators`` -> ``enforce`` (the
request flow) -> ``limiter`` (check/acheck) -> ``policy`` -> ``rates``,
``keys``, ``options``; ``responses`` renders, ``rules`` compiles RULES.
"""

from __future__ import annotations

from .decorators import rate_limit
from .keys import client_ip
from .limiter import PolicyResult, RateLimitResult, acheck, check
from .middleware import RateLimitMiddleware
from .ops import areset, reset
from .options import ALGORITHMS
from .policy import Policy, make_policy
from .rates import InvalidRate, Rate, parse_rate
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
