"""The shape of the code: apps depend one way, gitops is a library, modules and functions stay small.

Imports are read from the source (every ``import``, at module level or inside a function), so
an import hidden in a function to dodge a cycle is caught like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("config", "accounts", "clusters", "gitops", "operations", "frontend")
# Who may import whom (besides itself): config <- accounts <- clusters, and gitops is a library;
# operations (status, metrics) sits on top of them all, and nothing imports it.
ALLOWED = {
    "config": set(),
    "accounts": {"config"},
    "clusters": {"config", "accounts", "gitops"},
    "gitops": set(),
    "operations": {"config", "accounts", "clusters", "gitops"},
    "frontend": set(),
}
MODULE_LINES_MAX = 500
FUNCTION_LINES_MAX = 60


def _sources() -> list[Path]:
    return sorted(
        path for app in APPS for path in (ROOT / app).rglob("*.py") if "migrations" not in path.parts
    )


def _imported_apps(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {name.split(".")[0] for name in names} & set(APPS)


def _app_of(path: Path) -> str:
    return path.relative_to(ROOT).parts[0]


def test_apps_import_only_what_they_are_allowed_to():
    forbidden = [
        f"{path.relative_to(ROOT)} imports {imported}"
        for path in _sources()
        for imported in sorted(_imported_apps(path) - ALLOWED[_app_of(path)] - {_app_of(path)})
    ]
    assert forbidden == []


def test_the_app_dependency_graph_has_no_cycle():
    graph: dict[str, set[str]] = {app: set() for app in APPS}
    for path in _sources():
        graph[_app_of(path)] |= _imported_apps(path) - {_app_of(path)}

    def reaches(start: str, target: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(
            nxt == target or (nxt not in seen and reaches(nxt, target, seen | {nxt})) for nxt in graph[start]
        )

    assert [app for app in APPS if reaches(app, app)] == []


def test_gitops_knows_no_django_model_or_setting():
    offenders = []
    for path in (ROOT / "gitops").rglob("*.py"):
        text = path.read_text()
        if "django.conf" in text or "django.db.models" in text or "from django.apps" in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


@pytest.mark.parametrize("path", _sources(), ids=lambda path: str(path.relative_to(ROOT)))
def test_modules_and_functions_stay_small(path):
    lines = path.read_text().splitlines()
    assert len(lines) <= MODULE_LINES_MAX, f"{len(lines)} lines"
    long_functions = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse("\n".join(lines)))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > FUNCTION_LINES_MAX
    ]
    assert long_functions == []
