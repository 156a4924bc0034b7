"""Operations: reset a client's counters from Python and from manage.py."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import RequestFactory

from django_redisroles.ratelimit import areset, check, make_policy, reset

from .conftest import all_keys

rf = RequestFactory()


def req(ip: str):
    return rf.get("/", REMOTE_ADDR=ip)


def exhaust(policy, ip: str) -> None:
    while not check(req(ip), [policy]).limited:
        pass


def test_reset_ip_everywhere_and_by_group(redis_client) -> None:
    a = make_policy("2/m", "ip", group="ops-a")
    b = make_policy("2/m", "ip", group="ops-b")
    for policy in (a, b):
        exhaust(policy, "192.0.2.10")
        exhaust(policy, "192.0.2.11")
    assert reset(ip="192.0.2.10", group="ops-a") == 1
    assert not check(req("192.0.2.10"), [a]).limited
    assert check(req("192.0.2.10"), [b]).limited
    assert reset(ip="192.0.2.10") == 2  # a's new counter and b's
    assert not check(req("192.0.2.10"), [b]).limited
    assert check(req("192.0.2.11"), [a]).limited  # other clients untouched
    assert len(all_keys(redis_client)) == 3  # .11 in a and b, .10 in b again


def test_reset_groups_ipv6_like_requests() -> None:
    policy = make_policy("1/m", "ip", group="ops-v6")
    exhaust(policy, "2001:db8::1")
    assert reset(ip="2001:db8::ffff") == 1  # same /64
    assert not check(req("2001:db8::1"), [policy]).limited


def test_reset_validates_input() -> None:
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured):
        reset(ip="not-an-ip")
    with pytest.raises(ImproperlyConfigured):
        reset(ip="192.0.2.1", user=1)
    with pytest.raises(ImproperlyConfigured, match="No rate limit in group"):
        reset(ip="192.0.2.1", group="no-such-group")


async def test_areset() -> None:
    policy = make_policy("1/m", "ip", group="ops-async")
    exhaust(policy, "192.0.2.20")
    assert await areset(ip="192.0.2.20") == 1


@pytest.mark.django_db
def test_manage_py_reset(redis_client) -> None:
    user = User.objects.create_user("dave")
    policy = make_policy("1/m", "user", group="ops-cli")
    request = req("192.0.2.30")
    request.user = user
    check(request, [policy])
    assert check(request, [policy]).limited
    out = StringIO()
    call_command("redisroles", "ratelimit", "reset", "--username", "dave", stdout=out)
    assert "Deleted 1 rate-limit key(s)." in out.getvalue()
    assert not check(request, [policy]).limited
    with pytest.raises(CommandError, match="no user"):
        call_command("redisroles", "ratelimit", "reset", "--username", "nobody")
    with pytest.raises(CommandError, match="not an IP"):
        call_command("redisroles", "ratelimit", "reset", "--ip", "300.1.1.1")


def test_manage_py_reset_group_of_a_decorated_view() -> None:
    # testproject's API view: 60/m per IP, group = its dotted name
    from testproject.urls_ratelimit import api

    policy = api._ratelimit_policies[0]
    request = req("192.0.2.40")
    check(request, [policy])
    out = StringIO()
    call_command(
        "redisroles",
        "ratelimit",
        "reset",
        "--ip",
        "192.0.2.40",
        "--group",
        "testproject.urls_ratelimit.api",
        stdout=out,
    )
    assert "Deleted 1 rate-limit key(s)." in out.getvalue()


@pytest.mark.usefixtures("demo_settings")  # lists the demo's rules
def test_manage_py_rules() -> None:
    out = StringIO()
    call_command("redisroles", "ratelimit", "rules", stdout=out)
    assert "demo-mw" in out.getvalue() and "/ratelimit/middleware/" in out.getvalue()
