"""Decisions and the worker's notice: one path for the roster pages and the API.

`decide` (a row or many) and `decide_one` (the API: errors raised) take the decision through
app/services/roster and record a `MemberDecided` event in the same transaction; after the commit
the event's handler (`notify_handler`, registered in create_app) texts the worker the neutral
notice, honouring and remembering SMS opt-outs (app/services/notify.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlmodel import Session

from app.models import Member, User, utcnow
from app.services import events, metrics, notify, roster
from app.services.crypto import PiiCipher
from app.services.sms import SmsGateway


def decide(
    session: Session,
    scope: list[int] | None,
    member_ids: list[int],
    *,
    by: User,
    approve: bool,
    reason: str = "",
    now: datetime,
) -> list[roster.RowResult]:
    """A result per row (see roster.decide_many); each decided row's worker hears after the commit."""
    results = roster.decide_many(session, scope, member_ids, by=by, approve_all=approve, reason=reason, now=now)
    for result in results:
        if result.member is not None:
            _decided(session, result.member, approve)
    return results


def decide_one(
    session: Session,
    scope: list[int] | None,
    member_id: int,
    *,
    by: User,
    approve: bool,
    reason: str = "",
    now: datetime,
) -> Member:
    """Decide one row; raises roster.MemberNotFound, AlreadyDecided or ReasonRequired."""
    if approve:
        member = roster.approve(session, scope, member_id, by=by, now=now)
    else:
        member = roster.reject(session, scope, member_id, by=by, reason=reason, now=now)
    _decided(session, member, approve)
    return member


def _decided(session: Session, member: Member, approved: bool) -> None:
    events.record(session, events.MemberDecided(member.id or 0, member.district_id, approved))
    metrics.decided(approved)


def notify_handler(
    new_session: Callable[[], Session], gateway: Callable[[], SmsGateway], pii: PiiCipher, link: str
) -> Callable[[events.MemberDecided], bool]:
    """The `MemberDecided` handler: the notice, in a session of its own; True when it was sent."""

    def send_decision_notice(decided: events.MemberDecided) -> bool:
        with new_session() as session:
            member = session.get(Member, decided.member_id)
            if member is None:
                return False
            sent = notify.send_decision(session, gateway(), pii, member, link=link, now=utcnow())
            session.commit()  # an opt-out learnt while sending
            return sent

    return send_decision_notice
