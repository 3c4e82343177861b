"""The development backend (`console`: a JSON-lines outbox file) and the tests' (`memory`)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.services.sms.base import E164, SmsError, SmsGateway, now_iso
from app.services.sms.messages import Message, voice_text


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
    voice: bool = False  # tests that offer the voice call turn it on
    calls: list[SentText] = field(default_factory=list)  # what was read out

    def send_text(self, to: str, body: str) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(SentText(to=to, body=body, at=now_iso()))

    def call(self, to: str, message: Message) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.calls.append(SentText(to=to, body=voice_text(message), at=now_iso()))


class ConsoleGateway(SmsGateway):
    """Appends `{"to", "body", "at"}` lines to the outbox file; the notice names only the file. A
    voice call is a line with `"channel": "voice"` and the words the call would say."""

    voice = True

    def __init__(self, outbox: str) -> None:
        self.outbox = Path(outbox)
        self._lock = threading.Lock()

    def send_text(self, to: str, body: str) -> None:
        self._write({"to": to, "body": body, "at": now_iso()})

    def call(self, to: str, message: Message) -> None:
        self._write({"to": to, "body": voice_text(message), "at": now_iso(), "channel": "voice"})

    def _write(self, entry: dict[str, str]) -> None:
        if not E164.match(entry["to"]):
            raise SmsError("rejected")  # what Twilio answers (21211): development sees it too
        line = json.dumps(entry, ensure_ascii=False)
        self.outbox.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.outbox.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        print(f"[sms] a message was written to {self.outbox}", flush=True)


def build(config: dict[str, Any], http_client: object = None) -> SmsGateway:
    if config["SMS_BACKEND"] == "memory":
        return MemoryGateway()
    return ConsoleGateway(config["SMS_OUTBOX"])
