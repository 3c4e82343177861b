"""The escalation queue and the officials' daily reminders (see the package docstring)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlmodel import Session, col

from app.models import (
    Appeal,
    AuditEvent,
    District,
    EscalationReturn,
    Member,
    MemberQuestion,
    MemberStatus,
    Role,
    User,
    UserDistrict,
)
from app.services import audit, deadlines
from app.services.crypto import PiiCipher
from app.services.lifecycle.requests import NotPending, checked_text
from app.services.roster.errors import MemberNotFound

log = logging.getLogger(__name__)

APPEAL = "appeal"
OVERDUE = "overdue"
REMINDER_SENT = "reminder.sent"


# --- escalation ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Escalated:
    """One application on the escalation queue (no personal data: the page links the member)."""

    member_id: int
    district_id: int
    district_name: str
    kind: str  # APPEAL or OVERDUE
    since: datetime  # the deadline counted from here
    due: date
    reason: str | None  # the rejection under appeal (the official's words)


@dataclass
class _Pending:
    member: Member
    district: District
    appeal: Appeal | None = None
    last_return: datetime | None = None
    waiting: bool = False

    @property
    def appeal_open(self) -> bool:
        return self.appeal is not None and self.appeal.closed_at is None

    @property
    def since(self) -> datetime:
        moments = [self.member.created_at, self.last_return]
        if self.appeal_open and self.appeal is not None:
            moments.append(self.appeal.appealed_at)
        return max(_aware(m) for m in moments if m is not None)

    @property
    def on_appeal_queue(self) -> bool:
        """An open appeal not sent back to the district since it was made."""
        if not self.appeal_open or self.appeal is None:
            return False
        return self.last_return is None or _aware(self.last_return) < _aware(self.appeal.appealed_at)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _pending(
    session: Session, district_ids: Iterable[int] | None = None, member_ids: Iterable[int] | None = None
) -> list[_Pending]:
    query = (
        select(Member, District)
        .join(District, col(District.id) == col(Member.district_id))
        .where(col(Member.status) == MemberStatus.pending)
        .order_by(col(Member.created_at), col(Member.id))
    )
    if district_ids is not None:
        query = query.where(col(Member.district_id).in_(list(district_ids)))
    if member_ids is not None:
        query = query.where(col(Member.id).in_(list(member_ids)))
    found = {m.id or 0: _Pending(m, d) for m, d in session.execute(query).all()}
    ids = list(found)
    for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
        for row in session.execute(select(Appeal).where(col(Appeal.member_id).in_(chunk))).scalars():
            found[row.member_id].appeal = row
        returns = select(EscalationReturn).where(col(EscalationReturn.member_id).in_(chunk))
        for back in session.execute(returns).scalars():
            item = found[back.member_id]
            item.last_return = max(filter(None, [item.last_return, _aware(back.returned_at)]))
        waiting = select(col(MemberQuestion.member_id)).where(
            col(MemberQuestion.member_id).in_(chunk), col(MemberQuestion.answered_at).is_(None)
        )
        for member_id in session.execute(waiting).scalars():
            found[member_id].waiting = True
    return list(found.values())


def escalations(session: Session, *, now: datetime, days: int, member_ids: list[int] | None = None) -> list[Escalated]:
    """The federation admin's queue: open appeals, then pending applications past their deadline."""
    queue = []
    for item in _pending(session, member_ids=member_ids):
        due = deadlines.due_date(item.since, days)
        if item.on_appeal_queue:
            kind = APPEAL
        elif not item.waiting and deadlines.local_date(now) > due:
            kind = OVERDUE
        else:
            continue
        reason = item.member.reject_reason if kind == APPEAL else None
        queue.append(
            Escalated(item.member.id or 0, item.district.id or 0, item.district.name, kind, item.since, due, reason)
        )
    return sorted(queue, key=lambda e: (e.kind != APPEAL, e.since))


def is_escalated(session: Session, member_id: int, *, now: datetime, days: int) -> bool:
    return any(e.member_id == member_id for e in escalations(session, now=now, days=days, member_ids=[member_id]))


def held_for_admin(session: Session, scope: list[int] | None, member_ids: list[int]) -> dict[int, Appeal]:
    """The appeals among `member_ids` (of the districts in `scope`) on the federation's queue and not
    sent back since: only an admin decides them."""
    found = _pending(session, district_ids=scope, member_ids=member_ids)
    return {item.member.id or 0: item.appeal for item in found if item.on_appeal_queue and item.appeal}


def send_back(
    session: Session, member_id: int, *, by: User, note: str, pii: PiiCipher, now: datetime, days: int
) -> EscalationReturn:
    """An admin returns an escalated application to its district with a note; its deadline restarts."""
    text = checked_text(note)
    member = session.execute(select(Member).where(col(Member.id) == member_id).with_for_update()).scalar_one_or_none()
    if member is None:
        raise MemberNotFound()
    if member.status is not MemberStatus.pending or not is_escalated(session, member_id, now=now, days=days):
        raise NotPending()
    row = EscalationReturn(member_id=member_id, returned_by_id=by.id, returned_at=now, note_enc=pii.encrypt(text))
    session.add(row)
    session.flush()
    audit.record(
        session,
        "escalation.return",
        target_type="member",
        target_id=member_id,
        actor_id=by.id,
        district_id=member.district_id,
    )
    return row


@dataclass(frozen=True)
class NoteView:
    returned_at: datetime
    note: str


def notes(session: Session, member_id: int, pii: PiiCipher) -> list[NoteView]:
    rows = session.execute(
        select(EscalationReturn).where(col(EscalationReturn.member_id) == member_id).order_by(col(EscalationReturn.id))
    ).scalars()
    return [NoteView(row.returned_at, pii.decrypt(row.note_enc)) for row in rows]


# --- daily reminders ---------------------------------------------------------------------------------


@dataclass
class Reminder:
    """What one district's officials hear: counts only."""

    district_id: int
    district_code: str
    due: int = 0  # due today or by the end of the next working day
    overdue: int = 0
    waiting: int = 0  # waiting for the applicant's answer
    official_ids: list[int] = field(default_factory=list)

    @property
    def anything(self) -> bool:
        return bool(self.due or self.overdue or self.waiting)

    def counts(self) -> dict[str, int]:
        return {"due": self.due, "overdue": self.overdue, "waiting": self.waiting}


def reminders(session: Session, *, now: datetime, days: int) -> list[Reminder]:
    """Per district with something to do: how many applications are due, overdue, waiting."""
    today = deadlines.local_date(now)
    horizon = deadlines.due_date(today, 1)  # the end of the next working day
    found: dict[int, Reminder] = {}
    for item in _pending(session):
        district_id = item.district.id or 0
        reminder = found.setdefault(district_id, Reminder(district_id, item.district.code))
        due = deadlines.due_date(item.since, days)
        if item.waiting:
            reminder.waiting += 1
        elif today > due:
            reminder.overdue += 1
        elif due <= horizon:
            reminder.due += 1
    wanted = [r for r in found.values() if r.anything]
    officials = session.execute(
        select(col(UserDistrict.district_id), col(User.id))
        .join(User, col(User.id) == col(UserDistrict.user_id))
        .where(col(User.role) == Role.official, col(User.active).is_(True))
        .where(col(UserDistrict.district_id).in_([r.district_id for r in wanted]))
    ).all()
    for district_id, user_id in officials:
        found[district_id].official_ids.append(user_id)
    return sorted(wanted, key=lambda r: r.district_code)


def _reminded_on(session: Session, district_id: int, day: date) -> bool:
    """Whether the district's officials were reminded on this Beijing day (the audit row says)."""
    query = (
        select(AuditEvent)
        .where(
            col(AuditEvent.action) == REMINDER_SENT,
            col(AuditEvent.target_type) == "district",
            col(AuditEvent.target_id) == str(district_id),
        )
        .order_by(col(AuditEvent.id).desc())
        .limit(3)
    )
    return any(row.details.get("day") == day.isoformat() for row in session.execute(query).scalars())


Deliver = Callable[[int, Reminder], None]  # (official's user id, reminder)


def log_delivery(user_id: int, reminder: Reminder) -> None:
    """Staff accounts have an email address but the app sends no email: the reminder is logged
    (ids and counts) and audited; officials also see the overdue flag on the roster."""
    log.info(
        "reminder for user %s, district %s: %d due, %d overdue, %d waiting",
        user_id,
        reminder.district_code,
        reminder.due,
        reminder.overdue,
        reminder.waiting,
    )


def send_reminders(
    session: Session, *, now: datetime, days: int, deliver: Deliver = log_delivery, force: bool = False
) -> list[Reminder]:
    """Remind each district's officials once a Beijing day (again only with `force`); returns those sent."""
    sent = []
    for reminder in reminders(session, now=now, days=days):
        if not force and _reminded_on(session, reminder.district_id, deadlines.local_date(now)):
            continue
        for user_id in reminder.official_ids:
            deliver(user_id, reminder)
        audit.record(
            session,
            REMINDER_SENT,
            target_type="district",
            target_id=reminder.district_id,
            day=deadlines.local_date(now).isoformat(),
            officials=len(reminder.official_ids),
            **reminder.counts(),
        )
        sent.append(reminder)
    return sent
