"""A worker joins end to end with SMS_BACKEND=aliyun and SMS_BACKEND=tencent (issue 13, done-when 1).

The app is built with the provider's real settings, its endpoint pointed at a local stand-in of
the provider's API (tests/provider_server.py). The official SDK builds, signs and sends SendSms;
the stand-in records it, and the test reads the code from the recorded request (the sign name,
template and number too) and types it in, as a worker reads it off the phone. A refusal by the
provider gives a clear code page, keeps the draft and makes no member. The task queue runs each
task in the request (TASK_QUEUE=immediate), right after the commit, as the consumer would.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from app.models import AuditEvent, JoinAttempt, MemberStatus, Role
from app.services import tasks
from app.services.sms.mainland import TemplateGateway
from tests import conftest, factories
from tests.conftest import hidden_fields
from tests.provider_server import ProviderServer, Seen
from tests.web.test_join import members, send_code, submit

PHONE = factories.phone(1)  # what tests.web.test_join.submit types in
SIGN_NAME = "骑手服务"  # a neutral sign name: no 工会 (README, "Choosing the sign name")
ALIYUN_JSON = "application/json;charset=utf-8"


@dataclass
class Sent:
    """What one recorded SendSms asked the provider to send, read back from the SDK's request."""

    sign_name: str
    template: str
    phone: str  # as the API has it (Aliyun: 11 digits; Tencent: E.164)
    params: list[str]


@dataclass
class Provider:
    """One provider's stand-in: the app's settings for it, its answers and how to read a request."""

    name: str
    settings: dict[str, str]
    code_template: str
    notice_template: str
    phone: str  # PHONE as this provider's API writes it
    ok: Callable[[], dict[str, Any]]
    refused: Callable[[str], tuple[int, dict[str, Any]]]  # a refusal code as the provider answers it
    read: Callable[[Seen], Sent]
    rate_limited: str  # a per-number frequency refusal
    bad_signature: str  # our request's signature did not match (wrong key): an operator's problem
    bad_number: str  # a permanent refusal of the number
    content_type: str = "application/json"
    server: ProviderServer | None = None

    def answer(self, status: int, body: dict[str, Any]) -> None:
        """From now on the stand-in answers every request so."""
        assert self.server is not None
        self.server.script.clear()
        self.server.answer(status, body, self.content_type)

    def answer_ok(self) -> None:
        self.answer(200, self.ok())

    def answer_refusal(self, code: str) -> None:
        self.answer(*self.refused(code))

    def sent(self) -> list[Sent]:
        assert self.server is not None
        return [self.read(seen) for seen in self.server.requests]


def _aliyun_read(seen: Seen) -> Sent:
    query = seen.query
    params = json.loads(query["TemplateParam"]) if query.get("TemplateParam") else {}
    assert all(isinstance(v, str) for v in params.values()), "every template value is a JSON string"
    return Sent(query["SignName"], query["TemplateCode"], query["PhoneNumbers"], list(params.values()))


def _aliyun_refused(code: str) -> tuple[int, dict[str, Any]]:
    body = {"Code": code, "Message": "scripted refusal", "RequestId": "F655A8D5-B967-440B-8683-DAD6FF8DE991"}
    # Dysmsapi answers a refused send with HTTP 200 and its Code; a signature it cannot check is a 400.
    return (400 if code == "SignatureDoesNotMatch" else 200), body


def _tencent_read(seen: Seen) -> Sent:
    body = seen.json()
    (phone,) = body["PhoneNumberSet"]
    return Sent(body["SignName"], body["TemplateId"], phone, list(body.get("TemplateParamSet") or []))


def _tencent_ok() -> dict[str, Any]:
    status = {"SerialNo": "2028:f825e6b16e23f73f4123", "PhoneNumber": PHONE, "Fee": 1, "Code": "Ok", "Message": "ok"}
    return {"Response": {"SendStatusSet": [status], "RequestId": "a0aabda6-cf91-4f3e-a81f-9198114a2279"}}


def _tencent_refused(code: str) -> tuple[int, dict[str, Any]]:
    if code.startswith("AuthFailure"):  # the request itself was refused: Response.Error
        return 200, {"Response": {"Error": {"Code": code, "Message": "scripted"}, "RequestId": "b0aabda6"}}
    status = {"SerialNo": "", "PhoneNumber": PHONE, "Fee": 0, "Code": code, "Message": "scripted refusal"}
    return 200, {"Response": {"SendStatusSet": [status], "RequestId": "c0aabda6"}}


def aliyun() -> Provider:
    return Provider(
        name="aliyun",
        settings={
            "SMS_BACKEND": "aliyun",
            "ALIYUN_ACCESS_KEY_ID": "FAKE-ID-" + secrets.token_hex(4),
            "ALIYUN_ACCESS_KEY_SECRET": "fake-secret-" + secrets.token_hex(8),
            "ALIYUN_SMS_SIGN_NAME": SIGN_NAME,
            "ALIYUN_SMS_CODE_TEMPLATE": "SMS_100000001",
            "ALIYUN_SMS_NOTICE_TEMPLATE": "SMS_100000002",
            "ALIYUN_SMS_TIMEOUT": "5",
        },
        code_template="SMS_100000001",
        notice_template="SMS_100000002",
        phone=PHONE.removeprefix("+86"),
        ok=lambda: {"Code": "OK", "Message": "OK", "BizId": "900619746936498440^0", "RequestId": "F655A8D5"},
        refused=_aliyun_refused,
        read=_aliyun_read,
        rate_limited="isv.BUSINESS_LIMIT_CONTROL",
        bad_signature="SignatureDoesNotMatch",
        bad_number="isv.MOBILE_NUMBER_ILLEGAL",
        content_type=ALIYUN_JSON,
    )


def tencent() -> Provider:
    return Provider(
        name="tencent",
        settings={
            "SMS_BACKEND": "tencent",
            "TENCENT_SECRET_ID": "FAKE-ID-" + secrets.token_hex(4),
            "TENCENT_SECRET_KEY": "fake-key-" + secrets.token_hex(8),
            "TENCENT_SMS_SDK_APP_ID": "1400000000",
            "TENCENT_SMS_SIGN_NAME": SIGN_NAME,
            "TENCENT_SMS_CODE_TEMPLATE_ID": "1000001",
            "TENCENT_SMS_NOTICE_TEMPLATE_ID": "1000002",
            "TENCENT_SMS_TIMEOUT": "5",
        },
        code_template="1000001",
        notice_template="1000002",
        phone=PHONE,
        ok=_tencent_ok,
        refused=_tencent_refused,
        read=_tencent_read,
        rate_limited="LimitExceeded.PhoneNumberDailyLimit",
        bad_signature="AuthFailure.SignatureFailure",
        bad_number="InvalidParameterValue.IncorrectPhoneNumber",
    )


@pytest.fixture(params=[aliyun, tencent], ids=["aliyun", "tencent"])
def provider(request: pytest.FixtureRequest) -> Iterator[Provider]:
    """The provider's stand-in, listening before the app is built (the app's settings name it)."""
    chosen: Provider = request.param()
    chosen.server = ProviderServer()
    with chosen.server as url:
        endpoint = "ALIYUN_SMS_ENDPOINT" if chosen.name == "aliyun" else "TENCENT_SMS_ENDPOINT"
        chosen.settings[endpoint] = url
        yield chosen


@pytest.fixture
def env(env: dict[str, str], provider: Provider) -> dict[str, str]:
    """The app of these tests sends through the provider's SDK to its stand-in."""
    return {**env, **provider.settings}


def test_the_app_sends_through_the_chosen_provider(app, provider):  # type: ignore[no-untyped-def]
    gateway = app.extensions["sms"]
    assert isinstance(gateway, TemplateGateway)
    assert type(gateway.client).__module__ == f"app.services.sms.{provider.name}"


def test_a_worker_joins_end_to_end_with_the_code_the_provider_was_asked_to_send(  # type: ignore[no-untyped-def]
    app, client, db, path, provider
):
    provider.answer_ok()
    response = submit(client, path)
    assert response.status_code == 303 and response.headers["Location"].endswith("/join/code")
    (sent,) = provider.sent()
    assert sent.sign_name == SIGN_NAME
    assert sent.template == provider.code_template
    assert sent.phone == provider.phone
    (code,) = sent.params
    assert len(code) == 6 and code.isdigit()  # a string of 6 digits: a leading zero would stay

    page = client.get("/join/code")
    assert page.status_code == 200 and 'autocomplete="one-time-code"' in page.text
    assert "*******0001" in page.text  # "we sent a code to" the masked number
    assert send_code(client, code).status_code == 303
    done = client.get("/join/done")
    assert done.status_code == 200 and "浦东新区总工会" in done.text
    [member] = members(db)
    assert member.status is MemberStatus.pending and member.verified_at is not None

    # The district's official sees the application pending on the roster.
    staff = app.test_client()
    conftest.make_staff(db, "official@example.org", Role.official, ["PD"])
    conftest.sign_in(staff, db, "official@example.org")
    roster = staff.get("/roster/?status=pending")
    assert roster.status_code == 200 and "王小明" in roster.text
    assert f'data-id="{member.id}"' in roster.text
    assert len(provider.sent()) == 1, "one SMS for one join"


def test_the_decision_notice_goes_by_the_notice_template_without_a_link_parameter(  # type: ignore[no-untyped-def]
    app, client, db, path, provider
):
    provider.answer_ok()
    submit(client, path)
    send_code(client, provider.sent()[0].params[0])
    [member] = members(db)
    staff = app.test_client()
    conftest.make_staff(db, "official@example.org", Role.official, ["PD"])
    conftest.sign_in(staff, db, "official@example.org")
    page = staff.get(f"/roster/{member.id}")
    decided = staff.post(f"/roster/{member.id}/approve", data={"csrf_token": hidden_fields(page.text)["csrf_token"]})
    assert decided.status_code == 200
    notice = provider.sent()[-1]
    assert len(provider.sent()) == 2
    assert (notice.sign_name, notice.template, notice.phone) == (SIGN_NAME, provider.notice_template, provider.phone)
    assert notice.params == []  # the status link is in the approved template, never a parameter


def _refused_join(client, db, path, provider, code: str):  # type: ignore[no-untyped-def]
    provider.answer_refusal(code)
    response = submit(client, path)
    # The page answered before the provider did: it sends the worker to the code page, which says.
    assert response.status_code == 303 and response.headers["Location"].endswith("/join/code")
    page = client.get("/join/code")
    assert page.status_code == 200
    assert "没有发送验证码" in page.text and "我们没能向 *******0001 发送验证码" in page.text
    assert 'name="code"' not in page.text, "no box for a code that never went out"
    assert members(db) == []
    attempt = db.exec(select(JoinAttempt)).one()  # the draft is kept: a new code needs no new form
    assert attempt.member_id is None
    return page, attempt


def test_a_number_the_provider_limits_gives_a_clear_page_and_no_member(client, db, path, provider):  # type: ignore[no-untyped-def]
    page, attempt = _refused_join(client, db, path, provider, provider.rate_limited)
    assert "这个号码获取验证码次数过多" in page.text
    assert attempt.send_error == "rate_limited"
    assert len(provider.sent()) == 1, "a refusal is not sent again at once"


def test_a_bad_signature_gives_a_clear_page_and_no_member(client, db, path, provider, caplog):  # type: ignore[no-untyped-def]
    page, attempt = _refused_join(client, db, path, provider, provider.bad_signature)
    assert "短信服务暂时不可用" in page.text and "你填写的信息已保存" in page.text
    assert attempt.send_error == "unavailable"
    assert "Traceback" not in page.text and "Signature" not in page.text
    # The operators are told (an ERROR naming the provider's code), the worker is not.
    assert any(provider.bad_signature in r.getMessage() for r in caplog.records if r.levelname == "ERROR")


def test_after_a_refusal_a_new_code_goes_out_and_the_worker_joins(client, db, path, provider):  # type: ignore[no-untyped-def]
    _refused_join(client, db, path, provider, provider.rate_limited)
    provider.answer_ok()
    attempt = db.exec(select(JoinAttempt)).one()
    attempt.code_sent_at = attempt.code_sent_at - timedelta(seconds=120)  # the resend cooldown has passed
    db.add(attempt)
    db.commit()
    page = client.get("/join/code")
    resent = client.post("/join/resend", data=hidden_fields(page.text.split('class="resend"', 1)[1]))
    assert resent.status_code == 303 and len(provider.sent()) == 2
    code = provider.sent()[-1].params[0]
    again = client.get("/join/code").text
    assert 'name="code"' in again
    assert send_code(client, code).status_code == 303
    assert [m.status for m in members(db)] == [MemberStatus.pending]


def test_a_notice_the_provider_refuses_for_good_is_flagged_on_the_roster(  # type: ignore[no-untyped-def]
    app, client, db, path, provider
):
    provider.answer_ok()
    submit(client, path)
    send_code(client, provider.sent()[0].params[0])
    [member] = members(db)
    staff = app.test_client()
    conftest.make_staff(db, "official@example.org", Role.official, ["PD"])
    conftest.sign_in(staff, db, "official@example.org")
    page = staff.get(f"/roster/{member.id}")
    provider.answer_refusal(provider.bad_number)  # permanent: audited at once, no retry
    staff.post(f"/roster/{member.id}/approve", data={"csrf_token": hidden_fields(page.text)["csrf_token"]})
    db.commit()
    failed = db.exec(select(AuditEvent).where(AuditEvent.action == tasks.NOTICE_FAILED)).one()
    assert failed.target_id == str(member.id) and failed.details == {"reason": "rejected"}
    roster = staff.get("/roster/?status=approved", headers={"Accept-Language": "en"})
    row = roster.text.split(f'data-id="{member.id}"', 1)[1].split("</tr>", 1)[0]
    assert "SMS notice not delivered" in row


def test_the_notice_names_the_provider_in_mainland_china_and_asks_no_cross_border_consent(  # type: ignore[no-untyped-def]
    client, db, path, provider
):
    name = {"aliyun": "阿里云短信服务", "tencent": "腾讯云短信"}[provider.name]
    html = client.get(path).text
    assert f"境内短信服务商{name}发送，你的手机号不会提供到境外" in html
    assert 'name="cross_border"' not in html and "Twilio" not in html
    english = client.get(path, headers={"Accept-Language": "en"}).text
    assert "a provider in mainland China: your number is not given to anyone abroad" in english
    assert f"2026-12-v2-{provider.name}" in html
    provider.answer_ok()
    submit(client, path)
    send_code(client, provider.sent()[0].params[0])
    [member] = members(db)
    assert member.consent_version == f"2026-12-v2-{provider.name}"  # the text agreed to named the provider
