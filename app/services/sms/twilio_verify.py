"""`twilio-verify`: Twilio Verify creates, sends and checks the codes; decisions go by Messages."""

from __future__ import annotations

import logging
from typing import Any

import pybreaker
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from app.services.sms.base import SmsError, SmsGateway
from app.services.sms.twilio_common import TwilioGateway, provider_breaker, twilio_client
from app.services.sms.twilio_messaging import texts_gateway

log = logging.getLogger(__name__)


class TwilioVerifyGateway(TwilioGateway):
    """Twilio Verify creates, sends and checks the code; only status "approved" counts."""

    provides_codes = True
    voice = True  # Verify's channel "call" reads the pending verification's code out

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

    def start_verification(self, to: str, locale: str, channel: str = "sms") -> str:
        """Send the code by `channel`, "sms" or "call". Within its lifetime a verification to the
        same number keeps its code: a call after an SMS reads out the code the SMS carried."""
        service = self.client.verify.v2.services(self.service_sid)
        return self._call(lambda: service.verifications.create(to=to, channel=channel, locale=locale)).sid

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


def build(config: dict[str, Any], http_client: TwilioHttpClient | None = None) -> SmsGateway:
    if not config.get("TWILIO_VERIFY_SERVICE_SID"):
        raise ValueError("SMS_BACKEND=twilio-verify needs TWILIO_VERIFY_SERVICE_SID")
    client, breaker = twilio_client(config, http_client), provider_breaker()
    texts = texts_gateway(config, client, breaker)  # one breaker for both: one provider
    return TwilioVerifyGateway(client, config["TWILIO_VERIFY_SERVICE_SID"], texts, breaker)
