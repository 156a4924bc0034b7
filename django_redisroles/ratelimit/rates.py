"""Rates: ``"60/m"`` -> ``Rate(limit=60, period=60)``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

_UNITS: dict[str, int] = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-zA-Z]+)\s*$")


class InvalidRate(ImproperlyConfigured):
    """A rate string that cannot be parsed (``"60/m"``, ``"100/10m"`` are fine)."""


@dataclass(frozen=True)
class Rate:
    """``limit`` requests per ``period`` seconds."""

    limit: int
    period: int

    def __str__(self) -> str:
        return f"{self.limit}/{self.period}s"


def parse_rate(value: str | Rate) -> Rate:
    """``"60/m"`` -> ``Rate(60, 60)``; ``"100/10m"`` -> ``Rate(100, 600)``.

    Units: ``s``, ``m``, ``h``, ``d`` (or ``sec``/``min``/``hour``/``day``,
    singular or plural), optionally preceded by a count. Raises
    ``InvalidRate`` (an ``ImproperlyConfigured``) for anything else.
    """
    if isinstance(value, Rate):
        return value
    if not isinstance(value, str):
        raise InvalidRate(f"A rate must be a string like '60/m', got {value!r}.")
    match = _RATE_RE.match(value)
    if not match:
        raise InvalidRate(
            f"Invalid rate {value!r}: use '<count>/<unit>' or '<count>/<n><unit>', "
            "for example '60/m', '5/s', '1000/h', '100/10m'."
        )
    count, multiplier, unit = match.groups()
    unit = unit.lower()
    # Plurals of the words only: "mins", "hours"; "ms" is not "minutes".
    if unit not in _UNITS and unit.endswith("s") and len(unit) > 2 and unit[:-1] in _UNITS:
        unit = unit[:-1]
    if unit not in _UNITS:
        raise InvalidRate(f"Invalid rate {value!r}: unknown unit {unit!r} (use s, m, h or d).")
    limit = int(count)
    period = (int(multiplier) if multiplier else 1) * _UNITS[unit]
    if limit < 1 or period < 1:
        raise InvalidRate(f"Invalid rate {value!r}: count and period must be at least 1.")
    return Rate(limit, period)
