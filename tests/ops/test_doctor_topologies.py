"""`redisroles doctor` on a Redis Cluster and under Sentinel: every node checked, per node.

Real topologies (django_redisroles.testing): the session's shared cluster and
Sentinel group where a test only reads or changes a setting it restores, a
group of its own where it kills nodes or needs another shape.
"""

from __future__ import annotations

import time

import pytest

from django_redisroles import conf
from django_redisroles.testing import RedisCluster, SentinelGroup
from tests.conftest import session_topology

from .test_doctor import check


def _instances(run) -> dict[str, dict]:
    return {inst["instance"]: inst for inst in run.data["instances"]}


def _ids_at(run, finding_id: str) -> set[str]:
    return {f["instance"] for f in run.data["findings"] if f["id"] == finding_id}


def test_every_cluster_node_is_checked_and_reported_per_node(roles_on, doctor) -> None:
    cluster = session_topology("cluster")
    cluster.flushall()
    roles_on(sessions=cluster.url())
    replica = cluster.replicas()[0]
    with cluster.client() as client:
        # Session-namespace keys without a TTL, spread over the slots of every master.
        for i in range(60):
            client.set(conf.make_key("sessions", f"stray{i}"), b"x")
    with replica.admin() as admin:
        before = admin.config_get("maxmemory-policy")["maxmemory-policy"]
        admin.config_set("maxmemory-policy", "allkeys-lru")
    try:
        run = check(doctor("--role", "sessions"))
    finally:
        with replica.admin() as admin:
            admin.config_set("maxmemory-policy", before)
    instances = _instances(run)
    masters = {f"127.0.0.1:{n.port}" for n in cluster.masters()}
    replicas = {f"127.0.0.1:{n.port}" for n in cluster.replicas()}
    assert set(instances) == masters | replicas  # each node, once
    for label, inst in instances.items():
        assert inst["reachable"], inst
        assert inst["node"]["topology"] == "cluster"
        assert inst["node"]["role"] == ("master" if label in masters else "replica")
        # Keys are sampled on each master (a replica's are its master's).
        assert len(inst["databases"]) == (1 if label in masters else 0)
    # The per-server rule ran on every node: only the replica set to evict sessions says so.
    assert _ids_at(run, "E120") == {f"127.0.0.1:{replica.port}"}
    # Every master's share of the stray keys was found (each master holds some of them).
    no_ttl = [f for f in run.data["findings"] if f["id"] == "W124"]
    assert {f["instance"] for f in no_ttl} == {f"{m}/0" for m in masters}
    assert sum(f["details"]["count"] for f in no_ttl) == 60
    (deployment,) = run.data["deployments"]
    assert deployment["kind"] == "cluster"
    assert deployment["cluster"]["cluster_state"] == "ok"
    assert set(deployment["masters"]) == masters
    assert all(len(deployment["replicas"][m]) == 1 for m in masters)
    assert "W161" not in run.ids and "E160" not in run.ids
    table = doctor("--role", "sessions", json_=False).stdout
    assert f"127.0.0.1:{replica.port} (cluster replica)" in table
    assert "cluster redis+cluster://" in table and "state ok" in table


def test_cluster_without_replicas_then_a_master_down(roles_on, doctor) -> None:
    with RedisCluster(masters=3, replicas=0) as cluster:
        roles_on(locks=cluster.url())
        run = check(doctor("--role", "locks"))
        masters = {f"127.0.0.1:{n.port}" for n in cluster.masters()}
        assert _ids_at(run, "W161") == masters  # no replica: a failure loses its slots
        assert "E160" not in run.ids

        victim = cluster.masters()[1]
        victim.kill()
        deadline = time.monotonic() + 30
        while True:  # the others mark it failed after cluster-node-timeout (2 s)
            run = check(doctor("--role", "locks"))
            if "E160" in run.ids or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert run.status == 1
        assert "cluster_state:fail" in run.finding("E160")["message"]
        down = _instances(run)[f"127.0.0.1:{victim.port}"]
        assert down["reachable"] is False
        assert f"127.0.0.1:{victim.port}" in _ids_at(run, "E100")


def test_a_cluster_that_renamed_config_is_still_checked_per_node(roles_on, doctor) -> None:
    """Managed services rename or refuse CONFIG: the doctor says which rules it skipped
    (W101, per node) and still runs the INFO-based ones on every node."""
    config = {"rename-command": "CONFIG MANAGED_CONFIG"}
    with RedisCluster(masters=3, replicas=0, config=config) as cluster:
        roles_on(cache=cluster.url())
        run = check(doctor("--role", "cache"))
        nodes = {f"127.0.0.1:{n.port}" for n in cluster.masters()}
        assert _ids_at(run, "W101") == nodes
        assert _ids_at(run, "W110") == nodes  # maxmemory 0 (from INFO) on each node
        assert all(not inst["config_available"] for inst in run.data["instances"])


def test_sentinel_master_replicas_and_sentinels_are_checked(roles_on, doctor) -> None:
    group = session_topology("sentinel")
    roles_on(sessions=group.url())
    replica = group.replicas()[0]
    with replica.client(socket_timeout=5) as admin:
        before = admin.config_get("maxmemory-policy")["maxmemory-policy"]
        admin.config_set("maxmemory-policy", "allkeys-lru")
    try:
        run = check(doctor("--role", "sessions"))
    finally:
        with replica.client(socket_timeout=5) as admin:
            admin.config_set("maxmemory-policy", before)
    instances = _instances(run)
    master = f"127.0.0.1:{group.master().port}"
    assert instances[master]["node"] == {"topology": "sentinel", "role": "master", "master": None}
    assert instances[f"127.0.0.1:{replica.port}"]["node"] == {
        "topology": "sentinel",
        "role": "replica",
        "master": master,
    }
    assert _ids_at(run, "E120") == {f"127.0.0.1:{replica.port}"}
    (deployment,) = run.data["deployments"]
    assert deployment["service"] == group.service
    assert deployment["masters"] == [master]
    views = deployment["sentinels"]
    assert len(views) == 3 and all(v["reachable"] and v["quorum_ok"] for v in views)
    assert all(v["master"] == master and v["sentinels"] == 3 for v in views)
    assert not {"E162", "W163", "W164", "W161"} & set(run.ids)


def test_sentinel_advice_one_sentinel_no_replica(roles_on, doctor) -> None:
    with SentinelGroup(replicas=0, sentinels=1) as group:
        roles_on(locks=group.url())
        run = check(doctor("--role", "locks"))
        assert "1 Sentinel(s) watch" in run.finding("W163")["message"]
        assert _ids_at(run, "W161") == {f"127.0.0.1:{group.master().port}"}


def test_sentinels_down_lose_the_quorum(roles_on, doctor) -> None:
    with SentinelGroup(replicas=1, sentinels=3) as group:
        roles_on(locks=group.url())
        for sentinel in group.sentinels[1:]:
            sentinel.kill()
        deadline = time.monotonic() + 30
        while True:  # the one left counts them out after down-after-milliseconds (1 s)
            run = check(doctor("--role", "locks"))
            if "E162" in run.ids or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert run.status == 1
        assert "NOQUORUM" in run.finding("E162")["message"]
        down = run.finding("W164")["message"]
        assert all(f"127.0.0.1:{s.port}" in down for s in group.sentinels[1:])
        # The data nodes are still checked: the one Sentinel left names them.
        assert _instances(run)[f"127.0.0.1:{group.master().port}"]["reachable"]


@pytest.mark.parametrize("kind", ["cluster", "sentinel"])
def test_no_node_answers(kind, roles_on, doctor) -> None:
    url = {
        "cluster": "redis+cluster://:s3cret@127.0.0.1:1,127.0.0.1:2",
        "sentinel": "redis+sentinel://:s3cret@127.0.0.1:1/mymaster/0",
    }[kind]
    roles_on(locks=url)
    run = check(doctor("--role", "locks"))
    assert run.status == 1
    finding = run.finding("E100")
    assert "s3cret" not in run.stdout
    assert finding["instance"].startswith(f"redis+{kind}://***@127.0.0.1:1")


def test_a_cluster_that_refuses_cluster_nodes_is_found_from_cluster_slots(roles_on, doctor) -> None:
    """A managed cluster may refuse CLUSTER NODES / INFO and CONFIG to the app's user: the
    nodes come from CLUSTER SLOTS (which every cluster client needs), and the report says
    what it could not ask."""
    user = "app on >app-pw ~* &* +@all -cluster|nodes -cluster|info -config"
    with RedisCluster(masters=3, replicas=0, config={"user": user}) as cluster:
        roles_on(locks=cluster.url().replace("redis+cluster://", "redis+cluster://app:app-pw@"))
        run = check(doctor("--role", "locks"))
        masters = {f"127.0.0.1:{n.port}" for n in cluster.masters()}
        assert set(_instances(run)) == masters
        assert all(inst["reachable"] for inst in run.data["instances"])
        assert _ids_at(run, "W101") == masters  # CONFIG refused, per node
        (deployment,) = run.data["deployments"]
        assert any("CLUSTER NODES refused" in note for note in deployment["notes"])
        assert set(deployment["masters"]) == masters
        assert "E160" not in run.ids  # slot coverage unknown: not reported as a failure
        assert "app-pw" not in run.stdout
