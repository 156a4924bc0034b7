"""Test helpers that work on every topology (single server, Redis Cluster, Sentinel)."""

from __future__ import annotations


def commandstats(client) -> dict[str, int]:
    """Calls per command, from INFO commandstats."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def all_keys(client, pattern: str = "*") -> list[bytes]:
    """Every key matching ``pattern``: on a Redis Cluster, from every master."""
    if hasattr(client, "get_primaries"):
        return list(client.keys(pattern, target_nodes=client.PRIMARIES))
    return list(client.keys(pattern))


def data_node(topology, key: str):
    """The server that holds ``key``: the server itself, its cluster master, the Sentinel master."""
    if topology.kind == "cluster":
        return topology.node_for(key)
    if topology.kind == "sentinel":
        return topology.master()
    return topology


def masters(topology) -> list:
    """The servers that take writes: every cluster master, the Sentinel master, the server."""
    if topology.kind == "cluster":
        return topology.masters()
    if topology.kind == "sentinel":
        return [topology.master()]
    return [topology]


def reset_stats(topology) -> None:
    """``CONFIG RESETSTAT`` on every master."""
    for server in masters(topology):
        with server.client() as c:
            c.config_resetstat()


def calls(topology, command: str = "evalsha") -> int:
    """Calls of ``command`` on every master since :func:`reset_stats`."""
    total = 0
    for server in masters(topology):
        with server.client() as c:
            total += commandstats(c).get(command, 0)
    return total
