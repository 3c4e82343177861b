"""Twilio's delivery-status callback: signed requests only, and an opt-out (21610) is recorded."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select
from twilio.request_validator import RequestValidator

from app import create_app
from app.models import SmsOptOut
from app.services import sms
from config import TestingConfig as Settings
from tests import factories
from tests.twilio_mock import AUTH_TOKEN

URL = "https://join.example.org/twilio/status"  # PUBLIC_BASE_URL + the hook's path


@pytest.fixture
def hook_app(env):  # type: ignore[no-untyped-def]
    app = create_app(Settings({**env, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}))
    yield app
    app.extensions["db_engine"].dispose()


def status_form(error_code: str = "21610", n: int = 1) -> dict[str, str]:
    return {
        "MessageSid": "SM" + "a" * 32,
        "MessageStatus": "undelivered",
        "ErrorCode": error_code,
        "To": factories.phone(n),
        "From": "+15005550006",
        "AccountSid": "AC" + "0" * 32,
    }


def signed(form: dict[str, str], url: str = URL, token: str = AUTH_TOKEN) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, form)}


def opt_outs(app) -> list[SmsOptOut]:  # type: ignore[no-untyped-def]
    with Session(app.extensions["db_engine"]) as db:
        return list(db.exec(select(SmsOptOut)))


def test_signed_opt_out_is_recorded_without_csrf(hook_app):
    form = status_form()
    response = hook_app.test_client().post("/twilio/status", data=form, headers=signed(form))
    assert response.status_code == 204
    [row] = opt_outs(hook_app)
    pii = hook_app.extensions["pii"]
    assert row.phone_index == pii.index(factories.phone(1))
    with Session(hook_app.extensions["db_engine"]) as db:
        assert sms.is_opted_out(db, pii, factories.phone(1))


def test_a_repeated_callback_is_harmless(hook_app):
    form = status_form()
    client = hook_app.test_client()
    for _ in range(2):
        assert client.post("/twilio/status", data=form, headers=signed(form)).status_code == 204
    assert len(opt_outs(hook_app)) == 1


def test_other_delivery_errors_record_nothing(hook_app):
    form = status_form("30003")
    assert hook_app.test_client().post("/twilio/status", data=form, headers=signed(form)).status_code == 204
    assert opt_outs(hook_app) == []


@pytest.mark.parametrize("forge", ["none", "other_token", "other_url", "tampered"])
def test_unsigned_or_forged_callbacks_are_refused(hook_app, forge):
    form = status_form()
    headers = {
        "none": {},
        "other_token": signed(form, token="x" * 32),
        "other_url": signed(form, url="https://evil.example.com/twilio/status"),
        "tampered": signed(status_form(n=2)),
    }[forge]
    response = hook_app.test_client().post("/twilio/status", data=form, headers=headers)
    assert response.status_code == 403
    assert opt_outs(hook_app) == []


def test_without_an_auth_token_every_callback_is_refused(app):
    form = status_form()
    response = app.test_client().post("/twilio/status", data=form, headers=signed(form, token=""))
    assert response.status_code == 403
