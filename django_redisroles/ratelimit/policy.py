"""Policies: one limit each (rate + algorithm + who is counted), built and validated once.

A request may be subject to several policies (stacked decorators, several
middleware rules); the limiter checks all of them in one round trip.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .keys import KeyFunc, compile_key, group_tag, policy_tails
from .options import ALGORITHMS, FAIL_MODES
from .rates import Rate, parse_rate

#: Every live policy (decorated views, compiled rules), for ``reset(group=...)``.
_registry: weakref.WeakSet[Policy] = weakref.WeakSet()

_NAME_RE = re.compile(r"[^A-Za-z0-9_.\-]+")


def policies_of(group: str) -> list[Policy]:
    """The live policies of ``group``."""
    return [p for p in list(_registry) if p.group == group]


@dataclass(frozen=True, eq=False)
class Policy:
    """One limit: ``rate`` per client identity (``key``) within ``group``."""

    rate: Rate
    key: Any
    algorithm: str | None  # None: the ALGORITHM setting, resolved per check
    group: str
    methods: frozenset[str] | None = None
    block: bool = True
    shadow: bool | None = None  # None: the SHADOW setting
    fail: str | None = None  # None: the FAIL setting
    name: str = ""
    slot: str | None = None  # hash-tag source; default: the group
    # derived, per algorithm (the default algorithm is a setting)
    key_label: str = field(init=False)
    key_fn: KeyFunc = field(init=False)
    needs_user: bool = field(init=False)
    tails: dict[str, str] = field(init=False)  # keys.policy_tails: where prefix and ident go
    argsets: dict[str, tuple[str, str, str]] = field(init=False)  # the script's ARGV per algorithm
    #: The hash tag of the policy's keys: policies with the same tag share a cluster slot.
    tag: str = field(init=False)

    def __post_init__(self) -> None:
        if self.algorithm is not None and self.algorithm not in ALGORITHMS:
            raise ImproperlyConfigured(
                f"Unknown rate-limit algorithm {self.algorithm!r}; use one of: "
                f"{', '.join(ALGORITHMS)}."
            )
        if self.fail is not None and self.fail not in FAIL_MODES:
            raise ImproperlyConfigured(f"fail must be 'open' or 'closed', got {self.fail!r}.")
        label, fn, needs_user = compile_key(self.key)
        set_ = object.__setattr__
        set_(self, "key_label", label)
        set_(self, "key_fn", fn)
        set_(self, "needs_user", needs_user)
        set_(self, "tails", policy_tails(self.group, self.slot, self.rate, label))
        set_(self, "tag", group_tag(self.slot or self.group))
        limit, period_us = str(self.rate.limit), str(self.rate.period * 1_000_000)
        set_(self, "argsets", {a: (str(code), limit, period_us) for a, code in ALGORITHMS.items()})
        _registry.add(self)
        if not self.name:
            set_(
                self,
                "name",
                _NAME_RE.sub("-", f"{label}-{self.rate.limit}-per-{self.rate.period}s"),
            )

    def applies_to(self, method: str | None) -> bool:
        return self.methods is None or method in self.methods


def _normalize_methods(methods: Iterable[str] | str | None) -> frozenset[str] | None:
    if methods is None:
        return None
    if isinstance(methods, str):
        methods = [methods]
    try:
        return frozenset(m.upper() for m in methods)
    except AttributeError:
        raise ImproperlyConfigured(f"methods must be HTTP method names, got {methods!r}.")


def make_policy(
    rate: str | Rate,
    key: Any = "ip",
    *,
    algorithm: str | None = None,
    group: str,
    methods: Iterable[str] | str | None = None,
    block: bool = True,
    shadow: bool | None = None,
    fail: str | None = None,
    name: str = "",
    slot: str | None = None,
) -> Policy:
    """Build and validate a policy (``ImproperlyConfigured`` on any bad value)."""
    if not isinstance(block, bool):
        raise ImproperlyConfigured(f"block must be True or False, got {block!r}.")
    if shadow is not None and not isinstance(shadow, bool):
        raise ImproperlyConfigured(f"shadow must be True, False or None, got {shadow!r}.")
    if slot is not None and (not isinstance(slot, str) or not slot):
        raise ImproperlyConfigured(f"slot must be a non-empty string or None, got {slot!r}.")
    if not isinstance(name, str) or not all(" " <= ch <= "~" for ch in name):
        # it goes into the RateLimit headers
        raise ImproperlyConfigured(f"name must be printable ASCII, got {name!r}.")
    return Policy(
        rate=parse_rate(rate),
        key=key,
        algorithm=algorithm,
        group=str(group),
        methods=_normalize_methods(methods),
        block=block,
        shadow=shadow,
        fail=fail,
        name=str(name),
        slot=slot,
    )
