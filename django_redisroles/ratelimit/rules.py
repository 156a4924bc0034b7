"""Middleware rules: the ``RULES`` setting compiled into policies, and matched per request.

Rules live in ``REDISROLES["ROLES"]["ratelimit"]["RULES"]``::

    "RULES": [
        {"path": "/api/", "rate": "60/m", "key": "ip"},
        {"url_name": "login", "rate": "5/m", "key": "post:username", "methods": ["POST"]},
    ]

Compiled once (:data:`RULES`), dropped when ``REDISROLES``, ``MIDDLEWARE`` or
``ROOT_URLCONF`` change. :func:`compile_rule` is also the validator the system
checks run (``redisroles.E031``-``E033``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from django.urls import Resolver404, get_resolver

from .. import conf
from .options import OPTIONS, RateLimitOptions
from .policy import Policy, make_policy

#: Keys a rule accepts.
RULE_KEYS: frozenset[str] = frozenset(
    {
        "path",
        "url_name",
        "rate",
        "key",
        "methods",
        "algorithm",
        "group",
        "name",
        "block",
        "shadow",
        "fail",
        "slot",
    }
)

#: Rules without an explicit group share this hash tag: a request's rules hit one cluster slot.
SLOT = "middleware"


@dataclass(frozen=True)
class Rule:
    """A compiled middleware rule."""

    paths: tuple[str, ...]
    url_names: frozenset[str]
    policy: Policy

    @property
    def url_name(self) -> bool:
        return bool(self.url_names)


@dataclass(frozen=True)
class Rules:
    """The compiled ``RULES``, with the options they were compiled under."""

    options: RateLimitOptions
    rules: tuple[Rule, ...]


def _strings(value: Any, what: str, index: int) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise ImproperlyConfigured(f"RULES[{index}]['{what}'] must be a string or a list of strings.")


def compile_rule(raw: Any, index: int) -> Rule:
    """One rule dict -> ``Rule``; ``ImproperlyConfigured`` naming the bad part.

    ``InvalidRate`` for the rate, ``UnknownKey`` for the key (both
    ``ImproperlyConfigured``): the checks report them as E031/E032.
    """
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured(f"RULES[{index}] must be a dict, got {raw!r}.")
    unknown = set(raw) - RULE_KEYS
    if unknown:
        raise ImproperlyConfigured(
            f"RULES[{index}] has unknown keys {sorted(unknown)}; known: {sorted(RULE_KEYS)}."
        )
    paths = _strings(raw.get("path"), "path", index)
    url_names = _strings(raw.get("url_name"), "url_name", index)
    if not paths and not url_names:
        raise ImproperlyConfigured(f"RULES[{index}] needs a 'path' prefix or a 'url_name'.")
    if "rate" not in raw:
        raise ImproperlyConfigured(f"RULES[{index}] needs a 'rate', e.g. '60/m'.")
    where = raw.get("name") or ",".join(paths + tuple(sorted(url_names)))
    try:
        policy = make_policy(
            raw["rate"],
            raw.get("key", "ip"),
            algorithm=raw.get("algorithm"),
            group=raw.get("group") or f"middleware:{where}",
            methods=raw.get("methods"),
            block=raw.get("block", True),
            shadow=raw.get("shadow"),
            fail=raw.get("fail"),
            name=raw.get("name", ""),
            # Rules without a group share one hash tag (one request's rules, one
            # cluster slot); a named group keeps its own, so the same group can be
            # shared with a decorator.
            # An explicit "slot" puts the rule's counters where it says.
            slot=raw.get("slot") or (None if raw.get("group") else SLOT),
        )
    except ImproperlyConfigured as exc:
        raise type(exc)(f"RULES[{index}]: {exc}") from None
    return Rule(paths, frozenset(url_names), policy)


def compile_rules(raw: Any) -> list[Rule]:
    """The ``RULES`` setting, compiled (``ImproperlyConfigured`` on the first bad rule)."""
    if raw is None:
        return []
    if not isinstance(raw, list | tuple):
        raise ImproperlyConfigured(f"RULES must be a list of dicts, got {raw!r}.")
    return [compile_rule(rule, i) for i, rule in enumerate(raw)]


def _compile() -> Rules:
    options = OPTIONS.get()
    return Rules(options, tuple(compile_rules(options.rules)))


#: The compiled rules (``RULES.get()``), rebuilt after their settings change.
RULES: conf.Resolved[Rules] = conf.Resolved(
    _compile, settings=("REDISROLES", "MIDDLEWARE", "ROOT_URLCONF"), name="ratelimit.RULES"
)


def _url_names(request: HttpRequest) -> tuple[str, ...]:
    try:
        match = get_resolver(getattr(request, "urlconf", None)).resolve(request.path_info)
    except Resolver404:
        return ()
    return tuple(n for n in (match.view_name, match.url_name) if n)


def matching_policies(rules: tuple[Rule, ...], request: HttpRequest) -> list[Policy]:
    """The policies of every rule that matches ``request``."""
    path = request.path_info
    names: tuple[str, ...] | None = None
    found: list[Policy] = []
    for rule in rules:
        if rule.paths and path.startswith(rule.paths):
            found.append(rule.policy)
            continue
        if rule.url_names:
            if names is None:
                names = _url_names(request)
            if any(n in rule.url_names for n in names):
                found.append(rule.policy)
    return found
