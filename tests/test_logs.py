"""The last line of defence: digit runs never reach a log line."""

from __future__ import annotations

import logging

from app.logs import RedactDigits


def test_phone_numbers_and_codes_are_masked():
    record = logging.LogRecord(
        "t", logging.INFO, __file__, 1, "to %s code %s at 12:00", ("+86 170 0000 0001", "123456"), None
    )
    RedactDigits().filter(record)
    message = record.getMessage()
    assert "0001" not in message and "123456" not in message
    assert "12:00" in message, "short numbers stay readable"
