"""Pages for everyone: the front page and the language switch (the health check: app/web/ops.py)."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, session

from app.security import safe_path

bp = Blueprint("meta", __name__)


@bp.get("/")
def index() -> str:
    return render_template("meta/index.html")


@bp.get("/lang/<code>")
def switch_language(code: str):  # type: ignore[no-untyped-def]
    session["lang"] = "en" if code == "en" else "zh_Hans_CN"
    return redirect(safe_path(request.args.get("next"), "/"))
