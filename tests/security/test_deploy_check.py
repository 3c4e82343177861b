"""`flask check-deploy` (docs/security.md E6, B7): a deployment that is not safe exits non-zero."""

from __future__ import annotations

import secrets
import socket

import pytest
from cryptography.fernet import Fernet

import config as settings
from app import create_app
from app.cli.deploy_check import problems
from tests.conftest import need


def production_env(tmp_path, **extra: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {
        "APP_ENV": "production",
        "INSTANCE_PATH": str(tmp_path),
        "SECRET_KEY": secrets.token_urlsafe(48),
        "QR_SECRET": secrets.token_urlsafe(48),
        "PII_INDEX_KEY": secrets.token_urlsafe(48),
        "PII_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "CARD_SIGNING_KEY": settings.new_card_key(),
        "SMS_BACKEND": "twilio-verify",
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "t" * 32,
        "TWILIO_VERIFY_SERVICE_SID": "VA" + "0" * 32,
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "TRUSTED_HOSTS": "join.example.org",
        "PUBLIC_BASE_URL": "https://join.example.org",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        **extra,
    }


def good(tmp_path) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return settings.load_config(production_env(tmp_path)).as_dict() | {"APP_ENV": "production"}


def test_a_sound_production_config_has_no_problems(tmp_path):
    assert problems(good(tmp_path)) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"SECRET_KEY": "short"}, "SECRET_KEY is weak"),
        ({"SECRET_KEY": "ab" * 30}, "SECRET_KEY is weak"),
        ({"QR_SECRETS": []}, "QR_SECRET is not set"),
        ({"PII_INDEX_KEY": ""}, "PII_INDEX_KEY is not set"),
        ({"PII_ENCRYPTION_KEYS": ["nope"]}, "not a Fernet key"),
        ({"DEBUG": True}, "DEBUG"),
        ({"APP_ENV": "development"}, "APP_ENV"),
        ({"TRUSTED_HOSTS": None}, "TRUSTED_HOSTS must name"),
        ({"TRUSTED_HOSTS": ["other.example"]}, "TRUSTED_HOSTS must include"),
        ({"RATELIMIT_STORAGE_URI": "memory://"}, "shared store"),
        ({"SESSION_COOKIE_SECURE": False}, "SESSION_COOKIE_SECURE"),
        ({"SESSION_COOKIE_NAME": "session"}, "__Host-"),
        ({"SESSION_COOKIE_SAMESITE": None}, "SAMESITE"),
        ({"SESSION_COOKIE_DOMAIN": "example.org"}, "DOMAIN"),
        ({"PUBLIC_BASE_URL": "http://join.example.org"}, "https"),
        ({"SMS_BACKEND": "console"}, "SMS_BACKEND"),
        ({"CONVERSION_MIN_SENDS": 21}, "CONVERSION_MIN_SENDS"),
        ({"CONVERSION_MIN_PERCENT": 0}, "CONVERSION_MIN_PERCENT"),
        ({"CHALLENGE_NEAR_LIMIT_PERCENT": 100}, "human check"),
    ],
)
def test_each_problem_is_named(tmp_path, change, expected):
    found = problems({**good(tmp_path), **change})
    assert any(expected in p for p in found), found


def test_shared_keys_are_a_problem(tmp_path):
    config = good(tmp_path)
    config["PII_INDEX_KEY"] = config["SECRET_KEY"]
    assert any("different" in p for p in problems(config))


def test_an_unreachable_store_is_a_problem(tmp_path):
    assert any("does not answer" in p for p in problems(good(tmp_path), storage_ok=False))


def test_command_exits_non_zero_on_a_development_setup(app):
    result = app.test_cli_runner().invoke(args=["check-deploy"])
    assert result.exit_code == 1
    assert "ERROR: APP_ENV must be production" in result.output and "CHECK BY HAND" in result.output


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.redis
def test_command_passes_a_sound_production_setup(tmp_path):
    need(_redis_up(), "Redis at 127.0.0.1:6379")
    app = create_app(settings.load_config(production_env(tmp_path)))
    result = app.test_cli_runner().invoke(args=["check-deploy"])
    assert result.exit_code == 0, result.output
    assert "no problems found" in result.output
    down = create_app(settings.load_config(production_env(tmp_path, REDIS_URL="redis://127.0.0.1:1/0")))
    assert down.test_cli_runner().invoke(args=["check-deploy"]).exit_code == 1
