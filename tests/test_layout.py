"""Module size: no module of django_redisroles over 400 lines unless docs/architecture.md says why.

A long module is a sign it does more than one job. The ones that stay long
are listed in the "Long modules" table of docs/architecture.md with the
reason; a row for a module that is no longer long (or gone) fails too, so the
table stays true.

One test per area (a subpackage, or a top-level module), like
tests/test_imports.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "django_redisroles"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
BUDGET = 400


def lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def documented_long_modules() -> dict[str, str]:
    """``path -> reason`` from the table between the long-modules markers of architecture.md."""
    text = ARCHITECTURE.read_text()
    start = text.index("<!-- long modules -->")
    end = text.index("<!-- end long modules -->", start)
    rows = re.findall(r"^\| `([^`]+)` \| (.*?) \|\s*$", text[start:end], re.MULTILINE)
    assert len(rows) == len({path for path, _ in rows}), "a module has two rows"
    return dict(rows)


def area(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0].removesuffix(".py") if parts else "__init__"


AREAS = sorted({area(p) for p in PACKAGE.rglob("*.py")})


@pytest.mark.parametrize("name", AREAS)
def test_no_module_over_the_line_budget_unless_documented(name: str) -> None:
    documented = documented_long_modules()
    too_long = {
        str(path.relative_to(ROOT)): lines(path)
        for path in sorted(PACKAGE.rglob("*.py"))
        if area(path) == name and lines(path) > BUDGET
    }
    undocumented = {path: n for path, n in too_long.items() if path not in documented}
    assert not undocumented, (
        f"over {BUDGET} lines and not in docs/architecture.md#long-modules "
        f"(split it, or add a row saying why it is one module): {undocumented}"
    )
    for path, reason in documented.items():
        if area(ROOT / path) == name:
            assert reason.strip(), f"{path}: the row gives no reason"


def test_every_documented_long_module_is_long() -> None:
    stale = {
        path: (lines(ROOT / path) if (ROOT / path).exists() else "gone")
        for path in documented_long_modules()
        if not (ROOT / path).exists() or lines(ROOT / path) <= BUDGET
    }
    assert not stale, f"rows of docs/architecture.md#long-modules to remove: {stale}"
