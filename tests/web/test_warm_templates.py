"""A gunicorn worker compiles the worker's page templates before its first request."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

from flask import Flask
from jinja2 import TemplateNotFound

from app.web import WORKER_TEMPLATES, warm_templates

ROOT = Path(__file__).resolve().parents[2]


def _compiled(app: Flask) -> set[str]:
    return {name for (_loader, name) in app.jinja_env.cache.keys()} if app.jinja_env.cache is not None else set()  # type: ignore[union-attr]


def test_the_worker_pages_are_compiled_and_then_never_loaded_again(app: Flask, monkeypatch) -> None:
    assert "join/scan.html" not in _compiled(app)
    count = warm_templates(app)
    compiled = _compiled(app)
    assert {"join/scan.html", "worker/code.html", "base.html"} <= compiled
    assert count == len(compiled) and all(name.startswith(WORKER_TEMPLATES) for name in compiled)

    def no_more_loading(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise TemplateNotFound("loaded again")

    monkeypatch.setattr(app.jinja_env.loader, "get_source", no_more_loading)
    assert app.jinja_env.get_template("join/scan.html") is not None  # from the cache


def test_gunicorn_warms_the_app_it_serves_and_leaves_other_apps_alone(app: Flask) -> None:
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    settings["post_worker_init"](SimpleNamespace(wsgi=app))
    assert "join/scan.html" in _compiled(app)
    bare = SimpleNamespace(wsgi=lambda environ, start_response: [])  # a bare WSGI app: nothing to warm
    settings["post_worker_init"](bare)
