"""The audit log for admins: newest first, filtered, keyset-paged by id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from app.models import AuditEvent, User


@dataclass
class AuditFilter:
    action: str | None = None
    actor: str | None = None  # email
    target_type: str | None = None
    target_id: str | None = None
    start: datetime | None = None
    end: datetime | None = None


@dataclass
class AuditRow:
    id: int
    at: datetime
    actor: str | None
    action: str
    target_type: str
    target_id: str | None
    details: dict[str, object]


def list_audit(
    session: Session, flt: AuditFilter, *, before: int | None, limit: int
) -> tuple[list[AuditRow], int | None]:
    """Newest first, keyset-paged by id; returns the rows and the id to continue before."""
    actor = aliased(User)
    stmt = (
        select(AuditEvent, col(actor.email))
        .outerjoin(actor, col(actor.id) == col(AuditEvent.actor_id))
        .order_by(col(AuditEvent.id).desc())
        .limit(limit + 1)
    )
    conditions = [
        (flt.action, lambda v: col(AuditEvent.action).startswith(v)),
        (flt.actor, lambda v: actor.email == v.strip().lower()),
        (flt.target_type, lambda v: AuditEvent.target_type == v),
        (flt.target_id, lambda v: AuditEvent.target_id == v),
        (flt.start, lambda v: AuditEvent.at >= v),
        (flt.end, lambda v: AuditEvent.at < v),
        (before, lambda v: AuditEvent.id < v),
    ]
    for value, clause in conditions:
        if value:
            stmt = stmt.where(clause(value))
    rows = [
        AuditRow(e.id, e.at, email, e.action, e.target_type, e.target_id, e.details)
        for e, email in session.execute(stmt)
    ]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)
