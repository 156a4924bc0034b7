"""The ratelimit package's imports flow one way (docs/architecture.md).

middleware, decorators -> enforce -> limiter -> slots -> policy -> rates / keys / options.
A module may import from its own layer or below, never from a layer above:
the request flow reads top to bottom. Function-level imports count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import django_redisroles.ratelimit

PACKAGE = Path(django_redisroles.ratelimit.__file__).parent

# Higher number = closer to the request. Leaves (no ratelimit imports) are 0.
LAYER: dict[str, int] = {
    "rates": 0,
    "signals": 0,
    "stats": 0,
    "options": 0,
    "keys": 1,
    "policy": 2,
    "slots": 3,  # a check across cluster slots
    "limiter": 4,
    "rules": 4,
    "ops": 4,
    "responses": 5,  # rendering: reads results, never runs a check
    "enforce": 6,
    "middleware": 7,
    "decorators": 7,
}


def _ratelimit_imports(path: Path) -> set[str]:
    """Sibling modules ``path`` imports (relative or absolute, at any depth)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                module = node.module or ""
            elif node.level == 0 and (node.module or "").startswith("django_redisroles.ratelimit"):
                module = (node.module or "").removeprefix("django_redisroles.ratelimit").lstrip(".")
            else:
                continue
            if module:
                found.add(module.split(".")[0])
            else:  # from . import x
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("django_redisroles.ratelimit."):
                    found.add(alias.name.split(".")[2])
    return found & set(LAYER)


def test_every_module_has_a_layer() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert modules == set(LAYER)


def test_imports_only_go_down() -> None:
    upward = []
    for name, layer in LAYER.items():
        for imported in _ratelimit_imports(PACKAGE / f"{name}.py"):
            if LAYER[imported] >= layer and imported != name:
                upward.append(f"{name} (layer {layer}) imports {imported} ({LAYER[imported]})")
    assert upward == []


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    # The walker sees a function-level import too (a cycle used to hide there).
    module = tmp_path / "limiter.py"
    module.write_text("def f():\n    from .enforce import process\n")
    assert _ratelimit_imports(module) == {"enforce"}
