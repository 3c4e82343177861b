"""Settings of the mainland China SMS backends (SMS_BACKEND=aliyun or tencent)."""

from __future__ import annotations

import secrets

import pytest

from app.services.sms.backends import MAINLAND_SETTINGS
from config import ConfigError, load_config
from config import TestingConfig as Settings
from tests.test_config import production_env


def mainland_env(backend: str) -> dict[str, str]:
    """Every setting the backend needs, with obviously fake values made for this run."""
    return {name: f"fake-{name.lower()}-{secrets.token_hex(3)}" for name in MAINLAND_SETTINGS[backend]}


@pytest.mark.parametrize("backend", ["aliyun", "tencent"])
def test_production_starts_with_a_mainland_backend(keys, tmp_path, backend):
    env = production_env(keys, INSTANCE_PATH=str(tmp_path), SMS_BACKEND=backend, **mainland_env(backend))
    assert load_config(env).SMS_BACKEND == backend


@pytest.mark.parametrize(
    ("backend", "missing"),
    [(backend, name) for backend, names in MAINLAND_SETTINGS.items() for name in names],
)
def test_production_names_each_missing_mainland_setting(keys, tmp_path, backend, missing):
    env = production_env(keys, INSTANCE_PATH=str(tmp_path), SMS_BACKEND=backend, **mainland_env(backend))
    del env[missing]
    with pytest.raises(ConfigError, match=missing):
        load_config(env)


def test_defaults_are_the_providers_own_endpoints():
    config = Settings({})
    assert config.ALIYUN_SMS_ENDPOINT == "dysmsapi.aliyuncs.com"
    assert config.TENCENT_SMS_ENDPOINT == "sms.tencentcloudapi.com"
    assert config.TENCENT_SMS_REGION == "ap-guangzhou"
    assert config.ALIYUN_SMS_TIMEOUT == config.TENCENT_SMS_TIMEOUT == 10


@pytest.mark.parametrize("value", ["http://127.0.0.1:8080", "https://sms.gateway.internal", "dysms.example:443"])
def test_an_endpoint_may_be_a_host_or_a_bare_url(keys, tmp_path, value):
    config = Settings({**keys, "INSTANCE_PATH": str(tmp_path), "ALIYUN_SMS_ENDPOINT": value})
    config.check()  # no error
    assert config.ALIYUN_SMS_ENDPOINT == value


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ALIYUN_SMS_ENDPOINT", "http://127.0.0.1:8080/api"),
        ("TENCENT_SMS_ENDPOINT", "ftp://sms.example"),
        ("TENCENT_SMS_ENDPOINT", "sms.example/path"),
        ("ALIYUN_SMS_TIMEOUT", "0"),
        ("TENCENT_SMS_TIMEOUT", "120"),
    ],
)
def test_a_bad_endpoint_or_timeout_is_named(keys, tmp_path, name, value):
    env = production_env(keys, INSTANCE_PATH=str(tmp_path), SMS_BACKEND="aliyun", **mainland_env("aliyun"))
    with pytest.raises(ConfigError, match=name):
        load_config({**env, name: value})


def test_an_unknown_backend_lists_the_mainland_ones(keys, tmp_path):
    with pytest.raises(ConfigError, match="aliyun or tencent"):
        load_config(production_env(keys, INSTANCE_PATH=str(tmp_path), SMS_BACKEND="sms-tomorrow"))
