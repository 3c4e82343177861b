"""Decisions on applications: approve or reject exactly once, one at a time or in bulk.

A decision is a conditional UPDATE (`status = pending` in its WHERE), so of two officials
deciding together exactly one wins and the other learns who and when. Services flush, never
commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlmodel import Session, col

from app.models import District, Member, MemberStatus, User
from app.services import audit
from app.services.roster.errors import AlreadyDecided, MemberNotFound, ReasonRequired
from app.services.roster.lists import scope_clause

MAX_REASON = 500


def _decide(session: Session, scope: list[int] | None, member_id: int, values: dict[str, object]) -> Member:
    stmt = (
        update(Member)
        .where(col(Member.id) == member_id, col(Member.status) == MemberStatus.pending, *scope_clause(scope))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if session.execute(stmt).rowcount == 1:  # type: ignore[attr-defined]
        return _fresh(session, member_id)
    member = session.execute(
        select(Member)
        .where(col(Member.id) == member_id, *scope_clause(scope))
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if member is None:
        raise MemberNotFound()
    decider = session.get(User, member.decided_by_id) if member.decided_by_id else None
    raise AlreadyDecided(decider.email if decider else None, member.decided_at, member.status.value)


def _fresh(session: Session, member_id: int) -> Member:
    return session.execute(
        select(Member).where(col(Member.id) == member_id).execution_options(populate_existing=True)
    ).scalar_one()


def approve(session: Session, scope: list[int] | None, member_id: int, *, by: User, now: datetime) -> Member:
    """Approve a pending member exactly once and give them the district's next member number."""
    member = _decide(
        session,
        scope,
        member_id,
        {
            "status": MemberStatus.approved,
            "decided_at": now,
            "decided_by_id": by.id,
            "reject_reason": None,
        },
    )
    seq = session.execute(
        update(District)
        .where(col(District.id) == member.district_id)
        .values(member_seq=col(District.member_seq) + 1)
        .returning(col(District.member_seq), col(District.code))
    ).one()
    number = member_number(seq[1], seq[0])
    session.execute(
        update(Member)
        .where(col(Member.id) == member_id)
        .values(member_number=number)
        .execution_options(synchronize_session=False)
    )
    audit.record(
        session,
        "member.approve",
        target_type="member",
        target_id=member_id,
        actor_id=by.id,
        district_id=member.district_id,
    )
    return _fresh(session, member_id)


def member_number(district_code: str, seq: int) -> str:
    return f"{district_code}-{seq:06d}"


def reject(
    session: Session, scope: list[int] | None, member_id: int, *, by: User, reason: str, now: datetime
) -> Member:
    """Reject a pending member exactly once, with the reason the worker will read."""
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise ReasonRequired()
    member = _decide(
        session,
        scope,
        member_id,
        {
            "status": MemberStatus.rejected,
            "decided_at": now,
            "decided_by_id": by.id,
            "reject_reason": reason,
        },
    )
    audit.record(
        session,
        "member.reject",
        target_type="member",
        target_id=member_id,
        actor_id=by.id,
        district_id=member.district_id,
    )
    return member


@dataclass
class RowResult:
    member_id: int
    outcome: str  # "approved", "rejected", "already_decided", "not_found", "error"
    member: Member | None = None
    by_email: str | None = None
    at: datetime | None = None


def decide_many(
    session: Session,
    scope: list[int] | None,
    member_ids: list[int],
    *,
    by: User,
    approve_all: bool,
    reason: str = "",
    now: datetime,
) -> list[RowResult]:
    """Bulk decision with one result per row; rows decided by someone else are reported, not touched."""
    reason = (reason or "").strip()
    if not approve_all and not 0 < len(reason) <= MAX_REASON:
        raise ReasonRequired()
    results: list[RowResult] = []
    for member_id in dict.fromkeys(member_ids):
        try:
            with session.begin_nested():
                if approve_all:
                    member = approve(session, scope, member_id, by=by, now=now)
                else:
                    member = reject(session, scope, member_id, by=by, reason=reason, now=now)
            results.append(RowResult(member_id, member.status.value, member))
        except AlreadyDecided as exc:
            results.append(RowResult(member_id, "already_decided", by_email=exc.by_email, at=exc.at))
        except MemberNotFound:
            results.append(RowResult(member_id, "not_found"))
    return results


def decision_text(locale: str, link: str) -> str:
    """The decision SMS: neutral (no union, no outcome on a lock screen), with the status link."""
    from app.services.sms.messages import DECISION, Message, render

    return render(Message(DECISION, {"link": link}, locale))
