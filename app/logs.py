"""Logging that cannot leak a phone number or a code, even by mistake.

Every record passes a filter that masks runs of six or more digits (codes, phone numbers in
any format) before any handler sees it. It is a last line of defence: the code never logs
personal data on purpose.
"""

from __future__ import annotations

import logging
import re

DIGIT_RUN = re.compile(r"\+?\d[\d\s-]{4,}\d")


class RedactDigits(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if DIGIT_RUN.search(message):
            record.msg = DIGIT_RUN.sub(_mask, message)
            record.args = None
        if record.exc_info and not record.exc_text:
            # Exception messages can quote input: format the traceback now and mask it too
            # (formatters reuse exc_text when it is set).
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = DIGIT_RUN.sub(_mask, record.exc_text)
        if record.stack_info:
            record.stack_info = DIGIT_RUN.sub(_mask, record.stack_info)
        return True


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
    for handler in root.handlers:
        if not any(isinstance(f, RedactDigits) for f in handler.filters):
            handler.addFilter(RedactDigits())
    root.setLevel(level)
    logging.getLogger("werkzeug").addFilter(RedactDigits())
