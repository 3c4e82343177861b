"""`flask reminders send`, and the same reminder as the consumer's daily periodic task."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import select

from app.models import AuditEvent, Role, utcnow
from app.services import lifecycle
from tests import factories
from tests.conftest import make_staff
from tests.services.test_roster import make_member


def run(app, *args):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=["reminders", "send", *args], catch_exceptions=False)


def overdue_world(app, db):  # type: ignore[no-untyped-def]
    district = factories.district(db)
    db.commit()
    make_staff(db, "o@example.org", Role.official, ["PD"])
    member = make_member(db, app.extensions["pii"], district, 1, name="李四")
    member.created_at = utcnow() - timedelta(days=60)
    db.add(member)
    db.commit()


def test_reminders_send_prints_counts_and_audits_once_a_day(app, db, caplog):
    overdue_world(app, db)
    caplog.set_level("INFO")
    first = run(app)
    assert first.exit_code == 0
    assert "PD: 0 due, 1 overdue, 0 waiting for an answer; 1 officials" in first.output
    assert "reminded districts: 1" in first.output
    assert "李四" not in caplog.text and factories.phone(1) not in caplog.text
    assert "reminded districts: 0" in run(app).output  # already reminded today
    assert "reminded districts: 1" in run(app, "--force").output
    rows = db.exec(select(AuditEvent).where(AuditEvent.action == lifecycle.REMINDER_SENT)).all()
    assert len(rows) == 2 and rows[0].details["overdue"] == 1


def test_nothing_to_remind(app, db):
    factories.district(db)
    db.commit()
    assert "reminded districts: 0" in run(app).output


def test_the_daily_reminder_is_a_periodic_task_of_the_consumer(app, db):
    overdue_world(app, db)
    task, huey = app.extensions["reminders"], app.extensions["tasks"].huey
    due = {type(t).__name__ for t in huey.read_periodic(datetime(2026, 12, 2, 1, 0))}  # noqa: DTZ001 - Huey's UTC
    assert "daily_reminders" in due
    assert "daily_reminders" not in {type(t).__name__ for t in huey.read_periodic(datetime(2026, 12, 2, 2, 0))}  # noqa: DTZ001
    assert task.call_local() == 1  # what the consumer runs at 01:00 UTC (09:00 Beijing)
    assert task.call_local() == 0


def test_two_consumers_running_the_daily_task_at_once_remind_a_district_once(app, db, monkeypatch):
    import threading  # noqa: PLC0415
    import time  # noqa: PLC0415

    overdue_world(app, db)
    original = lifecycle.send_reminders

    def slow(*args, **kwargs):  # type: ignore[no-untyped-def]
        sent = original(*args, **kwargs)
        time.sleep(0.5)  # before the commit: a second consumer reading now would not see the audit row
        return sent

    monkeypatch.setattr(lifecycle, "send_reminders", slow)
    task, counts = app.extensions["reminders"], []
    threads = [threading.Thread(target=lambda: counts.append(task.call_local())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    db.commit()
    rows = db.exec(select(AuditEvent).where(AuditEvent.action == lifecycle.REMINDER_SENT)).all()
    assert sorted(counts) == [0, 1] and len(rows) == 1
