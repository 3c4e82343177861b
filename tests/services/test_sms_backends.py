"""The provider-neutral SMS interface: message kinds, one registry of backend names, receipts."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

import config as settings
from app.cli import deploy_check
from app.models import utcnow
from app.services import notify, sms, verification
from app.services.sms import backends
from app.services.sms.messages import STATUS_CODE
from tests import factories
from tests.services.test_notify import joined_member

LINK = "https://join.example.org/status/"


def test_each_kind_has_todays_neutral_text_in_both_languages():
    texts = {
        (kind, locale): sms.render(sms.Message(kind, {"code": "123456", "link": LINK}, locale))
        for kind in sms.MESSAGE_KINDS
        for locale in ("zh", "en")
    }
    assert (
        texts[(sms.JOIN_CODE, "zh")] == texts[(sms.STATUS_CODE, "zh")] == "验证码 123456，10分钟内有效，请勿告诉他人。"
    )
    assert texts[(sms.JOIN_CODE, "en")] == (
        "Your verification code is 123456. It expires in 10 minutes. Do not share it."
    )
    assert texts[(sms.DECISION, "zh")] == f"您提交的申请有了新进展，请点击查看：{LINK}"
    assert texts[(sms.DECISION, "en")] == f"There is an update on your application. See it here: {LINK}"
    assert not any(word in text.lower() for text in texts.values() for word in ("工会", "union"))
    with pytest.raises(ValueError):
        sms.render(sms.Message("advert", {}))


@dataclass
class TemplateOnly(sms.SmsGateway):
    """A provider like Aliyun or Tencent Cloud: a template per kind and named parameters, no text."""

    sent: list[tuple[str, str, dict[str, str], str]] = field(default_factory=list)

    def send(self, to: str, message: sms.Message) -> None:
        self.sent.append((to, message.kind, dict(message.params), message.locale))


def test_a_template_only_backend_gets_kinds_and_parameters_from_every_caller(app, client, db, sms):  # type: ignore[no-untyped-def]
    member = joined_member(app, client, db, sms)
    template = TemplateOnly()
    verification.deliver(template, to=factories.phone(1), code="123456", locale="zh")
    verification.deliver(template, to=factories.phone(1), code="654321", locale="en", kind=STATUS_CODE)
    assert notify.send_decision(db, template, app.extensions["pii"], member, link=LINK, now=utcnow())
    assert template.sent == [
        (factories.phone(1), "join_code", {"code": "123456"}, "zh"),
        (factories.phone(1), "status_code", {"code": "654321"}, "en"),
        (factories.phone(1), "decision", {"link": LINK}, "zh"),
    ]


def test_settings_check_deploy_and_the_builder_read_one_registry(env, monkeypatch):
    fake = backends.Backend("acme", "console", True, ("ACME_KEY",), ("Acme: the templates are approved",))
    with pytest.raises(settings.ConfigError, match="not 'acme'"):
        settings.load_config({**env, "SMS_BACKEND": "acme"})
    assert "SMS_BACKEND must be twilio-verify, twilio-messaging, aliyun or tencent" in deploy_check.problems(
        {"SMS_BACKEND": "acme"}
    )

    monkeypatch.setitem(backends.REGISTRY, "acme", fake)
    assert settings.load_config({**env, "SMS_BACKEND": "acme"}).SMS_BACKEND == "acme"
    assert not any("SMS_BACKEND" in problem for problem in deploy_check.problems({"SMS_BACKEND": "acme"}))
    assert deploy_check.checklist({"SMS_BACKEND": "acme"})[0] == "Acme: the templates are approved"
    assert "Twilio Verify Fraud Guard is set to Max (B1)" in deploy_check.checklist({"SMS_BACKEND": "twilio-verify"})
    assert isinstance(sms.make_gateway({"SMS_BACKEND": "acme", "SMS_OUTBOX": "/dev/null"}), sms.ConsoleGateway)


def test_a_receipt_is_provider_neutral_and_an_opt_out_is_remembered(app, db):  # type: ignore[no-untyped-def]
    pii, phone = app.extensions["pii"], factories.phone(7)
    receipt = sms.twilio_receipt({"To": phone, "MessageStatus": "undelivered", "ErrorCode": "21610"})
    assert receipt == sms.DeliveryReceipt(to=phone, status="undelivered", opted_out=True, provider_code=21610)
    delivered = sms.twilio_receipt({"To": phone, "MessageStatus": "delivered"})
    assert not delivered.opted_out and not sms.handle_receipt(db, pii, delivered, now=utcnow())
    assert sms.handle_receipt(db, pii, receipt, now=utcnow()) and sms.is_opted_out(db, pii, phone)
    assert not sms.handle_receipt(db, pii, receipt, now=utcnow()), "recorded once"


def test_only_twilio_sends_abroad_and_only_verify_makes_its_own_codes():
    from app.services.sms import backends

    assert {name for name, b in backends.REGISTRY.items() if b.abroad} == {"twilio-verify", "twilio-messaging"}
    assert {name for name, b in backends.REGISTRY.items() if b.makes_codes} == {"twilio-verify"}
    assert backends.providers("aliyun", "twilio-messaging", "twilio-verify", "memory", "") == ("aliyun", "twilio")
    assert backends.sends_abroad("aliyun", "tencent") is False
    assert backends.sends_abroad("tencent", "twilio-messaging") is True
