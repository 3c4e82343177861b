"""`flask check-deploy` with a mainland SMS backend: the sign name must not name the union.

A mainland SMS starts with its approved sign name in 【…】; a sign name such as 【XX区总工会】 would
tell anyone who sees the phone that its owner joined a union.
"""

from __future__ import annotations

import pytest

from app.cli.deploy_check import problems, warnings
from tests.security.test_deploy_check import good
from tests.test_config_mainland_sms import mainland_env


def mainland(tmp_path, backend: str, **change: object) -> dict[str, object]:  # type: ignore[no-untyped-def]
    neutral = {f"{backend.upper()}_SMS_SIGN_NAME": "骑手服务"}
    return {**good(tmp_path), **mainland_env(backend), "SMS_BACKEND": backend, **neutral, **change}


@pytest.mark.parametrize("backend", ["aliyun", "tencent"])
def test_a_mainland_backend_with_a_neutral_sign_name_is_sound(tmp_path, backend):
    config = mainland(tmp_path, backend)
    assert problems(config) == []
    assert warnings(config) == []


@pytest.mark.parametrize("backend", ["aliyun", "tencent"])
def test_a_sign_name_with_gonghui_is_warned_about(tmp_path, backend):
    config = mainland(tmp_path, backend, **{f"{backend.upper()}_SMS_SIGN_NAME": "浦东新区总工会"})
    (warning,) = warnings(config)
    assert f"{backend.upper()}_SMS_SIGN_NAME contains 工会" in warning


def test_a_sign_name_with_the_union_name_is_warned_about(tmp_path):
    config = mainland(tmp_path, "aliyun", UNION_NAME="骑手之家", ALIYUN_SMS_SIGN_NAME="骑手之家")
    assert any("UNION_NAME" in w for w in warnings(config))


def test_the_sign_name_of_an_unused_backend_is_not_judged(tmp_path):
    config = {**good(tmp_path), "ALIYUN_SMS_SIGN_NAME": "浦东新区总工会"}  # SMS_BACKEND is Twilio
    assert warnings(config) == []


def test_a_plain_http_provider_endpoint_is_warned_about(tmp_path):
    config = mainland(tmp_path, "tencent", TENCENT_SMS_ENDPOINT="http://10.0.0.5:8080")
    assert any("TENCENT_SMS_ENDPOINT is plain HTTP" in w for w in warnings(config))


def test_a_plain_http_voice_endpoint_is_warned_about(tmp_path):
    config = mainland(tmp_path, "aliyun", ALIYUN_VOICE_ENDPOINT="http://10.0.0.5:8080")
    assert any("ALIYUN_VOICE_ENDPOINT is plain HTTP" in w for w in warnings(config))


def test_the_command_prints_the_warning(app):
    app.config.update(SMS_BACKEND="aliyun", ALIYUN_SMS_SIGN_NAME="区总工会服务")
    result = app.test_cli_runner().invoke(args=["check-deploy"])
    assert "WARNING: ALIYUN_SMS_SIGN_NAME contains 工会" in result.output


def test_webhook_allow_private_is_warned_about(tmp_path):
    assert warnings({**good(tmp_path), "WEBHOOK_ALLOW_PRIVATE": False}) == []
    (warning,) = warnings({**good(tmp_path), "WEBHOOK_ALLOW_PRIVATE": True})
    assert "WEBHOOK_ALLOW_PRIVATE is on" in warning
