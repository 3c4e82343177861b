"""SMS: a provider-neutral interface with one module per backend, chosen by SMS_BACKEND.

- `messages`: a message is a kind (join code, status-check code, decision notice) plus
  parameters (code, link); the neutral text of each kind for free-text backends, in one place.
- `base`: `SmsGateway` (send a message; `provides_codes` backends create and check codes) and
  `SmsError` with its categories (KINDS). Every provider failure becomes an SmsError.
- `backends`: the one registry of backend names, read by the settings, `check-deploy` and
  `make_gateway`.
- backends: `console` (a JSON-lines outbox; `memory` for tests), `twilio_messaging`,
  `twilio_verify`, sharing `twilio_common` (client, breaker, error codes) and `twilio_transport`.
- `receipts`: delivery receipts and opt-outs as provider-neutral events.
- `fallback`: `SMS_FALLBACK_BACKEND`, a second backend for what the first answers "unavailable".
"""

from __future__ import annotations

import importlib
from typing import Any

from app.services.sms.backends import REGISTRY, fallback_problem, lookup, names, spoken
from app.services.sms.base import E164, KINDS, SmsError, SmsGateway
from app.services.sms.console import ConsoleGateway, MemoryGateway, SentText
from app.services.sms.fallback import FallbackGateway
from app.services.sms.messages import DECISION, JOIN_CODE, MESSAGE_KINDS, STATUS_CODE, Message, render, voice_text
from app.services.sms.receipts import DeliveryReceipt, handle_receipt, is_opted_out, record_opt_out
from app.services.sms.twilio_common import (
    BREAKER_FAILURES,
    BREAKER_RESET_SECONDS,
    BREAKER_WINDOW_SECONDS,
    OPTED_OUT_CODES,
    RATE_LIMIT_CODES,
    REJECTED_CODES,
    SETUP_CODES,
    STATUS_CALLBACK_PATH,
    TwilioGateway,
    provider_breaker,
    twilio_client,
    twilio_receipt,
)
from app.services.sms.twilio_messaging import TwilioMessagingGateway
from app.services.sms.twilio_verify import TwilioVerifyGateway

TWILIO_BACKENDS = tuple(name for name in REGISTRY if name.startswith("twilio-"))


def make_gateway(config: dict[str, Any], http_client: Any = None) -> SmsGateway:
    """Build the gateway named by SMS_BACKEND, behind SMS_FALLBACK_BACKEND's when one is set; a
    backend missing a setting is a ValueError."""
    primary = _build(config["SMS_BACKEND"], config, http_client)
    fallback = config.get("SMS_FALLBACK_BACKEND") or ""
    if not fallback:
        return primary
    problem = fallback_problem(config["SMS_BACKEND"], fallback)
    if problem:
        raise ValueError(problem)
    second = _build(fallback, {**config, "SMS_BACKEND": fallback}, http_client)
    return FallbackGateway(primary, second, (config["SMS_BACKEND"], fallback))


def _build(name: str, config: dict[str, Any], http_client: Any) -> SmsGateway:
    backend = lookup(name)
    if backend is None:
        raise ValueError(f"SMS_BACKEND must be {spoken(names())}, not {name!r}")
    module = importlib.import_module(f"{__name__}.{backend.module}")
    return module.build(config, http_client)


def note_delivery_status(session: Any, pii: Any, *, to: str, error_code: str, now: Any) -> bool:
    """Twilio's callback fields as a receipt, acted on (kept for callers of the old name)."""
    return handle_receipt(session, pii, twilio_receipt({"To": to, "ErrorCode": error_code}), now=now)


__all__ = [
    "BREAKER_FAILURES",
    "BREAKER_RESET_SECONDS",
    "BREAKER_WINDOW_SECONDS",
    "DECISION",
    "E164",
    "JOIN_CODE",
    "KINDS",
    "MESSAGE_KINDS",
    "OPTED_OUT_CODES",
    "RATE_LIMIT_CODES",
    "REJECTED_CODES",
    "SETUP_CODES",
    "STATUS_CALLBACK_PATH",
    "STATUS_CODE",
    "TWILIO_BACKENDS",
    "ConsoleGateway",
    "DeliveryReceipt",
    "FallbackGateway",
    "MemoryGateway",
    "Message",
    "SentText",
    "SmsError",
    "SmsGateway",
    "TwilioGateway",
    "TwilioMessagingGateway",
    "TwilioVerifyGateway",
    "handle_receipt",
    "is_opted_out",
    "make_gateway",
    "note_delivery_status",
    "provider_breaker",
    "record_opt_out",
    "render",
    "voice_text",
    "twilio_client",
    "twilio_receipt",
]
