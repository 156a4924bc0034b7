"""Signals of the ratelimit role."""

from __future__ import annotations

from django.dispatch import Signal

#: Sent when a request is over a limit (refused, or let through by
#: ``block=False`` / shadow mode), and when fail-closed refuses one.
#: Keyword arguments: ``request``, ``result`` (a ``RateLimitResult``).
ratelimited = Signal()
