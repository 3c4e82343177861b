"""SMS_FALLBACK_BACKEND (issue 13, item 7): what the first provider answers "unavailable" for goes
by the second; a refusal about the number never does. Against the providers' local stand-ins, the
official SDKs on both sides, and through a whole join."""

from __future__ import annotations

import pytest

from app import create_app
from app.cli import deploy_check
from app.services.sms import BREAKER_FAILURES, FallbackGateway, MemoryGateway, SmsError, make_gateway
from app.services.sms.messages import JOIN_CODE, Message
from config import ConfigError, ProductionConfig
from config import TestingConfig as Settings
from tests import factories
from tests.provider_server import ProviderServer
from tests.web.test_join import members, send_code, submit
from tests.web.test_join_mainland import Provider, aliyun, tencent

PHONE = factories.phone(1)
CODE = Message(JOIN_CODE, {"code": "012345"})


# --- the gateway, with two in-memory backends ------------------------------------------------------


def test_an_unavailable_primary_sends_by_the_fallback():
    primary, second = MemoryGateway(fail_with=SmsError("unavailable")), MemoryGateway()
    FallbackGateway(primary, second).send(PHONE, CODE)
    assert primary.sent == [] and [t.to for t in second.sent] == [PHONE] and "012345" in second.sent[0].body


def test_a_working_primary_is_the_only_one_used():
    primary, second = MemoryGateway(), MemoryGateway()
    FallbackGateway(primary, second).send(PHONE, CODE)
    assert len(primary.sent) == 1 and second.sent == []


@pytest.mark.parametrize("kind", ["rate_limited", "rejected", "opted_out"])
def test_a_refusal_about_the_number_is_never_got_round(kind):
    primary, second = MemoryGateway(fail_with=SmsError(kind)), MemoryGateway()
    with pytest.raises(SmsError) as caught:
        FallbackGateway(primary, second).send(PHONE, CODE)
    assert caught.value.kind == kind and second.sent == []


def test_a_call_goes_by_the_side_that_has_voice_and_falls_back_only_when_unavailable():
    plain, speaking = MemoryGateway(), MemoryGateway(voice=True)
    assert not FallbackGateway(plain, MemoryGateway()).voice
    FallbackGateway(plain, speaking).call(PHONE, CODE)
    assert len(speaking.calls) == 1 and plain.calls == []
    down, other = MemoryGateway(voice=True, fail_with=SmsError("unavailable")), MemoryGateway(voice=True)
    FallbackGateway(down, other).call(PHONE, CODE)
    assert len(other.calls) == 1
    refused = MemoryGateway(voice=True, fail_with=SmsError("rate_limited"))
    with pytest.raises(SmsError):
        FallbackGateway(refused, other).call(PHONE, CODE)
    assert len(other.calls) == 1, "the number's answer is never got round"


def test_both_down_is_unavailable_and_the_fallbacks_answer_counts():
    down = SmsError("unavailable")
    with pytest.raises(SmsError) as caught:
        FallbackGateway(MemoryGateway(fail_with=down), MemoryGateway(fail_with=SmsError("rejected"))).send(PHONE, CODE)
    assert caught.value.kind == "rejected"
    with pytest.raises(SmsError) as caught:
        FallbackGateway(MemoryGateway(fail_with=down), MemoryGateway(fail_with=down)).send_text(PHONE, "hi")
    assert caught.value.kind == "unavailable"


def test_a_backend_that_makes_its_own_codes_cannot_be_backed_up():
    class Verify(MemoryGateway):
        provides_codes = True

    with pytest.raises(ValueError, match="twilio-verify"):
        FallbackGateway(Verify(), MemoryGateway())


# --- Alibaba Cloud backed up by Tencent Cloud, both through their SDKs ---------------------------


@pytest.fixture
def pair():  # type: ignore[no-untyped-def]
    """An Aliyun stand-in (the primary) and a Tencent Cloud one (the fallback), both listening."""
    first, second = aliyun(), tencent()
    first.server, second.server = ProviderServer(), ProviderServer()
    with first.server as first_url, second.server as second_url:
        first.settings["ALIYUN_SMS_ENDPOINT"] = first_url
        second.settings["TENCENT_SMS_ENDPOINT"] = second_url
        yield first, second


def settings(env: dict[str, str], first: Provider, second: Provider) -> dict[str, str]:
    return {**env, **first.settings, **second.settings, "SMS_BACKEND": "aliyun", "SMS_FALLBACK_BACKEND": "tencent"}


def test_aliyun_down_the_code_goes_by_tencent_with_the_same_code(env, pair):  # type: ignore[no-untyped-def]
    first, second = pair
    first.answer(503, {"Code": "ServiceUnavailable", "Message": "busy"})
    second.answer_ok()
    gateway = make_gateway(Settings(settings(env, first, second)).as_dict())
    assert isinstance(gateway, FallbackGateway) and gateway.names == ("aliyun", "tencent")
    gateway.send(PHONE, CODE)
    assert len(first.sent()) == 1
    (sent,) = second.sent()
    assert sent.template == second.code_template and sent.params == ["012345"] and sent.phone == PHONE


def test_aliyun_limiting_the_number_sends_nothing_by_tencent(env, pair):  # type: ignore[no-untyped-def]
    first, second = pair
    first.answer_refusal(first.rate_limited)
    second.answer_ok()
    gateway = make_gateway(Settings(settings(env, first, second)).as_dict())
    with pytest.raises(SmsError) as caught:
        gateway.send(PHONE, CODE)
    assert caught.value.kind == "rate_limited" and second.sent() == []


def test_while_aliyuns_circuit_is_open_every_code_goes_by_tencent_at_once(env, pair):  # type: ignore[no-untyped-def]
    first, second = pair
    first.answer(500, {"Code": "isp.SYSTEM_ERROR", "Message": "down"})
    second.answer_ok()
    gateway = make_gateway(Settings(settings(env, first, second)).as_dict())
    for _ in range(BREAKER_FAILURES + 3):
        gateway.send(PHONE, CODE)
    assert len(first.sent()) == BREAKER_FAILURES, "the open circuit calls Aliyun no more"
    assert len(second.sent()) == BREAKER_FAILURES + 3, "every code still went out"


def test_a_worker_joins_with_the_code_tencent_sent_while_aliyun_was_down(env, pair, db):  # type: ignore[no-untyped-def]
    first, second = pair
    first.answer(503, {"Code": "ServiceUnavailable", "Message": "busy"})
    second.answer_ok()
    app = create_app(Settings(settings(env, first, second)))
    try:
        station = factories.workplace(db, factories.district(db))
        db.commit()
        client = app.test_client()
        assert submit(client, factories.join_path(app, station)).status_code == 303
        page = client.get("/join/code").text
        assert 'name="code"' in page and "没有发送验证码" not in page
        (sent,) = second.sent()
        assert send_code(client, sent.params[0]).status_code == 303
        assert len(members(db)) == 1
    finally:
        app.extensions["db_engine"].dispose()


# --- settings, check-deploy and the join notice ------------------------------------------------------


@pytest.mark.parametrize(
    ("primary", "fallback", "message"),
    [
        ("aliyun", "aliyun", "another backend"),
        ("aliyun", "twilio-verify", "own code"),
        ("twilio-verify", "aliyun", "own code"),
        ("aliyun", "carrier-pigeon", "SMS_FALLBACK_BACKEND must be"),
    ],
)
def test_a_fallback_that_cannot_back_up_is_refused(env, primary, fallback, message):
    with pytest.raises(ConfigError, match=message):
        Settings({**env, "SMS_BACKEND": primary, "SMS_FALLBACK_BACKEND": fallback}).check()


def test_production_needs_the_fallbacks_settings_too(env, pair):  # type: ignore[no-untyped-def]
    first, _second = pair
    production = {
        **env,
        **first.settings,
        "APP_ENV": "production",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "TASK_QUEUE": "redis://127.0.0.1:6379/0",
    }
    ProductionConfig(production).check()
    with pytest.raises(ConfigError, match="TENCENT_SECRET_ID") as caught:
        ProductionConfig({**production, "SMS_FALLBACK_BACKEND": "tencent"}).check()
    assert "ALIYUN" not in str(caught.value)
    with pytest.raises(ConfigError, match="SMS_FALLBACK_BACKEND must be"):
        ProductionConfig({**production, "SMS_FALLBACK_BACKEND": "console"}).check()


def test_check_deploy_reads_the_fallback_too(env, pair):  # type: ignore[no-untyped-def]
    first, second = pair
    config = {
        **Settings(settings(env, first, second)).as_dict(),
        "SMS_BACKEND": "twilio-messaging",
        "SMS_FALLBACK_BACKEND": "tencent",
        "TENCENT_SMS_SIGN_NAME": "浦东骑手工会",
    }
    assert any(w.startswith("TENCENT_SMS_SIGN_NAME contains 工会") for w in deploy_check.warnings(config))
    listed = deploy_check.checklist(config)
    assert any("Fraud Guard" in item for item in listed) and any("签名与模板" in item for item in listed)
    assert not any("FALLBACK" in p for p in deploy_check.problems(config))
    assert any("SMS_FALLBACK_BACKEND" in p for p in deploy_check.problems({**config, "SMS_FALLBACK_BACKEND": "memory"}))


def test_a_fallback_abroad_asks_the_cross_border_consent(env, pair, db):  # type: ignore[no-untyped-def]
    first, _second = pair
    twilio = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "t" * 32, "TWILIO_FROM": "+15005550006"}
    app = create_app(Settings({**env, **first.settings, **twilio, "SMS_FALLBACK_BACKEND": "twilio-messaging"}))
    try:
        station = factories.workplace(db, factories.district(db))
        db.commit()
        html = app.test_client().get(factories.join_path(app, station)).text
        assert "阿里云短信服务或Twilio（位于美国）发送" in html and 'name="cross_border"' in html
        assert "2026-12-v2-aliyun-twilio" in html
    finally:
        app.extensions["db_engine"].dispose()
