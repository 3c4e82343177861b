"""Durable delivery (app/services/tasks.py): every code and notice is an outbox row written with the
commit; a lost wake-up or a consumer killed holding a row is made good by the sweep; a row is sent
once however many wake-ups reach it; stale codes are dropped; notices retried, a final failure
audited."""

from __future__ import annotations

import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlmodel import select

from app.models import AuditEvent, Delivery, JoinAttempt, utcnow
from app.services import events, tasks
from app.services.sms import SmsError
from tests import factories
from tests.services.test_notify import joined_member
from tests.web.test_join import code_from, send_code, submit


def lose_wake_ups(app, monkeypatch) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """The process dies (or the queue is down) right after the commit: no wake-up is enqueued.
    Returns what would have been put on the queue."""
    asked: list[tuple[str, str]] = []
    monkeypatch.setattr(app.extensions["tasks"], "wake", lambda kind, owner: asked.append((kind, owner)))
    return asked


def rows(db) -> list[Delivery]:  # type: ignore[no-untyped-def]
    db.commit()  # a fresh snapshot, and fresh objects
    return list(db.exec(select(Delivery).execution_options(populate_existing=True)).all())


def test_a_join_code_is_sent_by_its_wake_up_and_its_row_deleted(app, client, db, sms, station):  # type: ignore[no-untyped-def]
    submit(client, factories.join_path(app, station))
    assert len(sms.sent) == 1 and sms.sent[0].to == factories.phone(1)
    assert rows(db) == [], "a sent code leaves nothing behind"


def test_the_code_is_owed_in_the_same_commit_and_nothing_personal_is_queued(app, client, db, sms, station, monkeypatch):  # type: ignore[no-untyped-def]
    asked = lose_wake_ups(app, monkeypatch)
    submit(client, factories.join_path(app, station))
    attempt = db.exec(select(JoinAttempt)).one()
    assert asked == [(tasks.JOIN_CODE, attempt.id)], "the queue carries the kind and the attempt's id only"
    [row] = rows(db)
    assert row.kind == tasks.JOIN_CODE and row.owner_id == attempt.id and row.attempts == 0
    assert row.code_enc and not any(part.isdigit() and len(part) == 6 for part in row.code_enc.split(":"))
    assert app.extensions["pii"].decrypt(row.code_enc).isdigit(), "the code is sealed with the PII cipher"
    assert sms.sent == []


def test_a_wake_up_lost_after_the_commit_is_made_good_by_the_sweep(app, client, db, sms, station, monkeypatch):  # type: ignore[no-untyped-def]
    lose_wake_ups(app, monkeypatch)
    submit(client, factories.join_path(app, station))
    deliveries = app.extensions["tasks"]
    assert deliveries.sweep() == 1 and sms.sent == [], "a fresh row is its own wake-up's for a grace period"
    later = utcnow() + timedelta(seconds=tasks.GRACE_SECONDS + 1)
    deliveries.sweep(later)
    assert len(sms.sent) == 1 and rows(db) == []
    assert send_code(client, code_from(sms)).headers["Location"].endswith("/join/done"), "the code proves the phone"


def test_a_consumer_killed_holding_a_row_hands_it_on_when_its_lease_ends(app, client, db, sms, station, monkeypatch):  # type: ignore[no-untyped-def]
    lose_wake_ups(app, monkeypatch)
    submit(client, factories.join_path(app, station))
    deliveries = app.extensions["tasks"]
    [row] = rows(db)
    now = utcnow()
    with deliveries.new_session() as other:  # a consumer claims it, then is killed before sending
        assert deliveries._claim(other, row.id, now) is not None
    assert deliveries.deliver(row.id, now + timedelta(seconds=1)) == "taken"
    assert deliveries.sweep(now + timedelta(seconds=1)) == 1 and sms.sent == [], "woken at the lease's end, not before"
    assert deliveries.deliver(row.id, now + timedelta(seconds=tasks.LEASE_SECONDS + 1)) == "sent"
    assert len(sms.sent) == 1 and rows(db) == []


def test_many_wake_ups_at_once_send_one_text(app, client, db, sms, station, monkeypatch):  # type: ignore[no-untyped-def]
    lose_wake_ups(app, monkeypatch)
    submit(client, factories.join_path(app, station))
    [row] = rows(db)
    deliveries = app.extensions["tasks"]
    outcomes: list[str] = []
    start = threading.Barrier(6)

    def wake() -> None:
        start.wait()
        outcomes.append(deliveries.deliver(row.id))

    threads = [threading.Thread(target=wake) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["sent"] + ["taken"] * 5
    assert len(sms.sent) == 1


def test_a_code_replaced_by_a_resend_or_expired_is_dropped(app, client, db, sms, station, monkeypatch):  # type: ignore[no-untyped-def]
    lose_wake_ups(app, monkeypatch)
    deliveries = app.extensions["tasks"]
    submit(client, factories.join_path(app, station))
    attempt = db.exec(select(JoinAttempt)).one()
    attempt.code_hash = "0" * 64  # a resend put another code on the attempt
    db.add(attempt)
    db.commit()
    other = app.test_client()
    submit(other, factories.join_path(app, station), phone=factories.phone(2)[3:])
    second = db.exec(select(JoinAttempt).where(JoinAttempt.id != attempt.id)).one()
    second.code_expires_at = utcnow() - timedelta(seconds=1)
    db.add(second)
    db.commit()
    assert [deliveries.deliver(row.id) for row in rows(db)] == ["stale", "stale"]
    assert sms.sent == [] and rows(db) == []


def test_is_current_refuses_a_proven_attempt(app):  # type: ignore[no-untyped-def]
    owner = SimpleNamespace(id="a" * 32, verified_at=utcnow(), code_expires_at=utcnow() + timedelta(minutes=5))
    assert not tasks.is_current(owner, "123456", key="k", now=utcnow())  # type: ignore[arg-type]


def test_a_code_the_provider_cannot_take_is_retried_briefly_then_given_up(app, client, db, sms, station, monkeypatch):  # type: ignore[no-untyped-def]
    lose_wake_ups(app, monkeypatch)
    sms.fail_with = SmsError("unavailable")
    submit(client, factories.join_path(app, station))
    deliveries = app.extensions["tasks"]
    [row] = rows(db)
    now = utcnow()
    outcomes = []
    for _ in range(tasks.CODE_RETRIES + 1):
        outcomes.append(deliveries.deliver(row.id, now))
        [waiting] = rows(db) or [None]
        if waiting is None:
            break
        assert deliveries.deliver(row.id, now) == "taken", "not before its time"
        now = waiting.due_at + timedelta(seconds=1)
        assert waiting.due_at - timedelta(seconds=tasks.CODE_RETRY_SECONDS) <= now
    assert outcomes == ["later"] * tasks.CODE_RETRIES + ["unavailable"]
    assert rows(db) == []
    assert db.get(JoinAttempt, row.owner_id, populate_existing=True).send_error == "unavailable"


def test_a_notice_backs_off_while_the_provider_is_down_then_is_audited(app, client, db, sms, monkeypatch):  # type: ignore[no-untyped-def]
    member = joined_member(app, client, db, sms)
    lose_wake_ups(app, monkeypatch)
    sms.fail_with = SmsError("unavailable")
    deliveries = app.extensions["tasks"]
    events.record(db, events.MemberDecided(member_id=member.id, district_id=member.district_id, approved=True))
    db.commit()
    [row] = rows(db)
    now, waits = utcnow(), []
    for _ in range(tasks.NOTICE_RETRIES):
        assert deliveries.deliver(row.id, now) == "later"
        assert db.exec(select(AuditEvent).where(AuditEvent.action == tasks.NOTICE_FAILED)).all() == []
        [waiting] = rows(db)
        waits.append(round((waiting.due_at - now).total_seconds()))
        now = waiting.due_at
    assert waits == [tasks.NOTICE_FIRST_DELAY * tasks.NOTICE_BACKOFF**n for n in range(tasks.NOTICE_RETRIES)]
    assert deliveries.deliver(row.id, now) == "unavailable"
    assert rows(db) == []
    failed = db.exec(select(AuditEvent).where(AuditEvent.action == tasks.NOTICE_FAILED)).one()
    assert failed.target_id == str(member.id) and failed.details == {"reason": "unavailable"}


def test_a_decision_owes_its_notice_in_the_same_commit(app, client, db, sms, monkeypatch):  # type: ignore[no-untyped-def]
    from tests.web.test_roster import make_member, post_form, sign_in

    district = factories.district(db, "PD", "浦东")
    member = make_member(db, app.extensions["pii"], district, 1)
    db.commit()
    sign_in(client, db)
    asked = lose_wake_ups(app, monkeypatch)
    post_form(client, f"/roster/{member.id}", f"/roster/{member.id}/approve")
    assert asked == [(tasks.NOTICE, str(member.id))] and sms.sent == []
    [row] = rows(db)
    assert (row.kind, row.owner_id, row.code_enc) == (tasks.NOTICE, str(member.id), None)
    app.extensions["tasks"].sweep(utcnow() + timedelta(seconds=tasks.GRACE_SECONDS + 1))
    assert len(sms.sent) == 1 and sms.sent[0].to == factories.phone(1) and rows(db) == []


def test_a_rolled_back_change_owes_nothing(app, db, sms):  # type: ignore[no-untyped-def]
    events.record(db, events.MemberDecided(member_id=1, district_id=1, approved=True))
    db.rollback()
    assert rows(db) == [] and sms.sent == []


def test_make_huey_reads_the_setting(tmp_path):  # type: ignore[no-untyped-def]
    assert tasks.make_huey("immediate").immediate
    assert not tasks.make_huey(f"sqlite:///{tmp_path / 'q.db'}").immediate
    with pytest.raises(ValueError):
        tasks.make_huey("amqp://nowhere")


def test_a_notice_that_finally_failed_is_flagged_on_the_members_page(app, client, db, sms):  # type: ignore[no-untyped-def]
    from tests.web.test_roster import make_member, post_form, sign_in

    district = factories.district(db, "PD", "浦东")
    member = make_member(db, app.extensions["pii"], district, 1)
    db.commit()
    sign_in(client, db)
    page = client.get(f"/roster/{member.id}", headers={"Accept-Language": "en"})
    assert "Not delivered" not in page.text
    sms.fail_with = SmsError("rejected", 21211)  # permanent: no retry, audited at once
    post_form(client, f"/roster/{member.id}", f"/roster/{member.id}/approve")
    page = client.get(f"/roster/{member.id}", headers={"Accept-Language": "en"})
    assert "Not delivered: the worker was not told of this decision by SMS" in page.text
    db.commit()
    failed = db.exec(select(AuditEvent).where(AuditEvent.action == tasks.NOTICE_FAILED)).one()
    assert failed.details == {"reason": "rejected"} and factories.phone(1)[-4:] not in str(failed.details)
