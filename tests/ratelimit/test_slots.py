"""Policies of different groups in one check: one server, or several cluster slots.

On a single server and under Sentinel one script counts every policy,
all-or-nothing. On a Redis Cluster the groups' keys may live in different
slots (on different masters): one call per slot, in the policies' order,
and after a refusal the later slots only report (docs/ratelimit.md,
"Several groups on a Redis Cluster"). These run on the session's topology.
"""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from django_redisroles.ratelimit import acheck, check, make_policy
from django_redisroles.ratelimit.keys import counter_key
from django_redisroles.ratelimit.options import OPTIONS

from .conftest import calls, data_node, reset_stats

rf = RequestFactory()


def req():
    return rf.get("/", REMOTE_ADDR="198.51.100.30")


def _key(policy) -> str:
    opts = OPTIONS.get()
    return counter_key(opts.key_base, policy.tails[policy.algorithm or opts.algorithm], "ip:x")


def two_groups(redis_server, first: str, second: str):
    """(a, b): ``first`` per IP in one group, ``second`` in another whose keys live
    on another master of a cluster (another slot elsewhere)."""
    a = make_policy(first, "ip", group="slots-a", algorithm="fixed")
    node = data_node(redis_server, _key(a))
    for i in range(200):
        b = make_policy(second, "ip", group=f"slots-b{i}", algorithm="fixed")
        other = data_node(redis_server, _key(b))
        if redis_server.kind != "cluster" or other.port != node.port:
            return a, b
    raise AssertionError("no group found on another master")


@pytest.fixture
def cluster(redis_server) -> bool:
    return redis_server.kind == "cluster"


def test_a_refusal_in_the_first_slot_counts_nothing_in_the_next(redis_server, cluster) -> None:
    a, b = two_groups(redis_server, "2/m", "5/m")
    check(rf.get("/", REMOTE_ADDR="192.0.2.99"), [a, b])  # the script loaded on every master
    reset_stats(redis_server)
    results = [check(req(), [a, b]) for _ in range(3)]
    assert [r.limited for r in results] == [False, False, True]
    assert calls(redis_server) == (6 if cluster else 3)  # one call per slot, per check
    refused = results[2]
    assert refused.blocked and refused.retry_after > 0
    # Every policy is described, in the order given, as on one server.
    assert [r.policy for r in refused.results] == [a, b]
    assert [r.allowed for r in refused.results] == [False, True]
    assert refused.results[1].remaining == 3  # b: two counted; the refused one was not
    assert check(req(), [b]).results[0].remaining == 2


def test_a_refusal_in_a_later_slot_keeps_the_earlier_count_on_a_cluster(
    redis_server, cluster
) -> None:
    a, b = two_groups(redis_server, "5/m", "1/m")
    assert not check(req(), [a, b]).limited
    refused = check(req(), [a, b])
    assert refused.blocked
    assert [r.allowed for r in refused.results] == [True, False]
    # One server: all-or-nothing, a was not counted. A cluster: a's slot was
    # asked first and counted it (docs/ratelimit.md says so).
    assert refused.results[0].remaining == (3 if cluster else 4)


async def test_async_checks_split_the_same_way(redis_server, cluster) -> None:
    a, b = two_groups(redis_server, "1/m", "5/m")
    await acheck(rf.get("/", REMOTE_ADDR="192.0.2.99"), [a, b])
    reset_stats(redis_server)
    first = await acheck(req(), [a, b])
    second = await acheck(req(), [a, b])
    assert not first.limited and second.blocked
    assert calls(redis_server) == (4 if cluster else 2)
    assert [r.remaining for r in second.results] == [0, 4]


def test_a_shadow_refusal_counts_nothing_in_the_next_slot_either(redis_server) -> None:
    # As the script does within one slot: a policy over its limit, shadow or
    # not, means the request is counted nowhere (it still goes through).
    a = make_policy("1/m", "ip", group="slots-a", algorithm="fixed", shadow=True)
    _, b = two_groups(redis_server, "1/m", "5/m")
    check(req(), [a, b])
    second = check(req(), [a, b])
    assert second.limited and second.shadowed and not second.blocked
    assert second.results[1].remaining == 4


def test_one_slot_keeps_groups_all_or_nothing_in_one_call(redis_server) -> None:
    a = make_policy("5/m", "ip", group="slots-a", algorithm="fixed", slot="login")
    b = make_policy("1/m", "user_or_ip", group="slots-b", algorithm="fixed", slot="login")
    check(rf.get("/", REMOTE_ADDR="192.0.2.99"), [a, b])
    reset_stats(redis_server)
    assert not check(req(), [a, b]).limited
    refused = check(req(), [a, b])
    assert refused.blocked and calls(redis_server) == 2  # one call per check, any topology
    assert refused.results[0].remaining == 4  # all-or-nothing: a did not count the refused one


def test_slot_must_be_a_string() -> None:
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="slot"):
        make_policy("5/m", "ip", group="g", slot=3)  # type: ignore[arg-type]
