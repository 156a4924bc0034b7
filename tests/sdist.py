"""Fetch a peer project's own test files from its sdist on PyPI, at test time.

Django's cache and session suites and channels_redis's pub/sub suite are run
against our backends without copying their code into this repository: the
sdist of the *installed* version is downloaded once (``pip download``) into
``.cache/sdists/`` and unpacked there. Two test runs sharing a checkout may
fetch the same sdist at once: each downloads and unpacks into its own
temporary directory, and the first to rename it into place wins.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
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
    if target.exists():  # half-unpacked by an older version of this module
        shutil.rmtree(target)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{distribution.lower()}-", dir=CACHE_DIR))
    try:
        download = work / "download"
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
        candidates = list(download.glob("*.tar.gz"))
        if not candidates:
            raise RuntimeError(f"no sdist of {distribution}=={dist_version} from pip download")
        unpacked = work / "unpacked"
        unpacked.mkdir()
        with tarfile.open(candidates[0]) as tar:
            extract(tar, unpacked)
        (unpacked / ".complete").touch()
        try:
            os.rename(unpacked, target)  # atomic: a reader sees all of it or nothing
        except OSError:
            if not marker.exists():  # not another run that got there first
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _root(target)


def extract(tar: tarfile.TarFile, dest: Path) -> None:
    """Unpack ``tar`` into ``dest``, refusing anything that would land outside it.

    ``extractall(filter="data")`` arrived in Python 3.11.4 (and 3.12); Debian 12's
    Python is 3.11.2. Without it, only regular files and directories whose
    resolved path stays inside ``dest`` are unpacked, without special mode bits.
    """
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
    else:
        extract_vetted(tar, dest)


def extract_vetted(tar: tarfile.TarFile, dest: Path) -> None:
    """The fallback: only the members :func:`_safe_members` lets through."""
    members = list(_safe_members(tar, dest))
    if hasattr(tarfile, "fully_trusted_filter"):
        # Vetted above. Saying so keeps 3.12+ from warning (DeprecationWarning, an
        # error in tox) that 3.14 changes what an unfiltered extractall does.
        tar.extractall(dest, members=members, filter="fully_trusted")
    else:
        tar.extractall(dest, members=members)


def _safe_members(tar: tarfile.TarFile, dest: Path) -> Iterator[tarfile.TarInfo]:
    root = dest.resolve()
    for member in tar.getmembers():
        if not (member.isfile() or member.isdir()):
            continue  # links, devices, fifos: a test tree needs none
        if not (root / member.name).resolve().is_relative_to(root):
            raise RuntimeError(f"{tar.name}: {member.name!r} would unpack outside {dest}")
        member.mode &= 0o755
        yield member


def _root(target: Path) -> Path:
    dirs = [p for p in target.iterdir() if p.is_dir()]
    return dirs[0] if len(dirs) == 1 else target
