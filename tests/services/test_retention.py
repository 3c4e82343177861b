"""Retention (docs/security.md F8; scenario 57): drafts after 24 h, rejected applications after 30 days."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from app.models import AuditEvent, JoinAttempt, Member, MemberStatus, PlaceKind, Platform, utcnow
from app.services import retention
from tests import factories


def attempt(db, district, n: int, *, age: timedelta, verified: bool = False) -> JoinAttempt:  # type: ignore[no-untyped-def]
    now = utcnow()
    row = JoinAttempt(
        id=f"{n:032x}",
        form_key=f"key-{n}",
        district_id=district.id,
        source_kind=PlaceKind.district,
        source_qr_version=1,
        name_enc="x",
        phone_enc="x",
        phone_index=f"{n:064x}",
        platform=Platform.didi,
        consent_version="v",
        consent_at=now - age,
        created_at=now - age,
        verified_at=(now - age) if verified else None,
    )
    db.add(row)
    return row


def member(db, district, n: int, status: MemberStatus, decided_ago: timedelta | None) -> Member:  # type: ignore[no-untyped-def]
    now = utcnow()
    row = Member(
        district_id=district.id,
        name_enc="x",
        phone_enc="x",
        phone_index=f"m{n:063x}",
        phone_last4_index="y",
        platform=Platform.didi,
        status=status,
        consent_version="v",
        consent_at=now - timedelta(days=90),
        source_kind=PlaceKind.district,
        source_qr_version=1,
        created_at=now - timedelta(days=90),
        verified_at=now - timedelta(days=90),
        decided_at=(now - decided_ago) if decided_ago else None,
    )
    db.add(row)
    return row


def ids(db, model) -> set:  # type: ignore[no-untyped-def]
    db.commit()  # end the read snapshot: see what others wrote
    db.expire_all()
    return {row.id for row in db.exec(select(model))}


def test_purge_deletes_only_what_is_past_its_time(db):
    district = factories.district(db)
    old_draft = attempt(db, district, 1, age=timedelta(hours=24, minutes=1))
    new_draft = attempt(db, district, 2, age=timedelta(hours=23, minutes=59))
    old_done = attempt(db, district, 3, age=timedelta(days=2), verified=True)
    gone = member(db, district, 1, MemberStatus.rejected, timedelta(days=30, minutes=1))
    kept_rejected = member(db, district, 2, MemberStatus.rejected, timedelta(days=29, hours=23))
    approved = member(db, district, 3, MemberStatus.approved, timedelta(days=400))
    pending = member(db, district, 4, MemberStatus.pending, None)
    db.flush()
    old_done.member_id = gone.id
    db.commit()
    report = retention.purge(db, now=utcnow(), draft_hours=24, rejected_days=30)
    db.commit()
    assert report == retention.RetentionReport(drafts=1, finished=1, rejected=1)
    assert ids(db, JoinAttempt) == {new_draft.id}
    assert ids(db, Member) == {kept_rejected.id, approved.id, pending.id}
    assert old_draft.id not in ids(db, JoinAttempt)


def test_each_run_leaves_an_audit_event_without_personal_data(db):
    district = factories.district(db)
    attempt(db, district, 1, age=timedelta(days=3))
    db.commit()
    retention.purge(db, now=utcnow(), draft_hours=24, rejected_days=30)
    db.commit()
    event = db.exec(select(AuditEvent).where(AuditEvent.action == "retention.run")).one()
    assert event.details == {
        "drafts": 1,
        "finished": 0,
        "rejected": 0,
        "status_checks": 0,
        "deliveries": 0,
        "draft_hours": 24,
        "rejected_days": 30,
    }
    assert event.actor_id is None and event.target_id is None


def test_settings_set_the_periods(db):
    district = factories.district(db)
    attempt(db, district, 1, age=timedelta(hours=3))
    member(db, district, 1, MemberStatus.rejected, timedelta(days=8))
    db.commit()
    report = retention.purge(db, now=utcnow(), draft_hours=2, rejected_days=7)
    assert (report.drafts, report.rejected) == (1, 1)


def test_command_prints_the_counts(app, db):
    district = factories.district(db)
    attempt(db, district, 1, age=timedelta(days=2))
    attempt(db, district, 2, age=timedelta(minutes=5))
    db.commit()
    result = app.test_cli_runner().invoke(args=["retention", "run"])
    assert result.exit_code == 0, result.output
    assert "deleted drafts: 1" in result.output and "rejected applications: 0" in result.output
    assert "status checks: " in result.output
    assert len(ids(db, JoinAttempt)) == 1


def test_a_real_draft_from_the_join_flow_is_deleted_after_a_day(app, db):
    import time_machine

    from tests.security.conftest import browser, submit

    station = factories.workplace(db, factories.district(db))
    db.commit()
    submit(browser(app), factories.join_path(app, station))
    assert len(ids(db, JoinAttempt)) == 1
    with time_machine.travel(utcnow() + timedelta(hours=24, minutes=1)):
        result = app.test_cli_runner().invoke(args=["retention", "run"])
    assert "deleted drafts: 1" in result.output
    assert ids(db, JoinAttempt) == set()
