"""`SMS_FALLBACK_BACKEND`: a second provider for the messages the first cannot take now.

Only an *unavailable* answer falls back: the provider is down or does not answer in time, its
circuit breaker is open (then the primary is not even called), or its account, sign name or
template needs attention. A refusal about the number itself (rate limited, rejected, opted
out) is the number's answer, and another provider must not be used to get round a carrier's
per-number limit or a worker's opt-out: that refusal is raised as it came.

A primary that timed out may still have delivered: the worker may then get the same code (or
notice) twice, once from each sign name; never two different codes, since the code is made once,
before either send. Both backends send the app's own code: Twilio Verify, which makes and checks
its own codes, cannot be either side (the settings refuse it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from app.services.sms.base import SmsError, SmsGateway
from app.services.sms.messages import Message

log = logging.getLogger(__name__)


class FallbackGateway(SmsGateway):
    """Sends by `primary`; a message it answers "unavailable" goes by `fallback` instead."""

    def __init__(self, primary: SmsGateway, fallback: SmsGateway, names: tuple[str, str] = ("primary", "fallback")):
        if primary.provides_codes or fallback.provides_codes:
            raise ValueError("a fallback needs two backends that send the app's own code (not twilio-verify)")
        self.primary, self.fallback, self.names = primary, fallback, names

    def send(self, to: str, message: Message) -> None:
        self._either(lambda gateway: gateway.send(to, message))

    def send_text(self, to: str, body: str) -> None:
        self._either(lambda gateway: gateway.send_text(to, body))

    @property
    def voice(self) -> bool:  # type: ignore[override]
        return self.primary.voice or self.fallback.voice

    def call(self, to: str, message: Message) -> None:
        """By the primary's voice service, else (it has none, or it is unavailable) the fallback's."""
        if not self.primary.voice:
            self.fallback.call(to, message)
        elif not self.fallback.voice:
            self.primary.call(to, message)
        else:
            self._either(lambda gateway: gateway.call(to, message))

    def _either(self, send: Callable[[SmsGateway], None]) -> None:
        try:
            send(self.primary)
        except SmsError as exc:
            if exc.kind != "unavailable":
                raise  # the number's answer: never got round through another provider
            log.warning("sms backend %s unavailable: sending by %s", *self.names)
            send(self.fallback)
