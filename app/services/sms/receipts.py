"""Provider-neutral events from the SMS provider: delivery receipts and opt-outs.

A provider's callback view turns its own fields into a `DeliveryReceipt` (Twilio:
`twilio_receipt`) and calls `handle_receipt`; an opt-out (the worker sent STOP / 退订) is
remembered by the phone's blind index, so the phone is never texted a decision again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import Session

from app.models import SmsOptOut
from app.services.sms.base import E164

if TYPE_CHECKING:
    from app.services.crypto import PiiCipher


@dataclass(frozen=True)
class DeliveryReceipt:
    to: str  # E.164
    status: str  # the provider's word: delivered, undelivered, failed, sent…
    opted_out: bool = False  # the provider refused because the phone opted out
    provider_code: int | None = None


def is_opted_out(session: Session, pii: PiiCipher, e164: str) -> bool:
    """Whether this phone told the provider to stop (texting it again only earns a refusal)."""
    return session.get(SmsOptOut, pii.index(e164)) is not None


def record_opt_out(session: Session, pii: PiiCipher, e164: str, now: datetime) -> bool:
    """Remember an opted-out phone by its blind index; flushes, never commits. True when new."""
    if is_opted_out(session, pii, e164):
        return False
    session.add(SmsOptOut(phone_index=pii.index(e164), at=now))
    session.flush()
    return True


def handle_receipt(session: Session, pii: PiiCipher, receipt: DeliveryReceipt, *, now: datetime) -> bool:
    """Act on a receipt: an opt-out is recorded (flushed; the view commits). True when recorded."""
    if not receipt.opted_out or not E164.match(receipt.to):
        return False
    return record_opt_out(session, pii, receipt.to, now)
