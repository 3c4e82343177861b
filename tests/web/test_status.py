"""The worker's status page: phone → SMS code → status; counters on the server; withdrawal."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from sqlmodel import select

from app.models import AuditEvent, JoinAttempt, Member, MemberStatus, StatusCheck, User, utcnow
from app.services import limits, roster, status
from tests import factories
from tests.conftest import hidden_fields
from tests.web.test_join import code_from, send_code, submit


def joined(client, app, sms, station) -> None:  # type: ignore[no-untyped-def]
    """A worker joins through the real flow (phone 1) and ends up pending."""
    submit(client, factories.join_path(app, station))
    assert send_code(client, code_from(sms)).status_code == 303


def ask(client, phone: str):  # type: ignore[no-untyped-def]
    page = client.get("/status/")
    assert page.status_code == 200
    return client.post("/status/", data={**hidden_fields(page.text), "phone": phone})


def enter(client, code: str):  # type: ignore[no-untyped-def]
    page = client.get("/status/code")
    return client.post("/status/code", data={**hidden_fields(page.text), "code": code})


def prove(client, sms, phone: str):  # type: ignore[no-untyped-def]
    assert ask(client, phone).status_code == 303
    assert enter(client, code_from(sms)).status_code == 303
    return client.get("/status/me", headers={"Accept-Language": "en"})


def decide(app, db, member_id: int, *, approve: bool) -> None:  # type: ignore[no-untyped-def]
    official = User(email="o@example.org", password_hash="x", role="official")
    db.add(official)
    db.flush()
    if approve:
        roster.approve(db, None, member_id, by=official, now=utcnow())
    else:
        roster.reject(db, None, member_id, by=official, reason="请先提供站点证明", now=utcnow())
    db.commit()


def only_member(db) -> Member:  # type: ignore[no-untyped-def]
    db.commit()
    db.expire_all()
    return db.exec(select(Member)).one()


def test_pending_worker_sees_pending(client, app, db, sms, station):
    joined(client, app, sms, station)
    page = prove(app.test_client(), sms, factories.phone(1))
    assert page.status_code == 200 and "waiting for review" in page.text


def test_approved_worker_sees_member_number(client, app, db, sms, station):
    joined(client, app, sms, station)
    decide(app, db, only_member(db).id, approve=True)
    page = prove(app.test_client(), sms, factories.phone(1))
    assert re.search(r'id="member-number">PD-000001<', page.text)


def test_rejected_worker_sees_reason_and_how_to_reapply(client, app, db, sms, station):
    joined(client, app, sms, station)
    decide(app, db, only_member(db).id, approve=False)
    page = prove(app.test_client(), sms, factories.phone(1))
    assert "请先提供站点证明" in page.text and "apply again" in page.text


def test_unknown_number_gets_the_same_answer_until_the_code(client, app, db, sms, station):
    joined(client, app, sms, station)
    sent = len(sms.sent)
    member_answer = ask(app.test_client(), factories.phone(1))
    stranger_answer = ask(app.test_client(), factories.phone(2))
    assert member_answer.status_code == stranger_answer.status_code == 303
    assert member_answer.headers["Location"] == stranger_answer.headers["Location"]
    assert len(sms.sent) == sent + 2 and sms.sent[-1].to == factories.phone(2)
    stranger = app.test_client()
    page = prove(stranger, sms, factories.phone(2))
    assert "No application for this number" in page.text and "Delete my data" not in page.text


def test_status_needs_a_proven_phone(client, app, sms, station):
    assert client.get("/status/me").status_code == 404
    ask(client, factories.phone(1))
    assert client.get("/status/me").status_code == 404, "a code sent is not a phone proven"


def test_wrong_codes_are_counted_on_the_server_across_new_checks(client, app, db, sms, station, monkeypatch):
    monkeypatch.setattr(limits.policy, "DELAY_AFTER", 100)  # no backoff here: this is about the count
    with time_machine.travel(utcnow(), tick=False) as clock:
        for _ in range(2):  # two checks of 5 wrong tries each: 10 failures for the phone today
            assert ask(client, factories.phone(1)).status_code == 303
            wrong = f"{(int(code_from(sms)) + 1) % 10**6:06d}"
            for _ in range(5):
                enter(client, wrong)
            clock.shift(timedelta(minutes=11))  # past the per-phone send window
        assert ask(app.test_client(), factories.phone(1)).status_code == 429, "11th failure never gets a chance"
    db.commit()
    assert sum(c.code_tries for c in db.exec(select(StatusCheck))) == 10


def test_the_table_counts_failures_even_without_the_limiter_store(app, db):
    pii = app.extensions["pii"]
    db.add(
        StatusCheck(
            id="a" * 32, phone_index=pii.index(factories.phone(1)), phone_enc="x", code_tries=10, created_at=utcnow()
        )
    )
    db.commit()
    with pytest.raises(status.TooManyChecks):
        status.start(
            db, factories.phone(1), pii=pii, locale="zh", gateway=app.extensions["sms"], key="k", now=utcnow(), ttl=600
        )
    status.start(
        db, factories.phone(2), pii=pii, locale="zh", gateway=app.extensions["sms"], key="k", now=utcnow(), ttl=600
    )
    with pytest.raises(status.TooManyChecks):  # the fifth code of the day for phone 2
        for _ in range(status.CHECKS_PER_DAY):
            status.start(
                db,
                factories.phone(2),
                pii=pii,
                locale="zh",
                gateway=app.extensions["sms"],
                key="k",
                now=utcnow(),
                ttl=600,
            )
    later = utcnow() + timedelta(days=1, minutes=1)
    status.start(
        db, factories.phone(1), pii=pii, locale="zh", gateway=app.extensions["sms"], key="k", now=later, ttl=600
    )


def test_send_limits_per_phone_are_shared_with_the_join_flow(client, app, sms, station):
    assert ask(app.test_client(), factories.phone(1)).status_code == 303
    assert ask(app.test_client(), factories.phone(1)).status_code == 303
    assert ask(app.test_client(), factories.phone(1)).status_code == 429
    assert len(sms.sent) == 2
    assert ask(app.test_client(), factories.phone(2)).status_code == 303, "another phone is not affected"


def test_resend_after_cooldown_makes_a_new_row_that_keeps_old_failures(client, app, db, sms, station):
    app.config["RESEND_COOLDOWN_SECONDS"] = 0
    ask(client, factories.phone(1))
    first = code_from(sms)
    enter(client, f"{(int(first) + 1) % 10**6:06d}")
    page = client.get("/status/code")
    assert client.post("/status/resend", data=hidden_fields(page.text)).status_code == 303
    second = code_from(sms)
    if first != second:
        refused = enter(client, first)
        assert refused.status_code == 303 and refused.headers["Location"].endswith("/status/code")
        assert "验证码不正确" in client.get("/status/code").text
    assert enter(client, second).status_code == 303
    db.commit()
    checks = db.exec(select(StatusCheck)).all()
    assert len(checks) == 2 and sum(c.code_tries for c in checks) >= 2
    assert {c.locale for c in checks} <= {"zh", "en"}, "fits the column on PostgreSQL"


def test_withdrawal_deletes_the_data_and_leaves_an_anonymous_audit_event(client, app, db, sms, station):
    joined(client, app, sms, station)
    member_id = only_member(db).id
    worker = app.test_client()
    page = prove(worker, sms, factories.phone(1))
    refused = worker.post("/status/withdraw", data={**hidden_fields(page.text)})
    assert refused.status_code == 422 and only_member(db).id == member_id
    done = worker.post("/status/withdraw", data={**hidden_fields(page.text), "confirm": "y"})
    assert done.status_code == 303 and worker.get(done.headers["Location"]).status_code == 200
    db.commit()
    db.expire_all()
    assert db.exec(select(Member)).all() == []
    assert db.exec(select(JoinAttempt)).all() == []
    assert db.exec(select(StatusCheck)).all() == []
    event = db.exec(select(AuditEvent).where(AuditEvent.action == "member.withdraw")).one()
    assert event.target_id == str(member_id)
    assert factories.phone(1) not in str(event.details) and "王小明" not in str(event.details)
    assert worker.get("/status/me").status_code == 404, "the proof ends with the data"


def test_reapply_after_rejection_then_status_is_pending_again(client, app, db, sms, station):
    joined(client, app, sms, station)
    decide(app, db, only_member(db).id, approve=False)
    again = app.test_client()
    submit(again, factories.join_path(app, station))
    send_code(again, code_from(sms))
    assert only_member(db).status is MemberStatus.pending


def test_a_status_code_the_provider_refused_is_explained_on_the_code_page(app, client, db, sms, station):  # type: ignore[no-untyped-def]
    from app.services.sms import SmsError  # noqa: PLC0415

    joined(client, app, sms, station)
    before = len(sms.sent)
    sms.fail_with = SmsError("rejected")
    assert ask(client, factories.phone(1)[3:]).headers["Location"].endswith("/status/code")
    page = client.get("/status/code", headers={"Accept-Language": "en"})
    assert "We could not send a code to this number" in page.text and len(sms.sent) == before
    db.commit()
    assert db.exec(select(StatusCheck)).one().send_error == "rejected", "the consumer wrote why, the page read it"


def test_a_status_code_is_owed_with_the_commit_and_sent_by_the_sweep_if_its_wake_up_is_lost(
    app, client, db, sms, station, monkeypatch
):  # type: ignore[no-untyped-def]
    from app.services import tasks  # noqa: PLC0415

    joined(client, app, sms, station)
    before = len(sms.sent)
    monkeypatch.setattr(app.extensions["tasks"], "wake", lambda kind, owner: None)  # the server died after the commit
    assert ask(client, factories.phone(1)[3:]).status_code == 303
    assert len(sms.sent) == before
    app.extensions["tasks"].sweep(utcnow() + timedelta(seconds=tasks.GRACE_SECONDS + 1))
    assert len(sms.sent) == before + 1
    assert enter(client, code_from(sms)).headers["Location"].endswith("/status/me")
