"""The development backend (`console`: a JSON-lines outbox file) and the tests' (`memory`)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.services.sms.base import E164, SmsError, SmsGateway, now_iso


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
        self.sent.append(SentText(to=to, body=body, at=now_iso()))


class ConsoleGateway(SmsGateway):
    """Appends `{"to", "body", "at"}` lines to the outbox file; the notice names only the file."""

    def __init__(self, outbox: str) -> None:
        self.outbox = Path(outbox)
        self._lock = threading.Lock()

    def send_text(self, to: str, body: str) -> None:
        if not E164.match(to):
            raise SmsError("rejected")  # what Twilio answers (21211): development sees it too
        line = json.dumps({"to": to, "body": body, "at": now_iso()}, ensure_ascii=False)
        self.outbox.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.outbox.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        print(f"[sms] a message was written to {self.outbox}", flush=True)


def build(config: dict[str, Any], http_client: object = None) -> SmsGateway:
    if config["SMS_BACKEND"] == "memory":
        return MemoryGateway()
    return ConsoleGateway(config["SMS_OUTBOX"])
