"""Audit events: ids and codes only, never a name or a phone."""

from __future__ import annotations

from sqlmodel import Session

from app.models import AuditEvent, utcnow


def record(
    session: Session,
    action: str,
    *,
    target_type: str,
    target_id: object = None,
    actor_id: int | None = None,
    **details: object,
) -> AuditEvent:
    event = AuditEvent(
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        actor_id=actor_id,
        details=details,
        at=utcnow(),
    )
    session.add(event)
    session.flush()
    return event
