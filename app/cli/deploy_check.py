"""`flask check-deploy`: refuse a deployment that is not safe, like Django's `check --deploy`."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import click
from cryptography.fernet import Fernet
from flask import Flask, current_app
from flask.cli import with_appcontext

from app import security
from app.services import limits
from app.services.sms import backends
from app.services.sms.mainland import sign_name_problems

MIN_SECRET_LENGTH, MIN_UNIQUE_CHARS = 50, 5  # Django's W009 heuristic (docs/security.md E6)
MANUAL = ("`flask --app wsgi retention run` is scheduled at least hourly (F8)",)


def checklist(config: Mapping[str, Any]) -> tuple[str, ...]:
    """What an operator checks by hand: the SMS backend's own items (from its registry entry), then ours."""
    items = [item for backend in _sms_backends(config) for item in backend.checklist]
    return (*dict.fromkeys(items), *MANUAL)


def _sms_backends(config: Mapping[str, Any]) -> list[backends.Backend]:
    """The registry entries of SMS_BACKEND and, when set, SMS_FALLBACK_BACKEND."""
    named = (str(config.get("SMS_BACKEND")), str(config.get("SMS_FALLBACK_BACKEND") or ""))
    return [backend for backend in map(backends.lookup, filter(None, named)) if backend is not None]


def problems(config: Mapping[str, Any], storage_ok: bool = True) -> list[str]:
    """Every reason this configuration must not serve the public."""
    return [*_secrets(config), *_runtime(config, storage_ok), *_cookies(config), *_abuse(config)]


def _secrets(config: Mapping[str, Any]) -> Iterator[str]:
    named = {
        "SECRET_KEY": [config.get("SECRET_KEY", "")],
        "QR_SECRET": list(config.get("QR_SECRETS", [])),
        "PII_INDEX_KEY": [config.get("PII_INDEX_KEY", "")],
    }
    for name, values in named.items():
        if not any(values):
            yield f"{name} is not set"
        for value in filter(None, values):
            if len(value) < MIN_SECRET_LENGTH or len(set(value)) < MIN_UNIQUE_CHARS:
                yield f"{name} is weak: use at least {MIN_SECRET_LENGTH} random characters"
    fernet_keys = list(config.get("PII_ENCRYPTION_KEYS", []))
    if not fernet_keys:
        yield "PII_ENCRYPTION_KEY is not set"
    for key in fernet_keys:
        try:
            Fernet(key)
        except ValueError:
            yield "PII_ENCRYPTION_KEY is not a Fernet key"
    every = [v for values in named.values() for v in values if v] + fernet_keys
    if len(every) != len(set(every)):
        yield "SECRET_KEY, QR_SECRET, PII_INDEX_KEY and PII_ENCRYPTION_KEY must all be different keys"


def _runtime(config: Mapping[str, Any], storage_ok: bool) -> Iterator[str]:
    if config.get("DEBUG") or config.get("TESTING"):
        yield "DEBUG and TESTING must be off"
    if config.get("APP_ENV") != "production":
        yield "APP_ENV must be production"
    base = urlsplit(config.get("PUBLIC_BASE_URL", ""))
    if base.scheme != "https":
        yield "PUBLIC_BASE_URL must start with https://"
    hosts = config.get("TRUSTED_HOSTS") or []
    if not hosts:
        yield "TRUSTED_HOSTS must name the hosts the app answers to"
    elif base.hostname and base.hostname not in hosts:
        yield "TRUSTED_HOSTS must include the host of PUBLIC_BASE_URL"
    if limits.in_process_store(str(config.get("RATELIMIT_STORAGE_URI", "memory://"))):
        yield "rate limits need a shared store: set REDIS_URL"
    elif not storage_ok:
        yield "the rate limit store (REDIS_URL) does not answer"
    backend = backends.lookup(str(config.get("SMS_BACKEND")))
    if backend is None or not backend.production:
        yield f"SMS_BACKEND must be {backends.spoken(backends.names(production=True))}"
    fallback = backends.fallback_problem(
        str(config.get("SMS_BACKEND")), str(config.get("SMS_FALLBACK_BACKEND") or ""), production=True
    )
    if fallback:
        yield fallback
    if security.HSTS_SECONDS < 365 * 24 * 3600:
        yield "HSTS max-age must be at least one year"


def _cookies(config: Mapping[str, Any]) -> Iterator[str]:
    if not config.get("SESSION_COOKIE_SECURE"):
        yield "SESSION_COOKIE_SECURE must be on"
    if not str(config.get("SESSION_COOKIE_NAME", "")).startswith("__Host-"):
        yield "the session cookie name must start with __Host-"
    if not config.get("SESSION_COOKIE_HTTPONLY"):
        yield "SESSION_COOKIE_HTTPONLY must be on"
    if config.get("SESSION_COOKIE_SAMESITE") not in ("Lax", "Strict"):
        yield "SESSION_COOKIE_SAMESITE must be Lax or Strict"
    if config.get("SESSION_COOKIE_DOMAIN"):
        yield "SESSION_COOKIE_DOMAIN must be unset (host-only cookie)"


def _abuse(config: Mapping[str, Any]) -> Iterator[str]:
    """The SMS pumping guards of docs/security.md B5/B6 stay on."""
    # A prefix never has more unanswered codes in an hour than its outstanding bound: a higher
    # floor would never see pumping (docs/security.md B4).
    most = limits.OUTSTANDING["prefix"]
    if not 0 < int(config.get("CONVERSION_MIN_SENDS", 20)) <= most:
        yield f"CONVERSION_MIN_SENDS must be 1 to {most}, or a number prefix can never alert (B6)"
    if not 0 < int(config.get("CONVERSION_MIN_PERCENT", 50)) <= 100:
        yield "CONVERSION_MIN_PERCENT must be 1 to 100 (B6)"
    if int(config.get("CHALLENGE_NEAR_LIMIT_PERCENT", 80)) >= 100:
        yield "CHALLENGE_NEAR_LIMIT_PERCENT must be below 100: the human check must come before a limit (B5)"


def warnings(config: Mapping[str, Any]) -> list[str]:
    """What a person must look at before going live, though the app can run with it."""
    return [*_sign_names(config), *_webhooks(config)]


def _webhooks(config: Mapping[str, Any]) -> Iterator[str]:
    if config.get("WEBHOOK_ALLOW_PRIVATE"):
        yield (
            "WEBHOOK_ALLOW_PRIVATE is on: webhooks and robots may reach loopback and private addresses"
            " (the database, Redis, a cloud metadata service); keep it for internal systems you trust"
        )


def _sign_names(config: Mapping[str, Any]) -> Iterator[str]:
    """A mainland SMS shows its sign name as 【…】: one naming the union tells whoever sees the phone."""
    for backend in _sms_backends(config):
        prefix = {"aliyun": "ALIYUN", "tencent": "TENCENT"}.get(backend.name)
        if prefix is not None:
            yield from _sign_name(config, prefix)


def _sign_name(config: Mapping[str, Any], prefix: str) -> Iterator[str]:
    sign_name = str(config.get(f"{prefix}_SMS_SIGN_NAME", ""))
    for reason in sign_name_problems(sign_name, str(config.get("UNION_NAME", ""))):
        yield (
            f"{prefix}_SMS_SIGN_NAME {reason}: every text would show that its reader joined a union;"
            " use a neutral sign name (see README, Mainland China SMS)"
        )
    for setting in (f"{prefix}_SMS_ENDPOINT", f"{prefix}_VOICE_ENDPOINT"):
        if str(config.get(setting, "")).startswith("http://"):
            yield f"{setting} is plain HTTP: numbers and codes would cross the network unencrypted"


def _storage_answers() -> bool:
    from app.extensions import limiter

    try:
        return bool(limiter.storage.check())
    except Exception:  # noqa: BLE001 - any failure to reach the store is a "no"
        return False


@click.command("check-deploy")
@with_appcontext
def check_deploy_command() -> None:
    """Check the settings for a public deployment; exit 1 on any problem."""
    found = problems(current_app.config, storage_ok=_storage_answers())
    for problem in found:
        click.echo(f"ERROR: {problem}")
    for warning in warnings(current_app.config):
        click.echo(f"WARNING: {warning}")
    for item in checklist(current_app.config):
        click.echo(f"CHECK BY HAND: {item}")
    if found:
        click.echo(f"{len(found)} problem(s): not safe to deploy", err=True)
        sys.exit(1)
    click.echo("no problems found")


def register(app: Flask) -> None:
    app.cli.add_command(check_deploy_command)
