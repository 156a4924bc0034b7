"""Django's own BaseCacheTests, from the installed Django's sdist, on RedisRolesCache.

Runs ``tests/cache/django_suite.py`` in a subprocess (the suite needs Django's
``cache`` test app installed): once through the sync methods and once through
the native async ones. The timeout=None tests must get TimeoutRequired.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from django_redisroles.testing import RedisServer
from tests.sdist import fetch_sdist

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("near", ["0", "1"], ids=["redis", "near-cache"])
def test_django_base_cache_tests_pass_sync_and_async(redis_server: RedisServer, near: str) -> None:
    """``near-cache``: the same suite with OPTIONS["NEAR_CACHE"] on every cache."""
    tests_dir = fetch_sdist("Django") / "tests"
    assert (tests_dir / "cache" / "tests.py").exists()
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url(),
        "PYTHONPATH": str(ROOT),
        "REDISROLES_SUITE_NEAR": near,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "tests.cache.django_suite", str(tests_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-8000:]
    ran = int(re.search(r"Ran (\d+) tests", output).group(1))  # type: ignore[union-attr]
    # Each of BaseCacheTests' ~54 tests, twice (sync and async bridge).
    assert ran >= 100, output[-3000:]
    skipped = re.findall(r"\.\.\. skipped '?\"?(.*?)[\"']?$", output, re.M)
    # Only the culling tests are skipped (Redis evicts by itself), as for Django's RedisCache.
    assert skipped and set(skipped) == {"Culling isn't implemented."}, skipped
    for name in ("test_forever_timeout", "test_has_key"):
        assert re.search(rf"{name} \(.*RedisRolesCacheDjangoTests.*\n?.*\.\.\. ok", output)
