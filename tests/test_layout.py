"""Module size: no module of django_redisroles over 400 lines unless docs/architecture.md says why.

A long module is a sign it does more than one job. The ones that stay long
are listed in the "Long modules" table of docs/architecture.md with the
reason; a row for a module that is no longer long (or gone) fails too, so the
table stays true.

One test per area (a subpackage, or a top-level module), like
tests/test_imports.py. ``KNOWN_LONG`` lists the long modules the re-cut
(issue 13) is splitting; it only shrinks.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "django_redisroles"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
BUDGET = 400

#: The modules over the budget on main before the re-cut (issue 13), exactly. Any
#: other long module fails unless the architecture page lists it; a known one that
#: is no longer long (or gone) fails too. When a role's re-cut lands, delete its
#: lines (the test then says so); never add one: document a long module instead.
KNOWN_LONG: frozenset[str] = frozenset(
    {
        "django_redisroles/cache/backend.py",
        "django_redisroles/sessions/store.py",
    }
)


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
    undocumented = {
        path: n for path, n in too_long.items() if path not in documented and path not in KNOWN_LONG
    }
    assert not undocumented, (
        f"over {BUDGET} lines and not in docs/architecture.md#long-modules "
        f"(split it, or add a row saying why it is one module): {undocumented}"
    )
    for path, reason in documented.items():
        if area(ROOT / path) == name:
            assert reason.strip(), f"{path}: the row gives no reason"


@pytest.mark.parametrize("path", sorted(KNOWN_LONG))
def test_known_long_modules_are_still_long(path: str) -> None:
    assert (ROOT / path).exists() and lines(ROOT / path) > BUDGET, (
        f"{path} is no longer over {BUDGET} lines (or gone): remove it from KNOWN_LONG"
    )


def test_every_documented_long_module_is_long() -> None:
    stale = {
        path: (lines(ROOT / path) if (ROOT / path).exists() else "gone")
        for path in documented_long_modules()
        if not (ROOT / path).exists() or lines(ROOT / path) <= BUDGET
    }
    assert not stale, f"rows of docs/architecture.md#long-modules to remove: {stale}"


def test_known_long_modules_are_not_also_documented() -> None:
    # One list or the other: a module the page explains is not "to be split".
    assert not KNOWN_LONG & set(documented_long_modules())
