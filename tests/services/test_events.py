"""The after-commit channel: events dispatched once their transaction commits, dropped otherwise."""

from __future__ import annotations

import logging

from sqlmodel import select

from app.models import Member, Role, utcnow
from app.services import decisions, events
from tests.services.test_notify import joined_member
from tests.services.test_roster import make_user


def test_an_event_is_dispatched_after_the_commit_and_dropped_on_rollback(app, db):  # type: ignore[no-untyped-def]
    seen: list[events.Event] = []
    app.extensions["events"].subscribe(events.ApplicationSubmitted, seen.append)
    with app.app_context():
        events.record(db, events.ApplicationSubmitted(1, 1, "created"))
        assert seen == [], "nothing before the commit"
        db.rollback()
        db.commit()
        assert seen == [], "a rolled-back event never goes out"
        events.record(db, events.ApplicationSubmitted(2, 1, "created"))
        db.commit()
        assert seen == [events.ApplicationSubmitted(2, 1, "created")]
        db.commit()
        assert len(seen) == 1, "dispatched once"


def test_a_failing_handler_is_logged_and_the_others_run(app, db, caplog):  # type: ignore[no-untyped-def]
    def broken(_event: events.Event) -> None:
        raise RuntimeError("webhook down")

    bus = app.extensions["events"]
    bus.subscribe(events.ApplicationSubmitted, broken)
    bus.subscribe(events.ApplicationSubmitted, lambda _event: "ran")
    caplog.set_level(logging.ERROR, logger="app.services.events")
    with app.app_context():
        events.record(db, events.ApplicationSubmitted(3, 1, "created"))
        db.commit()
        # after the app's own handlers (webhooks, robots): the broken one, then the next
        assert events.outcomes(db, events.ApplicationSubmitted)[-2:] == [None, "ran"]
    assert any("broken" in r.getMessage() and "RuntimeError" in r.getMessage() for r in caplog.records)


def test_a_decision_texts_the_worker_after_the_commit_only(app, client, db, sms):  # type: ignore[no-untyped-def]
    member = joined_member(app, client, db, sms)
    admin = make_user(db, role=Role.admin)
    db.commit()
    before = len(sms.sent)
    with app.app_context():
        decisions.decide(db, None, [member.id], by=admin, approve=True, now=utcnow())
        assert len(sms.sent) == before, "no text while the decision may still roll back"
        db.rollback()
        assert len(sms.sent) == before
        decisions.decide(db, None, [member.id], by=admin, approve=True, now=utcnow())
        db.commit()
        # the notice's handler (subscribed first) queued it; the webhooks' handler follows
        assert len(sms.sent) == before + 1 and events.outcomes(db, events.MemberDecided)[0] is True
    assert db.exec(select(Member)).one().member_number


def test_a_proven_join_code_reports_the_application_after_the_commit(app, client, db, sms):  # type: ignore[no-untyped-def]
    seen: list[events.Event] = []
    app.extensions["events"].subscribe(events.ApplicationSubmitted, seen.append)
    member = joined_member(app, client, db, sms)
    assert seen == [events.ApplicationSubmitted(member.id, member.district_id, "created")]


def test_a_released_savepoint_is_not_the_commit_nothing_runs_until_the_outer_one(app, db):  # type: ignore[no-untyped-def]
    ran: list[events.Event] = []
    bus = app.extensions["events"]
    bus.subscribe(events.ApplicationSubmitted, ran.append)
    with app.app_context():
        events.record(db, events.ApplicationSubmitted(5, 1, "created"))
        with db.begin_nested():
            pass  # a service's savepoint (imports, transfers, decisions use them)
        assert ran == [], "released savepoint: the outer transaction may still roll back"
        db.rollback()
        assert ran == []
        events.record(db, events.ApplicationSubmitted(6, 1, "created"))
        with db.begin_nested():
            pass
        db.commit()
        assert [item.member_id for item in ran] == [6]
