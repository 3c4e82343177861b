"""What the mainland SMS clients share: endpoints, kinds, sign names, the retry rule."""

from __future__ import annotations

import pytest
import requests
from urllib3.exceptions import NewConnectionError

from app.services.sms.mainland import (
    Endpoint,
    Retrier,
    left_unsent,
    parse_endpoint,
    sign_name_problems,
    template_for,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("dysmsapi.aliyuncs.com", Endpoint("dysmsapi.aliyuncs.com", "https")),
        ("http://127.0.0.1:8080", Endpoint("127.0.0.1:8080", "http")),
        ("http://127.0.0.1:8080/", Endpoint("127.0.0.1:8080", "http")),
        ("https://sms.gateway.internal:8443", Endpoint("sms.gateway.internal:8443", "https")),
    ],
)
def test_an_endpoint_becomes_a_host_and_a_protocol(value, expected):
    assert parse_endpoint(value) == expected


@pytest.mark.parametrize("value", ["", "http://127.0.0.1:8080/api", "ftp://host", "host/path", "http://"])
def test_an_endpoint_with_more_than_a_host_is_refused(value):
    with pytest.raises(ValueError):
        parse_endpoint(value)


def test_kinds_pick_their_template():
    assert template_for("code", "C", "N") == template_for("status_code", "C", "N") == "C"
    assert template_for("notice", "C", "N") == "N"
    with pytest.raises(ValueError):
        template_for("marketing", "C", "N")


def test_a_sign_name_naming_the_union_is_found():
    assert sign_name_problems("骑手服务") == []
    assert sign_name_problems("浦东新区总工会") == ["contains 工会"]
    assert sign_name_problems("骑手之家", union_name="骑手之家") == ["contains UNION_NAME"]
    assert sign_name_problems("骑手服务", union_name=" ") == []


def refused_connection() -> Exception:
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")  # type: ignore[arg-type]
    transport = requests.ConnectionError(type("MaxRetry", (), {"reason": reason})())
    try:
        try:
            raise transport
        except OSError as exc:
            raise RuntimeError(str(exc)) from None  # as the SDKs do: the type is lost, the context kept
    except RuntimeError as wrapped:
        return wrapped


def test_only_a_connection_never_made_counts_as_unsent():
    assert left_unsent(refused_connection())
    assert not left_unsent(requests.ReadTimeout("read timed out"))
    assert not left_unsent(RuntimeError("anything else"))


def test_no_retry_without_time_for_one_more_attempt():
    calls: list[float] = []
    now = iter([0.0, 0.0, 1.5])  # the first attempt used 1.5 of 2 s: too little left

    def attempt(seconds_left: float) -> str:
        calls.append(seconds_left)
        raise refused_connection()

    retrier = Retrier(2, clock=lambda: next(now, 1.5), sleep=lambda _s: pytest.fail("slept"), jitter=lambda _a, b: b)
    with pytest.raises(RuntimeError):
        retrier.run(attempt)
    assert calls == [2.0]


class RecordingClient:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, str]]] = []

    def send(self, to_e164: str, kind: str, params: dict[str, str]) -> str:
        self.sent.append((to_e164, kind, params))
        return "id-1"


def test_the_template_gateway_sends_each_message_kind_by_its_template():
    from app.services.sms import DECISION, JOIN_CODE, STATUS_CODE, Message
    from app.services.sms.mainland import TemplateGateway

    client = RecordingClient()
    gateway = TemplateGateway(client)
    gateway.send("+8613800000001", Message(JOIN_CODE, {"code": "012345"}))
    gateway.send("+8613800000001", Message(STATUS_CODE, {"code": "654321"}))
    gateway.send("+8613800000001", Message(DECISION, {"link": "https://example.org/status/"}))
    assert client.sent == [
        ("+8613800000001", "code", {"code": "012345"}),
        ("+8613800000001", "status_code", {"code": "654321"}),
        ("+8613800000001", "notice", {}),
    ]


@pytest.mark.parametrize("backend", ["aliyun", "tencent"])
def test_sms_backend_names_a_mainland_provider_in_the_registry(backend):
    from app.services.sms import make_gateway
    from app.services.sms.backends import MAINLAND_SETTINGS, lookup
    from app.services.sms.mainland import TemplateGateway

    entry = lookup(backend)
    assert entry is not None and entry.production and entry.settings == MAINLAND_SETTINGS[backend]
    config = {name: f"fake-{name.lower()}" for name in MAINLAND_SETTINGS[backend]}
    config.update(
        SMS_BACKEND=backend, ALIYUN_SMS_ENDPOINT="http://127.0.0.1:9", TENCENT_SMS_ENDPOINT="http://127.0.0.1:9"
    )
    assert isinstance(make_gateway(config), TemplateGateway)
