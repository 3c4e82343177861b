"""Logging that cannot leak a phone number, a name or a code, even by mistake.

Every record passes a filter that masks runs of six or more digits (codes, phone numbers in
any format) before any handler sees it, and a traceback keeps its frames and exception types
but not the exceptions' messages (they can quote input: openpyxl's quotes the cell, a database
error its parameters). Access logs drop query strings (search boxes take names and phones).
Every logger of the process goes through this, gunicorn's included (gunicorn.conf.py). It is a
last line of defence: the code never logs personal data on purpose.
"""

from __future__ import annotations

import logging
import re
import traceback
from types import TracebackType

DIGIT_RUN = re.compile(r"\+?\d[\d\s-]{4,}\d")
# "GET /api/v1/members?q=... HTTP/1.1": everything from "?" to the next space or quote.
QUERY_STRING = re.compile(r"(/[^\s?\"]*)\?[^\s\"]*")
# Loggers whose lines name request URLs (gunicorn.error: "Error handling request /path?...").
URL_LOGGERS = ("werkzeug", "gunicorn.access", "gunicorn.error")


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
    """Access log lines name the path only: a query string can hold a name or a phone."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg, record.args = QUERY_STRING.sub(r"\1", message), None
        return True


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
    for filterer in (logger, *logger.handlers):
        for kind in wanted:
            if not any(isinstance(f, kind) for f in filterer.filters):
                filterer.addFilter(kind())


def _mask(match: re.Match[str]) -> str:
    digits = sum(ch.isdigit() for ch in match.group())
    return match.group() if digits < 6 else "[redacted]"


def install_redaction(level: str) -> None:
    """Put the filter on every root handler (and add one if there is none)."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    protect(root)
    root.setLevel(level)
    # Werkzeug's development server and gunicorn (when it runs without gunicorn.conf.py) too.
    for name in URL_LOGGERS:
        protect(logging.getLogger(name), urls=True)
