"""The floors of docs/architecture.md, checked on the source: imports run down, modules stay small.

web, cli -> services -> models, db, config. A services/ or models/ module that imports
Flask or app.web (or app.cli) fails here, as does any module of app/ past MAX_LINES lines
(except the known ones in OVER_LIMIT, owned elsewhere and due to be split).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app"
MAX_LINES = 400
# Known modules over the limit, to be split by their owners; remove a line once it is split.
OVER_LIMIT: frozenset[str] = frozenset()
# What a module of each floor may not import (a name, or a prefix followed by ".").
FORBIDDEN = {
    "app/services/": ("flask", "flask_login", "flask_wtf", "flask_babel", "flask_limiter", "app.web", "app.cli"),
    "app/models/": ("flask", "app.web", "app.cli", "app.services"),
}


def imported_names(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _matches(name: str, forbidden: str) -> bool:
    return name == forbidden or name.startswith(forbidden + ".")


def _modules() -> list[tuple[str, Path]]:
    return sorted((path.relative_to(ROOT).as_posix(), path) for path in APP.rglob("*.py"))


def test_services_and_models_do_not_import_flask_or_the_web_layer():
    offences = [
        f"{name} imports {imported}"
        for name, path in _modules()
        for floor, forbidden in FORBIDDEN.items()
        if name.startswith(floor)
        for imported in sorted(imported_names(path))
        if any(_matches(imported, bad) for bad in forbidden)
    ]
    assert offences == []


def test_no_module_of_the_app_is_longer_than_the_limit():
    too_long = {
        name: lines
        for name, path in _modules()
        if name not in OVER_LIMIT and (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert too_long == {}, f"split these modules (docs/architecture.md): {too_long}"


def test_the_checks_themselves_see_an_offence(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from flask import request\n    import app.web.join\n", encoding="utf-8")
    names = imported_names(module)
    assert any(_matches(n, "flask") for n in names) and any(_matches(n, "app.web") for n in names)
