"""The last line of defence: digit runs never reach a log line."""

from __future__ import annotations

import json
import logging
import re
import sys

from app.logs import JsonLines, RedactDigits


def test_phone_numbers_and_codes_are_masked():
    record = logging.LogRecord(
        "t", logging.INFO, __file__, 1, "to %s code %s at 12:00", ("+86 170 0000 0001", "123456"), None
    )
    RedactDigits().filter(record)
    message = record.getMessage()
    assert "0001" not in message and "123456" not in message
    assert "12:00" in message, "short numbers stay readable"


def _json_line(record: logging.LogRecord) -> dict:  # type: ignore[type-arg]
    from app.logs import JsonLines, RequestContext

    RedactDigits().filter(record)
    RequestContext().filter(record)
    return json.loads(JsonLines().format(record))


def test_json_lines_mask_the_message_extras_and_tracebacks():
    try:
        raise ValueError("bad number +8613800138000")
    except ValueError:
        record = logging.LogRecord("app.x", logging.ERROR, __file__, 1, "to %s", ("13800138000",), sys.exc_info())
    record.phone = "138 0013 8000"  # an `extra=` value
    line = _json_line(record)
    assert line["level"] == "ERROR" and line["logger"] == "app.x" and line["request_id"] == "-"
    assert line["message"] == "to [redacted]" and line["phone"] == "[redacted]"
    assert "ValueError" in line["exc_info"] and "13800138000" not in json.dumps(line)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", line["time"])


def test_a_request_names_its_id_in_the_log_and_the_response(app, caplog):  # type: ignore[no-untyped-def]
    from app.logs import RequestContext

    @app.get("/_log_something")
    def log_something():  # type: ignore[no-untyped-def]
        logging.getLogger("app.test").warning("something happened")
        return "ok"

    handler = caplog.handler
    handler.addFilter(RequestContext())
    response = app.test_client().get("/_log_something", headers={"X-Request-ID": "req-abc-def-ghi"})
    assert response.headers["X-Request-ID"] == "req-abc-def-ghi"
    [record] = [r for r in caplog.records if r.name == "app.test"]
    assert record.request_id == "req-abc-def-ghi"
    made = app.test_client().get("/_log_something", headers={"X-Request-ID": "13800138000"})
    assert made.headers["X-Request-ID"] != "13800138000", "a phone number is no request id"


def test_log_format_text_for_a_person():
    from app.logs import formatter

    assert not isinstance(formatter("text"), JsonLines)
    assert isinstance(formatter("json"), JsonLines)


def test_access_lines_keep_the_path_but_not_a_secret_token_or_a_query():
    from app.logs import DropQueryStrings

    for path, logged in (
        ("/setup/eyJ1Ijo3LCJuIjoiYWJj.Zk9x.s3cr3t", "/setup/[token]"),
        ("/roster/exports/file/MTIz.Zk9x.sig?x=1", "/roster/exports/file/[token]"),
        ("/api/v1/exports/file/MTIz.Zk9x.sig", "/api/v1/exports/file/[token]"),
        ("/C/AAAB-card-token", "/C/[token]"),
        ("/roster/?q=王小明", "/roster/"),
        ("/QAAAQIV3KDDSWWPS5MNU6", "/QAAAQIV3KDDSWWPS5MNU6"),  # a poster names a place, not a person
    ):
        record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, '"GET %s" status=200', (path,), None)
        DropQueryStrings().filter(record)
        assert record.getMessage() == f'"GET {logged}" status=200', path
