"""Retention (docs/security.md F8, PIPL Art. 19/47): personal data is kept no longer than needed.

Unfinished join attempts (drafts) go after RETENTION_DRAFT_HOURS; finished ones too, since the
member row already holds what they had. Rejected applications go RETENTION_REJECTED_DAYS after
the decision. Status checks (a worker proving their phone to read their status) go after the
same RETENTION_DRAFT_HOURS, but never within a day: the status page's daily limits count a day
of them. Rows of the SMS outbox (`delivery`, a code sealed for sending) left after a day go too:
every delivery is done, dropped or given up within hours. Approved and pending members are
never touched. Each run leaves one audit event with counts only.

Every table with an encrypted name or phone (`*_enc`) is listed in PERSONAL_TABLES with the rule
that purges it (tests/security/test_retention_coverage.py fails on a new one missing here).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from app.models import Delivery, JoinAttempt, Member, MemberStatus, StatusCheck
from app.services import audit


@dataclass(frozen=True)
class RetentionReport:
    drafts: int  # unverified join attempts
    finished: int  # verified join attempts (their data lives on in the member row)
    rejected: int  # rejected members
    status_checks: int = 0  # a worker's phone proven to read their status
    deliveries: int = 0  # outbox rows left over (a sealed code, a notice)


# The daily limits of app/services/status.py read a day of status checks.
STATUS_CHECK_MIN_AGE = timedelta(days=1)
# Longer than any delivery's retries (a notice's span about 4¼ hours, app/services/tasks.py).
DELIVERY_MAX_AGE = timedelta(days=1)
# Each table holding an encrypted name or phone, and the rule that purges it. `user` holds only
# staff TOTP secrets (deleted with the account), not a worker's name or phone.
PERSONAL_TABLES = {
    "join_attempt": "drafts and finished attempts after RETENTION_DRAFT_HOURS",
    "member": "rejected applications RETENTION_REJECTED_DAYS after the decision",
    "status_check": "after RETENTION_DRAFT_HOURS, and at least a day",
    "delivery": "SMS outbox rows (sealed codes) a day old: every delivery ends within hours",
}


def purge(session: Session, *, now: datetime, draft_hours: int, rejected_days: int) -> RetentionReport:
    """Delete what is past its retention period and record the run; flushes, never commits."""
    attempt_cutoff = now - timedelta(hours=draft_hours)
    decision_cutoff = now - timedelta(days=rejected_days)
    drafts = _delete_attempts(session, attempt_cutoff, verified=False)
    finished = _delete_attempts(session, attempt_cutoff, verified=True)
    rejected = _delete_rejected(session, decision_cutoff)
    checks = _delete_status_checks(session, min(attempt_cutoff, now - STATUS_CHECK_MIN_AGE))
    deliveries = _delete_deliveries(session, now - DELIVERY_MAX_AGE)
    report = RetentionReport(
        drafts=drafts, finished=finished, rejected=rejected, status_checks=checks, deliveries=deliveries
    )
    audit.record(
        session,
        "retention.run",
        target_type="system",
        drafts=drafts,
        finished=finished,
        rejected=rejected,
        status_checks=checks,
        deliveries=deliveries,
        draft_hours=draft_hours,
        rejected_days=rejected_days,
    )
    return report


def _delete_attempts(session: Session, cutoff: datetime, *, verified: bool) -> int:
    state = col(JoinAttempt.verified_at).is_not(None) if verified else col(JoinAttempt.verified_at).is_(None)
    result = session.execute(delete(JoinAttempt).where(col(JoinAttempt.created_at) < cutoff, state))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _delete_rejected(session: Session, cutoff: datetime) -> int:
    ids = list(
        session.exec(
            select(Member.id).where(
                Member.status == MemberStatus.rejected,
                col(Member.decided_at).is_not(None),
                col(Member.decided_at) < cutoff,
            )
        )
    )
    if not ids:
        return 0
    session.execute(update(JoinAttempt).where(col(JoinAttempt.member_id).in_(ids)).values(member_id=None))
    result = session.execute(delete(Member).where(col(Member.id).in_(ids)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _delete_status_checks(session: Session, cutoff: datetime) -> int:
    result = session.execute(delete(StatusCheck).where(col(StatusCheck.created_at) < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _delete_deliveries(session: Session, cutoff: datetime) -> int:
    result = session.execute(delete(Delivery).where(col(Delivery.created_at) < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
