"""Pages for everyone: the front page, the language switch, the health check."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, jsonify, redirect, render_template, request, session
from sqlalchemy import text

from app import db

bp = Blueprint("meta", __name__)


@bp.get("/")
def index() -> str:
    return render_template("meta/index.html")


@bp.get("/lang/<code>")
def switch_language(code: str):  # type: ignore[no-untyped-def]
    session["lang"] = "en" if code == "en" else "zh_Hans_CN"
    target = request.args.get("next", "/")
    # Only a path on this site: never an open redirect.
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        target = "/"
    return redirect(target)


@bp.get("/healthz")
def health():  # type: ignore[no-untyped-def]
    try:
        db.get_session().exec(text("SELECT 1"))  # type: ignore[call-overload]
    except Exception:  # noqa: BLE001 - any database failure means unhealthy
        return jsonify(status="error", database="down"), 503
    return jsonify(status="ok", database="ok")
