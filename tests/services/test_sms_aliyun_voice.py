"""The Alibaba Cloud voice client (SingleCallByTts, Dyvmsapi 2017-05-25) with the official SDK
talking to a local stand-in: what the provider would receive (number, TTS template, the code
digit by digit), its refusals mapped, and the gateway offering a call only when configured."""

from __future__ import annotations

import json
import logging
import re
import secrets

import pytest

from app.services.sms import JOIN_CODE, Message, SmsError, make_gateway
from app.services.sms.aliyun_voice import AliyunVoice, aliyun_voice
from config import TestingConfig as Settings
from tests import factories
from tests.provider_server import ProviderServer
from tests.services.test_sms_aliyun import JSON, refused

PHONE = factories.phone(41)


@pytest.fixture
def keys() -> dict[str, str]:
    """Obviously fake credentials, made for this test run."""
    return {"id": "FAKE-ID-" + secrets.token_hex(4), "secret": "fake-secret-" + secrets.token_hex(8)}


def ok(call_id: str = "116012354148^10281378") -> dict[str, str]:
    return {"Code": "OK", "Message": "OK", "CallId": call_id, "RequestId": "D9CB3933-9FE3-4870-BA8E-2BEE91B69D23"}


def settings(url: str, keys: dict[str, str], **extra: str) -> dict[str, object]:
    env = {
        "SMS_BACKEND": "aliyun",
        "ALIYUN_ACCESS_KEY_ID": keys["id"],
        "ALIYUN_ACCESS_KEY_SECRET": keys["secret"],
        "ALIYUN_SMS_SIGN_NAME": "骑手服务",
        "ALIYUN_SMS_CODE_TEMPLATE": "SMS_100000001",
        "ALIYUN_SMS_NOTICE_TEMPLATE": "SMS_100000002",
        "ALIYUN_SMS_ENDPOINT": url,
        "ALIYUN_SMS_TIMEOUT": "5",
        "ALIYUN_VOICE_TTS_CODE": "TTS_200000001",
        "ALIYUN_VOICE_SHOW_NUMBER": "057100000000",
        "ALIYUN_VOICE_ENDPOINT": url,
        **extra,
    }
    return Settings(env).as_dict()


def voice(url: str, keys: dict[str, str]) -> AliyunVoice:
    client = aliyun_voice(settings(url, keys))
    assert client is not None
    return client


def test_the_code_is_read_out_digit_by_digit_through_the_tts_template(keys, caplog):  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    server = ProviderServer().answer(200, ok("call-1"), JSON)
    with server as url:
        assert voice(url, keys).call(PHONE, "012345") == "call-1"
    (seen,) = server.requests
    assert seen.headers["x-acs-action"] == "SingleCallByTts" and seen.headers["x-acs-version"] == "2017-05-25"
    assert seen.query["CalledNumber"] == PHONE.removeprefix("+86")
    assert seen.query["CalledShowNumber"] == "057100000000"
    assert seen.query["TtsCode"] == "TTS_200000001"
    assert json.loads(seen.query["TtsParam"]) == {"code": "0，1，2，3，4，5"}, "a string, the digits apart"
    assert re.match(rf"ACS3-HMAC-SHA256 Credential={keys['id']},", seen.headers["authorization"])
    assert keys["secret"] not in json.dumps([seen.query, seen.headers])
    assert PHONE[3:] not in caplog.text and "012345" not in caplog.text, "no number or code in a log line"


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("isv.BUSINESS_LIMIT_CONTROL", "rate_limited"),
        ("isv.MOBILE_NUMBER_ILLEGAL", "rejected"),
        ("isv.BLACK_NUMBER", "opted_out"),
        ("isv.TTS_TEMPLATE_ILLEGAL", "unavailable"),
        ("isv.AMOUNT_NOT_ENOUGH", "unavailable"),
        ("something.new", "unavailable"),
    ],
)
def test_a_refusal_in_a_normal_answer_is_mapped(keys, code, kind):  # type: ignore[no-untyped-def]
    server = ProviderServer().answer(200, refused(code), JSON)
    with server as url, pytest.raises(SmsError) as raised:
        voice(url, keys).call(PHONE, "012345")
    assert raised.value.kind == kind and len(server.requests) == 1


def test_a_server_error_is_unavailable(keys):  # type: ignore[no-untyped-def]
    server = ProviderServer().answer(503, b"<html>busy</html>", "text/html")
    with server as url, pytest.raises(SmsError) as raised:
        voice(url, keys).call(PHONE, "012345")
    assert raised.value.kind == "unavailable"


def test_the_gateway_calls_only_when_a_tts_template_is_set(keys):  # type: ignore[no-untyped-def]
    server = ProviderServer().answer(200, ok(), JSON)
    with server as url:
        assert not make_gateway(settings(url, keys, ALIYUN_VOICE_TTS_CODE="")).voice
        gateway = make_gateway(settings(url, keys))
        assert gateway.voice
        gateway.call(PHONE, Message(JOIN_CODE, {"code": "654321"}))
    assert json.loads(server.requests[0].query["TtsParam"]) == {"code": "6，5，4，3，2，1"}
