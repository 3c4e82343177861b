"""The Alibaba Cloud SMS client, with the official SDK talking to a local stand-in of Dysmsapi.

The SDK builds and signs each request itself and parses each answer, so these tests see what
Alibaba Cloud would receive: the signed query of SendSms (2017-05-25) with the sign name,
template code, number and TemplateParam JSON.
"""

from __future__ import annotations

import json
import logging
import re
import secrets

import pytest

from app.services.sms import BREAKER_FAILURES, SmsError
from app.services.sms.aliyun import AliyunSms, aliyun_phone, aliyun_sms
from app.services.sms.mainland import Retrier
from config import TestingConfig as Settings
from tests import factories
from tests.provider_server import ProviderServer
from tests.twilio_mock import free_port

PHONE = factories.phone(31)
JSON = "application/json;charset=utf-8"


def ok(biz_id: str = "900619746936498440^0") -> dict[str, str]:
    return {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": "F655A8D5-B967-440B-8683-DAD6FF8DE990"}


def refused(code: str) -> dict[str, str]:
    return {"Code": code, "Message": "scripted refusal", "RequestId": "F655A8D5-B967-440B-8683-DAD6FF8DE991"}


@pytest.fixture
def keys() -> dict[str, str]:
    """Obviously fake credentials, made for this test run."""
    return {"id": "FAKE-ID-" + secrets.token_hex(4), "secret": "fake-secret-" + secrets.token_hex(8)}


def client(url: str, keys: dict[str, str], retrier: Retrier | None = None, **settings: str) -> AliyunSms:
    env = {
        "SMS_BACKEND": "aliyun",
        "ALIYUN_ACCESS_KEY_ID": keys["id"],
        "ALIYUN_ACCESS_KEY_SECRET": keys["secret"],
        "ALIYUN_SMS_SIGN_NAME": "骑手服务",
        "ALIYUN_SMS_CODE_TEMPLATE": "SMS_100000001",
        "ALIYUN_SMS_NOTICE_TEMPLATE": "SMS_100000002",
        "ALIYUN_SMS_ENDPOINT": url,
        "ALIYUN_SMS_TIMEOUT": "5",
        **settings,
    }
    return aliyun_sms(Settings(env).as_dict(), retrier)


def test_a_code_goes_out_signed_with_the_template_and_the_code_as_a_string(keys):
    server = ProviderServer().answer(200, ok("1234^0"), JSON)
    with server as url:
        assert client(url, keys).send(PHONE, "code", {"code": "012345"}) == "1234^0"
    (seen,) = server.requests
    assert seen.method == "POST" and seen.path == "/"
    assert seen.query["PhoneNumbers"] == PHONE.removeprefix("+86")  # 11 digits, no +86
    assert seen.query["SignName"] == "骑手服务"
    assert seen.query["TemplateCode"] == "SMS_100000001"
    assert json.loads(seen.query["TemplateParam"]) == {"code": "012345"}  # a string: the 0 stays
    assert seen.headers["x-acs-action"] == "SendSms" and seen.headers["x-acs-version"] == "2017-05-25"
    # The SDK signed the request with the key id, and signed the host it was given, not a URL.
    assert re.match(
        rf"ACS3-HMAC-SHA256 Credential={keys['id']},SignedHeaders=\S*host\S*,Signature=[0-9a-f]{{64}}$",
        seen.headers["authorization"],
    )
    assert seen.headers["host"] == url.removeprefix("http://")
    assert keys["secret"] not in json.dumps([seen.query, seen.headers]) + seen.body.decode()


def test_each_kind_uses_its_template(keys):
    server = ProviderServer().answer(200, ok(), JSON)
    with server as url:
        sms = client(url, keys)
        sms.send(PHONE, "status_code", {"code": "000111"})
        sms.send(PHONE, "notice", {"name": "张三"})
        sms.send(PHONE, "notice", {})
    status, notice, bare = server.requests
    assert status.query["TemplateCode"] == "SMS_100000001"
    assert json.loads(status.query["TemplateParam"]) == {"code": "000111"}
    assert notice.query["TemplateCode"] == "SMS_100000002"
    assert json.loads(notice.query["TemplateParam"]) == {"name": "张三"}
    assert "TemplateParam" not in bare.query


def test_numbers_outside_the_mainland_keep_their_country_code():
    assert aliyun_phone("+85261234567") == "85261234567"
    assert aliyun_phone(factories.phone(1)) == factories.phone(1)[3:]


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("isv.BUSINESS_LIMIT_CONTROL", "rate_limited"),
        ("isv.MOBILE_NUMBER_ILLEGAL", "rejected"),
        ("isv.MOBILE_COUNT_OVER_LIMIT", "rejected"),
        ("isv.AMOUNT_NOT_ENOUGH", "unavailable"),
        ("isv.OUT_OF_SERVICE", "unavailable"),
        ("isv.DAY_LIMIT_CONTROL", "unavailable"),
        ("isv.SMS_TEMPLATE_ILLEGAL", "unavailable"),
        ("isv.PARAM_NOT_SUPPORT_URL", "unavailable"),
        ("isp.SYSTEM_ERROR", "unavailable"),
        ("isv.SOMETHING_NEW", "unavailable"),
    ],
)
def test_a_refusal_in_a_normal_answer_is_mapped(keys, code, kind):
    server = ProviderServer().answer(200, refused(code), JSON)
    with server as url, pytest.raises(SmsError) as caught:
        client(url, keys).send(PHONE, "code", {"code": "123456"})
    assert caught.value.kind == kind
    assert len(server.requests) == 1  # a refusal is never retried


def test_an_account_problem_pages_ops_without_personal_data(keys, caplog):
    server = ProviderServer().answer(200, refused("isv.AMOUNT_NOT_ENOUGH"), JSON)
    with caplog.at_level(logging.DEBUG), server as url, pytest.raises(SmsError):
        client(url, keys).send(PHONE, "code", {"code": "987654"})
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("isv.AMOUNT_NOT_ENOUGH" in message for message in errors)
    assert PHONE[3:] not in caplog.text and "987654" not in caplog.text


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, "isv.MOBILE_NUMBER_ILLEGAL", "rejected"),
        (400, "Throttling.User", "rate_limited"),
        (404, "InvalidAccessKeyId.NotFound", "unavailable"),
    ],
)
def test_a_refusal_as_an_http_error_is_mapped(keys, status, code, kind):
    server = ProviderServer().answer(status, refused(code), JSON)
    with server as url, pytest.raises(SmsError) as caught:
        client(url, keys).send(PHONE, "code", {"code": "123456"})
    assert caught.value.kind == kind


def test_a_server_error_is_unavailable_and_not_retried(keys):
    server = ProviderServer().answer(503, b"<html>busy</html>", "text/html")
    with server as url, pytest.raises(SmsError) as caught:
        client(url, keys).send(PHONE, "code", {"code": "123456"})
    assert caught.value.kind == "unavailable"
    assert len(server.requests) == 1


def test_a_slow_answer_times_out_and_is_never_sent_again(keys):
    server = ProviderServer(hold=True).answer(200, ok(), JSON)
    with server as url:
        with pytest.raises(SmsError) as caught:
            client(url, keys, ALIYUN_SMS_TIMEOUT="0.5").send(PHONE, "code", {"code": "123456"})
        server.release.set()
    assert caught.value.kind == "unavailable"
    assert len(server.requests) == 1  # it may have been sent: no second text


def test_a_refused_connection_is_retried_and_the_text_goes_once(keys):
    port = free_port()
    server = ProviderServer(port=port).answer(200, ok("after-retry"), JSON)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        server.__enter__()  # the provider comes up during the backoff

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
        server.answer(200, refused("isv.MOBILE_NUMBER_ILLEGAL"), JSON)
    for _ in range(BREAKER_FAILURES):
        server.answer(500, refused("isp.SYSTEM_ERROR"), JSON)
    with server as url:
        sms = client(url, keys)
        for kind in ["rejected"] * (BREAKER_FAILURES - 1) + ["unavailable"] * BREAKER_FAILURES:
            with pytest.raises(SmsError) as caught:
                sms.send(PHONE, "code", {"code": "123456"})
            assert caught.value.kind == kind
        sent = len(server.requests)
        with pytest.raises(SmsError) as caught:
            sms.send(PHONE, "code", {"code": "123456"})
    assert caught.value.kind == "unavailable" and len(server.requests) == sent  # failed fast


def test_bad_input_never_reaches_the_provider(keys):
    server = ProviderServer().answer(200, ok(), JSON)
    with server as url:
        sms = client(url, keys)
        with pytest.raises(SmsError) as caught:
            sms.send("13800000000", "code", {"code": "123456"})
        assert caught.value.kind == "rejected"
        with pytest.raises(ValueError, match="kind"):
            sms.send(PHONE, "greeting", {})
        with pytest.raises(TypeError):
            sms.send(PHONE, "code", {"code": 12345})  # type: ignore[dict-item]
        with pytest.raises(ValueError, match="code"):
            sms.send(PHONE, "code", {})
    assert server.requests == []


def test_a_request_that_may_have_left_is_not_retried_even_with_time_left(keys):
    # The clock leaves 0.5 s for the attempt, then claims time enough for a retry: only the
    # rule "never retry a request that may have been sent" stops a second text.
    ticks = iter([0.0, 2.5])
    retrier = Retrier(3, clock=lambda: next(ticks, 0.0), sleep=lambda _seconds: None)
    server = ProviderServer(hold=True).answer(200, ok(), JSON)
    with server as url:
        with pytest.raises(SmsError) as caught:
            client(url, keys, retrier).send(PHONE, "code", {"code": "123456"})
        server.release.set()
    assert caught.value.kind == "unavailable"
    assert len(server.requests) == 1
