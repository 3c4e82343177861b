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
