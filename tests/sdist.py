"""Fetch a peer project's own test files from its sdist on PyPI, at test time.

Django's cache and session suites and channels_redis's pub/sub suite are run
against our backends without copying their code into this repository: the
sdist of the *installed* version is downloaded once (``pip download``) into
``.cache/sdists/`` and unpacked there.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

CACHE_DIR = Path(__file__).resolve().parent.parent / ".cache" / "sdists"


def fetch_sdist(distribution: str, dist_version: str | None = None) -> Path:
    """Unpacked source tree of ``distribution`` (default: the installed version)."""
    dist_version = dist_version or version(distribution)
    target = CACHE_DIR / f"{distribution.lower()}-{dist_version}"
    marker = target / ".complete"
    if marker.exists():
        return _root(target)
    download = CACHE_DIR / "downloads"
    download.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--dest",
            str(download),
            f"{distribution}=={dist_version}",
        ],
        check=True,
    )
    stem = distribution.lower().replace("-", "_")
    candidates = [
        p
        for p in download.glob("*.tar.gz")
        if p.name.lower().replace("-", "_").startswith(f"{stem}_{dist_version}".lower())
        or p.name.lower().replace("-", "_").startswith(f"{stem}-{dist_version}".lower())
    ]
    if not candidates:
        raise RuntimeError(f"no sdist of {distribution}=={dist_version} in {download}")
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(candidates[0]) as tar:
        tar.extractall(target, filter="data")
    marker.touch()
    return _root(target)


def _root(target: Path) -> Path:
    dirs = [p for p in target.iterdir() if p.is_dir()]
    return dirs[0] if len(dirs) == 1 else target
