"""Web hardening on every request and response, errors included (docs/security.md E1–E5)."""

from __future__ import annotations

from flask import Flask, Response, abort, current_app, request
from limits.errors import StorageError
from werkzeug.exceptions import SecurityError

CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
HSTS_SECONDS = 63072000  # two years (E1 asks for at least one)
HSTS = f"max-age={HSTS_SECONDS}; includeSubDomains"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def init_app(app: Flask) -> None:
    # First of all before_request functions: a cross-site POST is refused before CSRF or any
    # limiter runs, so it costs nothing and changes nothing.
    app.before_request_funcs.setdefault(None, []).insert(0, reject_cross_site)
    app.after_request(add_headers)
    app.register_error_handler(StorageError, limiter_down)
    app.register_error_handler(SecurityError, bad_host)


def bad_host(_exc: SecurityError) -> Response:
    """A Host outside TRUSTED_HOSTS: no URL can be built for it, so a page without links."""
    body = "<!doctype html><meta charset=utf-8><title>400</title><h1>400 Bad Request</h1>"
    return Response(body, status=400, mimetype="text/html")


def limiter_down(_exc: StorageError):  # type: ignore[no-untyped-def]
    """A limit that cannot be counted is not passed (fail closed): 503, never a 500 or a pass."""
    from app.web.errors import render_error

    return render_error(503)


def reject_cross_site() -> None:
    """Fetch metadata (E4): browsers mark requests another site made; never act on those."""
    if request.method not in SAFE_METHODS and request.headers.get("Sec-Fetch-Site") == "cross-site":
        abort(403)


def add_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    # same-origin keeps the Referer that Flask-WTF's HTTPS check needs (docs/security.md E3).
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    if _served_over_https():
        headers.setdefault("Strict-Transport-Security", HSTS)
    if request.endpoint != "static":
        headers.setdefault("Cache-Control", "no-store")
    return response


def _served_over_https() -> bool:
    # Behind a TLS proxy without X-Forwarded-Proto the request looks like http: the public
    # address decides, so HSTS is never lost in production.
    return request.is_secure or current_app.config.get("PUBLIC_BASE_URL", "").startswith("https://")
