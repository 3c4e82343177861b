"""The Tencent Cloud SMS client, with the official SDK talking to a local stand-in of the API.

The SDK builds, signs (TC3-HMAC-SHA256) and sends the SendSms (2021-01-11) request and parses
the answer itself; the stand-in answers as Tencent Cloud does: HTTP 200 with either
Response.SendStatusSet (one status per number, "Ok" or a refusal) or Response.Error.
"""

from __future__ import annotations

import json
import logging
import re
import secrets

import pytest

from app.services.sms import BREAKER_FAILURES, SmsError
from app.services.sms.mainland import Retrier
from app.services.sms.tencent import TencentSms, tencent_sms
from config import TestingConfig as Settings
from tests import factories
from tests.provider_server import ProviderServer
from tests.twilio_mock import free_port

PHONE = factories.phone(41)


def statuses(code: str = "Ok", serial: str = "2028:f825e6b16e23f73f4123") -> dict[str, object]:
    status = {
        "SerialNo": serial if code == "Ok" else "",
        "PhoneNumber": PHONE,
        "Fee": 1 if code == "Ok" else 0,
        "SessionContext": "",
        "Code": code,
        "Message": "send success" if code == "Ok" else "scripted refusal",
        "IsoCode": "CN",
    }
    return {"Response": {"SendStatusSet": [status], "RequestId": "a0aabda6-cf91-4f3e-a81f-9198114a2279"}}


def error(code: str) -> dict[str, object]:
    return {"Response": {"Error": {"Code": code, "Message": "scripted"}, "RequestId": "b0aabda6"}}


@pytest.fixture
def keys() -> dict[str, str]:
    """Obviously fake credentials, made for this test run."""
    return {"id": "FAKE-ID-" + secrets.token_hex(4), "key": "fake-key-" + secrets.token_hex(8)}


def client(url: str, keys: dict[str, str], retrier: Retrier | None = None, **settings: str) -> TencentSms:
    env = {
        "SMS_BACKEND": "tencent",
        "TENCENT_SECRET_ID": keys["id"],
        "TENCENT_SECRET_KEY": keys["key"],
        "TENCENT_SMS_SDK_APP_ID": "1400000000",
        "TENCENT_SMS_SIGN_NAME": "骑手服务",
        "TENCENT_SMS_CODE_TEMPLATE_ID": "1000001",
        "TENCENT_SMS_NOTICE_TEMPLATE_ID": "1000002",
        "TENCENT_SMS_ENDPOINT": url,
        "TENCENT_SMS_TIMEOUT": "5",
        **settings,
    }
    return tencent_sms(Settings(env).as_dict(), retrier)


def test_a_code_goes_out_signed_with_the_template_and_the_code_first(keys):
    server = ProviderServer().answer(200, statuses(serial="2028:abc"))
    with server as url:
        assert client(url, keys).send(PHONE, "code", {"code": "012345"}) == "2028:abc"
    (seen,) = server.requests
    assert seen.json() == {
        "PhoneNumberSet": [PHONE],  # E.164, as the API asks
        "SmsSdkAppId": "1400000000",
        "SignName": "骑手服务",
        "TemplateId": "1000001",
        "TemplateParamSet": ["012345"],
    }
    assert seen.headers["x-tc-action"] == "SendSms" and seen.headers["x-tc-version"] == "2021-01-11"
    assert seen.headers["x-tc-region"] == "ap-guangzhou"
    assert re.match(
        rf"TC3-HMAC-SHA256 Credential={keys['id']}/\d{{4}}-\d\d-\d\d/sms/tc3_request, SignedHeaders=content-type;host,"
        r" Signature=[0-9a-f]{64}$",
        seen.headers["authorization"],
    )
    assert seen.headers["host"] == url.removeprefix("http://")  # the host was signed, not a URL
    assert keys["key"] not in json.dumps(seen.headers) + seen.body.decode()


def test_each_kind_uses_its_template_and_the_region_setting(keys):
    server = ProviderServer().answer(200, statuses())
    with server as url:
        sms = client(url, keys, TENCENT_SMS_REGION="ap-beijing")
        sms.send(PHONE, "status_code", {"code": "000111"})
        sms.send(PHONE, "notice", {"first": "甲", "second": "乙"})
    status, notice = server.requests
    assert (status.json()["TemplateId"], status.json()["TemplateParamSet"]) == ("1000001", ["000111"])
    assert (notice.json()["TemplateId"], notice.json()["TemplateParamSet"]) == ("1000002", ["甲", "乙"])
    assert notice.headers["x-tc-region"] == "ap-beijing"


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("LimitExceeded.PhoneNumberDailyLimit", "rate_limited"),
        ("LimitExceeded.PhoneNumberThirtySecondLimit", "rate_limited"),
        ("LimitExceeded.DeliveryFrequencyLimit", "rate_limited"),
        ("InvalidParameterValue.IncorrectPhoneNumber", "rejected"),
        ("UnsupportedOperation.UnsupportedRegion", "rejected"),
        ("FailedOperation.PhoneNumberInBlacklist", "opted_out"),
        ("FailedOperation.InsufficientBalanceInSmsPackage", "unavailable"),
        ("FailedOperation.TemplateIncorrectOrUnapproved", "unavailable"),
        ("InternalError.Timeout", "unavailable"),
        ("SomethingNew.Unknown", "unavailable"),
    ],
)
def test_a_refusal_of_the_number_is_mapped(keys, code, kind):
    server = ProviderServer().answer(200, statuses(code))
    with server as url, pytest.raises(SmsError) as caught:
        client(url, keys).send(PHONE, "code", {"code": "123456"})
    assert caught.value.kind == kind
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("LimitExceeded.PhoneNumberDailyLimit", "rate_limited"),
        ("RequestLimitExceeded", "rate_limited"),
        ("InvalidParameterValue.IncorrectPhoneNumber", "rejected"),
        ("FailedOperation.PhoneNumberInBlacklist", "opted_out"),
        ("AuthFailure.SignatureFailure", "unavailable"),
        ("UnauthorizedOperation.SmsSdkAppIdVerifyFail", "unavailable"),
        ("InternalError", "unavailable"),
    ],
)
def test_a_refusal_of_the_request_is_mapped(keys, code, kind):
    server = ProviderServer().answer(200, error(code))
    with server as url, pytest.raises(SmsError) as caught:
        client(url, keys).send(PHONE, "code", {"code": "123456"})
    assert caught.value.kind == kind


def test_an_account_problem_pages_ops_without_personal_data(keys, caplog):
    server = ProviderServer().answer(200, statuses("FailedOperation.InsufficientBalanceInSmsPackage"))
    with caplog.at_level(logging.DEBUG), server as url, pytest.raises(SmsError):
        client(url, keys).send(PHONE, "code", {"code": "987654"})
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("InsufficientBalanceInSmsPackage" in message for message in errors)
    assert PHONE[3:] not in caplog.text and "987654" not in caplog.text


def test_an_answer_without_one_status_is_unavailable(keys):
    server = ProviderServer().answer(200, {"Response": {"SendStatusSet": [], "RequestId": "c"}})
    with server as url, pytest.raises(SmsError) as caught:
        client(url, keys).send(PHONE, "code", {"code": "123456"})
    assert caught.value.kind == "unavailable"


def test_a_server_error_is_unavailable_and_not_retried(keys):
    server = ProviderServer().answer(502, b"<html>bad gateway</html>", "text/html")
    with server as url, pytest.raises(SmsError) as caught:
        client(url, keys).send(PHONE, "code", {"code": "123456"})
    assert caught.value.kind == "unavailable"
    assert len(server.requests) == 1


def test_the_timeout_setting_replaces_the_sdk_default_and_is_never_retried(keys):
    server = ProviderServer(hold=True).answer(200, statuses())
    with server as url:
        with pytest.raises(SmsError) as caught:
            client(url, keys, TENCENT_SMS_TIMEOUT="0.5").send(PHONE, "code", {"code": "123456"})
        server.release.set()
    assert caught.value.kind == "unavailable"
    assert len(server.requests) == 1


def test_a_refused_connection_is_retried_and_the_text_goes_once(keys):
    port = free_port()
    server = ProviderServer(port=port).answer(200, statuses(serial="after-retry"))
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        server.__enter__()

    retrier = Retrier(10, sleep=sleep, jitter=lambda _low, high: high)
    try:
        assert client(f"http://127.0.0.1:{port}", keys, retrier).send(PHONE, "code", {"code": "1"}) == "after-retry"
    finally:
        server.__exit__()
    assert slept == [0.5] and len(server.requests) == 1


def test_a_provider_that_stays_unreachable_is_tried_three_times(keys):
    slept: list[float] = []
    retrier = Retrier(10, sleep=slept.append, jitter=lambda _low, high: high)
    with pytest.raises(SmsError) as caught:
        client(f"http://127.0.0.1:{free_port()}", keys, retrier).send(PHONE, "code", {"code": "1"})
    assert caught.value.kind == "unavailable" and slept == [0.5, 1.0]


def test_outages_open_the_circuit_and_refusals_do_not(keys):
    server = ProviderServer()
    for _ in range(BREAKER_FAILURES - 1):
        server.answer(200, statuses("LimitExceeded.PhoneNumberDailyLimit"))
    for _ in range(BREAKER_FAILURES):
        server.answer(503, b"", "text/plain")
    with server as url:
        sms = client(url, keys)
        for kind in ["rate_limited"] * (BREAKER_FAILURES - 1) + ["unavailable"] * BREAKER_FAILURES:
            with pytest.raises(SmsError) as caught:
                sms.send(PHONE, "code", {"code": "123456"})
            assert caught.value.kind == kind
        sent = len(server.requests)
        with pytest.raises(SmsError) as caught:
            sms.send(PHONE, "code", {"code": "123456"})
    assert caught.value.kind == "unavailable" and len(server.requests) == sent


def test_bad_input_never_reaches_the_provider(keys):
    server = ProviderServer().answer(200, statuses())
    with server as url:
        sms = client(url, keys)
        with pytest.raises(SmsError) as caught:
            sms.send("8617000000001", "code", {"code": "123456"})
        assert caught.value.kind == "rejected"
        with pytest.raises(ValueError, match="kind"):
            sms.send(PHONE, "greeting", {})
        with pytest.raises(TypeError):
            sms.send(PHONE, "code", {"code": 12345})  # type: ignore[dict-item]
    assert server.requests == []


def test_a_request_that_may_have_left_is_not_retried_even_with_time_left(keys):
    # The clock leaves 0.5 s for the attempt, then claims time enough for a retry: only the
    # rule "never retry a request that may have been sent" stops a second text.
    ticks = iter([0.0, 2.5])
    retrier = Retrier(3, clock=lambda: next(ticks, 0.0), sleep=lambda _seconds: None)
    server = ProviderServer(hold=True).answer(200, statuses())
    with server as url:
        with pytest.raises(SmsError) as caught:
            client(url, keys, retrier).send(PHONE, "code", {"code": "123456"})
        server.release.set()
    assert caught.value.kind == "unavailable"
    assert len(server.requests) == 1
