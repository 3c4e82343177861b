"""The API blueprint: bearer tokens, district scope, JSON errors only (routes in the sibling modules).

A request with `Authorization: Bearer …` is judged by its token alone and is exempt from CSRF (a
browser never adds that header by itself). Without the header, a signed-in staff cookie works too,
but then every state-changing call must pass the CSRF check like any form (docs/security.md E4).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import redis
from flask import Blueprint, Response, current_app, g, jsonify, request
from flask_limiter import RateLimitExceeded
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from limits.errors import StorageError
from werkzeug.exceptions import HTTPException

from app import security
from app.db import close_session, get_session
from app.extensions import client_address_key, csrf, limiter
from app.models import Role, User, utcnow
from app.services import api_tokens, users
from app.web import openapi

log = logging.getLogger("app.web.api")
# Named `blueprint`, not `bp`: app.web registers every module with a `bp`, and only the package
# (app/web/api/__init__.py) may have one, or the blueprint would be registered twice.
blueprint = Blueprint("api", "app.web.api", url_prefix="/api/v1")
csrf.exempt(blueprint)  # bearer requests only: cookie requests are checked in `authenticate` below

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CURSOR_RE = re.compile(openapi.CURSOR_PATTERN)
MEMBER_ROLES = (Role.admin, Role.official)
PLACE_WRITERS = (Role.admin, Role.organizer)
# Present but empty is an error here (the roster pages read it as "any", the API is strict).
NON_EMPTY = ("status", "workplace", "platform", "since", "cursor", "limit", "format")


class ApiError(Exception):
    """An error answered as JSON: status, a short code and a message."""

    def __init__(self, http_status: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.http_status, self.error, self.message, self.extra = http_status, error, message, extra


def error_response(http_status: int, error: str, message: str, **extra: Any) -> Response:
    response = jsonify({"error": error, "message": message, **extra})
    response.status_code = http_status
    if http_status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def http_error_response(exc: HTTPException) -> Response:
    """A werkzeug error (404 route, 405 method, 413 body…) as JSON, keeping headers such as Allow."""
    response = error_response(
        exc.code or 500, (exc.name or "error").lower().replace(" ", "_"), exc.description or exc.name or "error"
    )
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _caller_key() -> str:
    """The bucket of API_RATE_LIMIT: the bearer token (by its hash), else the signed-in user, else the IP."""
    header = request.headers.get("Authorization")
    if header is not None:
        return "api-token:" + api_tokens.digest(header.partition(" ")[2].strip())
    if current_user.is_authenticated:
        return f"api-user:{current_user.user.id}"
    return _address_key()


def _address_key() -> str:
    return "api-ip:" + client_address_key()


def _refused(response: Response) -> bool:
    return response.status_code == 401


# Checked before the token is looked up: a made-up token costs no database query once the
# address is over its limit. Both limits are shared by every endpoint of the blueprint.
limiter.shared_limit(lambda: current_app.config["API_RATE_LIMIT"], "api", key_func=_caller_key)(blueprint)
limiter.shared_limit(
    lambda: current_app.config["API_AUTH_FAILURE_LIMIT"], "api-refused", key_func=_address_key, deduct_when=_refused
)(blueprint)


@blueprint.errorhandler(RateLimitExceeded)
def _too_many(_exc: RateLimitExceeded) -> Response:
    # The limiter adds Retry-After (seconds) to this response as to any other of a limited route.
    log.warning("api rate limit reached: %s %s", request.method, request.endpoint)
    return error_response(429, "rate_limited", "too many requests: wait the seconds in Retry-After, then retry")


@blueprint.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Response:
    return error_response(exc.http_status, exc.error, exc.message, **exc.extra)


@blueprint.errorhandler(CSRFError)
def _csrf_error(exc: CSRFError) -> Response:
    log_denial("csrf")
    return error_response(403, "csrf", "a cookie-authenticated request needs a valid CSRF token")


@blueprint.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return http_error_response(exc)


@blueprint.errorhandler(StorageError)
@blueprint.errorhandler(redis.RedisError)
def _limits_down(_exc: Exception) -> Response:
    """A limit that cannot be counted is not passed (fail closed): 503, as the pages answer.
    Registered for these classes so the blueprint-wide handler below does not take them."""
    close_session()
    log.error("api: the limit store is unreachable (%s)", type(_exc).__name__)
    return error_response(503, "unavailable", "temporarily unavailable: retry in a few minutes")


@blueprint.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    close_session()
    log.error("unhandled %s in the API", type(exc).__name__, exc_info=exc)
    return error_response(500, "internal", "something went wrong on our side")


def log_denial(why: str) -> None:
    user = g.get("api_user")
    log.warning("api denied %s: %s %s by user %s", why, request.method, request.endpoint, user and user.id)


@blueprint.before_request
def authenticate() -> None:
    """Set g.api_user from the bearer token, else from the staff cookie (with CSRF on writes)."""
    if request.endpoint == "api.openapi_json":
        return
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, raw = header.partition(" ")
        db = get_session()
        found = api_tokens.check(db, raw.strip(), now=utcnow()) if scheme.lower() == "bearer" else None
        db.commit()
        if found is None:
            log_denial("token")
            raise ApiError(401, "unauthorized", "a valid bearer token is required")
        g.api_user = found[0]
        if found[1].scope != "write" and request.method not in SAFE_METHODS:
            log_denial("read-only token")
            raise ApiError(403, "forbidden", "this token may only read (scope: read)")
        return
    if not current_user.is_authenticated:
        log_denial("no credentials")
        raise ApiError(401, "unauthorized", "a valid bearer token is required")
    if request.method not in SAFE_METHODS:
        if request.headers.get("Sec-Fetch-Site") == "cross-site":
            log_denial("cross-site")
            raise ApiError(403, "cross_site", "cross-site requests are refused")
        csrf.protect()
    g.api_user = current_user.user


@blueprint.before_request
def refuse_unclean_text() -> None:
    """After authentication, text the boundary would change is refused, not cleaned: the caller is told."""
    fields = security.unclean_fields(request.query_string, request.get_data(cache=True) if request.is_json else b"")
    if fields:
        raise ApiError(400, "invalid_text", "control, format or unassigned characters in: " + ", ".join(fields))


def caller() -> User:
    return g.api_user


def require(*roles: Role) -> None:
    if caller().role not in roles:
        log_denial("role")
        raise ApiError(403, "forbidden", "your role may not do this")


def scope() -> list[int] | None:
    return users.district_ids(get_session(), caller())


def json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return body


@blueprint.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(openapi.document())
