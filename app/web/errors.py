"""Error pages: short, translated, with what to do next; never a traceback."""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)
bp = Blueprint("errors", __name__)

PAGES = {
    400: (_l("Something was wrong with this request"), _l("Go back, reload the page and try again.")),
    403: (_l("Not allowed"), _l("You do not have access to this page.")),
    404: (_l("Page not found"), _l("Check the address, or scan the poster again.")),
    405: (_l("Not allowed"), _l("Go back and use the form on the page.")),
    410: (
        _l("This poster has been replaced"),
        _l("This code is no longer in use. Look for a newer poster nearby, or ask your station's union contact."),
    ),
    413: (_l("Too much data"), _l("What you sent is too large. Go back, shorten it and try again.")),
    422: (_l("Something was wrong with this request"), _l("Go back and check what you entered.")),
    429: (_l("Too many requests"), _l("Please wait a while, then try again.")),
    500: (
        _l("Something went wrong on our side"),
        _l("Nothing you did caused this. Please try again in a few minutes."),
    ),
    503: (_l("Temporarily unavailable"), _l("Please try again in a few minutes.")),
}


def render_error(status: int, message: str | None = None, *, retry_after: int | None = None) -> ResponseReturnValue:
    """The error page; with `retry_after` (seconds) also the Retry-After header."""
    title, advice = PAGES.get(status, PAGES[500] if status >= 500 else PAGES[400])
    body = render_template("errors/error.html", status=status, title=title, advice=message or advice)
    return (body, status, {"Retry-After": str(retry_after)}) if retry_after else (body, status)


def register(app: Flask) -> None:
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


def _csrf_error(_exc: CSRFError) -> ResponseReturnValue:
    return render_error(400, _l("This page was open too long or came from elsewhere. Reload it and try again."))


def _http_error(exc: HTTPException) -> ResponseReturnValue:
    if request.path.startswith("/api/"):  # routing errors (404, 405) never reach the API blueprint's handlers
        from app.web.api import http_error_response

        return http_error_response(exc)
    return render_error(exc.code or 500)


def _unexpected(exc: Exception) -> ResponseReturnValue:
    from app.db import close_session

    close_session()  # rolls back whatever the request had started
    log.error("unhandled %s", type(exc).__name__, exc_info=exc)
    return render_error(InternalServerError.code)
