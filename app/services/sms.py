"""SMS gateways, chosen by SMS_BACKEND. Every provider failure becomes an SmsError.

`console` writes each message to a JSON-lines outbox file (development), `memory` keeps them
on the instance (tests), `twilio-messaging` sends the app's own code with the Messages API,
and `twilio-verify` lets Twilio Verify create and check the code.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

log = logging.getLogger(__name__)

RATE_LIMIT_CODES = {20429, 60203, 60212, 60202}
REJECTED_CODES = {21211, 21408, 21610, 21612, 21614, 60200, 60205}


class SmsError(Exception):
    """The provider did not take the message. `kind`: unavailable, rejected or rate_limited."""

    def __init__(self, kind: str, provider_code: int | None = None) -> None:
        super().__init__(f"sms {kind} (provider code {provider_code})")
        self.kind = kind
        self.provider_code = provider_code


class SmsGateway:
    """Sends texts; `provides_codes` gateways also create and check verification codes."""

    provides_codes = False

    def send_text(self, to: str, body: str) -> None:
        raise NotImplementedError

    def start_verification(self, to: str, locale: str) -> str:
        raise NotImplementedError

    def check_verification(self, to: str, code: str) -> bool:
        raise NotImplementedError


@dataclass
class SentText:
    to: str
    body: str
    at: str


@dataclass
class MemoryGateway(SmsGateway):
    """Keeps what it sent on the instance, for tests."""

    sent: list[SentText] = field(default_factory=list)
    fail_with: SmsError | None = None

    def send_text(self, to: str, body: str) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(SentText(to=to, body=body, at=_now_iso()))


class ConsoleGateway(SmsGateway):
    """Appends `{"to", "body", "at"}` lines to the outbox file; the notice names only the file."""

    def __init__(self, outbox: str) -> None:
        self.outbox = Path(outbox)
        self._lock = threading.Lock()

    def send_text(self, to: str, body: str) -> None:
        line = json.dumps({"to": to, "body": body, "at": _now_iso()}, ensure_ascii=False)
        self.outbox.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.outbox.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        print(f"[sms] a message was written to {self.outbox}", flush=True)


class TwilioMessagingGateway(SmsGateway):
    """Sends texts through Twilio's Messages API."""

    def __init__(self, client: Client, from_: str) -> None:
        self.client = client
        self.from_ = from_

    def send_text(self, to: str, body: str) -> None:
        with _provider_errors():
            self.client.messages.create(to=to, from_=self.from_, body=body)


class TwilioVerifyGateway(SmsGateway):
    """Twilio Verify creates, sends and checks the code; only status "approved" counts."""

    provides_codes = True

    def __init__(self, client: Client, service_sid: str, texts: SmsGateway | None = None) -> None:
        self.client = client
        self.service_sid = service_sid
        self.texts = texts

    def start_verification(self, to: str, locale: str) -> str:
        with _provider_errors():
            service = self.client.verify.v2.services(self.service_sid)
            verification = service.verifications.create(to=to, channel="sms", locale=locale)
        return verification.sid

    def check_verification(self, to: str, code: str) -> bool:
        with _provider_errors(not_found_is_expired=True):
            service = self.client.verify.v2.services(self.service_sid)
            check = service.verification_checks.create(to=to, code=code)
        return check.status == "approved"

    def send_text(self, to: str, body: str) -> None:
        if self.texts is None:
            log.warning("decision text not sent: twilio-verify has no TWILIO_FROM for messages")
            return
        self.texts.send_text(to, body)


class _provider_errors:
    """Turn Twilio and transport exceptions into SmsError, logging only the provider code."""

    def __init__(self, not_found_is_expired: bool = False) -> None:
        self.not_found_is_expired = not_found_is_expired

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, _tb: Any) -> bool:
        if exc is None:
            return False
        if isinstance(exc, TwilioRestException):
            raise self._from_rest(exc) from None
        if isinstance(exc, (TwilioException, requests.RequestException)):
            log.warning("sms provider unreachable: %s", type(exc).__name__)
            raise SmsError("unavailable") from None
        return False

    def _from_rest(self, exc: TwilioRestException) -> SmsError:
        code = exc.code if isinstance(exc.code, int) else None
        log.warning("sms provider refused: http %s, code %s", exc.status, code)
        if exc.status == 429 or code in RATE_LIMIT_CODES:
            return SmsError("rate_limited", code)
        if self.not_found_is_expired and exc.status == 404:
            return SmsError("expired", code)
        if code in REJECTED_CODES or exc.status in (400, 422):
            return SmsError("rejected", code)
        return SmsError("unavailable", code)


def twilio_client(config: dict[str, Any]) -> Client:
    """A Twilio client with a timeout, optionally pointed at a local mock of the API."""
    http_client = TwilioHttpClient(timeout=config["TWILIO_TIMEOUT"])
    client = Client(config["TWILIO_ACCOUNT_SID"], config["TWILIO_AUTH_TOKEN"], http_client=http_client)
    if config.get("TWILIO_API_BASE_URL"):
        client.api.base_url = config["TWILIO_API_BASE_URL"]
    if config.get("TWILIO_VERIFY_BASE_URL"):
        client.verify.base_url = config["TWILIO_VERIFY_BASE_URL"]
    return client


def make_gateway(config: dict[str, Any]) -> SmsGateway:
    """Build the gateway named by SMS_BACKEND."""
    backend = config["SMS_BACKEND"]
    if backend == "memory":
        return MemoryGateway()
    if backend == "console":
        return ConsoleGateway(config["SMS_OUTBOX"])
    client = twilio_client(config)
    texts = TwilioMessagingGateway(client, config["TWILIO_FROM"]) if config.get("TWILIO_FROM") else None
    if backend == "twilio-messaging":
        assert texts is not None, "twilio-messaging needs TWILIO_FROM"
        return texts
    return TwilioVerifyGateway(client, config["TWILIO_VERIFY_SERVICE_SID"], texts)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
