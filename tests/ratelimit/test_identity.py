"""Client identity: REMOTE_ADDR unless a trusted proxy says otherwise."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from django_redisroles.ratelimit import check, client_ip, make_policy

rf = RequestFactory()


@pytest.fixture
def proxies(settings):
    def configure(**role: object) -> None:
        settings.REDISROLES = {**settings.REDISROLES, "ROLES": {"ratelimit": role}}

    return configure


def ip_of(remote: str, **headers: str) -> str:
    return client_ip(rf.get("/", REMOTE_ADDR=remote, **headers))


def test_remote_addr_by_default_and_forwarded_for_ignored() -> None:
    assert ip_of("203.0.113.5", HTTP_X_FORWARDED_FOR="1.2.3.4") == "203.0.113.5"


def test_spoofed_forwarded_for_from_untrusted_address_is_ignored(proxies) -> None:
    proxies(TRUSTED_PROXIES=["10.0.0.0/8"])
    policy = make_policy("2/m", "ip", group="t")
    # An attacker talking to us directly rotates X-Forwarded-For: still one bucket.
    codes = [
        check(
            rf.get("/", REMOTE_ADDR="203.0.113.66", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}"), [policy]
        ).limited
        for i in range(4)
    ]
    assert codes == [False, False, True, True]


def test_trusted_proxy_chain_is_walked_right_to_left(proxies) -> None:
    proxies(TRUSTED_PROXIES=["10.0.0.0/8", "172.16.0.1"])
    # client 198.51.100.7 -> proxy 172.16.0.1 -> load balancer 10.0.0.2 -> us
    chain = "198.51.100.7, 172.16.0.1"
    assert ip_of("10.0.0.2", HTTP_X_FORWARDED_FOR=chain) == "198.51.100.7"
    # whatever the client prepends is left of the real hop and never read
    spoofed = "1.1.1.1, 2.2.2.2, 198.51.100.7, 172.16.0.1"
    assert ip_of("10.0.0.2", HTTP_X_FORWARDED_FOR=spoofed) == "198.51.100.7"
    # only proxies in the header: the leftmost is the client
    assert ip_of("10.0.0.2", HTTP_X_FORWARDED_FOR="10.1.1.1") == "10.1.1.1"
    # garbage where the client should be: the proxy that wrote it is what we know
    assert ip_of("10.0.0.2", HTTP_X_FORWARDED_FOR="not-an-ip") == "10.0.0.2"


def test_forwarded_header(proxies) -> None:
    proxies(TRUSTED_PROXIES=["127.0.0.1"], PROXY_HEADER="Forwarded")
    value = 'for=1.2.3.4, for="[2001:db8:cafe::17]:4711";proto=https'
    assert ip_of("127.0.0.1", HTTP_FORWARDED=value) == "2001:db8:cafe::/64"
    assert ip_of("127.0.0.1", HTTP_FORWARDED="for=192.0.2.60:8080;by=x") == "192.0.2.60"
    # X-Forwarded-For is not consulted when Forwarded is configured
    assert ip_of("127.0.0.1", HTTP_X_FORWARDED_FOR="9.9.9.9") == "127.0.0.1"


def test_ipv4_mapped_and_grouping(proxies) -> None:
    assert ip_of("::ffff:192.0.2.1") == "192.0.2.1"
    assert ip_of("2001:db8:aa:bb:1:2:3:4") == "2001:db8:aa:bb::/64"
    proxies(IPV4_PREFIX=24, IPV6_PREFIX=48)
    assert ip_of("192.0.2.77") == "192.0.2.0/24"
    assert ip_of("2001:db8:aa:bb:1:2:3:4") == "2001:db8:aa::/48"


def test_missing_remote_addr_is_its_own_bucket() -> None:
    assert ip_of("") == "unknown"


def test_untrusted_proxy_header_is_logged_once(caplog) -> None:
    with caplog.at_level("WARNING", logger="django_redisroles.ratelimit"):
        for _ in range(3):
            ip_of("10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.7")
    warnings = [r for r in caplog.records if "TRUSTED_PROXIES" in r.getMessage()]
    assert len(warnings) == 1


def test_long_header_chains_are_walked_too(proxies) -> None:
    proxies(TRUSTED_PROXIES=["10.0.0.0/8"])
    chain = ", ".join(["1.1.1.1"] * 100 + ["198.51.100.7", "10.0.0.9"])
    assert len(chain) > 256
    assert ip_of("10.0.0.2", HTTP_X_FORWARDED_FOR=chain) == "198.51.100.7"


# -- trusted proxies at the top level of REDISROLES (shared with the other roles) --------


@pytest.fixture
def top_level(settings):
    def configure(**values: object) -> None:
        settings.REDISROLES = {**settings.REDISROLES, **values}

    return configure


def test_top_level_trusted_proxies_apply_to_rate_limiting(top_level, proxies) -> None:
    proxies()  # the role sets none of its own
    top_level(TRUSTED_PROXIES=["10.0.0.0/8"])
    assert ip_of("10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.7, 10.0.0.3") == "198.51.100.7"
    policy = make_policy("1/m", "ip", group="top-level-proxies")
    # two clients behind one proxy: two budgets
    for client in ("198.51.100.7", "198.51.100.8"):
        request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=client)
        assert not check(request, [policy]).limited
    top_level(TRUSTED_PROXIES=["127.0.0.1"], PROXY_HEADER="Forwarded")
    assert ip_of("127.0.0.1", HTTP_FORWARDED="for=192.0.2.60") == "192.0.2.60"


def test_the_roles_own_proxy_settings_win_for_rate_limiting(top_level, proxies) -> None:
    top_level(TRUSTED_PROXIES=["10.0.0.0/8"])
    proxies(TRUSTED_PROXIES=[])  # the role trusts nobody: the header is not read
    assert ip_of("10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.7") == "10.0.0.2"
    proxies(TRUSTED_PROXIES=["127.0.0.1"])
    assert ip_of("10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.7") == "10.0.0.2"
    assert ip_of("127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7") == "198.51.100.7"
    proxies(TRUSTED_PROXIES=None)  # None: the top-level value
    assert ip_of("10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.7") == "198.51.100.7"
    # per key: the role's header with the top-level networks
    proxies(PROXY_HEADER="Forwarded")
    assert ip_of("10.0.0.2", HTTP_FORWARDED="for=198.51.100.9") == "198.51.100.9"
    assert ip_of("10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.7") == "10.0.0.2"


def test_shared_client_ip_is_the_whole_address_through_top_level_proxies(top_level) -> None:
    from django_redisroles.clientip import client_ip as shared_client_ip

    def shared(remote: str, **headers: str) -> str:
        return shared_client_ip(rf.get("/", REMOTE_ADDR=remote, **headers))

    assert shared("2001:db8:aa:bb:1:2:3:4") == "2001:db8:aa:bb:1:2:3:4"  # not grouped
    assert shared("10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.7") == "10.0.0.2"
    top_level(TRUSTED_PROXIES=["10.0.0.0/8"])
    assert shared("10.0.0.2", HTTP_X_FORWARDED_FOR="1.1.1.1, 198.51.100.7") == "198.51.100.7"
    assert shared("203.0.113.5", HTTP_X_FORWARDED_FOR="198.51.100.7") == "203.0.113.5"


def test_bad_top_level_proxies_are_improperly_configured(top_level) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from django_redisroles.clientip import client_ip as shared_client_ip

    top_level(TRUSTED_PROXIES=["10.0.0.0/33"])
    with pytest.raises(ImproperlyConfigured, match=r"10\.0\.0\.0/33"):
        shared_client_ip(rf.get("/", REMOTE_ADDR="10.0.0.2"))
    with pytest.raises(ImproperlyConfigured, match=r"10\.0\.0\.0/33"):
        ip_of("10.0.0.2")
