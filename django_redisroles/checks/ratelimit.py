"""System checks of the ratelimit role (see docs/checks.md).

Everything a request would otherwise trip over is reported at start-up:
bad rates, unknown key kinds, malformed rules, unusable role settings.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.core.exceptions import ImproperlyConfigured

from .. import conf

MIDDLEWARE_PATH = "django_redisroles.ratelimit.RateLimitMiddleware"
WHERE = "REDISROLES['ROLES']['ratelimit']"


def _role_settings() -> dict[str, Any] | None:
    try:
        return conf.role_settings("ratelimit")
    except ImproperlyConfigured:
        return None  # the configuration checks report the shape of REDISROLES


@register()
def check_rules(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every RULES entry compiles: rate (E031), key kind (E032), the rest (E033)."""
    from ..ratelimit.core import InvalidRate, UnknownKey
    from ..ratelimit.middleware import compile_rule

    s = _role_settings()
    if s is None:
        return []
    rules = s.get("RULES")
    if rules is None:
        return []
    if not isinstance(rules, list | tuple):
        return [
            Error(
                f"{WHERE}['RULES'] must be a list of rule dicts, got {rules!r}.",
                hint='"RULES": [{"path": "/api/", "rate": "60/m", "key": "ip"}]',
                id="redisroles.E033",
            )
        ]
    errors: list[CheckMessage] = []
    for index, rule in enumerate(rules):
        try:
            compile_rule(rule, index)
        except InvalidRate as exc:
            errors.append(
                Error(
                    f"{WHERE}: {exc}",
                    hint="Rates look like '60/m', '5/s', '1000/h', '100/10m' (units s, m, h, d).",
                    id="redisroles.E031",
                )
            )
        except UnknownKey as exc:
            errors.append(
                Error(
                    f"{WHERE}: {exc}",
                    hint="Keys: 'ip', 'user', 'user_or_ip', 'header:<name>', 'get:<param>', "
                    "'post:<param>', or a callable (request) -> str.",
                    id="redisroles.E032",
                )
            )
        except ImproperlyConfigured as exc:
            errors.append(
                Error(
                    f"{WHERE}: {exc}",
                    hint="A rule: {'path': '/api/' or 'url_name': 'name', 'rate': '60/m', "
                    "'key': 'ip', 'methods': [...], 'algorithm': 'gcra', 'fail': 'open'}.",
                    id="redisroles.E033",
                )
            )
    return errors


@register()
def check_role_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Role-level values: algorithm, failure policy, headers, response (E034), proxies (E035)."""
    from ..ratelimit import core, identity

    s = _role_settings()
    if s is None:
        return []
    errors: list[CheckMessage] = []

    def bad(name: str, message: str, hint: str) -> None:
        errors.append(Error(f"{WHERE}['{name}'] {message}", hint=hint, id="redisroles.E034"))

    if s["ALGORITHM"] not in core.ALGORITHMS:
        bad("ALGORITHM", f"is {s['ALGORITHM']!r}.", "Use 'fixed', 'sliding' or 'gcra'.")
    if s["FAIL"] not in core.FAIL_MODES:
        bad("FAIL", f"is {s['FAIL']!r}.", "Use 'open' (let requests through) or 'closed'.")
    if s["FAIL_STATUS"] not in (429, 503):
        bad("FAIL_STATUS", f"is {s['FAIL_STATUS']!r}.", "Use 503 (default) or 429.")
    if s["HEADERS"] not in core.HEADER_MODES:
        bad("HEADERS", f"is {s['HEADERS']!r}.", "Use 'ietf', 'legacy', 'both' or 'none'.")
    for name in ("FAIL_LOG_INTERVAL", "OUTAGE_BACKOFF"):
        value = s[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            bad(name, f"must be a number of seconds >= 0, got {value!r}.", "For example 1.0.")
    paths = s["PROBLEM_JSON_PATHS"]
    if not isinstance(paths, list | tuple) or not all(isinstance(p, str) for p in paths):
        bad("PROBLEM_JSON_PATHS", f"must be a list of path prefixes, got {paths!r}.", '["/api/"]')
    response = s["RESPONSE"]
    if isinstance(response, str):
        from django.utils.module_loading import import_string

        try:
            import_string(response)
        except ImportError as exc:
            bad("RESPONSE", f"cannot be imported: {exc}.", "A dotted path to a callable.")
    elif response is not None and not callable(response):
        bad("RESPONSE", f"must be a callable or a dotted path, got {response!r}.", "")
    try:
        identity.ProxyConfig.from_settings(s)
    except ImproperlyConfigured as exc:
        errors.append(
            Error(
                f"{WHERE}: {exc}",
                hint="TRUSTED_PROXIES: networks like '10.0.0.0/8'; PROXY_HEADER: "
                "'X-Forwarded-For' or 'Forwarded'; IPV4_PREFIX 1-32, IPV6_PREFIX 1-128.",
                id="redisroles.E035",
            )
        )
    return errors


@register()
def check_proxies(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W031: the project looks proxied, but no proxy is trusted for client addresses."""
    s = _role_settings()
    if s is None or s.get("TRUSTED_PROXIES"):
        return []
    signals = [
        name
        for name in ("SECURE_PROXY_SSL_HEADER", "USE_X_FORWARDED_HOST", "USE_X_FORWARDED_PORT")
        if getattr(settings, name, None)
    ]
    if not signals:
        return []
    verb = "is" if len(signals) == 1 else "are"
    return [
        Warning(
            f"{', '.join(signals)} {verb} set, so requests reach Django through a proxy, "
            f"but {WHERE}['TRUSTED_PROXIES'] is empty: rate limits by IP see the proxy's "
            "address and put every client in one bucket.",
            hint="Set TRUSTED_PROXIES to your proxies' networks, e.g. ['10.0.0.0/8']; "
            "X-Forwarded-For is then read right to left through them only.",
            id="redisroles.W031",
        )
    ]


def _user_rules(rules: Any) -> list[str]:
    """Names of the rules that key on the user (bad rules are E031-E033's business)."""
    from ..ratelimit.middleware import compile_rule

    names = []
    for index, raw in enumerate(rules if isinstance(rules, list | tuple) else ()):
        try:
            policy = compile_rule(raw, index).policy
        except ImproperlyConfigured:
            continue
        if policy.needs_user:
            names.append(policy.name)
    return names


@register()
def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W032: RULES but no RateLimitMiddleware; W033: user rules before authentication."""
    s = _role_settings()
    if s is None or not s.get("RULES"):
        return []
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    if MIDDLEWARE_PATH in middleware:
        ours = middleware.index(MIDDLEWARE_PATH)
        # Anything named *AuthenticationMiddleware (Django's, RemoteUser's, a subclass).
        auth = [i for i, m in enumerate(middleware) if m.endswith("AuthenticationMiddleware")]
        user_rules = _user_rules(s["RULES"])
        if user_rules and auth and ours < auth[0]:
            return [
                Warning(
                    f"{MIDDLEWARE_PATH} comes before {middleware[auth[0]]} in MIDDLEWARE, but "
                    f"rules {', '.join(user_rules)} key on the user: there is no request.user "
                    "yet, so 'user' rules never apply and 'user_or_ip' rules count users by IP.",
                    hint=f"Move {MIDDLEWARE_PATH!r} after {middleware[auth[0]]!r}.",
                    id="redisroles.W033",
                )
            ]
        return []
    return [
        Warning(
            f"{WHERE}['RULES'] is set but {MIDDLEWARE_PATH} is not in MIDDLEWARE: "
            "the rules are never applied.",
            hint=f"Add {MIDDLEWARE_PATH!r} to MIDDLEWARE, after AuthenticationMiddleware.",
            id="redisroles.W032",
        )
    ]
