"""Import boundaries that import-linter cannot check: the compiled extension
``meshcore._core`` is invisible to its import graph, so this walks the source instead."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "python" / "meshcore"


def _is_core_import(node: ast.AST) -> bool:
    if isinstance(node, ast.Import):
        return any(a.name == "meshcore._core" for a in node.names)
    if isinstance(node, ast.ImportFrom):
        names = {a.name for a in node.names}
        return node.module == "meshcore._core" or (
            "_core" in names and (node.module == "meshcore" or node.level > 0)
        )
    return False


def _imports_core(tree: ast.AST) -> list[int]:
    return [node.lineno for node in ast.walk(tree) if _is_core_import(node)]  # type: ignore[attr-defined]


def test_only_the_dataplane_package_imports_the_extension() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE.parent)
        if module.parts[:2] == ("meshcore", "dataplane"):
            continue
        offenders += [f"{module}:{n}" for n in _imports_core(ast.parse(path.read_text()))]
    assert offenders == []


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("import meshcore._core", True),
        ("from meshcore import _core", True),
        ("from meshcore._core import DataPlane", True),
        ("from .. import _core", True),
        ("from meshcore import dataplane", False),
    ],
)
def test_the_check_sees_every_import_form(source: str, found: bool) -> None:
    assert bool(_imports_core(ast.parse(source))) is found
