"""Settings: development generates secrets once; production refuses to start without them."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from config import ConfigError, DevelopmentConfig, card_private_key, load_config, new_card_key


def test_development_generates_missing_secrets_once(tmp_path: Path):
    env = {"APP_ENV": "development", "INSTANCE_PATH": str(tmp_path)}
    first = load_config(env)
    second = load_config(env)
    assert first.SECRET_KEY and first.SECRET_KEY == second.SECRET_KEY
    assert first.QR_SECRETS == second.QR_SECRETS and first.PII_INDEX_KEY == second.PII_INDEX_KEY
    Fernet(first.PII_ENCRYPTION_KEYS[0])  # a usable key
    path = tmp_path / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len({first.SECRET_KEY, first.QR_SECRETS[0], first.PII_INDEX_KEY}) == 3


def test_environment_wins_over_generated_secrets(tmp_path: Path):
    config = DevelopmentConfig({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "from-env"})
    assert config.SECRET_KEY == "from-env"
    assert "SECRET_KEY" not in json.loads((tmp_path / "secrets.json").read_text())


def production_env(keys: dict[str, str], **extra: str) -> dict[str, str]:
    return {
        **keys,
        "APP_ENV": "production",
        "SMS_BACKEND": "twilio-verify",
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "t" * 32,
        "TWILIO_VERIFY_SERVICE_SID": "VA" + "0" * 32,
        "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "TRUSTED_HOSTS": "join.example.org",
        "PUBLIC_BASE_URL": "https://join.example.org",
        **extra,
    }


@pytest.mark.parametrize(
    "missing", ["SECRET_KEY", "QR_SECRET", "PII_ENCRYPTION_KEY", "PII_INDEX_KEY", "CARD_SIGNING_KEY"]
)
def test_production_refuses_to_start_without_a_secret(keys, tmp_path, missing):
    env = production_env(keys, INSTANCE_PATH=str(tmp_path))
    del env[missing]
    with pytest.raises(ConfigError, match=missing):
        load_config(env)
    assert not (tmp_path / "secrets.json").exists(), "production never generates secrets"


def test_production_refuses_the_console_sms_backend(keys, tmp_path):
    with pytest.raises(ConfigError, match="SMS_BACKEND"):
        load_config(production_env(keys, SMS_BACKEND="console", INSTANCE_PATH=str(tmp_path)))


def test_production_refuses_missing_twilio_settings(keys, tmp_path):
    env = production_env(keys, INSTANCE_PATH=str(tmp_path))
    del env["TWILIO_VERIFY_SERVICE_SID"]
    with pytest.raises(ConfigError, match="TWILIO_VERIFY_SERVICE_SID"):
        load_config(env)


def test_production_refuses_shared_keys(keys, tmp_path):
    env = production_env(keys, INSTANCE_PATH=str(tmp_path), QR_SECRET=keys["SECRET_KEY"])
    with pytest.raises(ConfigError, match="different"):
        load_config(env)


def test_production_refuses_a_queue_that_does_not_survive_a_restart(keys, tmp_path):
    with pytest.raises(ConfigError, match="TASK_QUEUE"):
        load_config(production_env(keys, INSTANCE_PATH=str(tmp_path), TASK_QUEUE="immediate"))
    assert load_config(production_env(keys, INSTANCE_PATH=str(tmp_path))).TASK_QUEUE.startswith("sqlite:///")


def test_production_starts_with_everything_set(keys, tmp_path):
    config = load_config(production_env(keys, INSTANCE_PATH=str(tmp_path)))
    assert config.SESSION_COOKIE_SECURE is True and config.DEBUG is False


def test_bad_fernet_key_is_named(keys, tmp_path):
    env = production_env(keys, INSTANCE_PATH=str(tmp_path), PII_ENCRYPTION_KEY="not-a-key")
    with pytest.raises(ConfigError, match="PII_ENCRYPTION_KEY"):
        load_config(env)


def test_unknown_environment_is_named(tmp_path):
    with pytest.raises(ConfigError, match="APP_ENV"):
        load_config({"APP_ENV": "staging", "INSTANCE_PATH": str(tmp_path)})


def test_key_lists_are_comma_separated(tmp_path):
    config = DevelopmentConfig({"INSTANCE_PATH": str(tmp_path), "QR_SECRET": "new, old"})
    assert config.QR_SECRETS == ["new", "old"]


def test_development_generates_a_card_key_once(tmp_path: Path):
    env = {"APP_ENV": "development", "INSTANCE_PATH": str(tmp_path)}
    first, second = load_config(env), load_config(env)
    assert first.CARD_SIGNING_KEY and first.CARD_SIGNING_KEY == second.CARD_SIGNING_KEY
    card_private_key(first.CARD_SIGNING_KEY)  # a usable Ed25519 key
    assert json.loads((tmp_path / "secrets.json").read_text())["CARD_SIGNING_KEY"] == first.CARD_SIGNING_KEY


@pytest.mark.parametrize("setting", ["CARD_SIGNING_KEY", "CARD_PUBLIC_KEYS"])
def test_bad_card_keys_are_named(keys, tmp_path, setting):
    with pytest.raises(ConfigError, match=setting):
        load_config(production_env(keys, INSTANCE_PATH=str(tmp_path), **{setting: "not-a-key"}))


def test_card_keys_accept_pem_and_older_public_keys(keys, tmp_path):
    pem = card_private_key(new_card_key()).private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    older = card_private_key(new_card_key()).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    config = load_config(
        production_env(
            keys, INSTANCE_PATH=str(tmp_path), CARD_SIGNING_KEY=pem, CARD_PUBLIC_KEYS=base64.b64encode(older).decode()
        )
    )
    assert len(config.CARD_PUBLIC_KEYS) == 1


def test_approval_working_days_with_the_old_name_as_alias(tmp_path):
    assert DevelopmentConfig({"INSTANCE_PATH": str(tmp_path)}).APPROVAL_WORKING_DAYS == 15
    old = DevelopmentConfig({"INSTANCE_PATH": str(tmp_path), "ROSTER_OVERDUE_DAYS": "20"})
    assert old.APPROVAL_WORKING_DAYS == old.ROSTER_OVERDUE_DAYS == 20
    both = DevelopmentConfig(
        {"INSTANCE_PATH": str(tmp_path), "ROSTER_OVERDUE_DAYS": "20", "APPROVAL_WORKING_DAYS": "10"}
    )
    assert both.ROSTER_OVERDUE_DAYS == 10


@pytest.mark.parametrize(
    ("setting", "value"),
    [("WEBHOOK_TIMEOUT_SECONDS", "0"), ("WEBHOOK_TIMEOUT_SECONDS", "20"), ("WEBHOOK_RETRY_BASE_SECONDS", "0")],
)
def test_webhook_timings_that_cannot_work_are_refused(keys, tmp_path, setting, value):  # type: ignore[no-untyped-def]
    env = {**keys, "APP_ENV": "testing", "INSTANCE_PATH": str(tmp_path), setting: value}
    with pytest.raises(ConfigError, match=setting):
        load_config(env)
