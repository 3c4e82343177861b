"""What both Twilio backends share: the client (a time budget per call, retries only where a
retry cannot send a second SMS: docs/security.md H1, H2), one circuit breaker (H3), Twilio's
error codes turned into SmsError, and its delivery-status callback as a provider-neutral receipt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

import pybreaker
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from app.services import numbers
from app.services.sms.base import SmsError, SmsGateway
from app.services.sms.receipts import DeliveryReceipt
from app.services.sms.twilio_transport import BreakerLog, RecentFailures, ResilientHttpClient

log = logging.getLogger(__name__)
T = TypeVar("T")

RATE_LIMIT_CODES = {20429, 60203, 60212, 60202}
OPTED_OUT_CODES = {21610}
REJECTED_CODES = {21211, 21408, 21612, 21614, 60200, 60205}
# The account, not the number, is at fault (60220: China use case not vetted, H4): page ops.
SETUP_CODES = {60220}
STATUS_CALLBACK_PATH = "/twilio/status"

# H3 (project choice): 5 provider failures in a row within 60 s open the circuit; after 30 s
# one trial call may pass (half-open).
BREAKER_FAILURES = 5
BREAKER_WINDOW_SECONDS = 60
BREAKER_RESET_SECONDS = 30


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


class _provider_errors:
    """Turn Twilio and transport exceptions into SmsError, logging only the provider code."""

    def __init__(self, not_found_is_expired: bool = False) -> None:
        self.not_found_is_expired = not_found_is_expired

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, _tb: Any) -> Literal[False]:
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


def twilio_receipt(form: Mapping[str, str]) -> DeliveryReceipt:
    """A delivery-status callback's fields as a receipt: an opt-out is error 21610."""
    error = form.get("ErrorCode", "")
    return DeliveryReceipt(
        to=form.get("To", ""),
        status=form.get("MessageStatus", ""),
        opted_out=numbers.digits(error) and int(error) in OPTED_OUT_CODES,
        provider_code=int(error) if numbers.digits(error) else None,
    )
