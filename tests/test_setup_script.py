"""scripts/_setup.sh, which scripts/test and scripts/demo source: the virtualenv they make."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: The smallest project ensure_venv can install (`pip install -e ".[x]"`).
PYPROJECT = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "setup-script-probe"
version = "0"
[project.optional-dependencies]
x = []

[tool.setuptools]
py-modules = []
"""


def _ensure_venv(project: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PYTHON"] = sys.executable  # this run's Python: 3.11+ whatever the machine's python3
    return subprocess.run(
        ["bash", "-c", "source scripts/_setup.sh && ensure_venv x"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_a_venv_whose_python_was_removed_is_made_anew(tmp_path: Path) -> None:
    """``brew upgrade python`` (or a pyenv uninstall) leaves .venv/bin/python dangling:
    the next scripts/test must still work, not blame python3-venv."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "_setup.sh", tmp_path / "scripts")
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    first = _ensure_venv(tmp_path)
    assert first.returncode == 0, first.stderr
    venv_python = tmp_path / ".venv" / "bin" / "python"
    assert (tmp_path / ".venv" / ".installed-x").exists()

    # The interpreter .venv links to is gone.
    for link in (tmp_path / ".venv" / "bin").glob("python*"):
        link.unlink()
        link.symlink_to(tmp_path / "removed" / "python3")
    assert venv_python.is_symlink() and not venv_python.exists()

    again = _ensure_venv(tmp_path)
    assert again.returncode == 0, again.stderr
    assert "making .venv anew" in again.stderr
    # Not Debian's python3-venv's fault: no advice to install it (non-root, where the
    # run used to stop), no apt-get run for it (root).
    assert "venv support is missing" not in again.stderr and "apt-get" not in again.stderr
    assert subprocess.run([venv_python, "-c", ""]).returncode == 0
    assert (tmp_path / ".venv" / ".installed-x").exists()
