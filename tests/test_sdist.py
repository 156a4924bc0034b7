"""tests/sdist.py unpacks peers' sdists safely on every Python 3.11.x.

``tarfile``'s ``filter="data"`` arrived in 3.11.4; on 3.11.0-3.11.3 (Debian
12's Python is 3.11.2) the fallback filter runs instead. Both are exercised
here, whichever Python runs the suite.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from tests.sdist import _safe_members, extract, extract_vetted


def _tarball(path: Path, *entries: tarfile.TarInfo, data: bytes = b"ok\n") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info in entries:
            if info.isfile():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _file(name: str, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info


def _link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


def test_fallback_unpacks_files_without_special_bits(tmp_path: Path) -> None:
    archive = _tarball(
        tmp_path / "a.tar.gz", _file("pkg-1.0/tests/t.py"), _file("pkg-1.0/run", 0o4755)
    )
    dest = tmp_path / "out"
    dest.mkdir()
    with tarfile.open(archive) as tar:
        extract_vetted(tar, dest)
    assert (dest / "pkg-1.0/tests/t.py").read_bytes() == b"ok\n"
    assert (dest / "pkg-1.0/run").stat().st_mode & 0o7777 == 0o755  # no setuid


def test_fallback_refuses_a_path_outside_the_destination(tmp_path: Path) -> None:
    archive = _tarball(tmp_path / "a.tar.gz", _file("pkg-1.0/ok.py"), _file("../escaped.py"))
    dest = tmp_path / "out"
    dest.mkdir()
    with tarfile.open(archive) as tar, pytest.raises(RuntimeError, match="outside"):
        list(_safe_members(tar, dest))
    assert not (tmp_path / "escaped.py").exists()


def test_fallback_leaves_links_out(tmp_path: Path) -> None:
    archive = _tarball(tmp_path / "a.tar.gz", _file("pkg-1.0/ok.py"), _link("pkg-1.0/l", "/etc"))
    dest = tmp_path / "out"
    dest.mkdir()
    with tarfile.open(archive) as tar:
        names = [m.name for m in _safe_members(tar, dest)]
    assert names == ["pkg-1.0/ok.py"]


def test_extract_works_on_this_python(tmp_path: Path) -> None:
    """The path this Python takes (filter="data" on 3.11.4+, the fallback before)."""
    archive = _tarball(tmp_path / "a.tar.gz", _file("pkg-1.0/tests/t.py"))
    dest = tmp_path / "out"
    dest.mkdir()
    with tarfile.open(archive) as tar:
        extract(tar, dest)
    assert (dest / "pkg-1.0/tests/t.py").read_bytes() == b"ok\n"
