"""Reading transfers: incoming ones, a member's, the history of districts, counts for the dashboard."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from app.models import District, Member, Transfer, TransferStatus, User, Workplace
from app.services.transfers.errors import TransferNotFound
from app.services.transfers.moves import receiving

From, To = aliased(District), aliased(District)
Decider = aliased(User)


@dataclass(frozen=True)
class TransferView:
    """A transfer as the API and the pages show it (no name or phone: the member page has those)."""

    id: int
    member_id: int
    from_district: str
    to_district: str
    to_workplace: str | None
    status: str
    started_by: str
    reason: str | None
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    reject_reason: str | None
    from_member_number: str | None
    to_member_number: str | None


def _views(query_filter: Iterable[Any], *, limit: int | None = None, newest_first: bool = True) -> Any:
    order = col(Transfer.id).desc() if newest_first else col(Transfer.id)
    query = (
        select(
            Transfer,
            col(From.code),
            col(To.code),
            col(Workplace.code),
            col(Decider.email),
        )
        .join(From, col(From.id) == col(Transfer.from_district_id))
        .join(To, col(To.id) == col(Transfer.to_district_id))
        .outerjoin(Workplace, col(Workplace.id) == col(Transfer.to_workplace_id))
        .outerjoin(Decider, col(Decider.id) == col(Transfer.decided_by_id))
        .where(*query_filter)
        .order_by(order)
    )
    return query.limit(limit) if limit else query


def _view(row: tuple[Transfer, str, str, str | None, str | None]) -> TransferView:
    t, from_code, to_code, station, decider = row
    return TransferView(
        id=t.id or 0,
        member_id=t.member_id,
        from_district=from_code,
        to_district=to_code,
        to_workplace=station,
        status=t.status.value,
        started_by=t.started_by,
        reason=t.reason,
        created_at=t.created_at,
        decided_at=t.decided_at,
        decided_by=decider,
        reject_reason=t.reject_reason,
        from_member_number=t.from_member_number,
        to_member_number=t.to_member_number,
    )


def incoming(
    session: Session, scope: list[int] | None, *, status: TransferStatus | None = None, limit: int = 200
) -> list[TransferView]:
    """Transfers the caller's districts receive, newest first (one status, or all)."""
    where = [*receiving(scope)]
    if status is not None:
        where.append(col(Transfer.status) == status)
    return [_view(row) for row in session.execute(_views(where, limit=limit))]


def get(session: Session, scope: list[int] | None, transfer_id: int) -> TransferView:
    rows = list(session.execute(_views([col(Transfer.id) == transfer_id, *receiving(scope)])))
    if not rows:
        raise TransferNotFound()
    return _view(rows[0])


def of_member(session: Session, member_id: int) -> list[TransferView]:
    """Every transfer of one member, oldest first (the caller has checked the member is in scope)."""
    query = _views([col(Transfer.member_id) == member_id], newest_first=False)
    return [_view(row) for row in session.execute(query)]


@dataclass(frozen=True)
class Stay:
    """One district in a member's history: from when, until when (None: now), with which number."""

    district: str
    member_number: str | None
    since: datetime | None
    until: datetime | None


def history(member: Member, district_code: str, moves: list[TransferView]) -> list[Stay]:
    """The districts of an approved member, oldest first: each with its dates and member number."""
    done = [m for m in moves if m.status == TransferStatus.approved.value]
    stays: list[Stay] = []
    since = member.decided_at
    for move in done:
        stays.append(Stay(move.from_district, move.from_member_number, since, move.decided_at))
        since = move.decided_at
    stays.append(Stay(district_code, member.member_number, since, None))
    return stays


def histories(session: Session, member_ids: list[int]) -> dict[int, list[TransferView]]:
    """Approved transfers of many members at once (for `members list`), oldest first per member."""
    found: dict[int, list[TransferView]] = defaultdict(list)
    if not member_ids:
        return found
    where = [col(Transfer.member_id).in_(member_ids), col(Transfer.status) == TransferStatus.approved]
    for row in session.execute(_views(where, newest_first=False)):
        view = _view(row)
        found[view.member_id].append(view)
    return found


def pending_count(session: Session, scope: list[int] | None) -> int:
    query = select(func.count()).select_from(Transfer).where(col(Transfer.status) == TransferStatus.pending)
    return int(session.execute(query.where(*receiving(scope))).scalar_one())


def counts_by_district(session: Session, district_ids: list[int], since: datetime) -> dict[int, tuple[int, int]]:
    """Approved transfers out of and into each district decided since `since`: {id: (out, in)}."""
    out: dict[int, list[int]] = {d: [0, 0] for d in district_ids}
    approved = [col(Transfer.status) == TransferStatus.approved, col(Transfer.decided_at) >= since]
    for column, slot in ((Transfer.from_district_id, 0), (Transfer.to_district_id, 1)):
        query = select(col(column), func.count()).where(col(column).in_(district_ids), *approved).group_by(col(column))
        for district_id, n in session.execute(query):
            out[district_id][slot] = int(n)
    return {d: (pair[0], pair[1]) for d, pair in out.items()}
