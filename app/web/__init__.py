"""Blueprints, one module per audience; every module here with a `bp` is registered."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Any

from werkzeug.routing import IntegerConverter

MAX_DB_ID = 2**31 - 1


class DatabaseId(IntegerConverter):
    """`<int:…>` in every route: only ids an integer column can hold match, anything else is a 404.

    Without it, /members/2147483648 reaches PostgreSQL, which refuses the value with an error.
    """

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:  # noqa: A002 - werkzeug's name
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", MAX_DB_ID)
        super().__init__(map, *args, **kwargs)


def blueprint_modules() -> list[ModuleType]:
    """Every module with a `bp` in app/web and its packages (app/web/worker)."""
    infos = pkgutil.walk_packages(__path__, prefix=f"{__name__}.")
    modules = [importlib.import_module(info.name) for info in infos]
    return [module for module in modules if hasattr(module, "bp")]


# Folders of the pages a worker meets (and the layout and error pages they share).
WORKER_TEMPLATES = ("join/", "worker/", "status/", "challenge/", "transfer/", "errors/", "base.html")


def warm_templates(app: Any) -> int:
    """Compile the worker's templates now; returns how many. gunicorn.conf.py calls it when a
    worker starts, before it takes a request: Jinja compiles a template on first use (a few
    hundred ms for the join page and its layout on a small core), which would otherwise land on
    the first workers to scan a poster after every worker start or recycle (`max_requests`)."""
    names = [name for name in app.jinja_env.list_templates() if name.startswith(WORKER_TEMPLATES)]
    for name in names:
        app.jinja_env.get_template(name)
    return len(names)
