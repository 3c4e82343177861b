"""The Twilio gateways against Prism serving Twilio's own API description, and their resilience.

Prism validates every request against the published OpenAPI description and answers with its
examples; `Prefer` headers pick the error paths. What Prism cannot play (503, 21610, a hang,
a half-dead provider) comes from `ScriptedTwilio`, a small local server.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
import requests
import time_machine
from urllib3.exceptions import NewConnectionError

from app import create_app
from app.models import Member, MemberStatus, utcnow
from app.services import verification
from app.services.sms import (
    BREAKER_FAILURES,
    SmsError,
    TwilioMessagingGateway,
    TwilioVerifyGateway,
    make_gateway,
    provider_breaker,
    twilio_client,
)
from app.services.sms.twilio_transport import never_sent, safe_to_retry
from config import TestingConfig as Settings
from tests import factories
from tests.twilio_mock import (
    ACCOUNT_SID,
    SENDER,
    SERVICE_SID,
    RecordingHttpClient,
    ScriptedTwilio,
    free_port,
    prism_api_fixture,  # noqa: F401 (the `prism_api` fixture)
    prism_verify_fixture,  # noqa: F401 (the `prism_verify` fixture)
    twilio_env,
)

PHONE = factories.phone(7)


def config_for(env: dict[str, str], **settings: str) -> dict[str, object]:
    return Settings(twilio_env(env, **settings)).as_dict()


@pytest.fixture
def http() -> RecordingHttpClient:
    return RecordingHttpClient(timeout=10)


@pytest.fixture
def messaging(env, http, prism_api) -> TwilioMessagingGateway:  # type: ignore[no-untyped-def]
    config = config_for(env, SMS_BACKEND="twilio-messaging", TWILIO_FROM=SENDER, TWILIO_API_BASE_URL=prism_api)
    gateway = make_gateway(config, http_client=http)
    assert isinstance(gateway, TwilioMessagingGateway)
    return gateway


@pytest.fixture
def verify(env, http, prism_api, prism_verify) -> TwilioVerifyGateway:  # type: ignore[no-untyped-def]
    config = config_for(
        env,
        SMS_BACKEND="twilio-verify",
        TWILIO_FROM=SENDER,
        TWILIO_API_BASE_URL=prism_api,
        TWILIO_VERIFY_BASE_URL=prism_verify,
    )
    gateway = make_gateway(config, http_client=http)
    assert isinstance(gateway, TwilioVerifyGateway)
    return gateway


# --- against Prism ------------------------------------------------------------------------------


def test_messaging_send_is_accepted_by_twilios_description(messaging, http, prism_api):
    messaging.send_text(PHONE, verification.code_text("123456", "zh"))
    [sent] = http.sent
    assert sent.method == "POST"
    assert sent.url == f"{prism_api}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert sent.data == {
        "To": PHONE,
        "From": SENDER,
        "Body": verification.code_text("123456", "zh"),
        "StatusCallback": "https://join.example.org/twilio/status",
    }


def test_a_messaging_service_sid_is_sent_as_one(env, http, prism_api):
    service = "MG" + "1" * 32
    config = config_for(env, SMS_BACKEND="twilio-messaging", TWILIO_FROM=service, TWILIO_API_BASE_URL=prism_api)
    make_gateway(config, http_client=http).send_text(PHONE, "验证码 123456")
    assert http.sent[0].data["MessagingServiceSid"] == service and "From" not in http.sent[0].data


def test_verify_start_returns_the_verification_sid(verify, http, prism_verify):
    sid = verify.start_verification(PHONE, "zh")
    assert sid.startswith("VE") and len(sid) == 34
    [sent] = http.sent
    assert sent.url == f"{prism_verify}/v2/Services/{SERVICE_SID}/Verifications"
    # The whole body, as a snapshot: no friendly name or text of ours that could name the union.
    assert sent.data == {"To": PHONE, "Channel": "sms", "Locale": "zh"}


def test_verify_reads_the_code_out_by_channel_call(verify, http, prism_verify):
    """The voice call after a slow SMS: Prism checks "call" is a channel of Twilio's description."""
    assert verify.voice
    verification.deliver(verify, to=PHONE, code=None, locale="zh", channel="voice")
    [sent] = http.sent
    assert sent.url == f"{prism_verify}/v2/Services/{SERVICE_SID}/Verifications"
    assert sent.data == {"To": PHONE, "Channel": "call", "Locale": "zh"}


def test_check_is_true_for_the_approved_example(verify, http, prism_verify):
    assert verify.check_verification(PHONE, "123456") is True
    assert http.sent[0].url == f"{prism_verify}/v2/Services/{SERVICE_SID}/VerificationCheck"
    assert http.sent[0].data == {"To": PHONE, "Code": "123456"}


def test_check_is_false_for_a_wrong_code(verify, http):
    http.prefer("code=201, example=wrongCode")  # HTTP 2xx, status "pending": not verified
    assert verify.check_verification(PHONE, "000000") is False


@pytest.mark.parametrize(("example", "kind"), [("expired", "expired"), ("maxAttempts", "rate_limited")])
def test_a_dead_verification_is_never_verified(verify, http, example, kind):
    http.prefer(f"code=201, example={example}")
    with pytest.raises(SmsError) as error:
        verify.check_verification(PHONE, "123456")
    assert error.value.kind == kind


def test_twilio_429_is_rate_limited_after_two_jittered_retries(verify, http):
    http.prefer("code=429")  # Twilio's 20429 body: "not processed, safe to retry"
    with pytest.raises(SmsError) as error:
        verify.start_verification(PHONE, "zh")
    assert (error.value.kind, error.value.provider_code) == ("rate_limited", 20429)
    assert len(http.sent) == 3
    assert len(http.sleeps) == 2 and 0 <= http.sleeps[0] <= 0.5 and 0 <= http.sleeps[1] <= 1.0


def test_a_request_prism_finds_malformed_is_rejected(messaging, http):
    with pytest.raises(SmsError) as error:
        messaging.send_text(None, "验证码 123456")  # type: ignore[arg-type]  # no `To`: Prism answers 422
    assert error.value.kind == "rejected"
    assert len(http.sent) == 1, "a refusal is not retried"


def test_no_text_or_name_sent_to_twilio_names_the_union(messaging, verify, http):
    for locale in ("zh", "en"):
        messaging.send_text(PHONE, verification.code_text("123456", locale))
        verify.start_verification(PHONE, locale)
    assert len(http.sent) == 4
    for sent in http.sent:
        text = " ".join(str(value) for value in sent.data.values()).lower()
        assert "工会" not in text and "union" not in text
        assert not {"FriendlyName", "CustomFriendlyName"} & sent.data.keys()


def test_twilio_client_is_pointed_at_the_configured_hosts_with_a_timeout(env, prism_api, prism_verify):
    config = config_for(env, TWILIO_API_BASE_URL=prism_api, TWILIO_VERIFY_BASE_URL=prism_verify, TWILIO_TIMEOUT="7")
    client = twilio_client(config)
    assert client.http_client.timeout == 7
    assert client.api.base_url == prism_api and client.verify.base_url == prism_verify
    # A real call with the default client: it reaches Prism, not api.twilio.com (blocked here).
    message = client.messages.create(to=PHONE, from_=SENDER, body="验证码 123456")
    assert message.sid.startswith("SM")


def test_default_timeout_is_ten_seconds(env):
    assert twilio_client(config_for(env)).http_client.timeout == 10


# --- a whole join through the Flask test client, SMS_BACKEND=twilio-verify ----------------------


@pytest.fixture
def verify_app(env, prism_api, prism_verify):  # type: ignore[no-untyped-def]
    app = create_app(
        Settings(
            twilio_env(
                env, SMS_BACKEND="twilio-verify", TWILIO_API_BASE_URL=prism_api, TWILIO_VERIFY_BASE_URL=prism_verify
            )
        )
    )
    yield app
    app.extensions["db_engine"].dispose()


def join_path(app) -> str:  # type: ignore[no-untyped-def]
    from sqlmodel import Session

    with Session(app.extensions["db_engine"], expire_on_commit=False) as db:
        station = factories.workplace(db, factories.district(db))
        db.commit()
        return factories.join_path(app, station)


def test_whole_join_with_twilio_verify_against_prism(verify_app):
    from tests.web.test_join import members, send_code, submit

    assert isinstance(verify_app.extensions["sms"], TwilioVerifyGateway)
    client = verify_app.test_client()
    response = submit(client, join_path(verify_app))
    assert response.status_code == 303 and response.headers["Location"].endswith("/join/code")
    assert send_code(client, "123456").status_code == 303, "Prism's example check is approved"
    from sqlmodel import Session

    with Session(verify_app.extensions["db_engine"]) as db:
        [member] = members(db)
        assert isinstance(member, Member) and member.status is MemberStatus.pending


def test_a_slow_sms_is_followed_by_a_verify_call_through_the_join(verify_app):
    """The code page's voice button with Twilio Verify: a Verification on channel "call" (Verify reads
    out the pending verification's code), then Prism's approved check joins."""
    from datetime import timedelta

    from sqlmodel import Session, select

    from app.models import JoinAttempt
    from tests.web.test_join import hidden_fields, members, send_code, submit

    http = RecordingHttpClient(timeout=10)
    verify_app.extensions["sms"] = make_gateway(verify_app.config, http_client=http)
    client = verify_app.test_client()
    submit(client, join_path(verify_app))
    with Session(verify_app.extensions["db_engine"]) as db:
        attempt = db.exec(select(JoinAttempt)).one()
        attempt.code_sent_at -= timedelta(seconds=61)
        db.add(attempt)
        db.commit()
    page = client.get("/join/code")
    assert "/join/voice" in page.text
    assert client.post("/join/voice", data=hidden_fields(page.text)).status_code == 303
    assert [sent.data["Channel"] for sent in http.sent] == ["sms", "call"]
    assert send_code(client, "123456").headers["Location"].endswith("/join/done")
    with Session(verify_app.extensions["db_engine"]) as db:
        assert len(members(db)) == 1


def test_wrong_code_with_twilio_verify_creates_no_member(verify_app):
    from tests.web.test_join import members, send_code, submit

    http = RecordingHttpClient(timeout=10)
    verify_app.extensions["sms"] = make_gateway(verify_app.config, http_client=http)
    client = verify_app.test_client()
    submit(client, join_path(verify_app))
    assert http.sent[-1].data == {"To": factories.phone(1), "Channel": "sms", "Locale": "zh"}
    http.prefer("code=201, example=wrongCode")
    response = send_code(client, "000000")
    assert response.status_code == 303  # post/redirect/get: the code page says why, once
    assert "验证码不正确" in client.get(response.headers["Location"]).text
    from sqlmodel import Session

    with Session(verify_app.extensions["db_engine"]) as db:
        assert members(db) == []


def test_provider_down_keeps_the_draft_and_the_breaker_fails_fast(verify_app):
    """Scenarios 51 and H3 through the join flow: a clear message, the draft kept, no calls while open."""
    from sqlmodel import Session, select

    from app.models import JoinAttempt
    from tests.web.test_join import submit

    http = RecordingHttpClient(timeout=10)
    config = {**verify_app.config, "TWILIO_VERIFY_BASE_URL": f"http://127.0.0.1:{free_port()}"}  # refused
    verify_app.extensions["sms"] = make_gateway(config, http_client=http)
    path = join_path(verify_app)
    for n in range(1, BREAKER_FAILURES + 2):
        client = verify_app.test_client()
        assert submit(client, path, phone=factories.phone(n)[3:]).status_code == 303
        assert "短信服务暂时不可用" in client.get("/join/code").text
    assert len(http.sent) == BREAKER_FAILURES * 3, "5 calls with 2 retries each, then the open circuit sent nothing"
    with Session(verify_app.extensions["db_engine"]) as db:
        assert len(db.exec(select(JoinAttempt)).all()) == BREAKER_FAILURES + 1, "every draft was kept"


# --- transport faults: refused, hang, 503, 21610 ------------------------------------------------


def scripted_gateway(env, url: str, http: RecordingHttpClient, backend: str = "twilio-verify"):  # type: ignore[no-untyped-def]
    config = config_for(
        env, SMS_BACKEND=backend, TWILIO_FROM=SENDER, TWILIO_API_BASE_URL=url, TWILIO_VERIFY_BASE_URL=url
    )
    return make_gateway(config, http_client=http)


def test_connection_refused_is_unavailable_after_two_retries(env, http):
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(SmsError) as error:
        scripted_gateway(env, closed, http).start_verification(PHONE, "zh")
    assert error.value.kind == "unavailable"
    assert len(http.sent) == 3, "a connection that never opened sent nothing: safe to retry, even a send"


def test_a_hang_is_cut_by_the_timeout_and_never_retried(env):
    http = RecordingHttpClient(timeout=0.3)
    with ScriptedTwilio(hold=True) as url:
        with pytest.raises(SmsError) as error:
            scripted_gateway(env, url, http).start_verification(PHONE, "zh")
    assert error.value.kind == "unavailable"
    assert len(http.sent) == 1, "a read timeout on start-verification may have sent a code: no retry"


def test_503_on_a_check_is_retried(env, http):
    scripted = ScriptedTwilio().error(503).answer(200, {"sid": "VE" + "a" * 32, "status": "approved"})
    with scripted as url:
        assert scripted_gateway(env, url, http).check_verification(PHONE, "123456") is True
    assert len(scripted.requests) == 2 and len(http.sleeps) == 1


@pytest.mark.parametrize("backend", ["twilio-verify", "twilio-messaging"])
def test_503_on_a_send_is_not_retried(env, http, backend):
    scripted = ScriptedTwilio().error(503).error(503).error(503)
    with scripted as url:
        gateway = scripted_gateway(env, url, http, backend)
        with pytest.raises(SmsError) as error:
            if backend == "twilio-verify":
                gateway.start_verification(PHONE, "zh")
            else:
                gateway.send_text(PHONE, "验证码 123456")
    assert error.value.kind == "unavailable"
    assert len(scripted.requests) == 1, "Twilio may have sent the SMS before answering 503"


@pytest.mark.parametrize("code", [60203, 60212, 60202])
def test_a_business_429_is_not_retried(env, http, code):
    scripted = ScriptedTwilio().error(429, code)
    with scripted as url, pytest.raises(SmsError) as error:
        scripted_gateway(env, url, http).start_verification(PHONE, "zh")
    assert (error.value.kind, error.value.provider_code) == ("rate_limited", code)
    assert len(scripted.requests) == 1


def test_opted_out_phone_is_its_own_kind(env, http):
    scripted = ScriptedTwilio().error(400, 21610)
    with scripted as url, pytest.raises(SmsError) as error:
        scripted_gateway(env, url, http, "twilio-messaging").send_text(PHONE, "验证码 123456")
    assert (error.value.kind, error.value.provider_code) == ("opted_out", 21610)


def test_china_vetting_missing_is_unavailable_not_the_workers_fault(env, http):
    scripted = ScriptedTwilio().error(400, 60220)
    with scripted as url, pytest.raises(SmsError) as error:
        scripted_gateway(env, url, http).start_verification(PHONE, "zh")
    assert (error.value.kind, error.value.provider_code) == ("unavailable", 60220)


def test_retries_stop_when_the_time_budget_is_spent(env):
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    http = RecordingHttpClient(timeout=1.2, sleep=sleep, clock=lambda: now[0], jitter=lambda _lo, hi: hi)
    with pytest.raises(SmsError):
        scripted_gateway(env, f"http://127.0.0.1:{free_port()}", http).start_verification(PHONE, "zh")
    assert len(http.sent) == 1, "0.5 s of backoff would leave less than a second for the retry"


def test_backoff_doubles_from_half_a_second(env):
    http = RecordingHttpClient(timeout=10, jitter=lambda _lo, hi: hi)
    with pytest.raises(SmsError):
        scripted_gateway(env, f"http://127.0.0.1:{free_port()}", http).start_verification(PHONE, "zh")
    assert http.sleeps == [0.5, 1.0]


def test_only_failures_before_sending_count_as_never_sent():
    refused = requests.ConnectionError(_max_retry(NewConnectionError(None, "refused")))  # type: ignore[arg-type]
    assert never_sent(refused) and never_sent(requests.ConnectTimeout())
    assert not never_sent(requests.ReadTimeout())
    assert not never_sent(requests.ConnectionError("Connection aborted: remote end closed"))
    assert not safe_to_retry("POST", "https://verify.twilio.com/v2/Services/VA1/Verifications", requests.ReadTimeout())


def _max_retry(reason: Exception) -> Exception:
    from urllib3.exceptions import MaxRetryError

    return MaxRetryError(None, "/", reason)  # type: ignore[arg-type]


# --- circuit breaker ----------------------------------------------------------------------------


def failing_provider(count: int) -> ScriptedTwilio:
    scripted = ScriptedTwilio()
    for _ in range(count):
        scripted.error(500, 20500)
    return scripted


def test_breaker_opens_after_five_failures_and_fails_fast(env, http, caplog):
    caplog.set_level(logging.WARNING, logger="app.services.sms.twilio_transport")
    scripted = failing_provider(BREAKER_FAILURES)
    with time_machine.travel(utcnow(), tick=False), scripted as url:
        gateway = scripted_gateway(env, url, http, "twilio-messaging")
        for _ in range(BREAKER_FAILURES):
            with pytest.raises(SmsError):
                gateway.send_text(PHONE, "验证码 123456")
        with pytest.raises(SmsError) as error:
            gateway.send_text(PHONE, "验证码 123456")
    assert error.value.kind == "unavailable"
    assert len(scripted.requests) == BREAKER_FAILURES, "the open circuit made no call"
    opened = [r for r in caplog.records if r.levelno == logging.ERROR and "closed -> open" in r.getMessage()]
    assert len(opened) == 1, "ops hear when the circuit opens"


def test_breaker_half_opens_after_thirty_seconds(env, http):
    scripted = failing_provider(BREAKER_FAILURES)
    with time_machine.travel(utcnow(), tick=False) as clock, scripted as url:
        gateway = scripted_gateway(env, url, http, "twilio-messaging")
        for _ in range(BREAKER_FAILURES):
            with pytest.raises(SmsError):
                gateway.send_text(PHONE, "x")
        clock.shift(timedelta(seconds=29))
        with pytest.raises(SmsError):
            gateway.send_text(PHONE, "x")
        assert len(scripted.requests) == BREAKER_FAILURES
        clock.shift(timedelta(seconds=2))
        gateway.send_text(PHONE, "x")  # the trial call reaches the provider and succeeds
        gateway.send_text(PHONE, "x")
    assert len(scripted.requests) == BREAKER_FAILURES + 2
    assert gateway.breaker.current_state == "closed"


def test_a_failed_trial_call_opens_the_breaker_again(env, http):
    scripted = failing_provider(BREAKER_FAILURES + 1)
    with time_machine.travel(utcnow(), tick=False) as clock, scripted as url:
        gateway = scripted_gateway(env, url, http, "twilio-messaging")
        for _ in range(BREAKER_FAILURES):
            with pytest.raises(SmsError):
                gateway.send_text(PHONE, "x")
        clock.shift(timedelta(seconds=31))
        with pytest.raises(SmsError):
            gateway.send_text(PHONE, "x")
        assert gateway.breaker.current_state == "open"


def test_failures_spread_over_more_than_a_minute_do_not_open_it(env, http):
    scripted = failing_provider(BREAKER_FAILURES)
    with time_machine.travel(utcnow(), tick=False) as clock, scripted as url:
        gateway = scripted_gateway(env, url, http, "twilio-messaging")
        for _ in range(BREAKER_FAILURES):
            with pytest.raises(SmsError):
                gateway.send_text(PHONE, "x")
            clock.shift(timedelta(seconds=16))
        gateway.send_text(PHONE, "x")
    assert len(scripted.requests) == BREAKER_FAILURES + 1
    assert gateway.breaker.current_state == "closed"


def test_refusals_prove_the_provider_is_up(env, http):
    scripted = ScriptedTwilio()
    for _ in range(BREAKER_FAILURES * 2):
        scripted.error(400, 21211)
    with scripted as url:
        gateway = scripted_gateway(env, url, http, "twilio-messaging")
        for _ in range(BREAKER_FAILURES * 2):
            with pytest.raises(SmsError) as error:
                gateway.send_text(PHONE, "x")
            assert error.value.kind == "rejected"
    assert len(scripted.requests) == BREAKER_FAILURES * 2


def test_both_twilio_gateways_share_one_breaker(env, http):
    gateway = scripted_gateway(env, "http://127.0.0.1:9", http)
    assert isinstance(gateway, TwilioVerifyGateway) and gateway.texts is not None
    assert gateway.texts.breaker is gateway.breaker  # type: ignore[attr-defined]


def test_a_slow_call_does_not_hold_up_other_threads(env):
    breaker = provider_breaker()
    slow, quick = ScriptedTwilio(hold=True), ScriptedTwilio()
    with slow as slow_url, quick as quick_url:
        gateways = [
            TwilioMessagingGateway(
                twilio_client(config_for(env, TWILIO_API_BASE_URL=url), RecordingHttpClient(timeout=5)),
                SENDER,
                breaker=breaker,
            )
            for url in (slow_url, quick_url)
        ]
        worker = threading.Thread(target=gateways[0].send_text, args=(PHONE, "x"))
        worker.start()
        assert slow.arrived.wait(5)
        gateways[1].send_text(PHONE, "x")
        still_waiting = worker.is_alive()
        slow.release.set()
        worker.join(5)
    assert still_waiting, "the quick call finished while the slow one was still in flight"
