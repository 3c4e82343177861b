"""Pytest plugin: the whole suite logs at DEBUG, and the session fails if any log line holds a
phone number or an SMS code that was sent (docs/security.md A10, F7; scenario 9).

Every record reaching the root logger is kept as a handler would write it (after the app's
redaction filter, which install_redaction puts on every root handler, this one included). At
the end of the session the lines are searched for Chinese mobile numbers in any spacing and
for every code `verification.new_code` produced during the run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

import pytest

PHONE = re.compile(r"(?<![0-9A-Za-z])(?:\+?86[\s-]?)?1[3-9]\d(?:[\s-]?\d){8}(?![0-9A-Za-z])")
SIX_DIGITS = re.compile(r"(?<![0-9A-Za-z])\d{6}(?![0-9A-Za-z])")


class Capture(logging.Handler):
    """Keeps every formatted line (name, text) for the end-of-session search."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append((record.name, self.format(record)))
        except Exception:  # noqa: BLE001 - a record that cannot format still counts, raw
            self.lines.append((record.name, str(record.msg)))


CAPTURE = Capture()
CODES: set[str] = set()


def find_leaks(lines: Iterable[tuple[str, str]], codes: set[str]) -> list[str]:
    """The log lines that hold a phone number or one of `codes`."""
    leaks = []
    for name, text in lines:
        if PHONE.search(text) or codes.intersection(SIX_DIGITS.findall(text)):
            leaks.append(f"{name}: {text[:300]}")
    return leaks


def pytest_configure(config: pytest.Config) -> None:
    from app import logs
    from app.services import verification

    root = logging.getLogger()
    root.addHandler(CAPTURE)
    root.setLevel(logging.DEBUG)
    install = logs.install_redaction
    logs.install_redaction = lambda _level, kind="json": install("DEBUG", kind)  # type: ignore[assignment]
    new_code = verification.new_code

    def remembered() -> str:
        code = new_code()
        CODES.add(code)
        return code

    verification.new_code = remembered  # type: ignore[assignment]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaks = find_leaks(CAPTURE.lines, CODES)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"log-leak check: {len(CAPTURE.lines)} log lines, {len(CODES)} codes sent, {len(leaks)} leaks"
        )
        for leak in leaks[:20]:
            reporter.write_line(f"LEAK {leak}", red=True)
    if leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
