"""scripts/typecheck: which mypy errors fail CI (.ci/mypy-required); the list stays true."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "django_redisroles"
# Still being re-cut (issue 13): each joins .ci/mypy-required when its branch lands.
ROLE_AREAS = {"cache", "sessions", "ratelimit", "pubsub", "locks", "doctor"}


def _typecheck() -> ModuleType:
    path = str(ROOT / "scripts" / "typecheck")
    loader = importlib.machinery.SourceFileLoader("redisroles_typecheck", path)
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_a_directory_covers_its_files_and_a_file_only_itself() -> None:
    tc = _typecheck()
    required = tc.required_paths(
        "# comment\n\ndjango_redisroles/conf/\ndjango_redisroles/apps.py\n"
    )
    assert required == ["django_redisroles/conf/", "django_redisroles/apps.py"]
    assert tc.is_required("django_redisroles/conf/urls.py", required)
    assert tc.is_required("django_redisroles/apps.py", required)
    assert not tc.is_required("django_redisroles/apps_extra.py", required)
    assert not tc.is_required("django_redisroles/confx/a.py", required)
    assert not tc.is_required("django_redisroles/cache/backend.py", required)


def test_the_listed_paths_exist_and_cover_every_shared_module() -> None:
    tc = _typecheck()
    required = tc.required_paths((ROOT / ".ci" / "mypy-required").read_text())
    assert [r for r in required if not (ROOT / r).exists()] == []
    shared = [
        str(path.relative_to(ROOT))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0].removesuffix(".py") not in ROLE_AREAS
    ]
    # A new shared module is type-checked from its first commit.
    assert [p for p in shared if not tc.is_required(p, required)] == []
