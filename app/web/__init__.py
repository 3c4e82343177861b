"""Blueprints, one module per audience; every module here with a `bp` is registered."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def blueprint_modules() -> list[ModuleType]:
    modules = [importlib.import_module(f"{__name__}.{info.name}") for info in pkgutil.iter_modules(__path__)]
    return [module for module in modules if hasattr(module, "bp")]
