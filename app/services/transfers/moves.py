"""Asking for a transfer and deciding it: exactly once, the member moved in the same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from app.models import District, JoinAttempt, Member, MemberStatus, Transfer, TransferStatus, User, Workplace
from app.services import audit, events
from app.services.roster.decisions import member_number
from app.services.transfers.errors import (
    AlreadyDecided,
    AlreadyPending,
    BadReason,
    BadTarget,
    MemberMoved,
    NotTransferable,
    TransferNotFound,
)

MAX_REASON = 500
WORKER, OFFICIAL = "worker", "official"


# --- asking --------------------------------------------------------------------------------------


def request_by_official(
    session: Session,
    scope: list[int] | None,
    member_id: int,
    *,
    to_district: str,
    reason: str | None,
    by: User,
    now: datetime,
    to_workplace: str | None = None,
) -> Transfer:
    """An official of the member's district asks the receiving district to take the member."""
    query = select(Member).where(col(Member.id) == member_id)
    if scope is not None:
        query = query.where(col(Member.district_id).in_(scope))
    member = session.execute(query).scalar_one_or_none()
    if member is None:
        raise TransferNotFound()
    reason = (reason or "").strip() or None
    if reason is not None and len(reason) > MAX_REASON:
        raise BadReason()
    target = session.execute(select(District).where(col(District.code) == to_district)).scalar_one_or_none()
    if target is None:
        raise BadTarget("to_district")
    station = _station(session, target, to_workplace)
    return _open(session, member, target.id or 0, station, started_by=OFFICIAL, by=by, reason=reason, now=now)


def _station(session: Session, district: District, code: str | None) -> int | None:
    if not code:
        return None
    station = session.execute(select(Workplace).where(col(Workplace.code) == code)).scalar_one_or_none()
    if station is None or station.district_id != district.id:
        raise BadTarget("to_workplace")
    return station.id


def worker_offer(session: Session, attempt: JoinAttempt) -> tuple[Member, District] | None:
    """The member and the poster's district when this proven attempt may ask for a transfer there:
    the phone is an approved member of another district. None otherwise."""
    if attempt.verified_at is None or attempt.member_id is None or attempt.outcome != MemberStatus.approved.value:
        return None
    member = session.get(Member, attempt.member_id)
    if member is None or member.status is not MemberStatus.approved or member.district_id == attempt.district_id:
        return None
    district = session.get(District, attempt.district_id)
    return (member, district) if district is not None else None


def request_by_worker(session: Session, attempt: JoinAttempt, *, now: datetime) -> Transfer:
    """The worker, proven by the join code at the new district's poster, confirms the transfer.
    Asking again for the same district returns the pending request (a double tap asks once)."""
    offer = worker_offer(session, attempt)
    if offer is None:
        raise NotTransferable("not_approved")
    member, district = offer
    try:
        return _open(
            session, member, district.id or 0, attempt.workplace_id, started_by=WORKER, by=None, reason=None, now=now
        )
    except AlreadyPending as exc:
        if exc.transfer.to_district_id == district.id:
            return exc.transfer
        raise


def _open(
    session: Session,
    member: Member,
    to_district_id: int,
    to_workplace_id: int | None,
    *,
    started_by: str,
    by: User | None,
    reason: str | None,
    now: datetime,
) -> Transfer:
    if member.status is not MemberStatus.approved:
        raise NotTransferable("not_approved")
    if member.district_id == to_district_id:
        raise NotTransferable("same_district")
    transfer = Transfer(
        member_id=member.id or 0,
        from_district_id=member.district_id,
        to_district_id=to_district_id,
        to_workplace_id=to_workplace_id,
        open_member_id=member.id,
        started_by=started_by,
        requested_by_id=by.id if by else None,
        reason=reason,
        created_at=now,
        from_member_number=member.member_number,
    )
    try:
        with session.begin_nested():
            session.add(transfer)
    except IntegrityError:  # the unique open_member_id: one pending transfer per member
        raise AlreadyPending(pending_of(session, member.id or 0) or transfer) from None
    audit.record(
        session,
        "transfer.request",
        target_type="transfer",
        target_id=transfer.id,
        actor_id=by.id if by else None,
        member_id=member.id,
        from_district_id=member.district_id,
        to_district_id=to_district_id,
        started_by=started_by,
    )
    return transfer


def pending_of(session: Session, member_id: int) -> Transfer | None:
    return session.execute(
        select(Transfer).where(col(Transfer.open_member_id) == member_id).execution_options(populate_existing=True)
    ).scalar_one_or_none()


# --- deciding ------------------------------------------------------------------------------------


def receiving(scope: list[int] | None) -> list[Any]:
    return [] if scope is None else [col(Transfer.to_district_id).in_(scope)]


def _decide(session: Session, scope: list[int] | None, transfer_id: int, values: dict[str, object]) -> Transfer:
    stmt = (
        update(Transfer)
        .where(col(Transfer.id) == transfer_id, col(Transfer.status) == TransferStatus.pending, *receiving(scope))
        .values(open_member_id=None, **values)
        .execution_options(synchronize_session=False)
    )
    won = session.execute(stmt).rowcount == 1  # type: ignore[attr-defined]
    transfer = session.execute(
        select(Transfer)
        .where(col(Transfer.id) == transfer_id, *receiving(scope))
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if transfer is None:
        raise TransferNotFound()
    if not won:
        decider = session.get(User, transfer.decided_by_id) if transfer.decided_by_id else None
        raise AlreadyDecided(decider.email if decider else None, transfer.decided_at, transfer.status.value)
    return transfer


def approve(session: Session, scope: list[int] | None, transfer_id: int, *, by: User, now: datetime) -> Transfer:
    """Approve a pending transfer exactly once and move the member in the same transaction."""
    transfer = _decide(
        session, scope, transfer_id, {"status": TransferStatus.approved, "decided_at": now, "decided_by_id": by.id}
    )
    seq, code = session.execute(
        update(District)
        .where(col(District.id) == transfer.to_district_id)
        .values(member_seq=col(District.member_seq) + 1)
        .returning(col(District.member_seq), col(District.code))
    ).one()
    number = member_number(code, seq)
    before = session.execute(select(col(Member.member_number)).where(col(Member.id) == transfer.member_id)).scalar()
    moved = session.execute(
        update(Member)
        .where(
            col(Member.id) == transfer.member_id,
            col(Member.status) == MemberStatus.approved,
            col(Member.district_id) == transfer.from_district_id,
        )
        .values(district_id=transfer.to_district_id, workplace_id=transfer.to_workplace_id, member_number=number)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise MemberMoved()
    session.execute(
        update(Transfer)
        .where(col(Transfer.id) == transfer_id)
        .values(to_member_number=number, from_member_number=before)
        .execution_options(synchronize_session=False)
    )
    return _decided(session, transfer_id, by, approved=True)


def reject(
    session: Session, scope: list[int] | None, transfer_id: int, *, by: User, reason: str, now: datetime
) -> Transfer:
    """Reject a pending transfer exactly once, with the reason; the member stays where they are."""
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise BadReason()
    _decide(
        session,
        scope,
        transfer_id,
        {"status": TransferStatus.rejected, "decided_at": now, "decided_by_id": by.id, "reject_reason": reason},
    )
    return _decided(session, transfer_id, by, approved=False)


def _decided(session: Session, transfer_id: int, by: User, *, approved: bool) -> Transfer:
    transfer = session.execute(
        select(Transfer).where(col(Transfer.id) == transfer_id).execution_options(populate_existing=True)
    ).scalar_one()
    audit.record(
        session,
        "transfer.approve" if approved else "transfer.reject",
        target_type="transfer",
        target_id=transfer_id,
        actor_id=by.id,
        member_id=transfer.member_id,
        from_district_id=transfer.from_district_id,
        to_district_id=transfer.to_district_id,
    )
    events.record(
        session,
        events.TransferDecided(
            transfer_id,
            transfer.member_id,
            transfer.from_district_id,
            transfer.to_district_id,
            approved,
            transfer.started_by,
        ),
    )
    return transfer


def tells_worker(decided: events.TransferDecided) -> bool:
    """Whether the worker gets the neutral notice: a move, or the worker's own request refused."""
    return decided.approved or decided.started_by == WORKER
