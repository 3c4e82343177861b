"""Decision texts to workers: one place that honours and records SMS opt-outs.

Called after the decision is committed (a side effect after the commit). A phone that opted
out (STOP / 退订, Twilio 21610) is never texted again; a 21610 answer is remembered.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session, col

from app.models import JoinAttempt, Member
from app.services import sms
from app.services.crypto import PiiCipher

log = logging.getLogger(__name__)


def member_locale(session: Session, member: Member) -> str:
    """The language the worker used on their latest join attempt (Chinese when unknown)."""
    query = (
        select(col(JoinAttempt.locale))
        .where(col(JoinAttempt.member_id) == member.id)
        .order_by(col(JoinAttempt.created_at).desc())
        .limit(1)
    )
    return session.execute(query).scalar_one_or_none() or "zh"


def decision_message(session: Session, pii: PiiCipher, member: Member, *, link: str) -> tuple[str, sms.Message] | None:
    """The phone and the text of the member's decision notice, or None when the phone opted out."""
    phone = pii.decrypt(member.phone_enc)
    if sms.is_opted_out(session, pii, phone):
        log.info("decision text for member %s skipped: phone opted out", member.id)
        return None
    return phone, sms.Message(sms.DECISION, {"link": link}, member_locale(session, member))


def send_decision(
    session: Session,
    gateway: sms.SmsGateway,
    pii: PiiCipher,
    member: Member,
    *,
    link: str,
    now: datetime,
    strict: bool = False,
) -> bool:
    """Text the worker that their application moved on; False when it was not sent (an opted-out
    phone; with `strict`, any other failure raises its SmsError for the caller to retry or report).

    Flushes an opt-out it learns of; the caller commits.
    """
    prepared = decision_message(session, pii, member, link=link)
    if prepared is None:
        return False
    phone, message = prepared
    try:
        gateway.send(phone, message)
    except sms.SmsError as exc:
        log.warning("decision text for member %s not sent: %s", member.id, exc.kind)
        if exc.kind == "opted_out":
            sms.record_opt_out(session, pii, phone, now)
        elif strict:
            raise
        return False
    return True
