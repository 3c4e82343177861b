"""Pages for everyone: the front page, the language switch, the health check."""

from __future__ import annotations

import redis
from flask import Blueprint, current_app, jsonify, redirect, render_template, request, session
from sqlalchemy import text

from app import db
from app.security import safe_path

bp = Blueprint("meta", __name__)


@bp.get("/")
def index() -> str:
    return render_template("meta/index.html")


@bp.get("/lang/<code>")
def switch_language(code: str):  # type: ignore[no-untyped-def]
    session["lang"] = "en" if code == "en" else "zh_Hans_CN"
    return redirect(safe_path(request.args.get("next"), "/"))


@bp.get("/healthz")
def health():  # type: ignore[no-untyped-def]
    """The database answers, and Redis too when REDIS_URL is set: 200, else 503 (names no host)."""
    checks = {"database": _database_ok()}
    if current_app.config.get("REDIS_URL"):
        checks["redis"] = _redis_ok()
    healthy = all(checks.values())
    body = {"status": "ok" if healthy else "error", **{name: "ok" if ok else "down" for name, ok in checks.items()}}
    return jsonify(body), 200 if healthy else 503


def _database_ok() -> bool:
    try:
        db.get_session().exec(text("SELECT 1"))  # type: ignore[call-overload]
    except Exception:  # noqa: BLE001 - any database failure means unhealthy
        return False
    return True


def _redis_ok() -> bool:
    client = current_app.extensions.get("health_redis")
    if client is None:
        # Short timeouts: a load balancer's probe must get its answer before its own timeout.
        client = redis.Redis.from_url(current_app.config["REDIS_URL"], socket_timeout=1, socket_connect_timeout=1)
        current_app.extensions["health_redis"] = client
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
