"""The console backend, the choice of backend, and the opt-out records."""

from __future__ import annotations

import json
import re
from datetime import datetime

import pytest
from sqlmodel import select

from app.models import SmsOptOut, utcnow
from app.services import sms, verification
from app.services.sms import (
    ConsoleGateway,
    MemoryGateway,
    SmsError,
    TwilioMessagingGateway,
    TwilioVerifyGateway,
    make_gateway,
)
from config import TestingConfig as Settings
from tests import factories
from tests.twilio_mock import SENDER, twilio_env

E164 = re.compile(r"^\+[1-9]\d{7,14}$")


def lines(path) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_console_writes_one_json_line_per_message(tmp_path):
    outbox = tmp_path / "sub" / "outbox.jsonl"
    gateway = ConsoleGateway(str(outbox))
    gateway.send_text(factories.phone(1), verification.code_text("123456", "zh"))
    gateway.send_text(factories.phone(2), verification.code_text("654321", "en"))
    first, second = lines(outbox)
    assert set(first) == {"to", "body", "at"}
    assert first["to"] == factories.phone(1) and E164.match(first["to"])
    assert first["body"] == "验证码 123456，10分钟内有效，请勿告诉他人。", "Chinese kept readable, not \\u-escaped"
    assert datetime.fromisoformat(first["at"]).utcoffset() is not None
    assert second["to"] == factories.phone(2) and "654321" in second["body"]


def test_console_notice_names_the_file_but_not_the_phone_or_code(tmp_path, capsys):
    outbox = tmp_path / "outbox.jsonl"
    ConsoleGateway(str(outbox)).send_text(factories.phone(3), verification.code_text("987654", "zh"))
    printed = capsys.readouterr().out
    assert str(outbox) in printed and printed.count("\n") == 1
    assert factories.phone(3) not in printed and factories.phone(3)[3:] not in printed
    assert "987654" not in printed


def test_console_refuses_a_number_that_is_not_e164(tmp_path):
    outbox = tmp_path / "outbox.jsonl"
    with pytest.raises(SmsError) as error:
        ConsoleGateway(str(outbox)).send_text(factories.phone(1)[3:], "验证码 123456")
    assert error.value.kind == "rejected"
    assert not outbox.exists()


def config_for(env: dict[str, str], **settings: str) -> dict[str, object]:
    return Settings(twilio_env(env, **settings)).as_dict()


@pytest.mark.parametrize(
    ("backend", "kind"),
    [
        ("memory", MemoryGateway),
        ("console", ConsoleGateway),
        ("twilio-verify", TwilioVerifyGateway),
        ("twilio-messaging", TwilioMessagingGateway),
    ],
)
def test_make_gateway_picks_the_backend(env, backend, kind):
    gateway = make_gateway(config_for(env, SMS_BACKEND=backend, TWILIO_FROM=SENDER))
    assert type(gateway) is kind


def test_console_backend_writes_to_sms_outbox(env):
    gateway = make_gateway(config_for(env, SMS_BACKEND="console"))
    assert isinstance(gateway, ConsoleGateway) and str(gateway.outbox) == env["SMS_OUTBOX"]


def test_verify_backend_sends_decision_texts_only_with_a_sender(env):
    without = make_gateway(config_for(env, SMS_BACKEND="twilio-verify"))
    with_sender = make_gateway(config_for(env, SMS_BACKEND="twilio-verify", TWILIO_FROM=SENDER))
    assert isinstance(without, TwilioVerifyGateway) and without.texts is None
    assert isinstance(with_sender, TwilioVerifyGateway) and isinstance(with_sender.texts, TwilioMessagingGateway)


def test_messaging_without_a_sender_is_a_clear_error(env):
    with pytest.raises(ValueError, match="TWILIO_FROM"):
        make_gateway(config_for(env, SMS_BACKEND="twilio-messaging", TWILIO_FROM=""))


def test_verify_without_a_service_is_a_clear_error(env):
    with pytest.raises(ValueError, match="TWILIO_VERIFY_SERVICE_SID"):
        make_gateway(config_for(env, SMS_BACKEND="twilio-verify", TWILIO_VERIFY_SERVICE_SID=""))


def test_an_unknown_backend_is_a_clear_error(env):
    config = config_for(env)
    config["SMS_BACKEND"] = "carrier-pigeon"
    with pytest.raises(ValueError, match="carrier-pigeon"):
        make_gateway(config)


def test_status_callbacks_point_at_the_public_hook(env):
    gateway = make_gateway(config_for(env, SMS_BACKEND="twilio-messaging", TWILIO_FROM=SENDER))
    assert isinstance(gateway, TwilioMessagingGateway)
    assert gateway.status_callback == "https://join.example.org/twilio/status"


def test_opt_out_is_recorded_once_by_blind_index(app, db):
    pii = app.extensions["pii"]
    phone = factories.phone(4)
    assert not sms.is_opted_out(db, pii, phone)
    assert sms.record_opt_out(db, pii, phone, utcnow()) is True
    assert sms.record_opt_out(db, pii, phone, utcnow()) is False
    db.commit()
    [row] = db.exec(select(SmsOptOut)).all()
    assert row.phone_index == pii.index(phone) and phone not in row.phone_index
    assert sms.is_opted_out(db, pii, phone) and not sms.is_opted_out(db, pii, factories.phone(5))


@pytest.mark.parametrize(("error_code", "recorded"), [("21610", True), ("30003", False), ("", False)])
def test_only_an_opt_out_delivery_status_is_recorded(app, db, error_code, recorded):
    pii = app.extensions["pii"]
    phone = factories.phone(6)
    assert sms.note_delivery_status(db, pii, to=phone, error_code=error_code, now=utcnow()) is recorded
    assert sms.is_opted_out(db, pii, phone) is recorded
