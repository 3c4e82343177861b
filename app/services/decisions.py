"""Decisions and the worker's notice: one path for the roster pages and the API.

`decide` (a row or many) and `decide_one` (the API: errors raised) take the decision through
app/services/roster and record a `MemberDecided` event in the same transaction; after the commit
the event's handler queues the worker's neutral notice (app/services/tasks.py), sent by the
consumer through app/services/notify.py, which honours and remembers SMS opt-outs.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from app.models import Appeal, Member, MemberStatus, User
from app.services import events, lifecycle, metrics, roster


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
    """A result per row (see roster.decide_many); each decided row's worker hears after the commit.

    An official's rows under appeal on the federation's queue are left alone ("already_decided"):
    only an admin (scope None) decides an appeal, unless it was sent back to the district.
    """
    held = {} if scope is None else lifecycle.held_for_admin(session, scope, member_ids)
    free = [member_id for member_id in member_ids if member_id not in held]
    results = roster.decide_many(session, scope, free, by=by, approve_all=approve, reason=reason, now=now)
    for result in results:
        if result.member is not None:
            _decided(session, result.member, approve, now)
    by_id = {r.member_id: r for r in results}
    by_id.update({i: _held(session, i, appeal) for i, appeal in held.items()})
    return [by_id[i] for i in dict.fromkeys(member_ids) if i in by_id]


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
    """Decide one row; raises roster.MemberNotFound, AlreadyDecided (also for an official when the
    row is an appeal on the federation's queue) or ReasonRequired."""
    held = {} if scope is None else lifecycle.held_for_admin(session, scope, [member_id])
    if held:
        result = _held(session, member_id, held[member_id])
        raise roster.AlreadyDecided(result.by_email, result.at, MemberStatus.rejected.value)
    if approve:
        member = roster.approve(session, scope, member_id, by=by, now=now)
    else:
        member = roster.reject(session, scope, member_id, by=by, reason=reason, now=now)
    _decided(session, member, approve, now)
    return member


def _held(session: Session, member_id: int, appeal: Appeal) -> roster.RowResult:
    """An appeal on the federation's queue, reported as its district left it: rejected, by whom, when."""
    by = session.get(User, appeal.rejected_by_id) if appeal.rejected_by_id else None
    return roster.RowResult(member_id, "already_decided", by_email=by.email if by else None, at=appeal.rejected_at)


def _decided(session: Session, member: Member, approved: bool, now: datetime) -> None:
    lifecycle.decided(session, member, now)  # a decision closes an open appeal
    events.record(session, events.MemberDecided(member.id or 0, member.district_id, approved))
    metrics.decided(approved)
