"""Settings of the ratelimit role: defaults, the one validator, the resolved options.

``REDISROLES["ROLES"]["ratelimit"]`` over :data:`DEFAULTS`, validated by
:func:`problems` — used both by the runtime (the first problem is
``ImproperlyConfigured``) and by the system checks (``checks/ratelimit.py``:
``redisroles.E034``/``E035``) — and resolved once into a frozen
:class:`RateLimitOptions` (:data:`OPTIONS`), dropped by conf's one
``setting_changed`` receiver when ``REDISROLES`` changes, so the per-request
path reads no settings. The middleware rules are compiled in :mod:`.rules`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.core.exceptions import ImproperlyConfigured

from .. import clientip, conf

logger = logging.getLogger("django_redisroles.ratelimit")

ROLE = "ratelimit"
WHERE = "REDISROLES['ROLES']['ratelimit']"

#: Algorithm name -> code understood by ``lua/limit.lua``.
ALGORITHMS: dict[str, int] = {"fixed": 1, "sliding": 2, "gcra": 3}
FAIL_MODES: tuple[str, ...] = ("open", "closed")
HEADER_MODES: tuple[str, ...] = ("ietf", "legacy", "both", "none")

#: The role's settings and their defaults. A key not listed here (nor a
#: common role key, URL/OPTIONS) is reported by the ``redisroles.E004`` check.
DEFAULTS: dict[str, Any] = {
    "ENABLED": True,  # False: every limit is off (checks still validate settings)
    "RULES": [],  # middleware rules: [{"path": "/api/", "rate": "60/m", "key": "ip"}, ...]
    "ALGORITHM": "gcra",  # default of rules and decorators: "fixed", "sliding", "gcra"
    "FAIL": "open",  # when Redis is unreachable: "open" (let through) or "closed"
    "FAIL_STATUS": 503,  # status of a fail-closed refusal (429 or 503)
    "FAIL_LOG_INTERVAL": 60,  # seconds between two "Redis unreachable" log lines
    "OUTAGE_BACKOFF": 1.0,  # seconds to skip Redis after an error (failure policy applies)
    "SHADOW": False,  # True: count and log/signal, never refuse (dry run)
    # Networks whose proxy header is believed, and that header. Unset (or
    # None) here: the top-level REDISROLES values (clientip), which these win over.
    "TRUSTED_PROXIES": [],
    "PROXY_HEADER": "X-Forwarded-For",  # or "Forwarded" (RFC 7239)
    "IPV4_PREFIX": 32,  # clients are grouped by these prefix lengths
    "IPV6_PREFIX": 64,
    "HEADERS": "ietf",  # "ietf" (RateLimit-Policy/RateLimit), "legacy", "both", "none"
    "HEADERS_ON_ALLOWED": False,  # also send them on responses that were let through
    "RESPONSE": None,  # callable or dotted path: (request, result) -> HttpResponse
    "PROBLEM_JSON_PATHS": [],  # path prefixes answered with application/problem+json
}

#: Proxy settings the role may take from the top level of REDISROLES.
PROXY_KEYS: tuple[str, ...] = tuple(clientip.DEFAULTS)


class Problem(NamedTuple):
    """One unusable value: the check id it is reported as, the message, a hint."""

    id: str  # "E034" (role values) or "E035" (client addresses)
    message: str
    hint: str


def _own(raw: Mapping[str, Any], name: str) -> bool:
    """Whether the role sets ``name`` itself (a proxy key left None is the top level's)."""
    return name in raw and not (name in PROXY_KEYS and raw[name] is None)


def values(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The role's settings as they apply: defaults < top-level proxies < the role's own."""
    merged = dict(DEFAULTS)
    top = clientip.top_level()
    merged.update({name: top[name] for name in PROXY_KEYS})
    merged.update({name: raw[name] for name in DEFAULTS if _own(raw, name)})
    return merged


def _seconds(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _prefix(value: Any, maximum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= maximum


_PROXY_HINT = (
    "TRUSTED_PROXIES: networks like '10.0.0.0/8'; PROXY_HEADER: "
    "'X-Forwarded-For' or 'Forwarded'; IPV4_PREFIX 1-32, IPV6_PREFIX 1-128."
)


def problems(raw: Mapping[str, Any]) -> list[Problem]:
    """Why the role's settings (``raw``: its dict as written) are unusable; empty when fine.

    Also reports the top-level ``TRUSTED_PROXIES`` / ``PROXY_HEADER`` (the
    role falls back on them). ``RULES`` are validated where they are
    compiled (:func:`.rules.compile_rule`).
    """
    merged = values(raw)
    found: list[Problem] = []

    def bad(name: str, message: str, hint: str) -> None:
        found.append(Problem("E034", f"{WHERE}['{name}'] {message}", hint))

    if merged["ALGORITHM"] not in ALGORITHMS:
        bad("ALGORITHM", f"is {merged['ALGORITHM']!r}.", "Use 'fixed', 'sliding' or 'gcra'.")
    if merged["FAIL"] not in FAIL_MODES:
        bad("FAIL", f"is {merged['FAIL']!r}.", "Use 'open' (let requests through) or 'closed'.")
    status = merged["FAIL_STATUS"]
    if isinstance(status, bool) or status not in (429, 503):
        bad("FAIL_STATUS", f"is {status!r}.", "Use 503 (default) or 429.")
    if merged["HEADERS"] not in HEADER_MODES:
        bad("HEADERS", f"is {merged['HEADERS']!r}.", "Use 'ietf', 'legacy', 'both' or 'none'.")
    for name in ("FAIL_LOG_INTERVAL", "OUTAGE_BACKOFF"):
        if not _seconds(merged[name]):
            message = f"must be a number of seconds >= 0, got {merged[name]!r}."
            bad(name, message, "For example 1.0.")
    paths = merged["PROBLEM_JSON_PATHS"]
    if not isinstance(paths, list | tuple) or not all(isinstance(p, str) for p in paths):
        bad("PROBLEM_JSON_PATHS", f"must be a list of path prefixes, got {paths!r}.", '["/api/"]')
    response = merged["RESPONSE"]
    if isinstance(response, str):
        from django.utils.module_loading import import_string

        try:
            import_string(response)
        except ImportError as exc:
            bad("RESPONSE", f"cannot be imported: {exc}.", "A dotted path to a callable.")
    elif response is not None and not callable(response):
        bad("RESPONSE", f"must be a callable or a dotted path, got {response!r}.", "")
    for name in PROXY_KEYS:
        if _own(raw, name):
            for message in clientip.problems({name: raw[name]}):
                found.append(Problem("E035", f"{WHERE}: {message}", _PROXY_HINT))
    for message in clientip.problems(clientip.top_level()):
        found.append(Problem("E035", f"REDISROLES (top level): {message}", _PROXY_HINT))
    for name, maximum in (("IPV4_PREFIX", 32), ("IPV6_PREFIX", 128)):
        if not _prefix(merged[name], maximum):
            message = f"{name} must be an integer from 1 to {maximum}, got {merged[name]!r}."
            found.append(Problem("E035", f"{WHERE}: {message}", _PROXY_HINT))
    return found


@dataclass(frozen=True, slots=True)
class RateLimitOptions:
    """Everything the per-request path needs from settings, resolved once."""

    enabled: bool
    key_base: str  # "<KEY_PREFIX>:ratelimit:", the start of every key (see keys.py)
    algorithm: str
    fail: str
    fail_status: int
    fail_log_interval: float
    outage_backoff: float
    shadow: bool
    headers: str
    headers_on_allowed: bool
    response: Callable[..., Any] | None
    problem_json_paths: tuple[str, ...]
    addresses: clientip.ClientAddresses  # client addresses, grouped by IPV4/IPV6_PREFIX
    rules: Any  # the RULES setting as written (compiled by rules.py)
    # The role's pool would re-send a timed-out check (retry_attempts > 0): then
    # each check is sent inside send_once(). The default (0) needs no guard.
    retries: bool


def _warn_untrusted_header(remote: str) -> None:
    ip = clientip.parse_ip(remote)
    if ip is not None and (ip.is_private or ip.is_loopback):
        logger.warning(
            "A request from %s carries a proxy header but TRUSTED_PROXIES is empty "
            "(REDISROLES['TRUSTED_PROXIES'], or %s['TRUSTED_PROXIES']): every client behind "
            "that proxy shares one rate-limit bucket. Set TRUSTED_PROXIES to your proxies' "
            "networks.",
            remote,
            WHERE,
        )


def resolve() -> RateLimitOptions:
    """The role's options from settings now; ``ImproperlyConfigured`` on the first problem."""
    raw = conf.role_raw(ROLE)
    found = problems(raw)
    if found:
        raise ImproperlyConfigured(f"{found[0].message} {found[0].hint}".strip())
    merged = values(raw)
    response = merged["RESPONSE"]
    if isinstance(response, str):
        from django.utils.module_loading import import_string

        response = import_string(response)
    return RateLimitOptions(
        enabled=bool(merged["ENABLED"]),
        key_base=conf.make_key(ROLE, ""),
        algorithm=merged["ALGORITHM"],
        fail=merged["FAIL"],
        fail_status=int(merged["FAIL_STATUS"]),
        fail_log_interval=float(merged["FAIL_LOG_INTERVAL"]),
        outage_backoff=float(merged["OUTAGE_BACKOFF"]),
        shadow=bool(merged["SHADOW"]),
        headers=merged["HEADERS"],
        headers_on_allowed=bool(merged["HEADERS_ON_ALLOWED"]),
        response=response,
        problem_json_paths=tuple(merged["PROBLEM_JSON_PATHS"] or ()),
        addresses=clientip.ClientAddresses(
            clientip.Proxies.from_settings(merged),
            ipv4_prefix=merged["IPV4_PREFIX"],
            ipv6_prefix=merged["IPV6_PREFIX"],
            on_untrusted_header=_warn_untrusted_header,
        ),
        rules=merged["RULES"],
        retries=int(conf.role_options(ROLE).get("retry_attempts") or 0) > 0,
    )


#: The resolved options (``OPTIONS.get()``), rebuilt after ``REDISROLES`` changes.
OPTIONS: conf.Resolved[RateLimitOptions] = conf.Resolved(resolve, name="ratelimit.OPTIONS")
