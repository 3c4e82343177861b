"""`twilio-messaging`: the app makes the code and sends every text with Twilio's Messages API."""

from __future__ import annotations

from typing import Any

import pybreaker
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from app.services.sms.base import SmsGateway
from app.services.sms.twilio_common import STATUS_CALLBACK_PATH, TwilioGateway, provider_breaker, twilio_client


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


def texts_gateway(
    config: dict[str, Any], client: Client, breaker: pybreaker.CircuitBreaker
) -> TwilioMessagingGateway | None:
    """The Messages sender of TWILIO_FROM (None without it), its receipts posted back to us."""
    if not config.get("TWILIO_FROM"):
        return None
    callback = config["PUBLIC_BASE_URL"] + STATUS_CALLBACK_PATH
    return TwilioMessagingGateway(client, config["TWILIO_FROM"], callback, breaker)


def build(config: dict[str, Any], http_client: TwilioHttpClient | None = None) -> SmsGateway:
    texts = texts_gateway(config, twilio_client(config, http_client), provider_breaker())
    if texts is None:
        raise ValueError("SMS_BACKEND=twilio-messaging needs TWILIO_FROM (a sender number or MG… service SID)")
    return texts
