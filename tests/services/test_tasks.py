"""Durable delivery (app/services/tasks.py): queued codes sent only while current, nothing in clear
on the queue, decision notices retried and a final failure audited."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlmodel import select

from app.models import AuditEvent, JoinAttempt, utcnow
from app.services import tasks
from app.services.sms import SmsError
from tests import factories
from tests.services.test_notify import joined_member
from tests.web.test_join import submit


def queued_app(app):  # type: ignore[no-untyped-def]
    """The app's deliveries on a queue that holds tasks (as the consumer's storage does)."""
    deliveries = app.extensions["tasks"]
    held = tasks.make_huey("immediate")
    held.immediate = False  # in memory, not run at once: the test pops the tasks
    deliveries.huey = held
    deliveries.code_task = held.task(name="send_code")(deliveries.send_code)
    deliveries.notice_task = held.task(context=True, name="send_notice")(deliveries.send_notice)
    return held


def run_queued(huey):  # type: ignore[no-untyped-def]
    results = []
    while (task := huey.dequeue()) is not None:
        results.append(huey.execute(task))
    return results


def test_a_join_code_is_queued_sealed_and_sent_by_the_consumer(app, client, db, sms, station):  # type: ignore[no-untyped-def]
    held = queued_app(app)
    submit(client, factories.join_path(app, station))
    assert sms.sent == [] and held.pending_count() == 1
    raw = repr([t.args for t in held.pending()])
    assert factories.phone(1)[-8:] not in raw
    attempt = db.exec(select(JoinAttempt)).one()
    assert not any(str(n).isdigit() and len(str(n)) == 6 for n in held.pending()[0].args), "no code in clear"
    assert attempt.id in raw
    assert run_queued(held) == ["sent"]
    assert len(sms.sent) == 1 and sms.sent[0].to == factories.phone(1)


def test_a_code_replaced_by_a_resend_or_expired_is_dropped(app, client, db, sms, station):  # type: ignore[no-untyped-def]
    held = queued_app(app)
    submit(client, factories.join_path(app, station))
    attempt = db.exec(select(JoinAttempt)).one()
    attempt.code_hash = "0" * 64  # a resend put another code on the attempt
    db.add(attempt)
    db.commit()
    assert run_queued(held) == ["stale"] and sms.sent == []

    other = app.test_client()
    submit(other, factories.join_path(app, station), phone=factories.phone(2)[3:])
    second = db.exec(select(JoinAttempt).where(JoinAttempt.id != attempt.id)).one()
    second.code_expires_at = utcnow() - timedelta(seconds=1)
    db.add(second)
    db.commit()
    assert run_queued(held) == ["stale"] and sms.sent == []


def test_is_current_refuses_a_proven_attempt(app):  # type: ignore[no-untyped-def]
    owner = SimpleNamespace(id="a" * 32, verified_at=utcnow(), code_expires_at=utcnow() + timedelta(minutes=5))
    assert not tasks.is_current(owner, "123456", key="k", now=utcnow())  # type: ignore[arg-type]


def test_a_notice_retries_while_the_provider_is_down_and_a_final_failure_is_audited(app, client, db, sms):  # type: ignore[no-untyped-def]
    member = joined_member(app, client, db, sms)
    deliveries = app.extensions["tasks"]
    sms.fail_with = SmsError("unavailable")
    with pytest.raises(SmsError):
        deliveries.send_notice(member.id, task=SimpleNamespace(retries=3))
    assert db.exec(select(AuditEvent).where(AuditEvent.action == tasks.NOTICE_FAILED)).all() == []
    assert deliveries.send_notice(member.id, task=SimpleNamespace(retries=0)) == "unavailable"
    db.commit()  # a fresh snapshot
    failed = db.exec(select(AuditEvent).where(AuditEvent.action == tasks.NOTICE_FAILED)).one()
    assert failed.target_id == str(member.id) and failed.details == {"reason": "unavailable"}


def test_a_decision_is_answered_with_its_notice_queued(app, client, db, sms):  # type: ignore[no-untyped-def]
    member = joined_member(app, client, db, sms)
    held = queued_app(app)
    before = len(sms.sent)
    app.extensions["tasks"].enqueue_notice(SimpleNamespace(member_id=member.id))
    assert len(sms.sent) == before and held.pending_count() == 1
    assert run_queued(held) == ["sent"] and len(sms.sent) == before + 1


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
