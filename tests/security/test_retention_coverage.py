"""Every table holding an encrypted name or phone is purged by `retention run` (issue 12, item 11).

The test lists the `*_enc` columns of every model: a new table with one fails here until
app/services/retention.py purges it (and this test can build an old row of it).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func
from sqlmodel import SQLModel, select

from app.models import Delivery, MemberStatus, StatusCheck, utcnow
from app.services import retention
from tests import factories
from tests.services.test_retention import attempt, member

# Encrypted, but no worker's name or phone: staff TOTP secrets, webhook secrets, robot URLs and secrets.
STAFF_ONLY = {"user", "webhook_endpoint", "chat_robot"}


def _encrypted_tables() -> set[str]:
    return {
        table.name
        for table in SQLModel.metadata.tables.values()
        if any(column.name.endswith("_enc") for column in table.columns)
    }


def _old_status_check(db, n: int, age: timedelta) -> StatusCheck:  # type: ignore[no-untyped-def]
    row = StatusCheck(id=f"{n:032x}", phone_index=f"s{n:063x}", phone_enc="x", created_at=utcnow() - age)
    db.add(row)
    return row


def test_every_encrypted_table_has_a_retention_rule():
    assert _encrypted_tables() - STAFF_ONLY == set(retention.PERSONAL_TABLES)


def test_retention_purges_every_encrypted_table(db):
    district = factories.district(db)
    old = timedelta(days=400)
    attempt(db, district, 1, age=old)
    attempt(db, district, 2, age=old, verified=True)
    member(db, district, 1, MemberStatus.rejected, old)
    _old_status_check(db, 1, old)
    db.add(Delivery(kind="join_code", owner_id="a" * 32, code_enc="x", due_at=utcnow(), created_at=utcnow() - old))
    db.commit()
    retention.purge(db, now=utcnow(), draft_hours=24, rejected_days=30)
    db.commit()
    for name in sorted(_encrypted_tables() - STAFF_ONLY):
        table = SQLModel.metadata.tables[name]
        assert db.exec(select(func.count()).select_from(table)).one() == 0, name


def test_status_checks_of_the_last_day_stay_for_the_daily_limits(db):
    _old_status_check(db, 1, timedelta(hours=2))
    _old_status_check(db, 2, timedelta(hours=30))
    db.commit()
    report = retention.purge(db, now=utcnow(), draft_hours=1, rejected_days=30)
    db.commit()
    assert report.status_checks == 1
    assert [row.id for row in db.exec(select(StatusCheck))] == [f"{1:032x}"]


def test_outbox_rows_stay_while_they_may_still_be_retried(db):
    for n, age in enumerate((timedelta(hours=5), timedelta(hours=25))):
        db.add(Delivery(kind="notice", owner_id=str(n), due_at=utcnow(), created_at=utcnow() - age))
    db.commit()
    report = retention.purge(db, now=utcnow(), draft_hours=1, rejected_days=30)
    db.commit()
    assert report.deliveries == 1 and [row.owner_id for row in db.exec(select(Delivery))] == ["0"]
