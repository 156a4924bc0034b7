"""2 processes x 20 threads fire at a 10/m limit: exactly 10 pass, per algorithm."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import all_keys

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, os, sys, threading, time
import django
django.setup()
from django.conf import settings
from django.http import HttpResponse
from django.test import RequestFactory

# Under 40 concurrent connections on a busy CI box, the role's 0.25 s
# timeout could fail a check open and pass it; this test is about counting.
settings.REDISROLES["ROLES"]["ratelimit"] = {"OPTIONS": {"socket_timeout": 10,
                                                         "socket_connect_timeout": 10}}
from django_redisroles.ratelimit import rate_limit

algorithm, start_at = sys.argv[1], float(sys.argv[2])

@rate_limit("10/m", key="ip", algorithm=algorithm, group="concurrency")
def view(request):
    return HttpResponse("ok")

rf = RequestFactory()
statuses, failed = [], []
barrier = threading.Barrier(20)

def run():
    request = rf.get("/", REMOTE_ADDR="203.0.113.50")
    barrier.wait()
    time.sleep(max(0.0, start_at - time.time()))
    statuses.append(view(request).status_code)
    failed.append(request.ratelimit.failed)

threads = [threading.Thread(target=run) for _ in range(20)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"statuses": statuses, "failed": sum(failed)}))
"""


def _wait_for_window_middle(redis_client) -> None:
    # fixed and sliding windows start on whole minutes of Redis' clock; a burst
    # that straddles one would rightly get two windows' worth.
    sec, _ = redis_client.time()
    if sec % 60 > 50:
        time.sleep(61 - sec % 60)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["fixed", "sliding", "gcra"])
def test_two_processes_twenty_threads_exactly_ten_pass(algorithm: str, redis_client) -> None:
    _wait_for_window_middle(redis_client)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "REDISROLES_NO_DAPHNE": "1",
    }
    start_at = str(time.time() + 3.0)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, algorithm, start_at],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    statuses = [s for o in outputs for s in o["statuses"]]
    assert len(statuses) == 40
    assert sum(o["failed"] for o in outputs) == 0
    assert statuses.count(200) == 10
    assert statuses.count(429) == 30
    assert all_keys(redis_client) and all(redis_client.pttl(k) > 0 for k in all_keys(redis_client))
