"""What every SMS backend is: it sends a Message (a kind and its parameters) or raises SmsError."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from app.services.sms.messages import Message, render

KINDS = ("unavailable", "rejected", "rate_limited", "opted_out", "expired")
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class SmsError(Exception):
    """The provider did not take the message; `kind` is one of KINDS.

    opted_out: the phone told the provider to stop; the caller records it with `record_opt_out`.
    """

    def __init__(self, kind: str, provider_code: int | None = None) -> None:
        super().__init__(f"sms {kind} (provider code {provider_code})")
        self.kind = kind
        self.provider_code = provider_code


class SmsGateway:
    """Sends messages; `provides_codes` backends also create and check verification codes.

    A free-text backend implements `send_text` and inherits `send`, which renders the message's
    text (app/services/sms/messages.py). A template-only provider (Aliyun, Tencent Cloud)
    overrides `send` and maps `message.kind` to its template id and `message.params` to the
    template's named parameters.
    """

    provides_codes = False
    voice = False  # it can also read a code out in a phone call (`call`)

    def send(self, to: str, message: Message) -> None:
        self.send_text(to, render(message))

    def send_text(self, to: str, body: str) -> None:
        raise NotImplementedError

    def call(self, to: str, message: Message) -> None:
        """Read the message's code out in a phone call (only where `voice`)."""
        raise SmsError("unavailable")

    def start_verification(self, to: str, locale: str, channel: str = "sms") -> str:
        raise NotImplementedError

    def check_verification(self, to: str, code: str) -> bool:
        raise NotImplementedError


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
