"""The audit trail is append-only in the database (migration 0006): no UPDATE, no DELETE."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from app.models import AuditEvent
from app.services import audit


def test_audit_rows_can_be_added_but_never_changed_or_removed(db):  # type: ignore[no-untyped-def]
    audit.record(db, "test.event", target_type="thing", target_id="1")
    db.commit()
    [event] = db.exec(select(AuditEvent).where(AuditEvent.action == "test.event")).all()
    for statement in (
        update(AuditEvent).where(AuditEvent.id == event.id).values(action="test.changed"),  # type: ignore[arg-type]
        delete(AuditEvent).where(AuditEvent.id == event.id),  # type: ignore[arg-type]
        text("DELETE FROM audit_event"),
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            db.execute(statement)
        db.rollback()
    assert db.exec(select(AuditEvent).where(AuditEvent.action == "test.event")).one().id == event.id
