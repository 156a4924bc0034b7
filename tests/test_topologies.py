"""The harness on three topologies: the assertion client of a cluster sees the whole
cluster, and a test inherently about one server says so with a marker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django_redisroles.testing import ClusterClient, RedisServer
from tests.conftest import session_topology

ROOT = Path(__file__).resolve().parent.parent


def test_the_cluster_assertion_client_sees_every_node() -> None:
    cluster = session_topology("cluster")
    cluster.flushall()
    keys = [f"k{i}" for i in range(30)]  # spread over the three masters' slots
    with cluster.client() as client:
        assert isinstance(client, ClusterClient)
        client.config_resetstat()
        for key in keys:
            client.set(key, 1)
        assert sorted(k.decode() for k in client.keys("*")) == sorted(keys)
        assert client.dbsize() == 30
        # Counted on each master, added up: every SET of this test.
        assert client.info("commandstats")["cmdstat_set"]["calls"] == 30
        before = client.config_get("maxmemory-policy")["maxmemory-policy"]
        try:
            client.config_set("maxmemory-policy", "allkeys-lru")
            for node in cluster.nodes:  # replicas too
                with node.admin() as direct:
                    assert direct.config_get("maxmemory-policy") == {
                        "maxmemory-policy": "allkeys-lru"
                    }
        finally:
            client.config_set("maxmemory-policy", before)
        # Each node's clients: a node's port is the local address of what it accepted
        # (a replica's own link to its master is listed too, from an ephemeral port).
        ports = {int(c["laddr"].rsplit(":", 1)[1]) for c in client.client_list()}
        assert ports >= {node.port for node in cluster.nodes}
        # redis-py's own routing still applies when a test picks the node.
        one = client.get_primaries()[0]
        assert client.dbsize(target_nodes=one) < 30


def test_single_server_is_one_server_on_any_topology(single_server) -> None:
    assert isinstance(single_server, RedisServer)
    with single_server.client() as client:
        assert client.dbsize() == 0


MARKED = """
import pytest


@pytest.mark.topologies("cluster", "sentinel", reason="about a cluster's slots")
def test_elsewhere():
    pass


@pytest.mark.topologies("single", reason="kills the server")
def test_here(redis_server):
    assert redis_server.kind == "single"
"""


def test_a_test_marked_for_other_topologies_is_not_applicable_with_its_reason(
    tmp_path: Path,
) -> None:
    (tmp_path / "test_marked.py").write_text(MARKED)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(ROOT)
    env["REDISROLES_TEST_TOPOLOGY"] = "single"
    run = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-rs", "-p", "tests.conftest"),
            *("-c", str(ROOT / "setup.cfg"), "--rootdir", str(ROOT), str(tmp_path)),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed, 1 skipped" in run.stdout
    assert "--topology cluster, sentinel only: about a cluster's slots" in run.stdout
