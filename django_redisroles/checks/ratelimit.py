"""System checks of the ratelimit role (see docs/checks.md).

Everything a request would otherwise trip over is reported at start-up:
bad rates, unknown key kinds, malformed rules, unusable role settings. The
role's own validators decide (``ratelimit.options.problems``,
``ratelimit.rules.compile_rule``), imported when a check runs.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.core.exceptions import ImproperlyConfigured

from .. import conf

MIDDLEWARE_PATH = "django_redisroles.ratelimit.RateLimitMiddleware"
WHERE = "REDISROLES['ROLES']['ratelimit']"


def _role_raw() -> dict[str, Any] | None:
    try:
        return conf.role_raw("ratelimit")
    except ImproperlyConfigured:
        return None  # the configuration checks report the shape of REDISROLES


def _role_settings() -> dict[str, Any] | None:
    """The role's settings as they apply (defaults and top-level proxies filled in)."""
    from ..ratelimit import options

    raw = _role_raw()
    return None if raw is None else options.values(raw)


@register()
def check_rules(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every RULES entry compiles: rate (E031), key kind (E032), the rest (E033)."""
    from ..ratelimit.keys import UnknownKey
    from ..ratelimit.rates import InvalidRate
    from ..ratelimit.rules import compile_rule

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
    from ..ratelimit import options

    raw = _role_raw()
    if raw is None:
        return []
    errors: list[CheckMessage] = []
    for problem in options.problems(raw):
        hint = problem.hint or None
        if problem.id == "E035":  # client addresses: proxies, prefixes
            errors.append(Error(problem.message, hint=hint, id="redisroles.E035"))
        else:
            errors.append(Error(problem.message, hint=hint, id="redisroles.E034"))
    return errors


@register()
def check_proxies(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W031: the project looks proxied, but no proxy is trusted for client addresses."""
    s = _role_settings()
    if s is None or s["TRUSTED_PROXIES"]:
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
            f"but TRUSTED_PROXIES (REDISROLES['TRUSTED_PROXIES'], or {WHERE}['TRUSTED_PROXIES']) "
            "is empty: rate limits by IP see the proxy's address and put every client in one "
            "bucket.",
            hint="Set REDISROLES['TRUSTED_PROXIES'] to your proxies' networks, e.g. "
            "['10.0.0.0/8']; X-Forwarded-For is then read right to left through them only.",
            id="redisroles.W031",
        )
    ]


def _user_rules(rules: Any) -> list[str]:
    """Names of the rules that key on the user (bad rules are E031-E033's business)."""
    from ..ratelimit.rules import compile_rule

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
