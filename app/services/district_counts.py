"""Members per district and status, read from `district_count` instead of counting member rows.

The table is kept by triggers on `member` (migration 0013) in the transaction of every change:
a join, a decision, an import, a transfer to another district, a withdrawal, a retention purge.
No service calls anything to keep it right, so none can forget to; a transfer that updates
`member.district_id` moves its member's count from one district to the other by itself. Two
transactions changing the same district queue on its counter row (PostgreSQL row lock, or
SQLite's single writer), so concurrent decisions never lose an increment. `rebuild` counts
again from the members, for a database restored from a dump of `member` alone or a trigger lost
to a careless migration; `check` reports any difference first.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, text
from sqlmodel import Session, col

from app.models import DistrictCount, Member, MemberStatus


def by_status(session: Session, scope: list[int] | None, district_ids: list[int] | None = None) -> dict[str, int]:
    """Members per status in `scope` (None: every district), optionally only `district_ids` of it."""
    result = {status.value: 0 for status in MemberStatus}
    stmt = select(col(DistrictCount.status), func.sum(DistrictCount.n)).group_by(col(DistrictCount.status))
    for ids in (scope, district_ids):
        if ids is not None:
            stmt = stmt.where(col(DistrictCount.district_id).in_(ids))
    for status, number in session.execute(stmt):
        result[MemberStatus(status).value] = int(number or 0)
    return result


def counted(session: Session) -> dict[tuple[int, str], int]:
    """What the members say, (district id, status) → members: the truth the counters must match."""
    stmt = select(col(Member.district_id), col(Member.status), func.count()).group_by(
        col(Member.district_id), col(Member.status)
    )
    return {(district, MemberStatus(status).value): int(n) for district, status, n in session.execute(stmt)}


def stored(session: Session) -> dict[tuple[int, str], int]:
    rows = session.execute(select(col(DistrictCount.district_id), col(DistrictCount.status), col(DistrictCount.n)))
    return {(district, MemberStatus(status).value): int(n) for district, status, n in rows if n}


@dataclass(frozen=True)
class Difference:
    district_id: int
    status: str
    stored: int
    counted: int


def check(session: Session) -> list[Difference]:
    """Every (district, status) whose counter differs from its members (empty when all agree)."""
    have, truth = stored(session), counted(session)
    return [
        Difference(key[0], key[1], have.get(key, 0), truth.get(key, 0))
        for key in sorted(set(have) | set(truth))
        if have.get(key, 0) != truth.get(key, 0)
    ]


def rebuild(session: Session) -> list[Difference]:
    """Count again from the members, with writers to `member` held off until the caller commits.

    Returns what was wrong. PostgreSQL: a SHARE ROW EXCLUSIVE lock on `member` (reads go on,
    joins and decisions wait a few seconds at 10M rows); SQLite: the write transaction does it."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE member IN SHARE ROW EXCLUSIVE MODE"))
    else:  # a write statement takes SQLite's write lock now, before the counts are read
        session.execute(text("UPDATE district_count SET n = n WHERE 0"))
    found = check(session)
    session.execute(delete(DistrictCount))
    rows = [{"district_id": d, "status": s, "n": n} for (d, s), n in counted(session).items()]
    if rows:
        session.execute(insert(DistrictCount), rows)
    session.flush()
    return found
