"""Each entry point and each service imports on its own in a fresh interpreter.

The suite imports modules in one order (conftest first); gunicorn, `flask --app wsgi …` and the
consumer import `wsgi` first, and a tool may import one service first. An import cycle that only one
of those orders trips (tasks → transfers → roster → tasks once did) passed every other test while
`import wsgi` failed: this test runs each order that matters in a process of its own.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _first_imports() -> list[str]:
    services = sorted(
        f"app.services.{path.stem if path.is_file() else path.name}"
        for path in (ROOT / "app" / "services").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").exists()
    )
    return ["wsgi", "app", "app.models", *services]


def _import_alone(module: str) -> tuple[str, int, str]:
    done = subprocess.run(  # noqa: S603 - our own interpreter, our own module names
        [sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    return module, done.returncode, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""


def test_every_entry_point_and_service_imports_first_in_a_fresh_interpreter():
    modules = _first_imports()
    assert "app.services.tasks" in modules and len(modules) > 30
    with ThreadPoolExecutor(max_workers=4) as pool:
        failed = [(name, last) for name, code, last in pool.map(_import_alone, modules) if code != 0]
    assert failed == []
