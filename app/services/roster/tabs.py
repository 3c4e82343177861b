"""The roster's tab counts: members per status under a filter, and the overdue count.

Narrowed by districts alone (the usual tabs, an admin's across every district included), the
numbers are read from the counters the database keeps in `district_count` (a few rows, whatever
the roster's size); any other filter counts the matching rows through its index.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlmodel import Session, col

from app.models import District, Member, MemberStatus, Workplace, utcnow
from app.services import deadlines, district_counts
from app.services.crypto import PiiCipher
from app.services.roster.errors import BadFilter
from app.services.roster.filters import RosterFilter
from app.services.roster.lists import scope_clause, sql_filters


def counts(
    session: Session,
    scope: list[int] | None,
    flt: RosterFilter,
    *,
    pii: PiiCipher | None = None,
    now: datetime | None = None,
) -> dict[str, int]:
    """Members per status under the filter (its status ignored): the numbers on the tabs.

    Narrowed by districts alone (the usual tabs), they are read from the counters; any other
    filter counts the matching rows through its index."""
    now = now or utcnow()
    if flt.q and pii is None:
        raise BadFilter("q")  # a search needs the index key
    if _districts_only(flt):
        wanted = None
        if flt.district:
            wanted = list(session.execute(select(col(District.id)).where(col(District.code) == flt.district)).scalars())
        return district_counts.by_status(session, scope, wanted)
    result = {status.value: 0 for status in MemberStatus}
    stmt = select(col(Member.status), func.count()).select_from(Member)
    # Join only for a filter on the district's or station's code: neither join adds or drops a row
    # (a member's district is a required foreign key, its station an optional one), and without
    # them the count is read from the district index alone.
    if flt.district:
        stmt = stmt.join(District, col(District.id) == col(Member.district_id))
    if flt.workplace:
        stmt = stmt.outerjoin(Workplace, col(Workplace.id) == col(Member.workplace_id))
    stmt = stmt.where(*scope_clause(scope), *sql_filters(flt, pii, now, with_status=False))
    for status, number in session.execute(stmt.group_by(Member.status)):
        result[status.value] = number
    return result


def _districts_only(flt: RosterFilter) -> bool:
    return not (flt.q or flt.platform or flt.workplace or flt.since or flt.recent_days or flt.overdue)


def overdue_count(session: Session, scope: list[int] | None, *, now: datetime, overdue_days: int) -> int:
    stmt = (
        select(func.count())
        .select_from(Member)
        .where(
            *scope_clause(scope),
            col(Member.status) == MemberStatus.pending,
            col(Member.created_at) < deadlines.overdue_cutoff(now, overdue_days),  # working days, as the flag
        )
    )
    return int(session.execute(stmt).scalar_one())
