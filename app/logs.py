"""Logging that cannot leak a phone number, a name or a code, even by mistake.

Every record passes a filter that masks runs of six or more digits (codes, phone numbers in
any format) before any handler sees it, and a traceback keeps its frames and exception types
but not the exceptions' messages (they can quote input: openpyxl's quotes the cell, a database
error its parameters). Access logs drop query strings (search boxes take names and phones).
Every logger of the process goes through this, gunicorn's included (gunicorn.conf.py). It is a
last line of defence: the code never logs personal data on purpose.

Lines are JSON (LOG_FORMAT=json, the default; `text` for a person at a terminal), one per
record, written as they happen, each with the request id of the request that logged it
(app/web/ops.py sets it from X-Request-ID or makes one). In JSON every string field of the
record is masked, not only the message: an `extra=` value passes the same filter.
"""

from __future__ import annotations

import logging
import re
import secrets
import sys
import traceback
from contextvars import ContextVar
from types import TracebackType
from typing import Any

from pythonjsonlogger.json import JsonFormatter

DIGIT_RUN = re.compile(r"\+?\d[\d\s-]{4,}\d")
# "GET /api/v1/members?q=... HTTP/1.1": everything from "?" to the next space or quote.
QUERY_STRING = re.compile(r"(/[^\s?\"]*)\?[^\s\"]*")
# Paths whose last part is a secret or names a person: a staff set-up link (whoever reads it can
# set the password), an export file's signed link, a member card's token. Logged as "[token]".
SECRET_PATH = re.compile(r"(/(?:setup|roster/exports/file|api/v1/exports/file|C)/)[^\s\"?/]+")
# Loggers whose lines name request URLs (gunicorn.error: "Error handling request /path?...").
URL_LOGGERS = ("werkzeug", "gunicorn.access", "gunicorn.error")
# The request being answered in this thread (or task), "-" outside one.
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
# Fields a JSON line carries; the time and the request id are never masked (neither can hold
# a digit run of 6: see new_request_id), everything else is.
JSON_FIELDS = ("asctime", "levelname", "name", "message", "request_id")
UNMASKED = frozenset({"time", "request_id"})


class RedactDigits(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if DIGIT_RUN.search(message):
            record.msg = DIGIT_RUN.sub(_mask, message)
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            # Exception messages can quote input: the traceback is written now without them
            # (formatters reuse exc_text when it is set).
            record.exc_text = traceback_without_messages(record.exc_info[1])
        if record.exc_text:
            record.exc_text = DIGIT_RUN.sub(_mask, record.exc_text)
        if record.stack_info:
            record.stack_info = DIGIT_RUN.sub(_mask, record.stack_info)
        return True


class DropQueryStrings(logging.Filter):
    """Access log lines name the path only: a query string can hold a name or a phone, and the
    token of a secret path (SECRET_PATH) is left out too."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = SECRET_PATH.sub(r"\1[token]", QUERY_STRING.sub(r"\1", message) if "?" in message else message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class RequestContext(logging.Filter):
    """Give every record the id of the request it was logged in."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonLines(JsonFormatter):
    """One JSON object a line: time, level, logger, message, request id, extras, all masked."""

    def __init__(self) -> None:
        super().__init__(
            " ".join(f"%({name})s" for name in JSON_FIELDS),
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
            json_ensure_ascii=False,
        )

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        # python-json-logger formats exc_info itself (not exc_text): without the messages here too.
        return DIGIT_RUN.sub(_mask, traceback_without_messages(ei[1])) if ei and ei[1] else ""

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {key: _masked(value) if key not in UNMASKED else value for key, value in log_data.items()}


def new_request_id(given: str | None = None) -> str:
    """`given` when it is a plain id without a digit run (a client could send a phone number as
    its request id), else a fresh random one."""
    if given and REQUEST_ID_SHAPE.match(given) and not DIGIT_RUN.search(given):
        return given
    while True:
        made = secrets.token_hex(16)
        if not DIGIT_RUN.search(made):
            return made


REQUEST_ID_SHAPE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return DIGIT_RUN.sub(_mask, value)
    if isinstance(value, dict):
        return {key: _masked(one) for key, one in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(one) for one in value]
    return value


def formatter(kind: str) -> logging.Formatter:
    """The formatter for LOG_FORMAT `kind`: json (the default) or text."""
    return logging.Formatter(TEXT_FORMAT) if kind == "text" else JsonLines()


def traceback_without_messages(exc: BaseException) -> str:
    """The traceback as Python prints it, each exception reduced to its type."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    parts = []
    for one in reversed(chain):
        parts.append(_frames(one.__traceback__))
        parts.append(f"{type(one).__module__}.{type(one).__qualname__}: [message not logged]\n")
    return "".join(parts).rstrip("\n")


def _frames(tb: TracebackType | None) -> str:
    return "Traceback (most recent call last):\n" + "".join(traceback.format_tb(tb)) if tb else ""


def protect(logger: logging.Logger, *, urls: bool = False) -> None:
    """Put the filters on `logger` and on each of its handlers (records passed up from a
    child logger meet only the handlers' filters); `urls`: its lines name request URLs."""
    wanted: list[type[logging.Filter]] = [DropQueryStrings, RedactDigits] if urls else [RedactDigits]
    wanted.append(RequestContext)
    for filterer in (logger, *logger.handlers):
        for kind in wanted:
            if not any(isinstance(f, kind) for f in filterer.filters):
                filterer.addFilter(kind())


def _mask(match: re.Match[str]) -> str:
    digits = sum(ch.isdigit() for ch in match.group())
    return match.group() if digits < 6 else "[redacted]"


def install_redaction(level: str, kind: str = "json") -> None:
    """Put the filter on every root handler (and add one, in LOG_FORMAT `kind`, if there is none)."""
    root = logging.getLogger()
    if not root.handlers:
        # stderr is unbuffered: each line is out as it is logged, not when a buffer fills.
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter(kind))
        root.addHandler(handler)
    protect(root)
    root.setLevel(level)
    # Werkzeug's development server and gunicorn (when it runs without gunicorn.conf.py) too.
    for name in URL_LOGGERS:
        protect(logging.getLogger(name), urls=True)
