"""Questions to applicants and the one appeal (see the package docstring)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlmodel import Session, col

from app.models import (
    Appeal,
    Member,
    MemberQuestion,
    MemberStatus,
    User,
)
from app.services import audit, events
from app.services.crypto import PiiCipher
from app.services.roster.errors import MemberNotFound
from app.services.roster.lists import scope_clause

log = logging.getLogger(__name__)

MAX_TEXT = 500


class TextInvalid(Exception):
    """Empty, or longer than MAX_TEXT characters."""


class NotPending(Exception):
    """The application is decided: no question can be asked of it, nor can it be sent back."""


class QuestionOpen(Exception):
    """The applicant has not answered the last question yet."""


class NoOpenQuestion(Exception):
    """Nothing waits for an answer (answered already, or never asked)."""


class AppealRefused(Exception):
    """Not rejected, or the one appeal was used already."""


@dataclass(frozen=True)
class QuestionAsked(events.Event):
    """An official asked the applicant a question: the worker gets the neutral status-link SMS."""

    member_id: int
    district_id: int


def checked_text(value: str) -> str:
    value = (value or "").strip()
    if not value or len(value) > MAX_TEXT:
        raise TextInvalid()
    return value


# --- needs more information ------------------------------------------------------------------------


def open_question(session: Session, member_id: int) -> MemberQuestion | None:
    query = select(MemberQuestion).where(
        col(MemberQuestion.member_id) == member_id, col(MemberQuestion.answered_at).is_(None)
    )
    return session.execute(query.order_by(col(MemberQuestion.id).desc()).limit(1)).scalar_one_or_none()


def ask(
    session: Session, scope: list[int] | None, member_id: int, *, by: User, question: str, pii: PiiCipher, now: datetime
) -> MemberQuestion:
    """Ask a pending applicant of the official's districts a question (one open at a time)."""
    text = checked_text(question)
    member = session.execute(
        select(Member).where(col(Member.id) == member_id, *scope_clause(scope)).with_for_update()
    ).scalar_one_or_none()
    if member is None:
        raise MemberNotFound()
    if member.status is not MemberStatus.pending:
        raise NotPending()
    if open_question(session, member_id) is not None:
        raise QuestionOpen()
    row = MemberQuestion(member_id=member_id, asked_by_id=by.id, asked_at=now, question_enc=pii.encrypt(text))
    session.add(row)
    session.flush()
    audit.record(session, "member.ask", target_type="member", target_id=member_id, actor_id=by.id)
    events.record(session, QuestionAsked(member_id, member.district_id))
    return row


def answer(session: Session, member: Member, *, text: str, pii: PiiCipher, now: datetime) -> MemberQuestion:
    """The applicant's answer to the open question; the official reads it on the member page."""
    value = checked_text(text)
    question = open_question(session, member.id or 0)
    if question is None or member.status is not MemberStatus.pending:
        raise NoOpenQuestion()
    done = session.execute(
        update(MemberQuestion)
        .where(col(MemberQuestion.id) == question.id, col(MemberQuestion.answered_at).is_(None))
        .values(answer_enc=pii.encrypt(value), answered_at=now)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]  # answered in another tab a moment ago
        raise NoOpenQuestion()
    audit.record(session, "member.answer", target_type="member", target_id=member.id, district_id=member.district_id)
    session.refresh(question)
    return question


@dataclass(frozen=True)
class QuestionView:
    asked_at: datetime
    question: str
    answered_at: datetime | None
    answer: str | None


def questions(session: Session, member_id: int, pii: PiiCipher) -> list[QuestionView]:
    rows = session.execute(
        select(MemberQuestion).where(col(MemberQuestion.member_id) == member_id).order_by(col(MemberQuestion.id))
    ).scalars()
    return [
        QuestionView(
            row.asked_at,
            pii.decrypt(row.question_enc),
            row.answered_at,
            pii.decrypt(row.answer_enc) if row.answer_enc else None,
        )
        for row in rows
    ]


# --- one appeal --------------------------------------------------------------------------------------


def appeal_of(session: Session, member_id: int) -> Appeal | None:
    return session.execute(select(Appeal).where(col(Appeal.member_id) == member_id)).scalar_one_or_none()


def can_appeal(session: Session, member: Member) -> bool:
    return member.status is MemberStatus.rejected and appeal_of(session, member.id or 0) is None


def appeal(session: Session, member: Member, *, text: str, pii: PiiCipher, now: datetime) -> Appeal:
    """The rejected applicant's one appeal: pending again, on the escalation queue."""
    value = checked_text(text)
    if appeal_of(session, member.id or 0) is not None:
        raise AppealRefused()
    rejected_at, rejected_by = member.decided_at, member.decided_by_id
    done = session.execute(
        update(Member)
        .where(col(Member.id) == member.id, col(Member.status) == MemberStatus.rejected)
        .values(status=MemberStatus.pending, decided_at=None, decided_by_id=None)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise AppealRefused()
    row = Appeal(
        member_id=member.id or 0,
        appealed_at=now,
        text_enc=pii.encrypt(value),
        rejected_at=rejected_at,
        rejected_by_id=rejected_by,
    )
    session.add(row)
    session.flush()  # the unique member_id refuses a second appeal made at the same moment
    audit.record(session, "member.appeal", target_type="member", target_id=member.id, district_id=member.district_id)
    session.refresh(member)
    return row


def decided(session: Session, member: Member, now: datetime) -> None:
    """Called by the one decision path: a decision closes the member's open appeal, and a question
    still unanswered (closed without an answer, so a later application does not show it again)."""
    session.execute(
        update(Appeal)
        .where(col(Appeal.member_id) == member.id, col(Appeal.closed_at).is_(None))
        .values(closed_at=now)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(MemberQuestion)
        .where(col(MemberQuestion.member_id) == member.id, col(MemberQuestion.answered_at).is_(None))
        .values(answered_at=now)
        .execution_options(synchronize_session=False)
    )
