"""Rate-limit misconfiguration is reported by `manage.py check`, never at request time."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from django_redisroles.checks.ratelimit import (
    check_middleware,
    check_proxies,
    check_role_settings,
    check_rules,
)


def ids(messages) -> list[str]:
    return [m.id for m in messages]


@pytest.fixture
def role(settings):
    def configure(**values: object) -> None:
        settings.REDISROLES = {**settings.REDISROLES, "ROLES": {"ratelimit": values}}

    return configure


def test_testproject_configuration_is_clean() -> None:
    assert check_rules() + check_role_settings() + check_proxies() + check_middleware() == []


@pytest.mark.parametrize(
    ("rule", "code", "needle"),
    [
        ({"path": "/api/", "rate": "60/minutes!"}, "redisroles.E031", "Invalid rate"),
        ({"path": "/api/", "rate": "60/m", "key": "cookie:sid"}, "redisroles.E032", "cookie:sid"),
        ({"path": "/api/", "rate": "60/m", "algorithm": "leaky"}, "redisroles.E033", "leaky"),
        ({"rate": "60/m"}, "redisroles.E033", "needs a 'path'"),
        ({"path": "/api/"}, "redisroles.E033", "needs a 'rate'"),
        ({"path": "/api/", "rate": "1/s", "burst": 3}, "redisroles.E033", "unknown keys"),
        ({"path": "/api/", "rate": "1/s", "fail": "shut"}, "redisroles.E033", "fail must be"),
        ("/api/", "redisroles.E033", "must be a dict"),
    ],
)
def test_bad_rules(role, rule, code, needle) -> None:
    role(RULES=[rule])
    messages = check_rules()
    assert ids(messages) == [code]
    assert needle in messages[0].msg and "RULES[0]" in messages[0].msg
    assert messages[0].hint


@pytest.mark.parametrize(
    ("values", "code", "needle"),
    [
        ({"ALGORITHM": "token"}, "redisroles.E034", "ALGORITHM"),
        ({"FAIL": "sometimes"}, "redisroles.E034", "FAIL"),
        ({"FAIL_STATUS": 500}, "redisroles.E034", "FAIL_STATUS"),
        ({"HEADERS": "draft"}, "redisroles.E034", "HEADERS"),
        ({"RESPONSE": "nowhere.to.be.found"}, "redisroles.E034", "cannot be imported"),
        ({"OUTAGE_BACKOFF": -1}, "redisroles.E034", "OUTAGE_BACKOFF"),
        ({"TRUSTED_PROXIES": ["10.0.0.0/33"]}, "redisroles.E035", "10.0.0.0/33"),
        ({"PROXY_HEADER": "X-Real-IP"}, "redisroles.E035", "PROXY_HEADER"),
        ({"IPV6_PREFIX": 0}, "redisroles.E035", "IPV6_PREFIX"),
    ],
)
def test_bad_role_settings(role, values, code, needle) -> None:
    role(**values)
    messages = check_role_settings()
    assert ids(messages) == [code]
    assert needle in messages[0].msg


def test_manage_py_check_reports_them(role) -> None:
    role(RULES=[{"path": "/api/", "rate": "lots"}])
    with pytest.raises(SystemCheckError) as excinfo:
        call_command("check")
    assert "redisroles.E031" in str(excinfo.value)


def test_proxied_without_trusted_proxies_warns(role, settings) -> None:
    assert check_proxies() == []
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert ids(check_proxies()) == ["redisroles.W031"]
    role(TRUSTED_PROXIES=["10.0.0.0/8"])
    assert check_proxies() == []


def test_rules_without_middleware_warn(role, settings) -> None:
    role(RULES=[{"path": "/api/", "rate": "1/s"}])
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "RateLimit" not in m]
    assert ids(check_middleware()) == ["redisroles.W032"]


AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"
OURS = "django_redisroles.ratelimit.RateLimitMiddleware"


@pytest.mark.parametrize("key", ["user", "user_or_ip"])
def test_user_rules_with_the_middleware_before_authentication_warn(role, settings, key) -> None:
    # Before AuthenticationMiddleware there is no request.user: a "user" rule
    # would silently never apply, a "user_or_ip" one would count users by IP.
    role(RULES=[{"path": "/api/", "rate": "1/s", "key": key}])
    assert check_middleware() == []  # testproject: after authentication
    others = [m for m in settings.MIDDLEWARE if m != OURS]
    settings.MIDDLEWARE = [*others[: others.index(AUTH)], OURS, *others[others.index(AUTH) :]]
    messages = check_middleware()
    assert ids(messages) == ["redisroles.W033"]
    assert "AuthenticationMiddleware" in messages[0].msg
    role(RULES=[{"path": "/api/", "rate": "1/s", "key": "ip"}])
    assert check_middleware() == []  # an IP rule does not need the user


def test_top_level_trusted_proxies(role, settings) -> None:
    from django_redisroles.checks.config import check_settings

    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.REDISROLES = {**settings.REDISROLES, "TRUSTED_PROXIES": ["10.0.0.0/8"]}
    assert check_settings() == []  # a known top-level key
    assert check_proxies() == []  # they apply to rate limiting
    role(TRUSTED_PROXIES=[])  # ... unless the role trusts nobody itself
    assert ids(check_proxies()) == ["redisroles.W031"]
    settings.REDISROLES = {**settings.REDISROLES, "TRUSTED_PROXIES": ["10.0.0.0/33"]}
    messages = check_role_settings()
    assert ids(messages) == ["redisroles.E035"]
    assert "top level" in messages[0].msg and "10.0.0.0/33" in messages[0].msg


def test_the_runtime_refuses_what_the_checks_report(role) -> None:
    # One validator: a value the checks call an error is not half-applied at run time.
    from django.core.exceptions import ImproperlyConfigured
    from django.http import HttpResponse

    from django_redisroles.ratelimit import RateLimitMiddleware

    for values, needle in [
        ({"FAIL_STATUS": 500}, "FAIL_STATUS"),
        ({"RESPONSE": "nowhere.to.be.found"}, "cannot be imported"),
        ({"IPV4_PREFIX": 33}, "IPV4_PREFIX"),
    ]:
        role(**values)
        with pytest.raises(ImproperlyConfigured, match=needle) as raised:
            RateLimitMiddleware(lambda request: HttpResponse())
        assert check_role_settings()[0].msg in str(raised.value)
