"""The README's Quick start, pasted into a brand-new ``django-admin startproject``.

A new virtualenv gets the package as a user gets it (``pip install`` of a
fresh clone: a built wheel, not an editable checkout), then Django's own
project template plus the README's settings block, verbatim. The one-instance
set-up it shows is quiet in ``check`` and ``migrate``; ``check --deploy`` is
where sharing one server between sessions and the cache is warned about
(``redisroles.W021``, docs/checks.md).

Needs PyPI: run with ``scripts/test -m firstrun``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import INSTALL_NOISE, ROOT, fresh_clone, user_env

pytestmark = [pytest.mark.firstrun, pytest.mark.timeout(900)]


def quick_start_settings() -> str:
    """The ```python block of the README's "Quick start in your project" section."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start in your project", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the Quick start has one settings block"
    return blocks[0]


def run(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_readme_quick_start_in_a_new_project(tmp_path: Path) -> None:
    clone = fresh_clone(tmp_path / "clone")
    env = user_env()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = run(python, "-m", "pip", "install", clone, cwd=tmp_path, env=env)
    assert install.returncode == 0, install.stdout + install.stderr
    for noise in INSTALL_NOISE:
        assert noise not in install.stdout + install.stderr, install.stderr

    project = tmp_path / "mysite"
    project.mkdir()
    made = run(
        venv / "bin" / "django-admin", "startproject", "mysite", project, cwd=tmp_path, env=env
    )
    assert made.returncode == 0, made.stderr
    settings = project / "mysite" / "settings.py"
    settings.write_text(
        settings.read_text() + "\n# The README's Quick start:\n" + quick_start_settings()
    )

    check = run(python, "manage.py", "check", cwd=project, env=env)
    assert check.returncode == 0, check.stderr
    assert "System check identified no issues (0 silenced)." in check.stdout, check.stdout
    assert "WARNINGS" not in check.stdout + check.stderr

    migrate = run(python, "manage.py", "migrate", cwd=project, env=env)
    assert migrate.returncode == 0, migrate.stderr
    assert "WARNINGS" not in migrate.stdout + migrate.stderr, migrate.stderr

    # The shared server is a deployment concern: check --deploy says so (and how to split).
    deploy = run(python, "manage.py", "check", "--deploy", cwd=project, env=env)
    assert "redisroles.W021" in deploy.stderr + deploy.stdout
