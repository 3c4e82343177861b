"""SMS gateways, chosen by SMS_BACKEND. Every provider failure becomes an SmsError.

`console` writes each message to a JSON-lines outbox file (development), `memory` keeps them
on the instance (tests), `twilio-messaging` sends the app's own code with the Messages API,
and `twilio-verify` lets Twilio Verify create and check the code.

Both Twilio gateways share one client (a time budget per call, retries only where a retry
cannot send a second SMS: docs/security.md H1, H2) and one circuit breaker (H3).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pybreaker
from sqlmodel import Session
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from app.models import SmsOptOut
from app.services.twilio_transport import BreakerLog, RecentFailures, ResilientHttpClient

if TYPE_CHECKING:
    from app.services.crypto import PiiCipher

log = logging.getLogger(__name__)
T = TypeVar("T")

RATE_LIMIT_CODES = {20429, 60203, 60212, 60202}
OPTED_OUT_CODES = {21610}
REJECTED_CODES = {21211, 21408, 21612, 21614, 60200, 60205}
# The account, not the number, is at fault (60220: China use case not vetted, H4): page ops.
SETUP_CODES = {60220}
KINDS = ("unavailable", "rejected", "rate_limited", "opted_out", "expired")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
TWILIO_BACKENDS = ("twilio-verify", "twilio-messaging")
STATUS_CALLBACK_PATH = "/twilio/status"

# H3 (project choice): 5 provider failures in a row within 60 s open the circuit; after 30 s
# one trial call may pass (half-open).
BREAKER_FAILURES = 5
BREAKER_WINDOW_SECONDS = 60
BREAKER_RESET_SECONDS = 30


class SmsError(Exception):
    """The provider did not take the message; `kind` is one of KINDS.

    opted_out: the phone sent STOP (Twilio 21610); the caller records it with `record_opt_out`.
    """

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
        if not E164.match(to):
            raise SmsError("rejected")  # what Twilio answers (21211): development sees it too
        line = json.dumps({"to": to, "body": body, "at": _now_iso()}, ensure_ascii=False)
        self.outbox.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.outbox.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        print(f"[sms] a message was written to {self.outbox}", flush=True)


class TwilioGateway(SmsGateway):
    """Runs each provider call behind the circuit breaker and turns its failures into SmsError."""

    def __init__(self, client: Client, breaker: pybreaker.CircuitBreaker | None = None) -> None:
        self.client = client
        self.breaker = breaker or provider_breaker()

    def _call(self, operation: Callable[[], T], not_found_is_expired: bool = False) -> T:
        # `calling()` releases the breaker's lock while the call runs (`call()` would not),
        # so one slow request does not hold up every other thread of the worker. An upgrade of
        # pybreaker that changes this fails test_a_slow_call_does_not_hold_up_other_threads.
        try:
            with self.breaker.calling(), _provider_errors(not_found_is_expired):
                result = operation()
        except pybreaker.CircuitBreakerError:
            log.warning("sms provider circuit open: failing fast")
            raise SmsError("unavailable") from None
        return result


class TwilioMessagingGateway(TwilioGateway):
    """Sends texts through Twilio's Messages API; `sender` is a number or a messaging service."""

    def __init__(
        self,
        client: Client,
        sender: str,
        status_callback: str | None = None,
        breaker: pybreaker.CircuitBreaker | None = None,
    ) -> None:
        super().__init__(client, breaker)
        self.sender = {"messaging_service_sid": sender} if sender.startswith("MG") else {"from_": sender}
        self.status_callback = status_callback

    def send_text(self, to: str, body: str) -> None:
        self._call(
            lambda: self.client.messages.create(to=to, body=body, status_callback=self.status_callback, **self.sender)
        )


class TwilioVerifyGateway(TwilioGateway):
    """Twilio Verify creates, sends and checks the code; only status "approved" counts."""

    provides_codes = True

    def __init__(
        self,
        client: Client,
        service_sid: str,
        texts: SmsGateway | None = None,
        breaker: pybreaker.CircuitBreaker | None = None,
    ) -> None:
        super().__init__(client, breaker)
        self.service_sid = service_sid
        self.texts = texts

    def start_verification(self, to: str, locale: str) -> str:
        service = self.client.verify.v2.services(self.service_sid)
        return self._call(lambda: service.verifications.create(to=to, channel="sms", locale=locale)).sid

    def check_verification(self, to: str, code: str) -> bool:
        service = self.client.verify.v2.services(self.service_sid)
        check = self._call(lambda: service.verification_checks.create(to=to, code=code), not_found_is_expired=True)
        return _approved(check.status)

    def send_text(self, to: str, body: str) -> None:
        if self.texts is None:
            log.warning("decision text not sent: twilio-verify has no TWILIO_FROM for messages")
            return
        self.texts.send_text(to, body)


def _approved(status: str | None) -> bool:
    """Fail closed: only "approved" verifies; a dead verification says why (scenario 54)."""
    if status == "expired":
        raise SmsError("expired")
    if status == "max_attempts_reached":
        raise SmsError("rate_limited", 60202)
    return status == "approved"


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
        if isinstance(exc, (TwilioException, OSError)):  # requests' errors are OSErrors
            log.warning("sms provider unreachable: %s", type(exc).__name__)
            raise SmsError("unavailable") from None
        return False

    def _from_rest(self, exc: TwilioRestException) -> SmsError:
        code = exc.code if isinstance(exc.code, int) else None
        log.warning("sms provider refused: http %s, code %s", exc.status, code)
        if code in SETUP_CODES:
            log.error("sms provider account needs attention: twilio error %s", code)
            return SmsError("unavailable", code)
        if code in OPTED_OUT_CODES:
            return SmsError("opted_out", code)
        if exc.status == 429 or code in RATE_LIMIT_CODES:
            return SmsError("rate_limited", code)
        if self.not_found_is_expired and exc.status == 404:
            return SmsError("expired", code)
        if code in REJECTED_CODES or exc.status in (400, 422):
            return SmsError("rejected", code)
        return SmsError("unavailable", code)


def provider_breaker() -> pybreaker.CircuitBreaker:
    """One breaker per provider (both Twilio gateways share it): only outages count as failures."""
    return pybreaker.CircuitBreaker(
        fail_max=BREAKER_FAILURES,
        reset_timeout=BREAKER_RESET_SECONDS,
        exclude=[_provider_answered],
        state_storage=RecentFailures(BREAKER_WINDOW_SECONDS),
        listeners=[BreakerLog()],
        name="twilio",
    )


def _provider_answered(exc: BaseException) -> bool:
    # A refusal (bad number, rate limit, opt-out, expired code) proves the provider is up.
    return isinstance(exc, SmsError) and exc.kind != "unavailable"


def twilio_client(config: dict[str, Any], http_client: TwilioHttpClient | None = None) -> Client:
    """A Twilio client with a time budget per call, optionally pointed at a local mock of the API."""
    http_client = http_client or ResilientHttpClient(timeout=config["TWILIO_TIMEOUT"])
    client = Client(config["TWILIO_ACCOUNT_SID"], config["TWILIO_AUTH_TOKEN"], http_client=http_client)
    # twilio-python has no setting for its hosts; every domain builds its URLs from base_url.
    if config.get("TWILIO_API_BASE_URL"):
        client.api.base_url = config["TWILIO_API_BASE_URL"]
    if config.get("TWILIO_VERIFY_BASE_URL"):
        client.verify.base_url = config["TWILIO_VERIFY_BASE_URL"]
    return client


def make_gateway(config: dict[str, Any], http_client: TwilioHttpClient | None = None) -> SmsGateway:
    """Build the gateway named by SMS_BACKEND; a Twilio backend missing a setting is a ValueError."""
    backend = config["SMS_BACKEND"]
    if backend == "memory":
        return MemoryGateway()
    if backend == "console":
        return ConsoleGateway(config["SMS_OUTBOX"])
    if backend not in TWILIO_BACKENDS:
        raise ValueError(f"SMS_BACKEND must be console, twilio-verify or twilio-messaging, not {backend!r}")
    client, breaker = twilio_client(config, http_client), provider_breaker()
    texts = None
    if config.get("TWILIO_FROM"):
        callback = config["PUBLIC_BASE_URL"] + STATUS_CALLBACK_PATH
        texts = TwilioMessagingGateway(client, config["TWILIO_FROM"], callback, breaker)
    if backend == "twilio-messaging":
        if texts is None:
            raise ValueError("SMS_BACKEND=twilio-messaging needs TWILIO_FROM (a sender number or MG… service SID)")
        return texts
    if not config.get("TWILIO_VERIFY_SERVICE_SID"):
        raise ValueError("SMS_BACKEND=twilio-verify needs TWILIO_VERIFY_SERVICE_SID")
    return TwilioVerifyGateway(client, config["TWILIO_VERIFY_SERVICE_SID"], texts, breaker)


def is_opted_out(session: Session, pii: PiiCipher, e164: str) -> bool:
    """Whether this phone told the provider to stop (texting it again only earns 21610)."""
    return session.get(SmsOptOut, pii.index(e164)) is not None


def record_opt_out(session: Session, pii: PiiCipher, e164: str, now: datetime) -> bool:
    """Remember an opted-out phone by its blind index; flushes, never commits. True when new."""
    if is_opted_out(session, pii, e164):
        return False
    session.add(SmsOptOut(phone_index=pii.index(e164), at=now))
    session.flush()
    return True


def note_delivery_status(session: Session, pii: PiiCipher, *, to: str, error_code: str, now: datetime) -> bool:
    """Act on a delivery-status callback: an opt-out (21610) is recorded. True when recorded."""
    if not error_code.isdigit() or int(error_code) not in OPTED_OUT_CODES or not E164.match(to):
        return False
    return record_opt_out(session, pii, to, now)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
