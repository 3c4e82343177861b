"""Which rows of a roster page carry a decision notice that finally failed (issue 13).

A notice the SMS provider would not take after every retry is written to the audit log
(`notice_failed`, app/services/tasks.py). One query for the whole page reads those events, so
a page of 50 rows costs one look-up, not 50; a failure older than the member's latest decision
is about an earlier decision and no longer counts (as `tasks.notice_failure` judges one member).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

from sqlmodel import Session, col, select

from app.models import AuditEvent
from app.services.tasks import NOTICE_FAILED


class Decided(Protocol):
    id: int
    decided_at: datetime | None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def failed_notices(db: Session, rows: Iterable[Decided]) -> set[int]:
    """The ids among `rows` whose latest decision's notice finally failed."""
    decided = {row.id: _aware(row.decided_at) for row in rows if row.decided_at is not None}
    if not decided:
        return set()
    query = (
        select(AuditEvent.target_id, AuditEvent.at)
        .where(AuditEvent.action == NOTICE_FAILED, AuditEvent.target_type == "member")
        .where(col(AuditEvent.target_id).in_([str(member_id) for member_id in decided]))
    )
    return {int(target) for target, at in db.exec(query) if target is not None and _aware(at) >= decided[int(target)]}
