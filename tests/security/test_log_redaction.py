"""Every log of the process, gunicorn's and Werkzeug's included, goes through app/logs.py:
no query string in any access log, no exception message (which can quote a name) in any
traceback (issue 12, items 2b and 10)."""

from __future__ import annotations

import logging
import os
import runpy
import secrets
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from cryptography.fernet import Fernet
from werkzeug.serving import make_server

from app.logs import DropQueryStrings, RedactDigits, traceback_without_messages
from tests.conftest import need
from tests.factories import phone
from tests.security.test_multiprocess import ROOT, _free_port, _wait_ready

NAME = "李四"
SEARCH = "/api/v1/members?q=" + quote(NAME)


class Illegal(ValueError):
    pass


def _raised(message: str) -> BaseException:
    try:
        try:
            raise KeyError(message)
        except KeyError as inner:
            raise Illegal(f"{message} cannot be used in worksheets.") from inner
    except Illegal as exc:
        return exc


def test_a_traceback_keeps_frames_and_types_but_no_message():
    text = traceback_without_messages(_raised("x" + NAME + phone(3)))
    assert NAME not in text and phone(3) not in text
    assert "Illegal: [message not logged]" in text and "KeyError" in text and "_raised" in text


def test_the_filter_writes_the_traceback_without_messages():
    exc = _raised(NAME)
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "unhandled", None, (type(exc), exc, exc.__traceback__))
    RedactDigits().filter(record)
    assert NAME not in logging.Formatter().format(record)


@pytest.mark.parametrize(
    "line",
    ['"GET /api/v1/members?q=%E6%9D%8E HTTP/1.1" 200 -', "Error handling request /roster/export.xlsx?q=" + NAME],
)
def test_query_strings_are_dropped(line):
    record = logging.LogRecord("werkzeug", logging.INFO, __file__, 1, "%s", (line,), None)
    DropQueryStrings().filter(record)
    assert "?" not in record.getMessage() and NAME not in record.getMessage() and "%E6" not in record.getMessage()


def test_the_development_server_logs_no_query_string(app, caplog):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            requests.get(f"http://127.0.0.1:{server.port}{SEARCH}", timeout=10)
    finally:
        server.shutdown()
        thread.join()
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert any("/api/v1/members" in line for line in lines), lines
    assert not any("?" in line or "%E6" in line for line in lines), lines


def test_gunicorns_logger_redacts_its_error_log(capsys):
    """gunicorn.conf.py's logger_class, as gunicorn builds it: a traceback naming a worker is masked."""
    from gunicorn.config import Config

    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    config = Config()
    config.set("errorlog", "-")
    config.set("accesslog", "-")
    logger = settings["logger_class"](config)
    exc = _raised(NAME + " " + phone(5))
    logger.error("Error handling request %s", "/roster/export.xlsx?q=" + NAME, exc_info=exc)
    written = capsys.readouterr()
    assert "Error handling request /roster/export.xlsx" in written.err
    assert NAME not in written.err + written.out and phone(5) not in written.err + written.out


def test_gunicorn_access_and_error_logs_hold_no_query_string(tmp_path, migrated_template):
    """The real gunicorn with gunicorn.conf.py: the access log names paths only."""
    gunicorn = Path(sys.executable).parent / "gunicorn"
    need(gunicorn.exists(), "gunicorn in the venv")
    database = tmp_path / "app.db"
    shutil.copy(migrated_template, database)
    port = _free_port()
    env = {
        **os.environ,
        "APP_ENV": "testing",
        "INSTANCE_PATH": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{database}",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "QR_SECRET": secrets.token_urlsafe(48),
        "PII_INDEX_KEY": secrets.token_urlsafe(48),
        "PII_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "SMS_BACKEND": "console",
        "SMS_OUTBOX": str(tmp_path / "outbox.jsonl"),
        "WEB_CONCURRENCY": "1",
    }
    env.pop("REDIS_URL", None)
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(gunicorn), "-b", f"127.0.0.1:{port}", "wsgi:app"], cwd=ROOT, env=env, stdout=out, stderr=out
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(base, process)
            for path in (SEARCH, "/roster/?q=" + quote(NAME), "/lang/en?next=" + quote("/roster/?q=" + NAME)):
                requests.get(base + path, timeout=10, allow_redirects=False)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)
    written = log.read_text()
    assert "/api/v1/members" in written, written[-2000:]
    assert "?" not in written and "%E6" not in written and NAME not in written, written[-2000:]
