"""For the people who run it: the health check, the metrics, request ids and timings.

/healthz says whether this process can serve pages, which needs the database only: the poster
and join pages work without Redis, so a Redis outage is reported in the body and in metrics but
never takes every server out of a load balancer's rotation at once. Sending codes still fails
closed without Redis (app/services/limits/). /metrics answers only with METRICS_TOKEN as a
bearer token (404 when no token is set: Prometheus then reads gunicorn's METRICS_BIND).
Every request gets an id (X-Request-ID when it is a plain id, else a new one), echoed in the
response and named by every log line written while it is answered (app/logs.py).
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, current_app, g, jsonify, request
from limits.storage import StorageTypes, storage_from_string
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app import db, logs
from app.services import crypto, metrics, tasks

log = logging.getLogger(__name__)
bp = Blueprint("ops", __name__)

REDIS_TIMEOUT = 1  # seconds: a load balancer's probe must get its answer before its own timeout


@bp.get("/healthz")
def health():  # type: ignore[no-untyped-def]
    """200 while the database answers, else 503; Redis reported, never deciding (names no host)."""
    database = _database_ok()
    body = {"status": "ok" if database else "error", "database": "ok" if database else "down"}
    if current_app.config.get("REDIS_URL"):
        up = _redis_ok()
        metrics.redis_up(up)
        body["redis"] = "ok" if up else "down"
    return jsonify(body), 200 if database else 503


@bp.get("/metrics")
def metrics_page():  # type: ignore[no-untyped-def]
    token = current_app.config.get("METRICS_TOKEN") or ""
    if not token:
        return Response("Not Found\n", 404, mimetype="text/plain")
    given = request.headers.get("Authorization", "")
    if not crypto.equal(given, f"Bearer {token}"):
        return Response("Unauthorized\n", 401, {"WWW-Authenticate": "Bearer"}, mimetype="text/plain")
    try:
        metrics.queue_depth(tasks.depth(db.get_session()))
    except SQLAlchemyError:  # the database is down: the rest of the figures still help
        log.warning("queue depth not read: the database did not answer")
    return Response(metrics.exposition(), 200, content_type=metrics.CONTENT_TYPE)


@bp.before_app_request
def start_request() -> None:
    g.started = time.perf_counter()
    g.request_id = request_id = logs.new_request_id(request.environ.get("HTTP_X_REQUEST_ID"))
    g.request_id_token = logs.REQUEST_ID.set(request_id)  # every log line of this request names it


@bp.teardown_app_request
def end_request(_exc: BaseException | None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        logs.REQUEST_ID.reset(token)


@bp.after_app_request
def finish_request(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id:
        response.headers["X-Request-ID"] = request_id
    started = g.get("started")
    if started is not None:
        metrics.request_done(request.endpoint, request.method, response.status_code, time.perf_counter() - started)
    return response


def _database_ok() -> bool:
    try:
        db.get_session().exec(text("SELECT 1"))  # type: ignore[call-overload]
    except Exception:  # noqa: BLE001 - any database failure means unhealthy
        return False
    return True


def _redis_ok() -> bool:
    """Ping REDIS_URL through the `limits` library, which reads redis://, rediss://,
    redis+sentinel:// and redis+cluster:// alike; a store that cannot even be built is down."""
    try:
        storage = current_app.extensions.get("health_redis") or _redis_store()
        return bool(storage.check())
    except Exception:  # noqa: BLE001 - whatever the failure, Redis is down for this probe
        return False


def _redis_store() -> StorageTypes:
    options = {"socket_timeout": REDIS_TIMEOUT, "socket_connect_timeout": REDIS_TIMEOUT}
    storage = storage_from_string(current_app.config["REDIS_URL"], **options)
    current_app.extensions["health_redis"] = storage
    return storage
