"""What the join, status and human-check views share: the phone-proof service, the client's
address, the words for a refusal, Retry-After, the SMS language."""

from __future__ import annotations

from flask import current_app, request
from flask_babel import get_locale

from app.services import limits, phone_proof
from app.web.worker.messages import LIMIT_MESSAGES, SMS_MESSAGES


def proof() -> phone_proof.PhoneProof:
    """The app's phone-proof service (built once in create_app)."""
    return current_app.extensions["phone_proof"]


def client_ip() -> str:
    # remote_addr is the peer, or what the configured number of trusted proxies said (ProxyFix).
    return limits.ip_key(request.remote_addr)


def refusal_message(refused: phone_proof.Refused) -> str:
    if refused.reason == "unavailable":
        return str(SMS_MESSAGES["unavailable"])
    return str(LIMIT_MESSAGES.get(refused.reason, LIMIT_MESSAGES["phone"]))


def with_retry_after(body_and_status, retry_after: int | None):  # type: ignore[no-untyped-def]
    body, status = body_and_status
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    return body, status, headers


def short_locale() -> str:
    # The column holds 8 characters (PostgreSQL enforces it): "zh" or "en", as the SMS needs.
    return "en" if str(get_locale()).startswith("en") else "zh"
